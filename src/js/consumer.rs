//! `bus.consumer(options)`: a member of a consumer group whose `run` loop hands
//! messages to `eachMessage`, acks what resolves, fails what throws or rejects,
//! and counts a handler still running after `ackTimeoutMs` as a failed attempt.
//!
//! # Loop and shutdown
//!
//! `run` joins the group, then loops: housekeeping and heartbeat when due, a poll
//! for as many messages as `concurrency` leaves room for (committed before any
//! handler starts, so a lease is stored before its message is handled), one task
//! per delivery, and a sleep until something is due, a handler finishes, or this
//! context stores new messages. `stop` ends the loop, waits for handlers in flight
//! (up to `ackTimeoutMs`), and leaves the group at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::args;
use super::bus::{operate, operate_unchecked, promise, read_cached, wake_consumers, Shared};
use super::commit::Waiters;
use super::locks::MemberLock;
use crate::core::config::{check_name, ConsumerConfig, Ordering, RetryPolicy};
use crate::core::limits::*;
use crate::core::{Delivery, FerryError, Result, Subscription, ValueKind};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, timeout_ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
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
    async fn sleep(&self, ms: f64) {
        let mut handle = JsValue::UNDEFINED;
        let wait = Promise::new(&mut |resolve: Function, _reject: Function| {
            handle = set_timeout(&resolve, ms.max(0.0));
            self.sleepers.add(resolve);
        });
        let _ = JsFuture::from(wait).await;
        clear_timeout(&handle);
    }
}

pub(super) fn consumer_config(options: Option<&Object>) -> Result<ConsumerConfig> {
    let d = ConsumerConfig::default();
    let retry = args::options(&args::get(options, "retry")?, "retry")?;
    let r = retry.as_ref();
    let policy = RetryPolicy {
        max_attempts: args::opt_integer(&args::get(r, "maxAttempts")?, "retry.maxAttempts", 1, u64::from(ATTEMPTS_MAX))?.map_or(d.retry.max_attempts, |n| n as u32),
        initial_backoff_ms: args::opt_integer(&args::get(r, "initialBackoffMs")?, "retry.initialBackoffMs", 0, BACKOFF_MS_MAX)?.unwrap_or(d.retry.initial_backoff_ms),
        multiplier: args::opt_number(&args::get(r, "multiplier")?, "retry.multiplier", 1.0, BACKOFF_MULTIPLIER_MAX)?.unwrap_or(d.retry.multiplier),
        max_backoff_ms: args::opt_integer(&args::get(r, "maxBackoffMs")?, "retry.maxBackoffMs", 0, BACKOFF_MS_MAX)?.unwrap_or(d.retry.max_backoff_ms),
        jitter: args::opt_bool(&args::get(r, "jitter")?, "retry.jitter")?.unwrap_or(d.retry.jitter),
    };
    let ordering = match args::opt_string(&args::get(options, "ordering")?, "ordering")?.as_deref() {
        None | Some("partition") => Ordering::Partition,
        Some("none") => Ordering::None,
        Some(other) => return Err(FerryError::invalid(format!("ordering must be \"partition\" or \"none\", got \"{other}\""))),
    };
    let config = ConsumerConfig {
        retry: policy,
        dead_letter_topic: args::opt_string(&args::get(options, "deadLetterTopic")?, "deadLetterTopic")?,
        ack_timeout_ms: args::opt_integer(&args::get(options, "ackTimeoutMs")?, "ackTimeoutMs", ACK_TIMEOUT_MS_MIN, ACK_TIMEOUT_MS_MAX)?.unwrap_or(d.ack_timeout_ms),
        session_timeout_ms: args::opt_integer(&args::get(options, "sessionTimeoutMs")?, "sessionTimeoutMs", SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX)?
            .unwrap_or(d.session_timeout_ms),
        heartbeat_interval_ms: args::opt_integer(&args::get(options, "heartbeatIntervalMs")?, "heartbeatIntervalMs", 1, SESSION_TIMEOUT_MS_MAX)?
            .unwrap_or(d.heartbeat_interval_ms),
        ordering,
        concurrency: args::opt_integer(&args::get(options, "concurrency")?, "concurrency", 1, u64::from(CONCURRENCY_MAX))?.map_or(d.concurrency, |n| n as u32),
    };
    config.check()?;
    Ok(config)
}

/// What one consumer's loop and handlers share.
pub(super) struct State {
    group: String,
    member: String,
    config: ConsumerConfig,
    subscriptions: RefCell<Vec<Subscription>>,
    running: Cell<bool>,
    stopped: Cell<bool>,
    /// Handler calls holding a slot of `concurrency`.
    slots: RefCell<Vec<Rc<Slot>>>,
    /// The member's Web Lock, while it runs in a context that has them.
    lock: RefCell<Option<Rc<MemberLock>>>,
}

/// One handler call's hold on a slot: until it settles, or its ack timeout passes.
/// One sweep over the slots replaces a timer per message.
struct Slot {
    give_up_at_ms: f64,
    held: Cell<bool>,
}

impl State {
    fn in_flight(&self) -> u32 {
        self.slots.borrow().len() as u32
    }

    /// Takes a slot for a handler call starting now.
    fn take_slot(&self, now_ms: f64) -> Rc<Slot> {
        let slot = Rc::new(Slot { give_up_at_ms: now_ms + self.config.ack_timeout_ms as f64, held: Cell::new(true) });
        self.slots.borrow_mut().push(slot.clone());
        slot
    }

    /// Gives back the slots of handlers past their ack timeout (and of settled ones).
    /// Such a handler is a failed attempt that the engine counts when its lease runs
    /// out; whatever it does later is ignored.
    fn sweep_slots(&self, now_ms: f64) {
        self.slots.borrow_mut().retain(|slot| {
            if now_ms >= slot.give_up_at_ms {
                slot.held.set(false);
            }
            slot.held.get()
        });
    }

    /// When the next held slot's ack timeout passes.
    fn next_give_up_ms(&self) -> f64 {
        self.slots.borrow().iter().map(|slot| slot.give_up_at_ms).fold(f64::MAX, f64::min)
    }
}

#[wasm_bindgen]
pub struct Consumer {
    shared: Shared,
    state: Rc<State>,
}

impl Consumer {
    pub(super) fn new(shared: Shared, options: &JsValue) -> Result<Consumer> {
        let options = args::options(options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a groupId"))?;
        let group = args::string(&args::get(Some(&options), "groupId")?, "groupId")?;
        check_name("groupId", &group)?;
        let config = consumer_config(Some(&options))?;
        let member = format!("{group}-{:012x}", (js_sys::Math::random() * 2f64.powi(48)) as u64);
        let state = State {
            group,
            member,
            config,
            subscriptions: RefCell::new(Vec::new()),
            running: Cell::new(false),
            stopped: Cell::new(false),
            slots: RefCell::default(),
            lock: RefCell::new(None),
        };
        Ok(Consumer { shared, state: Rc::new(state) })
    }
}

#[wasm_bindgen]
impl Consumer {
    /// `consumer.memberId`: this member's id in its group, as `bus.stats()` names
    /// partition owners.
    #[wasm_bindgen(getter, js_name = memberId)]
    pub fn member_id(&self) -> String {
        self.state.member.clone()
    }

    /// `consumer.subscribe({ topic, fromBeginning })` or `{ topics: [...] }`, before `run`.
    pub fn subscribe(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        promise(async move {
            let new = subscriptions(&options)?;
            if state.running.get() {
                return Err(FerryError::invalid("subscribe must come before run"));
            }
            let mut subscribed = state.subscriptions.borrow_mut();
            if subscribed.len() + new.len() > SUBSCRIPTIONS_MAX {
                return Err(FerryError::invalid(format!("a consumer subscribes to at most {SUBSCRIPTIONS_MAX} topics")));
            }
            subscribed.extend(new);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `consumer.run({ eachMessage })`: resolves once the consumer joined its group.
    pub fn run(&self, options: JsValue) -> Promise {
        let (shared, state) = (self.shared.clone(), self.state.clone());
        promise(async move {
            let options = args::options(&options, "options")?;
            let handler = args::get(options.as_ref(), "eachMessage")?;
            let handler: Function = handler.dyn_into().map_err(|_| FerryError::invalid("eachMessage must be a function"))?;
            if state.running.get() || state.stopped.get() {
                return Err(FerryError::invalid("run was called already"));
            }
            let subscriptions = state.subscriptions.borrow().clone();
            if subscriptions.is_empty() {
                return Err(FerryError::invalid("subscribe to a topic before run"));
            }
            let (group, member, config) = (state.group.clone(), state.member.clone(), state.config.clone());
            // The lock is taken before joining: a member others can see always holds it.
            if let Some(bus) = &shared.name {
                *state.lock.borrow_mut() = MemberLock::take(bus, &group, &member).await.map(Rc::new);
            }
            if let Err(refused) = operate(&shared, move |e, now| e.join(&group, &member, &subscriptions, &config, now)).await {
                release_lock(&state);
                return Err(refused);
            }
            wake_consumers(&shared);
            state.running.set(true);
            shared.consumers.borrow_mut().push(state.clone());
            spawn_local(run_loop(shared, state, handler));
            Ok(JsValue::UNDEFINED)
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

/// `{ topic, fromBeginning }` or `{ topics: [...], fromBeginning }`, checked.
pub(super) fn subscriptions(options: &JsValue) -> Result<Vec<Subscription>> {
    let options = args::options(options, "options")?;
    let from_beginning = args::opt_bool(&args::get(options.as_ref(), "fromBeginning")?, "fromBeginning")?.unwrap_or(false);
    let topics_value = args::get(options.as_ref(), "topics")?;
    let topics: Vec<String> = if topics_value.is_undefined() {
        vec![args::string(&args::get(options.as_ref(), "topic")?, "topic")?]
    } else {
        let list = args::array(&topics_value, "topics")?;
        if list.length() as usize > SUBSCRIPTIONS_MAX {
            return Err(FerryError::invalid(format!("a consumer subscribes to at most {SUBSCRIPTIONS_MAX} topics")));
        }
        (0..list.length()).map(|i| args::string(&list.get(i), &format!("topics[{i}]"))).collect::<Result<_>>()?
    };
    topics
        .into_iter()
        .map(|topic| {
            check_name("topic", &topic)?;
            Ok(Subscription::new(topic, from_beginning))
        })
        .collect()
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
        state.sweep_slots(now_ms);
        if state.in_flight() == 0 || now_ms >= give_up_at {
            break;
        }
        wakers.sleep(state.next_give_up_ms().min(give_up_at) - now_ms).await;
    }
    let (group, member) = (state.group.clone(), state.member.clone());
    shared.consumers.borrow_mut().retain(|c| !Rc::ptr_eq(c, state));
    // The bus may be closing: leaving must still be stored.
    let left = operate_unchecked(shared, move |e, now| {
        e.leave(&group, &member, now);
        Ok(())
    })
    .await;
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

/// Asks for the Web Locks of the group's other members, so that one whose context
/// goes is evicted at once: its partitions move and its messages in flight come
/// back.
async fn watch_members(shared: Shared, state: Rc<State>) {
    let others: Vec<String> = match read_cached(&shared, |e| e.members(&state.group)) {
        Ok(members) => members.iter().filter(|m| ***m != *state.member).map(|m| m.to_string()).collect(),
        Err(_) => return,
    };
    let gone = {
        let (shared, group) = (shared.clone(), state.group.clone());
        move |member: String| {
            let (shared, group) = (shared.clone(), group.clone());
            spawn_local(async move {
                let evicted = operate(&shared, move |e, now| {
                    e.evict(&group, &member, now);
                    Ok(())
                })
                .await;
                if evicted.is_ok() {
                    wake_consumers(&shared);
                }
            });
        }
    };
    let lock = state.lock.borrow().clone();
    if let Some(lock) = lock {
        lock.watch(&others, gone).await;
    }
}

async fn run_loop(shared: Shared, state: Rc<State>, handler: Function) {
    let wakers = shared.wakers.clone();
    let mut heartbeat_due_ms = 0.0;
    let mut tick_due_ms = 0.0;
    while !state.stopped.get() {
        let wakes_before = wakers.wakes.get();
        let now_ms = js_sys::Date::now();
        state.sweep_slots(now_ms);
        let free = state.config.concurrency.saturating_sub(state.in_flight()) as usize;
        let (tick_due, heartbeat_due) = (now_ms >= tick_due_ms, now_ms >= heartbeat_due_ms);
        let member = state.clone();
        let polled = operate(&shared, move |e, now| {
            let (group, id) = (&member.group, &member.member);
            if tick_due {
                e.tick(now);
            }
            if heartbeat_due && !e.heartbeat(group, id, now) {
                // The session ran out (this context stalled): join again.
                e.join(group, id, &member.subscriptions.borrow(), &member.config, now)?;
            }
            if free == 0 {
                return Ok(Vec::new());
            }
            e.poll(group, id, free, now)
        })
        .await;
        if now_ms >= tick_due_ms {
            tick_due_ms = now_ms + ACK_TIMEOUT_MS_MIN as f64;
        }
        if now_ms >= heartbeat_due_ms {
            heartbeat_due_ms = now_ms + state.config.heartbeat_interval_ms as f64;
        }
        // When storage refused the round nothing was handed out: the loop sleeps and
        // tries again.
        if state.lock.borrow().is_some() {
            spawn_local(watch_members(shared.clone(), state.clone()));
        }
        let deliveries = polled.unwrap_or_default();
        let idle = deliveries.is_empty();
        for delivery in deliveries {
            let slot = state.take_slot(js_sys::Date::now());
            spawn_local(handle(shared.clone(), state.clone(), handler.clone(), delivery, slot));
        }
        // Nothing to hand out, or every slot taken: sleep until something is due (a
        // retry, a lease, an ack timeout, the heartbeat); an append (here or in another
        // context) or a finishing handler wakes the loop, also one that came while
        // this round was committing.
        let woken = wakers.wakes.get() != wakes_before;
        if !woken && (idle || state.in_flight() >= state.config.concurrency) {
            let next_due = read_cached(&shared, |e| e.next_due_ms()).ok().flatten().map_or(f64::MAX, |t| t as f64);
            let wake_at = next_due.min(heartbeat_due_ms).min(state.next_give_up_ms()).max(now_ms + 1.0);
            wakers.sleep(wake_at - js_sys::Date::now()).await;
        }
    }
}

/// Runs `eachMessage` for one delivery and settles it with the engine, unless its
/// slot was given back (ack timeout) first.
async fn handle(shared: Shared, state: Rc<State>, handler: Function, delivery: Delivery, slot: Rc<Slot>) {
    let outcome = match handler.call1(&JsValue::UNDEFINED, &payload(&delivery)) {
        Err(thrown) => Err(thrown),
        Ok(returned) => JsFuture::from(Promise::resolve(&returned)).await.map(|_| ()),
    };
    if !slot.held.replace(false) {
        return;
    }
    let receipt = delivery.receipt();
    let (group, member) = (state.group.clone(), state.member.clone());
    let settled = operate(&shared, move |e, now| {
        match outcome {
            Ok(()) => e.ack(&group, &member, &receipt, now),
            Err(error) => e.fail(&group, &member, &receipt, &error_message(&error), now),
        };
        Ok(())
    });
    // The settlement is queued: the slot is free, and the loop's next poll runs
    // after it, in the same commit when it comes in time.
    state.sweep_slots(js_sys::Date::now());
    shared.wakers.wake_all();
    let _ = settled.await;
}

/// The text of what a handler threw, for `ferry-dlq-error`.
fn error_message(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    error.as_string().unwrap_or_else(|| js_sys::JSON::stringify(error).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "handler failed".into()))
}

#[wasm_bindgen(inline_js = "export function payload(topic, partition, key, value, names, values, offset, timestamp, id, attempt) {
  const headers = {};
  for (let i = 0; i < names.length; i++) headers[names[i]] = values[i];
  return { topic, partition, message: { key: key ?? null, value, headers, offset, timestamp, id: id ?? null, attempt } };
}")]
extern "C" {
    /// Builds `eachMessage`'s argument in one call: property names cross from wasm
    /// as text, which costs more per message than the message itself.
    #[wasm_bindgen(js_name = payload)]
    #[allow(clippy::too_many_arguments)]
    fn make_payload(
        topic: &str,
        partition: u32,
        key: Option<String>,
        value: JsValue,
        names: Vec<String>,
        values: Vec<String>,
        offset: f64,
        timestamp: f64,
        id: Option<String>,
        attempt: u32,
    ) -> JsValue;
}

/// `{ topic, partition, message: { key, value, headers, offset, timestamp, id, attempt } }`.
pub(super) fn payload(delivery: &Delivery) -> JsValue {
    let m = &delivery.message;
    let value = match m.value.kind {
        ValueKind::String => JsValue::from_str(&m.value.text()),
        ValueKind::Bytes => Uint8Array::from(m.value.bytes.as_slice()).into(),
        ValueKind::Json => JSON::parse(&m.value.text()).unwrap_or(JsValue::NULL),
    };
    let (names, values) = m.headers.iter().cloned().unzip();
    make_payload(&delivery.topic, delivery.partition, m.key.clone(), value, names, values, m.offset as f64, m.timestamp_ms as f64, m.id.clone(), delivery.attempt)
}
