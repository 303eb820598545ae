//! Where this context runs calls itself, in the browser's `ferry` build, which has
//! no engine: in an `EngineHost` of the engine's build ([`super::engine_host`],
//! pkg/dist/engine), which the entry loads (`openHost`) on the first call this
//! context must run itself: a page whose SharedWorker writes for it does once it
//! took over as the writer, and most never do. Every other context opens its bus
//! in the engine's build from the start ([`engine_bus`]).
//!
//! The page holds the bus's database open all the same, as every context of it
//! does: so that `Bus.open` fails where the database cannot be opened, and the bus
//! closes when another context deletes or upgrades it.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::bus::{closed, entry_hook, is_client, Shared};
use super::settled::Settled;
use super::writer::Serve;
use crate::core::config::BusConfig;
use crate::core::{FerryError, Receipt, Result};
use crate::interop::error::from_js_or;
use crate::protocol::wire::{decode_reply, encode_call, encode_receipt, encode_reply};
use crate::protocol::{Call, CallId, Context, Reply};
use crate::store::indexeddb::{Durability, IndexedDbStore};

#[wasm_bindgen]
extern "C" {
    /// The engine build's `EngineHost`.
    pub type EngineHost;

    #[wasm_bindgen(method)]
    fn run(this: &EngineHost, call: &[u8], caller: Option<String>, id: f64, answered_below: f64) -> Promise;
    #[wasm_bindgen(method, js_name = nextDueMs)]
    fn next_due_ms(this: &EngineHost) -> f64;
    #[wasm_bindgen(method)]
    fn holds(this: &EngineHost, group: &str, member: &str, receipt: &[u8], now_ms: f64) -> bool;
    #[wasm_bindgen(method)]
    fn owns(this: &EngineHost, group: &str, member: &str, topic: &str, partition: u32) -> bool;
    #[wasm_bindgen(method)]
    fn close(this: &EngineHost);
}

/// A call's reply's bytes, to come.
type Replied = Rc<Settled<Result<Vec<u8>>>>;

/// A call made while the host was loading, run once it is.
struct Pending {
    bytes: Vec<u8>,
    caller: Option<CallId>,
    reply: Replied,
}

enum Host {
    /// Not loaded: the first call loads it.
    Unloaded,
    Loading(Vec<Pending>),
    Open(EngineHost),
    Closed,
}

pub struct Local {
    /// The bus's database, held open as every context of the bus holds it.
    connection: IndexedDbStore,
    name: String,
    durability: Durability,
    config: BusConfig,
    /// `openHost(name, strict, autoCreateTopics, maxMessageBytes, isWriter)`, the
    /// entry's: resolves to an `EngineHost`.
    open_host: Function,
    host: RefCell<Host>,
}

impl Local {
    /// Opens the database `name`; `open_host` loads the engine when a call first
    /// needs it.
    pub async fn open(name: &str, durability: Durability, config: &BusConfig, open_host: Option<Function>) -> Result<Local> {
        let open_host = open_host.ok_or_else(|| FerryError::storage("this build of ferry was loaded without its engine (openHost)"))?;
        let connection = IndexedDbStore::open(name, durability).await?;
        Ok(Local { connection, name: name.to_owned(), durability, config: config.clone(), open_host, host: RefCell::new(Host::Unloaded) })
    }

    fn with_host<T>(&self, f: impl FnOnce(&EngineHost) -> T) -> Option<T> {
        match &*self.host.borrow() {
            Host::Open(host) => Some(f(host)),
            _ => None,
        }
    }

    /// When the engine has something due next, as of its last commit.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.with_host(|host| host.next_due_ms()).filter(|due_ms| *due_ms >= 0.0).map(|due_ms| due_ms as u64)
    }

    /// Whether `member` of `group` still holds the delivery of `receipt`; with no
    /// engine loaded, as a client takes it: yes, and the writer tells at the ack.
    pub fn holds(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        self.with_host(|host| host.holds(group, member, &encode_receipt(receipt), now_ms as f64)).unwrap_or(true)
    }

    /// Whether `member` of `group` owns the partition; with no engine loaded, yes.
    pub fn owns(&self, group: &str, member: &str, topic: &str, partition: u32) -> bool {
        self.with_host(|host| host.owns(group, member, topic, partition)).unwrap_or(true)
    }

    /// Another context deleting or upgrading the bus's database runs `then`.
    pub fn on_version_change(&self, then: impl FnOnce() + 'static) {
        self.connection.on_version_change(then);
    }

    /// Lets go of the database, and of the engine's.
    pub fn close(&self) {
        self.connection.close();
        match self.host.replace(Host::Closed) {
            Host::Open(host) => host.close(),
            Host::Loading(pending) => {
                for p in pending {
                    p.reply.set(Err(closed()));
                }
            }
            Host::Unloaded | Host::Closed => {}
        }
    }
}

/// Starts loading the host of `shared`'s bus: calls made meanwhile wait for it, and
/// are sent once it is loaded (or fail, if it fails to).
fn load(shared: &Shared) {
    let local = &shared.local;
    // The host holds rounds only while this context is the writer.
    let weak = Rc::downgrade(shared);
    let is_writer = Closure::<dyn Fn() -> bool>::new(move || weak.upgrade().is_some_and(|shared| !is_client(&shared))).into_js_value();
    let name = JsValue::from_str(&local.name);
    let args = [name, (local.durability == Durability::Strict).into(), local.config.auto_create_topics.into(), (local.config.max_message_bytes as f64).into(), is_writer];
    let opening = match local.open_host.apply(&JsValue::NULL, &args.iter().collect::<Array>()) {
        Ok(opening) => Promise::resolve(&opening),
        Err(thrown) => Promise::reject(&thrown),
    };
    *local.host.borrow_mut() = Host::Loading(Vec::new());
    let shared = shared.clone();
    spawn_local(async move {
        let loaded = JsFuture::from(opening).await;
        let mut host = shared.local.host.borrow_mut();
        let Host::Loading(pending) = &mut *host else {
            // Closed while it loaded: it lets go of its database at once.
            if let Ok(loaded) = &loaded {
                loaded.unchecked_ref::<EngineHost>().close();
            }
            return;
        };
        let pending = std::mem::take(pending);
        match loaded {
            Ok(loaded) => {
                let loaded: EngineHost = loaded.unchecked_into();
                // In the order they were made, before any call made after.
                for p in pending {
                    spawn_local(settle(p.reply, submit(&loaded, &p.bytes, p.caller)));
                }
                *host = Host::Open(loaded);
            }
            Err(failed) => {
                // The next call tries again.
                *host = Host::Unloaded;
                let failed = not_loaded(&failed);
                for p in pending {
                    p.reply.set(Err(failed.clone()));
                }
            }
        }
    });
}

/// Runs a call's bytes in the host of `shared`'s bus, loading it first if need
/// be: queued at once, so calls run in the order they were made.
fn run_bytes(shared: &Shared, bytes: Vec<u8>, caller: Option<CallId>) -> impl Future<Output = Result<Vec<u8>>> {
    let reply: Replied = Rc::default();
    if matches!(*shared.local.host.borrow(), Host::Unloaded) {
        load(shared);
    }
    match &mut *shared.local.host.borrow_mut() {
        Host::Open(host) => spawn_local(settle(reply.clone(), submit(host, &bytes, caller))),
        Host::Loading(pending) => pending.push(Pending { bytes, caller, reply: reply.clone() }),
        Host::Unloaded | Host::Closed => reply.set(Err(closed())),
    }
    async move { reply.get().await }
}

fn not_loaded(error: &JsValue) -> FerryError {
    from_js_or(error, |message| FerryError::storage(format!("the engine did not load: {message}")))
}

/// A context that writes its bus itself (a bus in memory, `writer: "each"`, no
/// SharedWorker to write for it) opens it in the engine's build:
/// `entry.openEngineBus(options, entry)` resolves to that build's `Bus`, which it
/// uses as it is, with no call crossing between builds.
pub(super) async fn engine_bus(options: Option<&Object>, entry: &JsValue) -> Result<JsValue> {
    let open = entry_hook(entry, "openEngineBus").ok_or_else(|| FerryError::storage("this build of ferry was loaded without its engine (openEngineBus)"))?;
    let given = options.map_or(JsValue::UNDEFINED, JsValue::from);
    let opening = open.call2(&JsValue::NULL, &given, entry).map_err(|thrown| not_loaded(&thrown))?;
    JsFuture::from(Promise::resolve(&opening)).await.map_err(|failed| not_loaded(&failed))
}

/// A call's bytes run in `host`: its reply, to come.
fn submit(host: &EngineHost, bytes: &[u8], caller: Option<CallId>) -> JsFuture {
    let (context, id, answered_below) = match caller {
        Some(CallId { context, id, answered_below }) => (Some(context), id as f64, answered_below as f64),
        None => (None, 0.0, 0.0),
    };
    JsFuture::from(host.run(bytes, context, id, answered_below))
}

async fn settle(reply: Replied, ran: JsFuture) {
    let failed = |e: JsValue| from_js_or(&e, |message| FerryError::storage(format!("the engine failed: {message}")));
    reply.set(ran.await.map(|bytes| bytes.unchecked_into::<Uint8Array>().to_vec()).map_err(failed));
}

/// Runs `call` in the engine: the rounds that wait for work wait there, and what
/// appends wakes the consumers of this context at once (and those of the others
/// through the bus's channel, from the engine).
pub(super) fn run_here(shared: &Shared, options: Option<BusConfig>, call: Call, caller: Option<CallId>) -> impl Future<Output = Result<Reply>> {
    let appends = matches!(call, Call::Send { .. } | Call::Redrive { .. });
    let bytes = encode_call(&Context { config: options.unwrap_or_else(|| shared.local.config.clone()), topics: Vec::new() }, &call);
    let ran = run_bytes(shared, bytes, caller);
    let shared = shared.clone();
    async move {
        let reply = decode_reply(&ran.await?)?;
        if appends {
            shared.wakers.wake_all();
        }
        Ok(reply)
    }
}

/// What the writer runs for the other contexts: their calls' bytes go to the
/// engine as they came, and its replies' bytes back.
pub(super) fn serve_others(shared: &Shared) -> Serve {
    let weak = Rc::downgrade(shared);
    Rc::new(move |bytes: Vec<u8>, caller: CallId| {
        let ran = weak.upgrade().map(|shared| run_bytes(&shared, bytes, Some(caller)));
        Box::pin(async move {
            let reply = match ran {
                Some(ran) => ran.await,
                None => Err(closed()),
            };
            reply.unwrap_or_else(|failed| encode_reply(&Err(failed)))
        })
    })
}
