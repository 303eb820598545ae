//! `bus.bridge(options)`: a consumer group of the local bus whose handler posts
//! each run of a partition's messages to a remote ferry (`handleHttp` of
//! `ferry/workers`), one batch per request. What a response means, and the body
//! and ids of a batch, are decided in [`crate::core::bridge`]; this is the post.
//!
//! It is a member like any other: it shares the work with the bridges of the
//! other contexts of the origin, holds a partition while its batch is posted (a
//! key's messages reach the edge in the order they were sent), and moves at once
//! when its context goes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::consumer::{call_handler, error_message, Wakers};
use crate::core::bridge::{batch_body, network_error, verdict, Verdict};
use crate::core::config::check_name;
use crate::core::fxhash::FxHashMap;
use crate::core::limits::{BATCH_SIZE_MAX, BRIDGE_BATCH_DEFAULT, SUBSCRIPTIONS_MAX};
use crate::core::message::Message;
use crate::core::{Delivery, FerryError, Result, Subscription};
use crate::interop::args;
use crate::interop::delivered::payload;
use crate::interop::object_of;

/// A remote bus's `handleHttp` and how to be let in: what a bridge posts to and
/// a remote consumer (`Bus.remote`) leases from.
pub struct Endpoint {
    /// The remote bus's base URL, without a trailing `/`.
    url: String,
    /// `Authorization: Bearer <token>`, when given.
    token: Option<String>,
    /// `headers()`: more headers per request (a token that changes), when given.
    headers: Option<Function>,
}

impl Endpoint {
    /// `{ url, token, headers }` of `options`.
    pub fn from_options(options: Option<&Object>) -> Result<Endpoint> {
        let url = args::string(&args::get(options, "url")?, "url")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(FerryError::invalid(format!("url must be an http:// or https:// URL, got \"{url}\"")));
        }
        let token = args::opt_string(&args::get(options, "token")?, "token")?;
        let headers = args::get(options, "headers")?;
        let headers = if headers.is_undefined() {
            None
        } else {
            Some(headers.dyn_into::<Function>().map_err(|_| FerryError::invalid("headers must be a function returning an object of headers"))?)
        };
        Ok(Endpoint { url: url.trim_end_matches('/').into(), token, headers })
    }

    /// `fetch` of `path` (under the URL) with the credentials: a `POST` of the JSON
    /// `body`, or a `GET` without one. Resolves to the response; rejects when none
    /// came (offline, DNS, a refused connection, CORS).
    pub async fn fetch(&self, path: &str, body: Option<&str>) -> std::result::Result<JsValue, JsValue> {
        let headers = Object::new();
        Reflect::set(&headers, &"content-type".into(), &"application/json".into())?;
        if let Some(token) = &self.token {
            Reflect::set(&headers, &"authorization".into(), &format!("Bearer {token}").into())?;
        }
        if let Some(more) = &self.headers {
            let given = JsFuture::from(Promise::resolve(&more.call0(&JsValue::UNDEFINED)?)).await?;
            if given.is_object() {
                Object::assign(&headers, given.unchecked_ref());
            }
        }
        let init = match body {
            Some(body) => object_of(&[("method", "POST".into()), ("headers", headers.into()), ("body", body.into())]),
            None => object_of(&[("method", "GET".into()), ("headers", headers.into())]),
        }
        .map_err(|e| JsValue::from_str(&e.message))?;
        let global = js_sys::global();
        let fetch: Function = Reflect::get(&global, &"fetch".into())?.dyn_into()?;
        let url = format!("{}{path}", self.url);
        JsFuture::from(fetch.call2(&global, &url.into(), &init)?.dyn_into::<Promise>()?).await
    }
}

/// Where and how a bridge posts.
pub struct Forwarder {
    endpoint: Endpoint,
    /// Local topic -> remote topic.
    remote: FxHashMap<String, String>,
    /// Prefixes the ids derived for messages without one.
    source: String,
    /// `transform({ topic, partition, message })`: what to forward of each message
    /// (`{ value, key?, headers? }`), or `null` to forward nothing of it.
    transform: Option<Function>,
    /// Its listeners for the network coming back, removed with it.
    wakeups: RefCell<Option<Wakeups>>,
    /// How many of those events came: a post that fails after one came while it
    /// was on its way is tried again at once, not after its backoff (the event's
    /// retry found nothing waiting yet).
    woken: Rc<Cell<u64>>,
    /// What this context's bridge has done, for `bus.stats()`.
    progress: RefCell<Progress>,
    /// `bridge.on(event, listener)`: `"forwarded"` or `"failed"`.
    listeners: RefCell<Vec<(BridgeEvent, Function)>>,
    /// Posts that failed and will be tried again, for `drained()`.
    transient_failures: Cell<u64>,
    /// Woken after each post, for `drained()`.
    posted: Wakers,
}

/// The Background Sync tag a bridge registers in a service worker after a failed
/// post, where the browser has Background Sync: the browser starts the worker
/// with a `sync` event of this tag once it is online again.
pub const BRIDGE_SYNC_TAG: &str = "ferry-bridge";

/// What a bridge did in this context since it started.
#[derive(Default)]
struct Progress {
    forwarded: u64,
    last_forwarded_at_ms: Option<f64>,
    last_error: Option<String>,
    last_error_at_ms: Option<f64>,
}

/// The events a bridge tells its listeners of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BridgeEvent {
    /// A batch stored at the far end.
    Forwarded,
    /// A batch refused (dead-lettered) or to be tried again.
    Failed,
}

impl BridgeEvent {
    pub fn parse(name: &str) -> Result<BridgeEvent> {
        match name {
            "forwarded" => Ok(BridgeEvent::Forwarded),
            "failed" => Ok(BridgeEvent::Failed),
            other => Err(FerryError::invalid(format!("a bridge's events are \"forwarded\" and \"failed\", got \"{other}\""))),
        }
    }
}

/// A bridge's options: the forwarder, the local topics it drains, and the
/// batch size (the consumer's `maxBatchSize`).
pub struct BridgeOptions {
    pub forwarder: Forwarder,
    pub subscriptions: Vec<Subscription>,
    pub batch_size: u32,
}

/// Reads `bus.bridge`'s own options; the consumer's (`groupId`, `retry`, ...)
/// are read as `bus.consumer` reads them.
pub fn bridge_options(options: Option<&Object>) -> Result<BridgeOptions> {
    let endpoint = Endpoint::from_options(options)?;
    let remote = topic_map(&args::get(options, "topics")?)?;
    let source = args::opt_string(&args::get(options, "source")?, "source")?.unwrap_or_else(|| "ferry".into());
    let batch_size = args::opt_integer(&args::get(options, "batchSize")?, "batchSize", 1, u64::from(BATCH_SIZE_MAX))?.map_or(BRIDGE_BATCH_DEFAULT, |n| n as u32);
    let transform = args::get(options, "transform")?;
    let transform = match transform.is_undefined() {
        true => None,
        false => Some(transform.dyn_into::<Function>().map_err(|_| FerryError::invalid("transform must be a function"))?),
    };
    let subscriptions = remote.keys().map(|topic| Subscription { topic: topic.clone(), from_beginning: true }).collect();
    let forwarder = Forwarder {
        endpoint,
        remote,
        source,
        transform,
        wakeups: RefCell::default(),
        woken: Rc::default(),
        progress: RefCell::default(),
        listeners: RefCell::default(),
        transient_failures: Cell::new(0),
        posted: Wakers::default(),
    };
    Ok(BridgeOptions { forwarder, subscriptions, batch_size })
}

/// `topics`: local names (each forwarded under its own name), or an object of
/// local -> remote names.
fn topic_map(topics: &JsValue) -> Result<FxHashMap<String, String>> {
    let pairs: Vec<(String, String)> = if js_sys::Array::is_array(topics) {
        args::each(&js_sys::Array::from(topics), |i, t| args::string(&t, &format!("topics[{i}]")).map(|t| (t.clone(), t)))?
    } else if topics.is_object() {
        args::each(&js_sys::Object::entries(topics.unchecked_ref()), |_, entry| {
            let entry = js_sys::Array::from(&entry);
            let local = entry.get(0).as_string().unwrap_or_default();
            let remote = args::string(&entry.get(1), &format!("topics.{local}"))?;
            Ok((local, remote))
        })?
    } else {
        return Err(FerryError::invalid("topics must be an array of topic names or an object of local -> remote names"));
    };
    if pairs.is_empty() || pairs.len() > SUBSCRIPTIONS_MAX {
        return Err(FerryError::invalid(format!("topics must name 1 to {SUBSCRIPTIONS_MAX} topics")));
    }
    for (local, remote) in &pairs {
        check_name("topics", local)?;
        check_name("topics", remote)?;
    }
    Ok(pairs.into_iter().collect())
}

/// A listener added: its target, its event, and the handler.
type Listening = (JsValue, &'static str, Closure<dyn FnMut()>);

/// The events after which a bridge tries its waiting messages at once instead
/// of at the end of their backoff: the network is back (`online`), the page is
/// shown again (`visibilitychange`), a Background Sync (`sync`, in a service
/// worker that has it). A bridge never depends on them: its backoff timer tries
/// again anyway.
pub struct Wakeups {
    listening: Vec<Listening>,
}

impl Wakeups {
    /// Calls `retry` on each of those events, until dropped.
    pub fn listen(retry: Rc<dyn Fn()>) -> Wakeups {
        let global = js_sys::global();
        let document = Reflect::get(&global, &"document".into()).ok().filter(JsValue::is_object);
        let mut listening = Vec::new();
        for (target, event) in [(Some(global.into()), "online"), (Some(js_sys::global().into()), "sync"), (document, "visibilitychange")] {
            let Some(target) = target else { continue };
            let (retry, seen) = (retry.clone(), target.clone());
            let handler = Closure::<dyn FnMut()>::new(move || {
                // Hidden again is no reason to try.
                let hidden = Reflect::get(&seen, &"visibilityState".into()).ok().and_then(|s| s.as_string()).is_some_and(|s| s == "hidden");
                if !hidden {
                    retry();
                }
            });
            if listener(&target, "addEventListener", event, &handler) {
                listening.push((target, event, handler));
            }
        }
        Wakeups { listening }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        for (target, event, handler) in &self.listening {
            listener(target, "removeEventListener", event, handler);
        }
    }
}

/// `target[method](event, handler)`; whether the target has it.
fn listener(target: &JsValue, method: &str, event: &str, handler: &Closure<dyn FnMut()>) -> bool {
    let Ok(function) = Reflect::get(target, &method.into()).and_then(|f| f.dyn_into::<Function>()) else { return false };
    function.call2(target, &event.into(), handler.as_ref()).is_ok()
}

impl Forwarder {
    /// Listens for the events after which the bridge tries at once ([`Wakeups`]).
    pub fn wake_on_network(&self, retry: Rc<dyn Fn()>) {
        let woken = self.woken.clone();
        *self.wakeups.borrow_mut() = Some(Wakeups::listen(Rc::new(move || {
            woken.set(woken.get() + 1);
            retry();
        })));
    }

    /// How many of the events of [`Wakeups`] came so far.
    pub fn woken(&self) -> u64 {
        self.woken.get()
    }

    /// `bridge.on(event, listener)`.
    pub fn on(&self, event: BridgeEvent, listener: Function) {
        self.listeners.borrow_mut().push((event, listener));
    }

    /// `bridge.off(event, listener)`.
    pub fn off(&self, event: BridgeEvent, listener: &Function) {
        self.listeners.borrow_mut().retain(|(e, l)| !(*e == event && l == listener));
    }

    /// Counts what a post of `messages` (of `partition` of the local `topic`) came
    /// to, and tells the listeners: `{ topic, remoteTopic, partition, count,
    /// firstOffset, lastOffset }`, and for a failure `error`, `refused` (dead-lettered)
    /// and `retryInMs` (the far end's `Retry-After`, else null: the backoff's).
    pub fn record(&self, topic: &str, partition: u32, messages: &[Message], verdict: &Verdict) {
        let now_ms = js_sys::Date::now();
        let (event, failure) = {
            let mut progress = self.progress.borrow_mut();
            match verdict {
                Verdict::Forwarded => {
                    progress.forwarded += messages.len() as u64;
                    progress.last_forwarded_at_ms = Some(now_ms);
                    (BridgeEvent::Forwarded, None)
                }
                Verdict::Refused { error } | Verdict::Transient { error, .. } => {
                    if matches!(verdict, Verdict::Transient { .. }) {
                        self.transient_failures.set(self.transient_failures.get() + 1);
                        ask_for_sync();
                    }
                    progress.last_error = Some(error.clone());
                    progress.last_error_at_ms = Some(now_ms);
                    let retry_in_ms = match verdict {
                        Verdict::Transient { delay_ms: Some(ms), .. } => JsValue::from_f64(*ms as f64),
                        _ => JsValue::NULL,
                    };
                    (BridgeEvent::Failed, Some((error.clone(), matches!(verdict, Verdict::Refused { .. }), retry_in_ms)))
                }
            }
        };
        self.posted.wake_all();
        let listeners: Vec<Function> = self.listeners.borrow().iter().filter(|(e, _)| *e == event).map(|(_, l)| l.clone()).collect();
        if listeners.is_empty() || messages.is_empty() {
            return;
        }
        let remote = self.remote.get(topic).map_or(topic, String::as_str);
        let offset = |m: &Message| JsValue::from_f64(m.offset as f64);
        let mut fields = vec![
            ("topic", JsValue::from_str(topic)),
            ("remoteTopic", JsValue::from_str(remote)),
            ("partition", JsValue::from(partition)),
            ("count", JsValue::from_f64(messages.len() as f64)),
            ("firstOffset", offset(&messages[0])),
            ("lastOffset", offset(&messages[messages.len() - 1])),
        ];
        if let Some((error, refused, retry_in_ms)) = failure {
            fields.extend([("error", JsValue::from_str(&error)), ("refused", JsValue::from_bool(refused)), ("retryInMs", retry_in_ms)]);
        }
        let Ok(detail) = object_of(&fields) else { return };
        for listener in listeners {
            // A listener that throws is its own page's error, not the bridge's.
            let _ = listener.call1(&JsValue::UNDEFINED, &detail);
        }
    }

    /// Failed posts to be tried again, so far.
    pub fn transient_failures(&self) -> u64 {
        self.transient_failures.get()
    }

    /// The last error this context's bridge met.
    pub fn last_error(&self) -> Option<String> {
        self.progress.borrow().last_error.clone()
    }

    /// Waits for the next post's outcome, or `ms` at most (other contexts post too).
    pub async fn next_post(&self, ms: f64) {
        self.posted.sleep(ms).await;
    }

    /// This bridge in `bus.stats().bridges`: `{ groupId, url, topics, running,
    /// forwarded, pending, failing, deadLettered, lastForwardedAt, lastError,
    /// lastErrorAt }`, where `pending`, `failing` and `deadLettered` are its
    /// group's (every context's), the rest this context's.
    pub fn stats_entry(&self, group: &str, running: bool, stats: &crate::core::Stats) -> Result<JsValue> {
        let partitions = stats.groups.iter().filter(|g| &*g.group_id == group).flat_map(|g| g.partitions.iter());
        let (pending, failing) = partitions.fold((0, 0), |(lag, retrying), p| (lag + p.lag, retrying + p.retrying));
        let dead_lettered: u64 = stats.groups.iter().filter(|g| &*g.group_id == group).map(|g| g.dead_lettered).sum();
        let topics = Object::new();
        for (local, remote) in &self.remote {
            Reflect::set(&topics, &local.into(), &remote.into()).map_err(|_| FerryError::storage("stats could not be handed to JavaScript"))?;
        }
        let progress = self.progress.borrow();
        let time = |at: Option<f64>| at.map_or(JsValue::NULL, JsValue::from_f64);
        object_of(&[
            ("groupId", JsValue::from_str(group)),
            ("url", JsValue::from_str(&self.endpoint.url)),
            ("topics", topics.into()),
            ("running", JsValue::from_bool(running)),
            ("forwarded", JsValue::from_f64(progress.forwarded as f64)),
            ("pending", JsValue::from_f64(pending as f64)),
            ("failing", JsValue::from_f64(failing as f64)),
            ("deadLettered", JsValue::from_f64(dead_lettered as f64)),
            ("lastForwardedAt", time(progress.last_forwarded_at_ms)),
            ("lastError", progress.last_error.as_deref().map_or(JsValue::NULL, JsValue::from_str)),
            ("lastErrorAt", time(progress.last_error_at_ms)),
        ])
    }

    /// What of `run` to forward: each message as it is, or as `transform` makes it
    /// (its offset and id kept, so a batch posted again carries the same ids);
    /// those it answers `null` for are left out. `Err` with the reason when it
    /// throws or answers something else: the run is a failed attempt.
    pub async fn prepare(&self, run: &[Delivery]) -> std::result::Result<Vec<Message>, String> {
        let Some(transform) = &self.transform else { return Ok(run.iter().map(|d| d.message.clone()).collect()) };
        let mut out = Vec::with_capacity(run.len());
        for delivery in run {
            let answer = call_handler(transform, &payload(delivery)).await.map_err(|e| format!("transform threw: {}", error_message(&e)))?;
            if answer.is_null() || answer.is_undefined() {
                continue;
            }
            let changed = || -> Result<Message> {
                let answer = args::options(&answer, "transform's answer")?;
                let field = |name| args::get(answer.as_ref(), name);
                let mut message = delivery.message.clone();
                let value = field("value")?;
                if !value.is_undefined() {
                    message.value = args::value(&value, "transform's value")?;
                }
                let key = field("key")?;
                if !key.is_undefined() {
                    message.key = args::opt_string(&key, "transform's key")?;
                }
                let headers = field("headers")?;
                if !headers.is_undefined() {
                    message.headers = args::headers(&headers, "transform's headers")?;
                }
                Ok(message)
            };
            out.push(changed().map_err(|e| e.message)?);
        }
        Ok(out)
    }

    /// Posts a run of one local partition's messages; what the answer means.
    pub async fn post(&self, topic: &str, partition: u32, messages: &[Message]) -> Verdict {
        let remote = self.remote.get(topic).map_or(topic, String::as_str);
        let body = batch_body(&self.source, topic, partition, messages);
        match self.endpoint.fetch(&format!("/v1/topics/{remote}/messages"), Some(&body)).await {
            Ok(response) => read_verdict(&response).await.0,
            Err(error) => network_error(&error_message(&error)),
        }
    }
}

/// Registers [`BRIDGE_SYNC_TAG`] where this is a service worker whose browser has
/// Background Sync (`registration.sync`); elsewhere nothing.
fn ask_for_sync() {
    let registration = Reflect::get(&js_sys::global(), &"registration".into()).ok().filter(JsValue::is_object);
    let Some(sync) = registration.and_then(|r| Reflect::get(&r, &"sync".into()).ok()).filter(JsValue::is_object) else { return };
    let Ok(register) = Reflect::get(&sync, &"register".into()).and_then(|f| f.dyn_into::<Function>()) else { return };
    if let Ok(Ok(registered)) = register.call1(&sync, &BRIDGE_SYNC_TAG.into()).map(|p| p.dyn_into::<Promise>()) {
        // Refused (no permission, an opaque origin): the backoff timer still tries.
        spawn_local(async move {
            let _ = JsFuture::from(registered).await;
        });
    }
}

/// The verdict on a response (its status, `Retry-After`, and the start of its
/// body for the reason), and the body.
pub async fn read_verdict(response: &JsValue) -> (Verdict, String) {
    let status = Reflect::get(response, &"status".into()).ok().and_then(|s| s.as_f64()).unwrap_or(0.0) as u16;
    let retry_after = Reflect::get(response, &"headers".into())
        .ok()
        .and_then(|headers| Reflect::get(&headers, &"get".into()).ok()?.dyn_into::<Function>().ok()?.call1(&headers, &"retry-after".into()).ok())
        .and_then(|value| value.as_string());
    let body = async {
        let text: Function = Reflect::get(response, &"text".into()).ok()?.dyn_into().ok()?;
        JsFuture::from(text.call0(response).ok()?.dyn_into::<Promise>().ok()?).await.ok()?.as_string()
    };
    // The reason a dead letter keeps is cut to its limit there.
    let body = body.await.unwrap_or_default();
    (verdict(status, retry_after.as_deref(), &body, js_sys::Date::now() as u64), body)
}
