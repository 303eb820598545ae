//! `bus.consumer(options)`: a member of a consumer group whose `run` loop hands
//! messages to `eachMessage` (or runs of them to `eachBatch`), acks what resolves,
//! fails what throws or rejects, and counts a handler still running after
//! `ackTimeoutMs` as a failed attempt.
//!
//! # Loop and shutdown
//!
//! `run` joins the group, then loops: housekeeping and heartbeat when due, a poll
//! for as many runs as `concurrency` leaves room for (committed before any
//! handler starts, so a lease is stored before its message is handled), one task
//! per run, and a sleep until something is due, a run finishes, or this context
//! stores new messages. Under partition ordering a run is up to `maxBatchSize`
//! consecutive messages of one partition, handled in order; its acks go to the
//! engine together when it ends (see [`Settlements`]), in the same commit as the
//! next poll when they come in time. A failure ends the run (the engine gives the
//! rest back, no attempt counted). `stop` ends the loop, lets each run finish the
//! message it is handling (up to `ackTimeoutMs`), gives the rest back, and leaves
//! the group at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

#[cfg(feature = "bridge")]
use super::bridge::{bridge_options, BridgeEvent, BridgeOptions, Forwarder};
use super::bus::{call, call_unchecked, is_client, one_writer, promise, wake_consumers, Shared};
use super::locks::MemberLock;
use super::settled::Waiters;
#[cfg(feature = "bridge")]
use crate::core::bridge::Verdict;
use crate::core::config::{check_name, ConsumerConfig, Ordering};
use crate::core::engine::Pause;
use crate::core::engine::Wait;
use crate::core::limits::*;
use crate::core::{Delivery, FerryError, Name, PollLimit, Receipt, Result, Subscription};
use crate::interop::args;
use crate::interop::delivered::{message_payload, payload};
use crate::interop::options::{consumer_config, seek_options, subscriptions};
use crate::protocol::{Call, Reply, RunEnd};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub(super) fn set_timeout(handler: &Function, timeout_ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(super) fn clear_timeout(handle: &JsValue);
    /// JavaScript's `Number(value)`: reads a number or a numeric string.
    #[wasm_bindgen(js_name = Number)]
    fn to_number(value: &JsValue) -> f64;
}

/// Wakes sleeping consumer loops of one bus: new messages, finished handlers, stop.
#[derive(Default)]
pub struct Wakers {
    sleepers: Waiters,
    /// Wake-ups so far: a loop busy with a commit when one came must not sleep after.
    wakes: Cell<u64>,
}

impl Wakers {
    pub fn wake_all(&self) {
        self.wakes.set(self.wakes.get() + 1);
        self.sleepers.wake_all();
    }

    /// Sleeps `ms` milliseconds, or less when woken.
    pub(super) async fn sleep(&self, ms: f64) {
        let mut handle = JsValue::UNDEFINED;
        let wait = Promise::new(&mut |resolve: Function, _reject: Function| {
            handle = set_timeout(&resolve, ms.max(0.0));
            self.sleepers.add(resolve);
        });
        let _ = JsFuture::from(wait).await;
        clear_timeout(&handle);
    }
}

/// What one consumer's loop and handlers share.
pub(super) struct State {
    group: String,
    member: String,
    config: ConsumerConfig,
    subscriptions: RefCell<Vec<Subscription>>,
    running: Cell<bool>,
    stopped: Cell<bool>,
    /// Runs being handled, each holding slots of `concurrency`.
    slots: RefCell<Vec<Rc<Slot>>>,
    /// The member's Web Lock, while it runs in a context that has them.
    lock: RefCell<Option<MemberLock>>,
    /// Partitions it does not take for now (`pause`), sent with every round.
    paused: RefCell<Vec<Pause>>,
    /// How many times this member sought each partition it sought (topic,
    /// partition, count; a few, so a list): a run started before a
    /// seek of its partition stops. (A context whose engine is current also sees
    /// other contexts' seeks: [`holds`].)
    seeks: RefCell<Vec<(Name, u32, u32)>>,
}

/// One run's hold on slots of `concurrency`: until it ends, or the message it is
/// handling passes its ack timeout. One sweep over the slots replaces a timer per
/// message.
struct Slot {
    /// When the message being handled passes `ackTimeoutMs`.
    give_up_at_ms: Cell<f64>,
    held: Cell<bool>,
    /// Slots taken: one per run under partition ordering (one per partition), one
    /// per message otherwise.
    weight: u32,
    /// The run's acks not handed to the engine yet.
    settlements: Settlements,
}

impl Slot {
    /// A message of the run starts now: its ack timeout runs from here.
    fn start_message(&self, ack_timeout_ms: u64) {
        self.give_up_at_ms.set(js_sys::Date::now() + ack_timeout_ms as f64);
    }
}

impl State {
    /// How many times this member sought the partition of `delivery`.
    fn seeks_of(&self, delivery: &Delivery) -> u32 {
        self.seeks.borrow().iter().find(|(t, p, _)| *t == delivery.topic && *p == delivery.partition).map_or(0, |(_, _, count)| *count)
    }

    /// This member's seek of `partition` of `topic` is stored.
    fn sought(&self, topic: String, partition: u32) {
        let mut seeks = self.seeks.borrow_mut();
        match seeks.iter_mut().find(|(t, p, _)| **t == *topic && *p == partition) {
            Some((_, _, count)) => *count += 1,
            None => seeks.push((Name::from(topic), partition, 1)),
        }
    }

    fn in_flight(&self) -> u32 {
        self.slots.borrow().iter().map(|slot| slot.weight).sum()
    }

    /// Takes slots for a run whose first message starts now.
    fn take_slot(&self, weight: u32) -> Rc<Slot> {
        let slot = Rc::new(Slot { give_up_at_ms: Cell::new(0.0), held: Cell::new(true), weight, settlements: Settlements::default() });
        slot.start_message(self.config.ack_timeout_ms);
        self.slots.borrow_mut().push(slot.clone());
        slot
    }

    /// Gives back the slots of runs past their ack timeout (and of ended ones). Such
    /// a handler is a failed attempt that the engine counts when its lease runs
    /// out; whatever it does later is ignored, but the acks of its run before it
    /// are handed to the engine now.
    fn sweep_slots(&self, shared: &Shared, now_ms: f64) {
        self.slots.borrow_mut().retain(|slot| {
            if now_ms >= slot.give_up_at_ms.get() && slot.held.replace(false) {
                slot.settlements.flush(shared, self, None);
            }
            slot.held.get()
        });
    }

    /// When the next held slot's ack timeout passes, or its acks are due to be
    /// handed to the engine.
    fn next_give_up_ms(&self) -> f64 {
        let wait_ms = self.ack_wait_ms();
        self.slots.borrow().iter().map(|slot| slot.give_up_at_ms.get().min(slot.settlements.due_at_ms(wait_ms))).fold(f64::MAX, f64::min)
    }

    /// Hands the engine the acks of runs whose handler is taking long: the loop
    /// does it at its heartbeat and when they are due, so acks never wait behind a
    /// slow message for longer than [`State::ack_wait_ms`].
    fn flush_due_settlements(&self, shared: &Shared) {
        for slot in self.slots.borrow().iter() {
            slot.settlements.flush_if_due(shared, self);
        }
    }

    /// How long a run's acks may wait to be handed to the engine: the engine's
    /// lease of the message in flight must be renewed (by the acks before it) well
    /// before other contexts could see it run out, and a heartbeat's worth of acks
    /// is what a crash may lose.
    fn ack_wait_ms(&self) -> f64 {
        (self.config.heartbeat_interval_ms.min(self.config.ack_timeout_ms / 2)) as f64
    }
}

/// A run's acks not handed to the engine yet. They go to it together, in order, in
/// one operation: at the end of the run, before a failure or a release, or when
/// the oldest has waited [`State::ack_wait_ms`]. So a run costs about one commit,
/// not one per message; a crash loses the acks still here, and those messages
/// are handled again (at least once).
#[derive(Default)]
struct Settlements {
    /// `(receipt, when its handler resolved)`.
    acks: RefCell<Vec<(Receipt, u64)>>,
    since_ms: Cell<f64>,
}

impl Settlements {
    fn ack(&self, receipt: Receipt, finished_ms: u64) {
        let mut acks = self.acks.borrow_mut();
        if acks.is_empty() {
            self.since_ms.set(js_sys::Date::now());
        }
        acks.push((receipt, finished_ms));
    }

    /// When the acks are due to be handed over (`f64::MAX` with none waiting).
    fn due_at_ms(&self, wait_ms: f64) -> f64 {
        if self.acks.borrow().is_empty() {
            f64::MAX
        } else {
            self.since_ms.get() + wait_ms
        }
    }

    /// Hands the acks over when they have waited [`State::ack_wait_ms`].
    fn flush_if_due(&self, shared: &Shared, state: &State) {
        if js_sys::Date::now() >= self.due_at_ms(state.ack_wait_ms()) {
            self.flush(shared, state, None);
        }
    }

    /// Queues the acks, then `end`, as one call. Not awaited: the loop's next
    /// round joins the same commit when it comes in time.
    fn flush(&self, shared: &Shared, state: &State, end: Option<RunEnd>) {
        let acks = self.acks.take();
        if acks.is_empty() && end.is_none() {
            return;
        }
        // call queues the call at once; its outcome is not waited for.
        drop(call(shared, Call::SettleRun { group: state.group.clone(), member: state.member.clone(), acks, end }));
    }
}

/// The handler `run` was given.
#[derive(Clone)]
pub(super) enum Handler {
    EachMessage(Function),
    /// `eachBatch`, and `eachBatchAutoResolve`.
    EachBatch(Function, bool),
    /// A bridge's: each run posted to a remote bus (bridge.rs).
    #[cfg(feature = "bridge")]
    Forward(Rc<Forwarder>),
}

impl Handler {
    /// `run`'s options: exactly one of `eachMessage` and `eachBatch`.
    pub(super) fn from_options(options: Option<&Object>) -> Result<Handler> {
        let function = |value: JsValue, field: &str| value.dyn_into::<Function>().map_err(|_| FerryError::invalid(format!("{field} must be a function")));
        let (each_message, each_batch) = (args::get(options, "eachMessage")?, args::get(options, "eachBatch")?);
        let auto_resolve = args::opt_bool(&args::get(options, "eachBatchAutoResolve")?, "eachBatchAutoResolve")?.unwrap_or(true);
        match (each_message.is_undefined(), each_batch.is_undefined()) {
            (false, true) => Ok(Handler::EachMessage(function(each_message, "eachMessage")?)),
            (true, false) => Ok(Handler::EachBatch(function(each_batch, "eachBatch")?, auto_resolve)),
            (true, true) => Err(FerryError::invalid("run needs eachMessage or eachBatch, a function")),
            (false, false) => Err(FerryError::invalid("run takes one of eachMessage and eachBatch, not both")),
        }
    }
}

#[wasm_bindgen]
pub struct Consumer {
    shared: Shared,
    state: Rc<State>,
    /// A bridge's: where it posts, with its progress and listeners.
    #[cfg(feature = "bridge")]
    forwarder: Option<Rc<Forwarder>>,
}

/// A bridge started by this context, for `bus.stats().bridges`.
#[cfg(feature = "bridge")]
pub(super) struct Bridge {
    forwarder: Rc<Forwarder>,
    state: Rc<State>,
}

#[cfg(feature = "bridge")]
impl Bridge {
    pub fn stats_entry(&self, stats: &crate::core::Stats) -> Result<JsValue> {
        self.forwarder.stats_entry(&self.state.group, self.state.running.get() && !self.state.stopped.get(), stats)
    }
}

impl Consumer {
    pub(super) fn new(shared: Shared, options: &JsValue) -> Result<Consumer> {
        let options = args::options(options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a groupId"))?;
        let group = args::string(&args::get(Some(&options), "groupId")?, "groupId")?;
        check_name("groupId", &group)?;
        let config = consumer_config(Some(&options))?;
        Ok(Consumer::member(shared, group, config, Vec::new()))
    }

    /// A new member of `group`, not yet running.
    fn member(shared: Shared, group: String, config: ConsumerConfig, subscriptions: Vec<Subscription>) -> Consumer {
        let member = super::locks::member_id(&group);
        let state = State {
            group,
            member,
            config,
            subscriptions: RefCell::new(subscriptions),
            running: Cell::new(false),
            stopped: Cell::new(false),
            slots: RefCell::default(),
            lock: RefCell::new(None),
            paused: RefCell::default(),
            seeks: RefCell::default(),
        };
        Consumer {
            shared,
            state: Rc::new(state),
            #[cfg(feature = "bridge")]
            forwarder: None,
        }
    }

    /// `bus.bridge(options)`: a member of `groupId` (`"ferry-bridge"` by default)
    /// on the bridged topics from their beginning, whose handler posts; running
    /// once it joined. Its retries default to the most attempts a consumer may
    /// have: an outage is no reason to give a message up; its concurrency to
    /// [`BRIDGE_CONCURRENCY_DEFAULT`] partitions posting at once.
    #[cfg(feature = "bridge")]
    pub(super) async fn bridge(shared: Shared, options: &JsValue) -> Result<Consumer> {
        let options = args::options(options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a url and topics"))?;
        let BridgeOptions { forwarder, subscriptions, batch_size } = bridge_options(Some(&options))?;
        let group = args::opt_string(&args::get(Some(&options), "groupId")?, "groupId")?.unwrap_or_else(|| "ferry-bridge".into());
        check_name("groupId", &group)?;
        let mut config = consumer_config(Some(&options))?;
        config.batch_size_max = batch_size;
        let retry = args::get(Some(&options), "retry")?;
        if !retry.is_object() || args::get(Some(retry.unchecked_ref()), "maxAttempts")?.is_undefined() {
            config.retry.max_attempts = ATTEMPTS_MAX;
        }
        if args::get(Some(&options), "concurrency")?.is_undefined() {
            config.concurrency = BRIDGE_CONCURRENCY_DEFAULT;
        }
        let mut consumer = Consumer::member(shared, group, config, subscriptions);
        let forwarder = Rc::new(forwarder);
        consumer.forwarder = Some(forwarder.clone());
        let weak = Rc::downgrade(&consumer.shared);
        let group = consumer.state.group.clone();
        forwarder.wake_on_network(Rc::new(move || {
            if let Some(shared) = weak.upgrade() {
                // Not awaited: the commit wakes the loops (its own and the writer's).
                drop(call(&shared, Call::RetryNow { group: group.clone() }));
                wake_consumers(&shared);
            }
        }));
        start(&consumer.shared, &consumer.state, Handler::Forward(forwarder.clone())).await?;
        consumer.shared.bridges.borrow_mut().push(Bridge { forwarder, state: consumer.state.clone() });
        Ok(consumer)
    }
}

/// `subscribe(options)` of a consumer (local or remote): added to `subscribed`,
/// before `run` only.
pub(super) fn subscribe_before_run(subscribed: &RefCell<Vec<Subscription>>, running: bool, options: &JsValue) -> Result<()> {
    let new = subscriptions(options)?;
    if running {
        return Err(FerryError::invalid("subscribe must come before run"));
    }
    let mut subscribed = subscribed.borrow_mut();
    if subscribed.len() + new.len() > SUBSCRIPTIONS_MAX {
        return Err(FerryError::invalid(format!("a consumer subscribes to at most {SUBSCRIPTIONS_MAX} topics")));
    }
    subscribed.extend(new);
    Ok(())
}

/// Whether a consumer (local or remote) may start: `run` once, after `subscribe`.
pub(super) fn check_startable(started: bool, subscriptions: &[Subscription]) -> Result<()> {
    if started {
        return Err(FerryError::invalid("run was called already"));
    }
    if subscriptions.is_empty() {
        return Err(FerryError::invalid("subscribe to a topic before run"));
    }
    Ok(())
}

/// Joins the member's group and starts its loop with `handler`.
async fn start(shared: &Shared, state: &Rc<State>, handler: Handler) -> Result<()> {
    let subscriptions = state.subscriptions.borrow().clone();
    check_startable(state.running.get() || state.stopped.get(), &subscriptions)?;
    let (group, member, config) = (state.group.clone(), state.member.clone(), state.config.clone());
    // The lock is taken before joining: a member others can see always holds it.
    if let Some(bus) = &shared.name {
        *state.lock.borrow_mut() = MemberLock::take(bus, &group, &member).await;
    }
    if let Err(refused) = call(shared, Call::Join { group, member, subscriptions, config }).await {
        release_lock(state);
        return Err(refused);
    }
    wake_consumers(shared);
    state.running.set(true);
    shared.consumers.borrow_mut().push(state.clone());
    spawn_local(run_loop(shared.clone(), state.clone(), handler));
    Ok(())
}

#[wasm_bindgen]
impl Consumer {
    /// `consumer.memberId`: this member's id in its group, as `bus.stats()` names
    /// partition owners.
    #[wasm_bindgen(getter, js_name = memberId)]
    pub fn member_id(&self) -> String {
        self.state.member.clone()
    }

    /// `consumer.pause([{ topic, partitions? }])`: this member keeps those partitions
    /// (all of the topic's when `partitions` is left out) but takes nothing more of
    /// them until `resume`; what it is handling already goes on.
    pub fn pause(&self, topics: JsValue) -> std::result::Result<(), JsValue> {
        for (topic, partitions) in pause_targets(&topics).map_err(crate::interop::error::to_js)? {
            Pause::add(&mut self.state.paused.borrow_mut(), &topic, partitions.as_deref());
        }
        Ok(())
    }

    /// `consumer.resume([{ topic, partitions? }])`: takes those partitions again.
    pub fn resume(&self, topics: JsValue) -> std::result::Result<(), JsValue> {
        for (topic, partitions) in pause_targets(&topics).map_err(crate::interop::error::to_js)? {
            Pause::remove(&mut self.state.paused.borrow_mut(), &topic, partitions.as_deref());
        }
        wake_consumers(&self.shared);
        Ok(())
    }

    /// `consumer.paused()`: `[{ topic, partitions? , except? }]`: `partitions` left
    /// out when the whole topic is paused (but `except`).
    pub fn paused(&self) -> std::result::Result<js_sys::Array, JsValue> {
        let out = js_sys::Array::new();
        for pause in self.state.paused.borrow().iter() {
            let list: js_sys::Array = pause.partitions.iter().map(|p| JsValue::from(*p)).collect();
            let field = if pause.all { "except" } else { "partitions" };
            out.push(&crate::interop::object_of(&[("topic", JsValue::from_str(&pause.topic)), (field, list.into())]).map_err(crate::interop::error::to_js)?);
        }
        Ok(out)
    }

    /// `consumer.subscribe({ topic, fromBeginning })` or `{ topics: [...] }`, before `run`.
    pub fn subscribe(&self, options: JsValue) -> Promise {
        match subscribe_before_run(&self.state.subscriptions, self.state.running.get(), &options) {
            Ok(()) => Promise::resolve(&JsValue::UNDEFINED),
            Err(refused) => Promise::reject(&crate::interop::error::to_js(refused)),
        }
    }

    /// `consumer.run({ eachMessage })` or `consumer.run({ eachBatch,
    /// eachBatchAutoResolve })`: resolves once the consumer joined its group.
    pub fn run(&self, options: JsValue) -> Promise {
        let (shared, state) = (self.shared.clone(), self.state.clone());
        promise(async move {
            let options = args::options(&options, "options")?;
            let handler = Handler::from_options(options.as_ref())?;
            start(&shared, &state, handler).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `consumer.seek({ topic, partition, offset })` or `{ topic, partition,
    /// timestamp }`: moves the group's position in that partition, stored when
    /// the promise resolves (to the offset the group consumes next). Works before
    /// `run` and while running: the partition's deliveries in flight are
    /// abandoned, no attempt counted; a handler already running finishes, but its
    /// result counts for nothing and the rest of its run is not handed to it.
    pub fn seek(&self, options: JsValue) -> Promise {
        let (shared, state) = (self.shared.clone(), self.state.clone());
        promise(async move {
            let (topic, partition, to) = seek_options(&options)?;
            let seek = Call::Seek { group: state.group.clone(), topic: topic.clone(), partition, to };
            let Reply::Count(offset) = call(&shared, seek).await? else { return Err(FerryError::storage("seek got an unexpected reply")) };
            state.sought(topic, partition);
            wake_consumers(&shared);
            Ok(JsValue::from_f64(offset as f64))
        })
    }

    /// `consumer.stop()`: no new deliveries; waits for handlers in flight (up to
    /// `ackTimeoutMs`), then gives the partitions up.
    pub fn stop(&self) -> Promise {
        let (shared, state) = (self.shared.clone(), self.state.clone());
        promise(async move {
            stop(&shared, &state).await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// A bridge's own methods. Only builds with the bridge have them: in the pages'
/// build, a page's bridges are consumers of the engine's build (bridge_bus.rs).
#[cfg(feature = "bridge")]
#[wasm_bindgen]
impl Consumer {
    /// `bridge.on("forwarded" | "failed", listener)`: a bridge tells of each batch
    /// it posted (see [`Forwarder::record`]).
    pub fn on(&self, event: String, listener: Function) -> std::result::Result<(), JsValue> {
        let (forwarder, event) = self.bridge_event(&event).map_err(crate::interop::error::to_js)?;
        forwarder.on(event, listener);
        Ok(())
    }

    /// `bridge.drained()`: resolves once the bridge's group (in every context) has
    /// nothing left to forward; rejects with the error when one of this context's
    /// posts fails first and is to be tried again. In a service worker,
    /// `event.waitUntil(bridge.drained())` on a `sync` of tag `"ferry-bridge"`
    /// keeps the worker alive for the drain, and a failure asks the browser to
    /// sync again later.
    pub fn drained(&self) -> Promise {
        let (shared, state, forwarder) = (self.shared.clone(), self.state.clone(), self.forwarder.clone());
        promise(async move {
            let forwarder = forwarder.ok_or_else(|| FerryError::invalid("only a bridge (bus.bridge) drains"))?;
            let failures_before = forwarder.transient_failures();
            loop {
                let Reply::Stats(stats) = call(&shared, Call::Stats).await? else { return Err(FerryError::storage("stats got an unexpected reply")) };
                let pending: u64 = stats.groups.iter().filter(|g| *g.group_id == *state.group).flat_map(|g| g.partitions.iter()).map(|p| p.lag).sum();
                if pending == 0 {
                    return Ok(JsValue::UNDEFINED);
                }
                if forwarder.transient_failures() != failures_before {
                    let error = forwarder.last_error().unwrap_or_default();
                    return Err(FerryError::storage(format!("the bridge could not forward yet ({pending} pending): {error}")));
                }
                forwarder.next_post(BRIDGE_DRAINED_CHECK_MS as f64).await;
            }
        })
    }

    /// `bridge.off(event, listener)`: the listener is told no more.
    pub fn off(&self, event: String, listener: Function) -> std::result::Result<(), JsValue> {
        let (forwarder, event) = self.bridge_event(&event).map_err(crate::interop::error::to_js)?;
        forwarder.off(event, &listener);
        Ok(())
    }
}

#[cfg(feature = "bridge")]
impl Consumer {
    fn bridge_event(&self, event: &str) -> Result<(Rc<Forwarder>, BridgeEvent)> {
        let forwarder = self.forwarder.clone().ok_or_else(|| FerryError::invalid("only a bridge (bus.bridge) has events"))?;
        Ok((forwarder, BridgeEvent::parse(event)?))
    }
}

/// `pause`'s and `resume`'s `[{ topic, partitions? }]`, checked.
fn pause_targets(topics: &JsValue) -> Result<Vec<(String, Option<Vec<u32>>)>> {
    let list = args::array(topics, "topics")?;
    if list.length() as usize > SUBSCRIPTIONS_MAX {
        return Err(FerryError::invalid(format!("topics names at most {SUBSCRIPTIONS_MAX} topics")));
    }
    args::each(&list, |i, item| {
        let field = format!("topics[{i}]");
        let item = args::options(&item, &field)?.ok_or_else(|| FerryError::invalid(format!("{field} must be an object {{ topic, partitions? }}")))?;
        let topic = args::string(&args::get(Some(&item), "topic")?, &format!("{field}.topic"))?;
        check_name(&format!("{field}.topic"), &topic)?;
        let partitions = args::get(Some(&item), "partitions")?;
        let partitions = match partitions.is_undefined() {
            true => None,
            false => {
                let array = args::array(&partitions, &format!("{field}.partitions"))?;
                Some(args::each(&array, |j, p| args::integer(&p, &format!("{field}.partitions[{j}]"), 0, u64::from(PARTITIONS_MAX) - 1).map(|p| p as u32))?)
            }
        };
        Ok((topic, partitions))
    })
}

/// Stops a consumer (also used by `bus.close()`).
pub(super) async fn stop(shared: &Shared, state: &Rc<State>) -> Result<()> {
    if state.stopped.replace(true) || !state.running.get() {
        return Ok(());
    }
    let wakers = shared.wakers.clone();
    wakers.wake_all();
    let give_up_at = js_sys::Date::now() + state.config.ack_timeout_ms as f64;
    loop {
        let now_ms = js_sys::Date::now();
        state.sweep_slots(shared, now_ms);
        if state.in_flight() == 0 || now_ms >= give_up_at {
            break;
        }
        wakers.sleep(state.next_give_up_ms().min(give_up_at) - now_ms).await;
    }
    shared.consumers.borrow_mut().retain(|c| !Rc::ptr_eq(c, state));
    // The bus may be closing: leaving must still be stored.
    let left = call_unchecked(shared, Call::Leave { group: state.group.clone(), member: state.member.clone(), evicted: false }).await.map(drop);
    // Released only once the leave is stored, or others would evict a member that is
    // still settling.
    release_lock(state);
    wake_consumers(shared);
    left
}

fn release_lock(state: &State) {
    if let Some(lock) = state.lock.take() {
        lock.release();
    }
}

async fn run_loop(shared: Shared, state: Rc<State>, handler: Handler) {
    let wakers = shared.wakers.clone();
    let mut heartbeat_due_ms = 0.0;
    let ordered = state.config.ordering == Ordering::Partition;
    while !state.stopped.get() {
        let wakes_before = wakers.wakes.get();
        let now_ms = js_sys::Date::now();
        state.flush_due_settlements(&shared);
        state.sweep_slots(&shared, now_ms);
        let free = state.config.concurrency.saturating_sub(state.in_flight()) as usize;
        let heartbeat = now_ms >= heartbeat_due_ms;
        if free == 0 && !heartbeat {
            // Every slot taken: a round could lease nothing. The run that ends wakes
            // the loop; the heartbeat or an ack timeout ends the sleep otherwise.
            wakers.sleep(heartbeat_due_ms.min(state.next_give_up_ms()).max(now_ms + 1.0) - now_ms).await;
            continue;
        }
        let limit = if ordered { PollLimit::runs(free, state.config.batch_size_max as usize) } else { PollLimit::from(free) };
        // Housekeeping runs with every commit (Engine::housekeep): the loop's round
        // is one when it is due.
        if heartbeat {
            heartbeat_due_ms = now_ms + state.config.heartbeat_interval_ms as f64;
        }
        // Where one context writes the bus, a round that leases nothing waits there
        // for work (held.rs), until the heartbeat or an ack timeout is due.
        let wait_ms = if one_writer(&shared) && free > 0 { (heartbeat_due_ms.min(state.next_give_up_ms()) - now_ms).max(1.0) as u64 } else { 0 };
        let round = Call::Round {
            group: state.group.clone(),
            member: state.member.clone(),
            subscriptions: state.subscriptions.borrow().clone(),
            config: state.config.clone(),
            heartbeat,
            limit,
            wait_ms,
            paused: state.paused.borrow().clone(),
        };
        // When the round was refused (storage failed, the bus is closing) nothing was
        // handed out: the loop sleeps and tries again.
        let (deliveries, high_offsets, answered) = match call(&shared, round).await {
            Ok(Reply::Round { deliveries, high_offsets, .. }) => (deliveries, high_offsets, true),
            _ => Default::default(),
        };
        let idle = deliveries.is_empty();
        for run in runs(deliveries, ordered || !matches!(handler, Handler::EachMessage(..))) {
            let slot = state.take_slot(if ordered { 1 } else { run.len() as u32 });
            let seeks_before = state.seeks_of(&run[0]);
            match &handler {
                Handler::EachMessage(f) => spawn_local(handle_run(shared.clone(), state.clone(), f.clone(), run, slot, seeks_before)),
                Handler::EachBatch(f, auto_resolve) => {
                    let (topic, partition) = (&run[0].topic, run[0].partition);
                    let high =
                        high_offsets.iter().find(|(t, p, _)| **t == **topic && *p == partition).map_or(run[run.len() - 1].message.offset + 1, |(_, _, high)| *high);
                    spawn_local(handle_batch(shared.clone(), state.clone(), f.clone(), *auto_resolve, run, slot, high, seeks_before))
                }
                #[cfg(feature = "bridge")]
                Handler::Forward(forwarder) => spawn_local(forward_run(shared.clone(), state.clone(), forwarder.clone(), run, slot)),
            }
        }
        // Nothing to hand out (and the round did not wait for work at the writer),
        // or every slot taken: sleep until something is due (a retry, a lease, an
        // ack timeout, the heartbeat); an append (here or in another context) or a
        // run ending wakes the loop, also one that came while this round was
        // committing.
        let woken = wakers.wakes.get() != wakes_before;
        let waited = answered && idle && wait_ms > 0;
        if !woken && !waited && (idle || state.in_flight() >= state.config.concurrency) {
            // A client's engine is not current: the writer's rounds tell it what is due.
            let next_due = if is_client(&shared) { None } else { shared.local.next_due_ms() };
            let wake_at = next_due.map_or(f64::MAX, |t| t as f64).min(heartbeat_due_ms).min(state.next_give_up_ms()).max(now_ms + 1.0);
            wakers.sleep(wake_at - js_sys::Date::now()).await;
        }
    }
}

/// Splits a poll's deliveries (grouped by partition, in offset order) into what
/// one task handles: each partition's messages together when `by_partition`, else
/// one message each.
fn runs(deliveries: Vec<Delivery>, by_partition: bool) -> Vec<Vec<Delivery>> {
    let mut runs: Vec<Vec<Delivery>> = Vec::new();
    for delivery in deliveries {
        match runs.last_mut() {
            Some(run) if by_partition && run[0].topic == delivery.topic && run[0].partition == delivery.partition => run.push(delivery),
            _ => runs.push(vec![delivery]),
        }
    }
    runs
}

/// Ends a run's hold on its slots and wakes the loop to poll again.
fn end_run(shared: &Shared, state: &State, slot: &Slot) {
    slot.held.set(false);
    state.sweep_slots(shared, js_sys::Date::now());
    shared.wakers.wake_all();
}

/// Runs `eachMessage` for each message of a run in turn and settles each with the
/// engine. The run ends at a failure, when its slot was given back (an ack
/// timeout), or at `stop` (the rest is given back unhandled).
async fn handle_run(shared: Shared, state: Rc<State>, handler: Function, run: Vec<Delivery>, slot: Rc<Slot>, seeks_before: u32) {
    let settlements = &slot.settlements;
    let mut last = None;
    for delivery in run {
        if !slot.held.get() {
            // The message before passed its ack timeout: the engine counts it and
            // gives this one back when that lease runs out.
            break;
        }
        if state.stopped.get() {
            last = Some(RunEnd::Release(delivery.receipt()));
            break;
        }
        if !holds(&shared, &state, &delivery, seeks_before) {
            // A seek (here or in another context) abandoned the run.
            break;
        }
        settlements.flush_if_due(&shared, &state);
        slot.start_message(state.config.ack_timeout_ms);
        let outcome = call_handler(&handler, &payload(&delivery)).await;
        if !slot.held.get() {
            break;
        }
        let finished_ms = js_sys::Date::now() as u64;
        match outcome {
            Ok(_) => settlements.ack(delivery.receipt(), finished_ms),
            Err(error) => {
                last = Some(RunEnd::Fail { receipt: delivery.receipt(), error: error_message(&error), finished_ms, wait: Wait::Backoff });
                break;
            }
        }
    }
    settlements.flush(&shared, &state, last);
    end_run(&shared, &state, &slot);
}

/// Posts a bridge's run to the remote bus: acked when forwarded, dead-lettered
/// at once when refused, tried again after `Retry-After` or the backoff when the
/// failure is transient (the rest of the run is given back either way).
#[cfg(feature = "bridge")]
async fn forward_run(shared: Shared, state: Rc<State>, forwarder: Rc<Forwarder>, run: Vec<Delivery>, slot: Rc<Slot>) {
    slot.start_message(state.config.ack_timeout_ms);
    let woken_before = forwarder.woken();
    let verdict = match forwarder.prepare(&run).await {
        // All left out by the transform: nothing to post, the run is done.
        Ok(messages) if messages.is_empty() => Verdict::Forwarded,
        Ok(messages) => {
            let verdict = forwarder.post(&run[0].topic, run[0].partition, &messages).await;
            forwarder.record(&run[0].topic, run[0].partition, &messages, &verdict);
            verdict
        }
        // A transform that throws is a handler that fails: backoff, then a dead letter.
        Err(error) => {
            let verdict = Verdict::Transient { error, delay_ms: None };
            let messages: Vec<_> = run.iter().map(|d| d.message.clone()).collect();
            forwarder.record(&run[0].topic, run[0].partition, &messages, &verdict);
            verdict
        }
    };
    let mut last = None;
    if slot.held.get() {
        let finished_ms = js_sys::Date::now() as u64;
        let fail = |error, wait| Some(RunEnd::Fail { receipt: run[0].receipt(), error, finished_ms, wait });
        match verdict {
            Verdict::Forwarded => run.iter().for_each(|d| slot.settlements.ack(d.receipt(), finished_ms)),
            // The whole batch is dead-lettered at once: posting its messages again
            // one by one would only be refused again.
            Verdict::Refused { error } => last = Some(RunEnd::Refuse { receipts: run.iter().map(Delivery::receipt).collect(), error, finished_ms }),
            // The network came back while the post was on its way: at once, unless
            // the far end said when.
            Verdict::Transient { error, delay_ms } => {
                let backoff = if forwarder.woken() != woken_before { Wait::Ms(0) } else { Wait::Backoff };
                last = fail(error, delay_ms.map_or(backoff, Wait::Ms));
            }
        }
    }
    slot.settlements.flush(&shared, &state, last);
    end_run(&shared, &state, &slot);
}

/// Whether this member still holds a delivery of a run started with
/// `seeks_before` seeks of its partition: a seek of its partition or the loss of its
/// lease means its result would count for nothing. A client sees only its own
/// seeks (its engine is not current); the settle tells the rest.
fn holds(shared: &Shared, state: &State, delivery: &Delivery, seeks_before: u32) -> bool {
    let sought = state.seeks_of(delivery) != seeks_before;
    // The bus busy changing (it never is between two messages): the settle will tell.
    !sought && (is_client(shared) || shared.local.holds(&state.group, &state.member, &delivery.receipt(), js_sys::Date::now() as u64))
}

/// Calls a handler and waits for what it returns to settle.
pub(super) async fn call_handler(handler: &Function, argument: &JsValue) -> std::result::Result<JsValue, JsValue> {
    match handler.call1(&JsValue::UNDEFINED, argument) {
        Err(thrown) => Err(thrown),
        Ok(returned) => JsFuture::from(Promise::resolve(&returned)).await,
    }
}

/// What `eachBatch`'s functions ask of its batch, as `batchPayload` numbers them.
pub(super) const BATCH_RESOLVE_OFFSET: u32 = 0;
pub(super) const BATCH_HEARTBEAT: u32 = 1;
pub(super) const BATCH_IS_RUNNING: u32 = 2;
pub(super) const BATCH_IS_STALE: u32 = 3;

/// How far an `eachBatch` call has resolved its batch.
struct BatchProgress {
    deliveries: Vec<Delivery>,
    /// Messages resolved so far, from the first.
    resolved: Cell<usize>,
}

impl BatchProgress {
    /// Acks, in order, every message up to and including `offset` not yet resolved.
    fn resolve_through(&self, shared: &Shared, state: &State, slot: &Slot, offset: u64) {
        let finished_ms = js_sys::Date::now() as u64;
        while let Some(delivery) = self.deliveries.get(self.resolved.get()).filter(|d| d.message.offset <= offset) {
            slot.settlements.ack(delivery.receipt(), finished_ms);
            self.resolved.set(self.resolved.get() + 1);
        }
        slot.settlements.flush_if_due(shared, state);
        slot.start_message(state.config.ack_timeout_ms);
    }

    fn first_unresolved(&self) -> Option<&Delivery> {
        self.deliveries.get(self.resolved.get())
    }
}

/// Runs `eachBatch` for a run: `resolveOffset` acks, and a resolved call acks the
/// rest when `eachBatchAutoResolve`, else gives the unresolved rest back; a throw
/// fails the first unresolved message (and the engine gives the rest back).
#[allow(clippy::too_many_arguments)]
async fn handle_batch(
    shared: Shared,
    state: Rc<State>,
    handler: Function,
    auto_resolve: bool,
    run: Vec<Delivery>,
    slot: Rc<Slot>,
    high_watermark: u64,
    seeks_before: u32,
) {
    let (topic, partition) = (run[0].topic.clone(), run[0].partition);
    let last_offset = run[run.len() - 1].message.offset;
    let messages: js_sys::Array = run.iter().map(|d| message_payload(&d.message, d.attempt)).collect();
    let progress = Rc::new(BatchProgress { deliveries: run, resolved: Cell::new(0) });

    // One closure answers all four of the batch's functions (BatchCall): every
    // closure type costs kilobytes of glue.
    let control = {
        let (shared, state, slot, progress, topic) = (shared.clone(), state.clone(), slot.clone(), progress.clone(), topic.clone());
        Closure::<dyn Fn(u32, JsValue) -> JsValue>::new(move |asked: u32, argument: JsValue| match asked {
            BATCH_RESOLVE_OFFSET => {
                // KafkaJS passes offsets as strings: JavaScript's Number() reads both.
                let offset = to_number(&argument);
                if offset >= 0.0 && slot.held.get() {
                    progress.resolve_through(&shared, &state, &slot, offset as u64);
                }
                JsValue::UNDEFINED
            }
            BATCH_HEARTBEAT => {
                // What was resolved so far is stored with the heartbeat
                // (KafkaJS's commitOffsetsIfNecessary is this call too).
                slot.settlements.flush(&shared, &state, None);
                let stored = call(&shared, Call::Heartbeat { group: state.group.clone(), member: state.member.clone() });
                promise(async move {
                    stored.await?;
                    Ok(JsValue::UNDEFINED)
                })
                .into()
            }
            BATCH_IS_RUNNING => JsValue::from_bool(!state.stopped.get()),
            BATCH_IS_STALE => {
                // A client's engine is not current: its own seeks and ack timeouts tell.
                let owned = is_client(&shared) || shared.local.owns(&state.group, &state.member, &topic, partition);
                let held = progress.first_unresolved().map_or(true, |first| holds(&shared, &state, first, seeks_before));
                JsValue::from_bool(!slot.held.get() || !owned || !held)
            }
            _ => JsValue::UNDEFINED,
        })
    };
    let argument = make_batch_payload(&topic, partition, messages, high_watermark as f64, control.as_ref().unchecked_ref());
    let outcome = call_handler(&handler, &argument).await;
    let mut last = None;
    if slot.held.get() {
        let finished_ms = js_sys::Date::now() as u64;
        if outcome.is_ok() && auto_resolve {
            progress.resolve_through(&shared, &state, &slot, last_offset);
        }
        last = progress.first_unresolved().map(|first| match outcome {
            Err(error) => RunEnd::Fail { receipt: first.receipt(), error: error_message(&error), finished_ms, wait: Wait::Backoff },
            // What the call left unresolved was never handled: it comes back as it was.
            Ok(_) => RunEnd::Release(first.receipt()),
        });
    }
    slot.settlements.flush(&shared, &state, last);
    end_run(&shared, &state, &slot);
}

/// The text of what a handler threw, for `ferry-dlq-error`.
pub(super) fn error_message(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    error.as_string().unwrap_or_else(|| js_sys::JSON::stringify(error).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "handler failed".into()))
}

#[wasm_bindgen(inline_js = "export function batchPayload(topic, partition, messages, highWatermark, control) {
  const heartbeat = () => control(1);
  const resolveOffset = (offset) => { control(0, offset); };
  const isRunning = () => control(2);
  const isStale = () => control(3);
  const batch = {
    topic, partition, messages, highWatermark,
    isEmpty: () => messages.length === 0,
    firstOffset: () => messages.length ? messages[0].offset : null,
    lastOffset: () => messages.length ? messages[messages.length - 1].offset : highWatermark - 1,
  };
  return { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary: heartbeat };
}")]
extern "C" {
    /// `eachBatch`'s argument, KafkaJS's shape; its functions call `control` with
    /// a `BATCH_*` number.
    #[wasm_bindgen(js_name = batchPayload)]
    pub(super) fn make_batch_payload(topic: &str, partition: u32, messages: js_sys::Array, high_watermark: f64, control: &Function) -> JsValue;
}
