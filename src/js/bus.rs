//! `Bus` and `Producer` as JavaScript sees them (pkg/README.md).
//!
//! Each method returns a `Promise` that settles once its writes are stored: the
//! operation runs on the engine, then shares a commit with whatever else started
//! in the same turn ([`super::commit`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};

#[cfg(feature = "bridge")]
use super::consumer::Bridge;
use super::consumer::{self, Consumer, State, Wakers};
use super::local::{run_here, serve_others, Local};
use super::writer::{Host, Link};
use crate::core::config::BusConfig;
use crate::core::{ErrorCode, FerryError, Result};
use crate::interop::error::to_js;
use crate::interop::options::{self, bus_options, messages, outgoing, topic_config};
use crate::interop::{args, reply};
use crate::protocol::{Call, Context, Reply};
use crate::store::indexeddb::Durability;
use web_sys::BroadcastChannel;

pub(super) struct Inner {
    /// Where this context runs calls itself ([`super::local`]).
    pub local: Local,
    closed: Cell<bool>,
    /// Consumer loops of this bus sleep here until there is work.
    pub wakers: Rc<Wakers>,
    /// Running consumers, stopped by `close`.
    pub consumers: RefCell<Vec<Rc<State>>>,
    /// This context's bridges, for `stats().bridges` and `close()`.
    pub bridges: Bridges,
    /// The IndexedDB database name, when the bus is shared with other contexts.
    pub name: Option<String>,
    /// Tells the other contexts of the origin (tabs, workers) that opened this bus
    /// that there is new work (messages appended, members come or gone), and hears
    /// them say so.
    channel: Option<BroadcastChannel>,
    /// A wake-up is to be posted on `channel` at the end of this turn.
    wake_posting: Cell<bool>,
    /// The options this context opened the bus with: a writer elsewhere runs this
    /// context's calls with them.
    config: BusConfig,
    /// `writer: "one"`: how this context reaches the writer, or is it.
    link: RefCell<Option<Rc<Link>>>,
    /// The writer's: rounds of other contexts' consumers waiting for work.
    #[cfg(feature = "engine")]
    pub held: super::held::Held,
    /// Where this context runs rounds: its requests for the Web Locks of the
    /// members they list (local.rs, `watch_members`).
    #[cfg(feature = "engine")]
    pub watcher: Option<super::locks::Watcher>,
    /// An engine lent to a context of the pages' build: whether that context is
    /// the writer now (engine_host.rs).
    #[cfg(feature = "engine")]
    pub lent_to: RefCell<Option<Function>>,
    /// Where `ferry/bullmq`'s job events go to and come from.
    #[cfg(feature = "jobs")]
    pub jobs: super::jobs::JobEvents,
}

pub(super) type Shared = Rc<Inner>;

/// The bridges a context started; in the pages' build, the bus they run in
/// (bridge_bus.rs).
#[cfg(feature = "bridge")]
pub(super) type Bridges = RefCell<Vec<Bridge>>;
#[cfg(not(feature = "bridge"))]
pub(super) type Bridges = super::bridge_bus::BridgeBus;

/// A call's reply, to come.
pub(super) type Replying = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply>>>>;

/// Runs `call` on the bus: here, or at the writer when another context is it.
/// Queued at once, so calls run in the order they were made.
pub(super) fn call(shared: &Shared, call: Call) -> Replying {
    match check_open(shared) {
        Ok(()) => call_unchecked(shared, call),
        Err(closed) => Box::pin(async move { Err(closed) }),
    }
}

/// [`call`] on a closed bus too: what `close` itself needs.
pub(super) fn call_unchecked(shared: &Shared, call: Call) -> Replying {
    let Some(link) = client_link(shared) else {
        return Box::pin(run_here(shared, None, call, None));
    };
    let at_writer = link.call(&Context { config: shared.config.clone(), topics: Vec::new() }, &call);
    #[cfg(feature = "jobs")]
    if call.is_job_call() {
        // A writer whose build has no job queues leaves them to this context.
        let shared = shared.clone();
        return Box::pin(async move {
            match at_writer.await? {
                Reply::Unserved => run_here(&shared, None, call, None).await,
                reply => Ok(reply),
            }
        });
    }
    Box::pin(at_writer)
}

/// How this context reaches the writer, when another context is it.
fn client_link(shared: &Shared) -> Option<Rc<Link>> {
    shared.link.borrow().clone().filter(|link| !link.is_writer())
}

/// Whether another context writes this bus: this context's engine is not kept
/// current. An engine lent to a context of the pages' build is that context's,
/// and writes only while it does (engine_host.rs).
pub(super) fn is_client(shared: &Shared) -> bool {
    #[cfg(feature = "engine")]
    if shared.lent_to.borrow().as_ref().is_some_and(|is_writer| is_writer.call0(&JsValue::NULL).ok().and_then(|w| w.as_bool()) == Some(false)) {
        return true;
    }
    client_link(shared).is_some()
}

/// Whether one context writes this bus (`writer: "one"`): consumers' rounds that
/// lease nothing wait at the writer (held.rs).
pub(super) fn one_writer(shared: &Shared) -> bool {
    shared.link.borrow().is_some()
}

/// Wakes the consumers of this bus in this context and in the others: there is new
/// work, or the partitions moved.
pub(super) fn wake_consumers(shared: &Shared) {
    shared.wakers.wake_all();
    // One post for every wake-up of a turn: a commit of a thousand sends wakes
    // the other contexts once, not a thousand times.
    if shared.channel.is_some() && !shared.wake_posting.replace(true) {
        let shared = shared.clone();
        spawn_local(async move {
            shared.wake_posting.set(false);
            if let Some(channel) = &shared.channel {
                let _ = channel.post_message(&JsValue::from_str("changed"));
            }
        });
    }
}

/// Closes the database and the wake-up channel of a bus closing (or whose open
/// failed): either would keep a Node process alive.
fn release(shared: &Shared) {
    if let Some(link) = shared.link.take() {
        link.close();
    }
    shared.local.close();
    #[cfg(feature = "engine")]
    if let Some(watcher) = &shared.watcher {
        watcher.stop();
    }
    if let Some(channel) = &shared.channel {
        channel.set_onmessage(None);
        channel.close();
    }
    #[cfg(feature = "jobs")]
    shared.jobs.close();
}

/// Closes a bus with no consumers to stop first: its calls reject with `CLOSED`.
pub(super) fn close_now(shared: &Shared) {
    shared.closed.set(true);
    release(shared);
}

/// The channel named after the bus, where the context has `BroadcastChannel`;
/// a message on it wakes this context's consumers.
fn wake_channel(name: &str, wakers: &Rc<Wakers>) -> Option<BroadcastChannel> {
    let channel = named_channel("ferry", name)?;
    let wakers = wakers.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| wakers.wake_all());
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The channel holds the handler for as long as it is open.
    on_message.forget();
    Some(channel)
}

/// The channel `{prefix}:{name}` of a bus shared through IndexedDB, where the
/// context has `BroadcastChannel`.
pub(super) fn named_channel(prefix: &str, name: &str) -> Option<BroadcastChannel> {
    let has_channel = js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("BroadcastChannel")).unwrap_or(false);
    has_channel.then(|| BroadcastChannel::new(&format!("{prefix}:{name}")).ok()).flatten()
}

/// A promise of `f`'s result, with errors as `FerryError`s.
pub(super) fn promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    boxed_promise(Box::pin(f))
}

/// One copy of the promise machinery for every method: a generic one per method
/// costs kilobytes of wasm each.
fn boxed_promise(f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue>>>>) -> Promise {
    js_promise(Box::pin(async move { f.await.map_err(to_js) }))
}

/// A future whose error is a JavaScript value already, boxed: every `Promise` the
/// face returns goes through this one `future_to_promise`, which compiles anew for
/// each future type it is given.
pub(super) fn js_promise(f: std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<JsValue, JsValue>>>>) -> Promise {
    future_to_promise(f)
}

/// A promise of the reply to `made` as JavaScript sees it ([`reply::to_js`];
/// `one`: a send of one message resolves to its receipt alone), or of why it
/// could not be made. One future for every method that only answers its call;
/// the call is queued at once, so calls run in the order they were made.
fn reply_promise(shared: &Shared, made: Result<Call>, one: bool) -> Promise {
    let replying = made.map(|made| call(shared, made));
    promise(async move { reply::to_js(replying?.await?, one) })
}

/// What a call on a closed bus rejects with.
pub(super) fn closed() -> FerryError {
    FerryError::new(ErrorCode::Closed, "the bus was closed")
}

fn check_open(shared: &Shared) -> Result<()> {
    if shared.closed.get() {
        return Err(closed());
    }
    Ok(())
}

#[wasm_bindgen]
pub struct Bus {
    pub(super) shared: Shared,
}

#[wasm_bindgen]
pub struct Producer {
    shared: Shared,
}

/// Where the bus lives: `storage` defaults to IndexedDB where the context has it.
pub(super) enum StorageChoice {
    Memory,
    IndexedDb { name: String, durability: Durability, one_writer: bool, shared_worker: bool },
}

impl StorageChoice {
    /// The IndexedDB database name, when the bus is shared through one.
    fn shared_name(&self) -> Option<&str> {
        match self {
            StorageChoice::Memory => None,
            StorageChoice::IndexedDb { name, .. } => Some(name),
        }
    }
}

pub(super) fn bus_config(options: Option<&Object>) -> Result<(BusConfig, StorageChoice)> {
    let (config, placement) = bus_options(options)?;
    let durability = if placement.strict { Durability::Strict } else { Durability::Relaxed };
    let has_indexeddb = || js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB")).is_ok_and(|f| !f.is_undefined() && !f.is_null());
    let storage = if placement.indexeddb.unwrap_or_else(has_indexeddb) {
        StorageChoice::IndexedDb { name: placement.name, durability, one_writer: placement.one_writer, shared_worker: placement.shared_worker }
    } else {
        StorageChoice::Memory
    };
    Ok((config, storage))
}

/// `entry[name]`: a function the package's entry gives `Bus.open`.
pub(super) fn entry_hook(entry: &JsValue, name: &str) -> Option<Function> {
    js_sys::Reflect::get(entry, &JsValue::from_str(name)).ok().and_then(|f| f.dyn_into::<Function>().ok())
}

/// The writer election a bus joins (`writer: "one"`): its name, and the
/// SharedWorker that writes it where `entry.startHost` starts one.
pub(super) type Election = Option<(String, Option<Host>)>;

pub(super) fn election(storage: &StorageChoice, entry: &JsValue) -> Election {
    match storage {
        StorageChoice::IndexedDb { name, durability, one_writer: true, shared_worker } => {
            let host = entry_hook(entry, "startHost").filter(|_| *shared_worker).map(|start| Host { start, durability: *durability });
            Some((name.clone(), host))
        }
        _ => None,
    }
}

/// The bus of `config` whose calls this context runs in `local`, shared through
/// the IndexedDB database `name` (none: in memory), joining `elects`.
pub(super) fn open_shared(config: BusConfig, name: Option<String>, local: Local, elects: Election, bridges: Bridges) -> Shared {
    let wakers: Rc<Wakers> = Rc::default();
    // Opened only once the bus is: an open channel holds Node's event loop,
    // so a refused open must leave none behind.
    let channel = name.as_deref().and_then(|name| wake_channel(name, &wakers));
    let shared = Rc::new(Inner {
        local,
        closed: Cell::new(false),
        wakers,
        consumers: RefCell::default(),
        bridges,
        channel,
        config,
        link: RefCell::default(),
        #[cfg(feature = "engine")]
        held: Default::default(),
        #[cfg(feature = "engine")]
        watcher: name.as_deref().and_then(super::locks::Watcher::new),
        #[cfg(feature = "engine")]
        lent_to: RefCell::default(),
        wake_posting: Cell::new(false),
        #[cfg(feature = "jobs")]
        jobs: super::jobs::JobEvents::open(name.as_deref()),
        name,
    });
    #[cfg(feature = "jobs")]
    super::jobs::tell_job_events(&shared);
    // Its database deleted or upgraded by another context: calls reject with
    // CLOSED, and a writer gives its lock to a context that opens the bus anew.
    let weak = Rc::downgrade(&shared);
    shared.local.on_version_change(move || {
        if let Some(shared) = weak.upgrade() {
            close_now(&shared);
        }
    });
    if let Some((name, host)) = elects {
        *shared.link.borrow_mut() = Link::open(&name, serve_others(&shared), host);
    }
    shared
}

#[wasm_bindgen]
impl Bus {
    /// `Bus.open(options?)`: resolves to a bus once its storage is open. `entry`
    /// is what the package's entry gives: `startHost(name)` starts the SharedWorker
    /// that hosts a bus's writer (pkg/entry/shared-worker.js), where the context has
    /// `SharedWorker`; in the build without the engine, `openEngineBus(options,
    /// entry)` and `openHost(...)` load it (local_host.rs, bridge_bus.rs).
    pub fn open(options: JsValue, entry: JsValue) -> Promise {
        promise(async move {
            let options = args::options(&options, "options")?;
            let (config, storage) = bus_config(options.as_ref())?;
            let elects = election(&storage, &entry);
            #[cfg(feature = "engine")]
            let local = Local::open(&storage, &config, !matches!(elects, Some((_, Some(_))))).await?;
            // Only a page whose SharedWorker writes for it opens its bus in the build
            // without the engine; every other context writes its bus itself.
            #[cfg(not(feature = "engine"))]
            let local = match &elects {
                Some((name, Some(host))) => Local::open(name, host.durability, &config, entry_hook(&entry, "openHost")).await?,
                _ => return super::local::engine_bus(options.as_ref(), &entry).await,
            };
            #[cfg(feature = "bridge")]
            let bridges = Bridges::default();
            #[cfg(not(feature = "bridge"))]
            let bridges = Bridges::new(options, entry);
            Ok(Bus { shared: open_shared(config, storage.shared_name().map(String::from), local, elects, bridges) }.into())
        })
    }

    /// `bus.createTopic(name, options?)`: `true` when created, `false` when it
    /// existed with the same partition count.
    #[wasm_bindgen(js_name = createTopic)]
    pub fn create_topic(&self, name: JsValue, options: JsValue) -> Promise {
        let made = args::string(&name, "name").and_then(|name| Ok(Call::CreateTopic { name, config: topic_config(args::options(&options, "options")?.as_ref())? }));
        reply_promise(&self.shared, made, false)
    }

    /// `bus.topics()`.
    pub fn topics(&self) -> Promise {
        reply_promise(&self.shared, Ok(Call::Topics), false)
    }

    pub fn producer(&self) -> Producer {
        Producer { shared: self.shared.clone() }
    }

    /// `bus.consumer({ groupId, ...options })`.
    pub fn consumer(&self, options: JsValue) -> std::result::Result<Consumer, JsValue> {
        check_open(&self.shared).map_err(to_js)?;
        Consumer::new(self.shared.clone(), &options).map_err(to_js)
    }

    /// `bus.bridge({ url, topics, token?, headers?, batchSize?, source?, groupId?,
    /// retry?, ... })`: forwards the local `topics` to the remote bus at `url`
    /// (bridge.rs); resolves to its consumer once it joined its group. The pages'
    /// build runs it in a bus of the engine's (bridge_bus.rs).
    pub fn bridge(&self, options: JsValue) -> Promise {
        let shared = self.shared.clone();
        promise(async move {
            check_open(&shared)?;
            #[cfg(feature = "bridge")]
            return Ok(Consumer::bridge(shared, &options).await?.into());
            #[cfg(not(feature = "bridge"))]
            return shared.bridges.bridge(&options).await;
        })
    }

    /// `bus.publish(topic, value, { key, headers, id, delayMs, partition }?)`.
    pub fn publish(&self, topic: JsValue, value: JsValue, options: JsValue) -> Promise {
        let made = args::string(&topic, "topic").and_then(|topic| {
            let message = outgoing(&value, args::options(&options, "options")?.as_ref(), &|| "message".to_string())?;
            Ok(Call::Send { topic, messages: vec![message] })
        });
        reply_promise(&self.shared, made, true)
    }

    /// `bus.stats()`.
    pub fn stats(&self) -> Promise {
        // The pages' build: once this context bridges, the bus its bridges run in answers.
        #[cfg(not(feature = "bridge"))]
        return self.shared.bridges.stats().unwrap_or_else(|| reply_promise(&self.shared, Ok(Call::Stats), false));
        #[cfg(feature = "bridge")]
        {
            let (shared, replying) = (self.shared.clone(), call(&self.shared, Call::Stats));
            promise(async move {
                let reply = replying.await?;
                let bridges = bridge_entries(&shared, &reply)?;
                let value = reply::to_js(reply, false)?;
                if let Some(bridges) = bridges {
                    js_sys::Reflect::set(&value, &"bridges".into(), &bridges).map_err(|_| FerryError::storage("stats could not be handed to JavaScript"))?;
                }
                Ok(value)
            })
        }
    }

    /// `bus.redrive({ from, limit?, offsets? })`: how many dead letters moved back.
    pub fn redrive(&self, options: JsValue) -> Promise {
        let made = options::redrive_options(&options).map(|(from, limit, offsets)| Call::Redrive { from, limit, offsets });
        reply_promise(&self.shared, made, false)
    }

    /// `bus.purge({ topic })`: how many messages of the dead-letter topic were removed.
    pub fn purge(&self, options: JsValue) -> Promise {
        reply_promise(&self.shared, options::purge_options(&options).map(|topic| Call::Purge { topic }), false)
    }

    /// `bus.browse({ topic, partition, offset, limit, groupId })`: messages read
    /// without leasing them.
    pub fn browse(&self, options: JsValue) -> Promise {
        let made = options::browse_options(&options).map(|(topic, partition, offset, max, group)| Call::Browse { topic, partition, offset, max, group });
        reply_promise(&self.shared, made, false)
    }

    /// `bus.close()`: stops this context's consumers; later calls reject with `CLOSED`.
    pub fn close(&self) -> Promise {
        // Closed at once: a call made after this one rejects, as calls are queued
        // when they are made.
        let closing = !self.shared.closed.replace(true);
        let shared = self.shared.clone();
        promise(async move {
            if !closing {
                return Ok(JsValue::UNDEFINED);
            }
            let running = shared.consumers.borrow().clone();
            for state in running {
                consumer::stop(&shared, &state).await?;
            }
            #[cfg(not(feature = "bridge"))]
            shared.bridges.close().await?;
            release(&shared);
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// `stats().bridges`: only a bus whose context started bridges has it.
#[cfg(feature = "bridge")]
fn bridge_entries(shared: &Shared, reply: &Reply) -> Result<Option<js_sys::Array>> {
    let bridges = shared.bridges.borrow();
    match reply {
        Reply::Stats(stats) if !bridges.is_empty() => {
            let entries = js_sys::Array::new();
            for bridge in bridges.iter() {
                entries.push(&bridge.stats_entry(stats)?);
            }
            Ok(Some(entries))
        }
        _ => Ok(None),
    }
}

#[wasm_bindgen]
impl Producer {
    /// `producer.send({ topic, messages })`: one atomic send; resolves once stored.
    pub fn send(&self, record: JsValue) -> Promise {
        let made = args::options(&record, "record").and_then(|record| {
            let topic = args::string(&args::get(record.as_ref(), "topic")?, "topic")?;
            Ok(Call::Send { topic, messages: messages(record.as_ref())? })
        });
        reply_promise(&self.shared, made, false)
    }
}
