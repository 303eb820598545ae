//! One writer per origin (`writer: "one"`, the default of `Bus.open`): of the
//! contexts that opened a bus on IndexedDB, the one holding the Web Lock
//! `ferry:{name}:writer` runs the calls of the others, so that the calls of
//! every context that reach it together share one transaction, and the others do
//! not queue behind each other for IndexedDB's readwrite transactions.
//!
//! Calls and replies cross a `BroadcastChannel` as bytes ([`crate::protocol::wire`]):
//!
//! - `{ kind: "calls", from, answered, items }`: a context asks the writer, with
//!   every call it made in one turn; below the id `answered` it had every call
//!   whose reply the writer stores answered;
//! - `{ kind: "replies", to, items }`: the writer answers it, with every reply it
//!   has for that context in one turn (those of one commit);
//! - `{ kind: "writer" }`: a context took the writer's lock. Every context resends
//!   the calls it has not had answered, since the writer they went to may be gone.
//!
//! `items` is one `Uint8Array`: each call's or reply's id and bytes in turn.
//!
//! The writer keeps the last [`REPLIES_KEPT`] replies it sent, so a call resent
//! while its reply was on the way is answered again, not run twice. The replies
//! of sends, redrives and topic creations it stores besides, in the commit that
//! ran them ([`crate::protocol::serve_once`]): the next writer answers such a call
//! resent to it from storage, so a send is stored once across a handover. The
//! engine writes as it does in every context (each commit first reads what others
//! stored), so a context that takes over reads everything the last writer stored,
//! and two writers at once (two versions of ferry in one origin, or a page that
//! runs again after it was frozen) stay correct. A page about to be frozen gives
//! the lock up ([`Link::step_down`]).
//!
//! Where a page can start a `SharedWorker` (`sharedWorker: true`, the default),
//! the writer is one: the page starts the bus's worker (pkg/entry/shared-worker.js)
//! and asks for the lock only once the worker has, so the worker writes for as
//! long as any page of the origin is open, and no tab's lifecycle stalls it. A
//! page asks for the lock all the same, to write if the worker dies; so does every
//! dedicated and service worker, which cannot start one: alone, a service worker
//! writes itself.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{BroadcastChannel, SharedWorker};

use super::consumer::set_timeout;
use super::locks::{self, Claim};
use super::settled::Settled;
use crate::core::codec::{Reader, Writer};
use crate::core::fxhash::{FxHashMap, FxHashSet};
use crate::core::limits::{HOST_ANSWER_MS, REPLIES_KEPT};
use crate::core::vec_map::VecMap;
use crate::core::Result;
use crate::interop::object_of;
use crate::protocol::wire::{decode_reply, encode_call};
use crate::protocol::{Call, CallId, Context, Reply};
use crate::store::indexeddb::Durability;

/// A call or a reply in a message: its id and its bytes.
type Item = (u64, Vec<u8>);

/// Where a call's reply goes, once it comes.
type Replied = Rc<Settled<Result<Reply>>>;

/// A call sent and not answered.
struct Waiting {
    /// Its bytes, to send again.
    bytes: Vec<u8>,
    reply: Replied,
    /// The writer stores its reply ([`Call::stores_reply`]).
    stores_reply: bool,
}

/// A call: the context that made it, and its id there.
type CallKey = (String, u64);

/// The writer's last [`REPLIES_KEPT`] replies, by call, and the order they went in.
#[derive(Default)]
struct Sent {
    replies: FxHashMap<CallKey, Vec<u8>>,
    order: VecDeque<CallKey>,
}

impl Sent {
    fn keep(&mut self, key: CallKey, reply: Vec<u8>) {
        if self.order.len() == REPLIES_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.replies.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.replies.insert(key, reply);
    }
}

/// The SharedWorker that hosts the writer of a bus: what starts it (given by the
/// browser entry, for the bundlers that see `new SharedWorker(new URL(...))`), and
/// how the worker opens the bus.
pub struct Host {
    pub start: Function,
    pub durability: Durability,
}

impl Host {
    /// Starts the bus's worker, or joins it, and waits until it says it asked for
    /// the writer's lock (for at most [`HOST_ANSWER_MS`]; at once if it fails to
    /// start). The worker, kept for as long as the bus is open.
    async fn asked(&self, name: &str) -> Option<SharedWorker> {
        let worker: SharedWorker = self.start.call1(&JsValue::NULL, &JsValue::from_str(name)).ok()?.dyn_into().ok()?;
        let port = worker.port();
        let answered = Promise::new(&mut |resolve: Function, _reject: Function| {
            port.set_onmessage(Some(&resolve));
            worker.set_onerror(Some(&resolve));
            set_timeout(&resolve, f64::from(HOST_ANSWER_MS));
        });
        if let Ok(options) = object_of(&[("name", name.into()), ("durability", self.durability.as_str().into())]) {
            if port.post_message(&options).is_ok() {
                let _ = JsFuture::from(answered).await;
            }
        }
        port.set_onmessage(None);
        worker.set_onerror(None);
        Some(worker)
    }
}

/// How this context reaches the writer of its bus, or is it.
pub struct Link {
    channel: BroadcastChannel,
    /// The writer's lock.
    lock_name: String,
    serve: Serve,
    /// The page's `freeze` listener (Page Lifecycle), removed at close.
    on_freeze: RefCell<Option<Closure<dyn FnMut()>>>,
    /// The SharedWorker that hosts the writer, once it asked for the lock.
    host: RefCell<Option<SharedWorker>>,
    closed: Cell<bool>,
    /// Names this context in the calls it sends.
    context: String,
    writer: Cell<bool>,
    claim: RefCell<Option<Claim>>,
    next_id: Cell<u64>,
    /// Calls sent and not answered: their bytes (to send again) and where their
    /// replies go. A sorted `Vec`: ids only grow, so a call goes at the end, and
    /// replies come oldest first; it spares the pages' build the code of a
    /// `BTreeMap` (4.5 KB gzipped), with no change the benches can see (1,000
    /// sends at once, benches/browser.mjs and contexts.mjs).
    waiting: RefCell<VecMap<u64, Waiting>>,
    /// The writer's: calls running now, and the last replies sent.
    running: RefCell<FxHashSet<CallKey>>,
    sent: RefCell<Sent>,
    /// Calls to post, and replies to post by context: each goes at the end of the
    /// turn, with the others of that turn.
    calls_out: RefCell<Vec<Item>>,
    replies_out: RefCell<VecMap<String, Vec<Item>>>,
}

/// Runs a call's bytes from another context (or, after a handover, this context's
/// own) on this context's bus, with that context's options; resolves to its
/// reply's bytes.
pub type Serve = Rc<dyn Fn(Vec<u8>, CallId) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>>>>>;

fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// The `items` of a message: every item's id and bytes in one buffer, so that a
/// message costs the channel one copy, not an object per call.
fn items(list: &[Item]) -> JsValue {
    let mut w = Writer::default();
    for (id, bytes) in list {
        w.u64(*id);
        w.bytes(bytes);
    }
    Uint8Array::from(w.buf.as_slice()).into()
}

/// What [`items`] packed; a message whose items do not read is ignored.
fn read_items(data: &JsValue) -> Vec<Item> {
    let Ok(packed) = field(data, "items").dyn_into::<Uint8Array>() else { return Vec::new() };
    let packed = packed.to_vec();
    let mut r = Reader::new(&packed);
    let mut out = Vec::new();
    while !r.is_empty() {
        match (r.u64(), r.bytes()) {
            (Ok(id), Ok(bytes)) => out.push((id, bytes.to_vec())),
            _ => return Vec::new(),
        }
    }
    out
}

impl Link {
    /// Joins the writer election of the bus `name`, after `host` when given;
    /// `serve` runs other contexts' calls once this context is the writer. `None`
    /// without Web Locks or `BroadcastChannel`: then every context writes.
    pub fn open(name: &str, serve: Serve, host: Option<Host>) -> Option<Rc<Link>> {
        if !locks::available() {
            return None;
        }
        let lock_name = format!("ferry:{name}:writer");
        let channel = BroadcastChannel::new(&lock_name).ok()?;
        let context = format!("{:x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
        let link = Rc::new(Link {
            channel,
            lock_name,
            serve,
            on_freeze: RefCell::default(),
            host: RefCell::default(),
            closed: Cell::new(false),
            context,
            writer: Cell::new(false),
            claim: RefCell::default(),
            next_id: Cell::new(0),
            waiting: RefCell::default(),
            running: RefCell::default(),
            sent: RefCell::default(),
            calls_out: RefCell::default(),
            replies_out: RefCell::default(),
        });
        let weak = Rc::downgrade(&link);
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(link) = weak.upgrade() {
                link.hear(&field(&event, "data"));
            }
        });
        link.channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // The channel holds the handler for as long as it is open.
        on_message.forget();
        match host {
            // Until then calls wait on the channel, answered once a writer says it is one.
            Some(host) => {
                let link = link.clone();
                let name = name.to_owned();
                spawn_local(async move {
                    let worker = host.asked(&name).await;
                    if !link.closed.get() {
                        *link.host.borrow_mut() = worker;
                        *link.claim.borrow_mut() = link.claim();
                    }
                });
            }
            None => *link.claim.borrow_mut() = link.claim(),
        }
        if let Some(document) = document() {
            let weak = Rc::downgrade(&link);
            let on_freeze = Closure::<dyn FnMut()>::new(move || {
                if let Some(link) = weak.upgrade() {
                    link.step_down();
                }
            });
            listen(&document, "addEventListener", on_freeze.as_ref());
            *link.on_freeze.borrow_mut() = Some(on_freeze);
        }
        Some(link)
    }

    /// Asks for the writer's lock: this context takes over when it is granted.
    fn claim(self: &Rc<Self>) -> Option<Claim> {
        let weak = Rc::downgrade(self);
        Claim::request(&self.lock_name, move || {
            if let Some(link) = weak.upgrade() {
                link.take_over();
            }
        })
    }

    /// A page about to be frozen (the Page Lifecycle `freeze` event: a tab in the
    /// background, the back-forward cache) gives the writer's lock up, so that
    /// another context writes while this one cannot run, and asks for it again.
    /// What it was committing still commits when it runs again; a context that
    /// resent its calls to the next writer meanwhile is answered once
    /// ([`crate::protocol::serve_once`]).
    fn step_down(self: &Rc<Self>) {
        if !self.is_writer() {
            return;
        }
        self.writer.set(false);
        if let Some(claim) = self.claim.take() {
            claim.release();
        }
        *self.claim.borrow_mut() = self.claim();
    }

    /// Whether this context writes the bus (holds the writer's lock).
    pub fn is_writer(&self) -> bool {
        self.writer.get()
    }

    /// Sends `call` to the writer at once (calls cross in the order they were
    /// made); resolves to its reply.
    pub fn call(self: &Rc<Self>, context: &Context, call: &Call) -> impl std::future::Future<Output = Result<Reply>> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let bytes = encode_call(context, call);
        let reply: Replied = Rc::default();
        self.post_call(id, &bytes);
        self.waiting.borrow_mut().insert(id, Waiting { bytes, reply: reply.clone(), stores_reply: call.stores_reply() });
        async move { reply.get().await }
    }

    fn post(&self, fields: &[(&str, JsValue)]) {
        if let Ok(message) = object_of(fields) {
            let _ = self.channel.post_message(&message);
        }
    }

    fn post_call(self: &Rc<Self>, id: u64, bytes: &[u8]) {
        let mut out = self.calls_out.borrow_mut();
        out.push((id, bytes.to_vec()));
        if out.len() == 1 {
            let link = self.clone();
            spawn_local(async move {
                let items = items(&link.calls_out.take());
                let answered = JsValue::from_f64(link.answered_below() as f64);
                link.post(&[("kind", "calls".into()), ("from", link.context.as_str().into()), ("answered", answered), ("items", items)]);
            });
        }
    }

    /// The id below which every call of this context whose reply the writer
    /// stores was answered: the writer may forget those replies.
    fn answered_below(&self) -> u64 {
        self.waiting.borrow().iter().find(|(_, waiting)| waiting.stores_reply).map_or(self.next_id.get(), |(id, _)| *id)
    }

    /// This context got the writer's lock: it tells the others (who resend what
    /// they wait for), and runs what it was waiting for itself, as it would
    /// another context's call.
    fn take_over(self: Rc<Self>) {
        self.writer.set(true);
        self.post(&[("kind", "writer".into())]);
        let own: Vec<(u64, Vec<u8>)> = self.waiting.borrow().iter().map(|(id, waiting)| (*id, waiting.bytes.clone())).collect();
        let answered_below = self.answered_below();
        for (id, bytes) in own {
            let link = self.clone();
            let serve = self.serve.clone();
            // The last writer may have run it: it is answered as any context's is.
            let caller = CallId { context: self.context.clone(), id, answered_below };
            spawn_local(async move {
                let reply = decode_reply(&serve(bytes, caller).await);
                if let Some(waiting) = link.waiting.borrow_mut().remove(&id) {
                    waiting.reply.set(reply);
                }
            });
        }
    }

    fn resend(self: &Rc<Self>) {
        for (id, waiting) in self.waiting.borrow().iter() {
            self.post_call(*id, &waiting.bytes);
        }
    }

    fn hear(self: &Rc<Self>, data: &JsValue) {
        match field(data, "kind").as_string().as_deref() {
            Some("calls") if self.is_writer() => {
                let Some(from) = field(data, "from").as_string() else { return };
                let answered_below = field(data, "answered").as_f64().unwrap_or(0.0) as u64;
                for (id, bytes) in read_items(data) {
                    self.run(CallId { context: from.clone(), id, answered_below }, bytes);
                }
            }
            Some("replies") if field(data, "to").as_string().as_deref() == Some(self.context.as_str()) => {
                for (id, bytes) in read_items(data) {
                    if let Some(waiting) = self.waiting.borrow_mut().remove(&id) {
                        waiting.reply.set(decode_reply(&bytes));
                    }
                }
            }
            Some("writer") => self.resend(),
            _ => {}
        }
    }

    /// The writer runs a call, once: a call heard again while it runs is ignored,
    /// and one heard after it ran is answered with the reply sent (or, after a
    /// handover, with the reply the last writer stored: [`crate::protocol::serve_once`]).
    fn run(self: &Rc<Self>, caller: CallId, bytes: Vec<u8>) {
        let key = (caller.context.clone(), caller.id);
        if let Some(reply) = self.sent.borrow().replies.get(&key) {
            self.reply(&key, reply);
            return;
        }
        if !self.running.borrow_mut().insert(key.clone()) {
            return;
        }
        let link = self.clone();
        let serve = self.serve.clone();
        spawn_local(async move {
            let reply = serve(bytes, caller).await;
            link.reply(&key, &reply);
            link.running.borrow_mut().remove(&key);
            link.sent.borrow_mut().keep(key, reply);
        });
    }

    fn reply(self: &Rc<Self>, (to, id): &CallKey, bytes: &[u8]) {
        let mut out = self.replies_out.borrow_mut();
        let first = out.is_empty();
        out.get_or_default(to.clone()).push((*id, bytes.to_vec()));
        if first {
            let link = self.clone();
            spawn_local(async move {
                for (to, replies) in link.replies_out.take() {
                    link.post(&[("kind", "replies".into()), ("to", to.as_str().into()), ("items", items(&replies))]);
                }
            });
        }
    }

    /// Leaves the election (gives the lock up, if held) and the channel.
    pub fn close(&self) {
        self.closed.set(true);
        self.writer.set(false);
        if let Some(claim) = self.claim.take() {
            claim.release();
        }
        self.channel.set_onmessage(None);
        self.channel.close();
        if let (Some(document), Some(on_freeze)) = (document(), self.on_freeze.take()) {
            listen(&document, "removeEventListener", on_freeze.as_ref());
        }
    }
}

/// `document`, in a page: where Page Lifecycle events come.
fn document() -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("document")).ok().filter(JsValue::is_object)
}

/// `document[method]("freeze", handler)`: adds or removes the listener.
fn listen(document: &JsValue, method: &str, handler: &JsValue) {
    if let Ok(function) = Reflect::get(document, &JsValue::from_str(method)).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let _ = function.call2(document, &JsValue::from_str("freeze"), handler);
    }
}
