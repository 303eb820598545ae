//! `Bus.remote({ url, token, headers })`: a bus at the edge (`handleHttp` of
//! `ferry/workers`) seen from a page or worker. Its consumers take the same
//! options and run the same `eachMessage` and `eachBatch` handlers as a local
//! bus's, so a handler moves between a local and a remote topic unchanged.
//!
//! A remote consumer's loop leases up to `maxBatchSize` × `concurrency` messages
//! (at most 100) from one subscribed topic at a time with `POST
//! /v1/topics/{topic}/receive`, hands each partition's run to the handler in
//! order (runs of different partitions at once), and settles the round with one
//! `POST /v1/acks`: an ack for each message handled, a failed attempt for one
//! that threw (the rest of its run comes again after it, as the edge gives it
//! back). Where the group goes from there (backoff, dead letters, lease
//! timeouts) is the edge's, by the same options. With nothing to lease it polls
//! again after `pollIntervalMs`; when the edge cannot be reached it backs off by
//! its `retry` options (at least 100 ms), or by the `Retry-After` the edge sent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::bridge::{read_verdict, Endpoint};
use super::bus::js_promise;
use super::consumer::{
    call_handler, check_startable, error_message, make_batch_payload, subscribe_before_run, Handler, Wakers, BATCH_HEARTBEAT, BATCH_IS_RUNNING, BATCH_RESOLVE_OFFSET,
};
use crate::core::bridge::{base64_decode, network_error, receive_body, Verdict, VALUE_ENCODING_HEADER};
use crate::core::config::{check_name, ConsumerConfig};
use crate::core::json;
use crate::core::limits::{POLL_INTERVAL_MS_DEFAULT, POLL_INTERVAL_MS_MAX, RECEIVE_MAX, REMOTE_BACKOFF_MS_MIN};
use crate::core::rng::Rng;
use crate::core::{FerryError, Result, Subscription};
use crate::interop::args;
use crate::interop::delivered::{make_message_payload, make_remote_message};
use crate::interop::error::{from_js_or, to_js};
use crate::interop::options::consumer_config;

type JsResult = std::result::Result<JsValue, JsValue>;

/// A bus at the edge, over HTTP.
#[wasm_bindgen]
pub struct RemoteBus {
    endpoint: Rc<Endpoint>,
}

#[wasm_bindgen]
impl RemoteBus {
    /// `Bus.remote({ url, token, headers })`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> std::result::Result<RemoteBus, JsValue> {
        let options = args::options(&options, "options").map_err(to_js)?;
        Ok(RemoteBus { endpoint: Rc::new(Endpoint::from_options(options.as_ref()).map_err(to_js)?) })
    }

    /// `GET /v1/stats`: the edge bus's stats, as `bus.stats()` gives a local one's.
    pub fn stats(&self) -> Promise {
        let endpoint = self.endpoint.clone();
        js_promise(Box::pin(async move { answer(endpoint.fetch("/v1/stats", None).await).await }))
    }

    /// `consumer({ groupId, ...ConsumerOptions, pollIntervalMs })`: checked as a local consumer's options are.
    pub fn consumer(&self, options: JsValue) -> std::result::Result<RemoteConsumer, JsValue> {
        let make = || -> Result<RemoteConsumer> {
            let options = args::options(&options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a groupId"))?;
            let group = args::string(&args::get(Some(&options), "groupId")?, "groupId")?;
            check_name("groupId", &group)?;
            let config = consumer_config(Some(&options))?;
            let poll_interval_ms =
                args::opt_integer(&args::get(Some(&options), "pollIntervalMs")?, "pollIntervalMs", 1, POLL_INTERVAL_MS_MAX)?.unwrap_or(POLL_INTERVAL_MS_DEFAULT);
            let state = RemoteState {
                endpoint: self.endpoint.clone(),
                group,
                config,
                poll_interval_ms,
                subscriptions: RefCell::default(),
                running: Cell::new(false),
                stopped: Cell::new(false),
                wakers: Wakers::default(),
                ended: RefCell::new(None),
            };
            Ok(RemoteConsumer { state: Rc::new(state) })
        };
        make().map_err(to_js)
    }
}

/// The JSON of a response, or a `FerryError` with its error body's code.
async fn answer(response: std::result::Result<JsValue, JsValue>) -> JsResult {
    let response = response.map_err(|error| to_js(FerryError::storage(format!("network error: {}", error_message(&error)))))?;
    let (verdict, body) = read_verdict(&response).await;
    match verdict {
        Verdict::Forwarded => JSON::parse(&body).map_err(|_| to_js(FerryError::storage("the edge answered with a body that is not JSON"))),
        Verdict::Refused { error } | Verdict::Transient { error, .. } => Err(to_js(refusal(&body, error))),
    }
}

/// The edge's `{ error: { code, message } }` as a `FerryError`, else `fallback` as STORAGE.
fn refusal(body: &str, fallback: String) -> FerryError {
    let parsed = JSON::parse(body).ok().and_then(|b| Reflect::get(&b, &"error".into()).ok()).filter(JsValue::is_object);
    match parsed {
        Some(error) => from_js_or(&error, |_| FerryError::storage(fallback)),
        None => FerryError::storage(fallback),
    }
}

struct RemoteState {
    endpoint: Rc<Endpoint>,
    group: String,
    config: ConsumerConfig,
    poll_interval_ms: u64,
    subscriptions: RefCell<Vec<Subscription>>,
    running: Cell<bool>,
    stopped: Cell<bool>,
    /// Ends the loop's sleep early (`stop`).
    wakers: Wakers,
    /// Resolves once the loop has ended, for `stop`.
    ended: RefCell<Option<Promise>>,
}

/// One leased message: its receipt, where it is, and what the handler gets.
struct Leased {
    topic: String,
    partition: u32,
    offset: f64,
    receipt: String,
    /// `{ key, value, headers, offset, timestamp, id, attempt }`.
    message: JsValue,
}

/// How a round settles one message.
enum Settle {
    Ack(String),
    Retry(String, String),
}

/// A consumer of a remote bus: `subscribe`, `run`, `stop`, as a local one.
#[wasm_bindgen]
pub struct RemoteConsumer {
    state: Rc<RemoteState>,
}

#[wasm_bindgen]
impl RemoteConsumer {
    /// `subscribe({ topic, fromBeginning })` or `{ topics: [...] }`, before `run`.
    pub fn subscribe(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        js_promise(Box::pin(async move {
            subscribe_before_run(&state.subscriptions, state.running.get(), &options).map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// `run({ eachMessage })` or `run({ eachBatch, eachBatchAutoResolve })`:
    /// resolves once the loop started.
    pub fn run(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        js_promise(Box::pin(async move {
            let handler = Handler::from_options(args::options(&options, "options").map_err(to_js)?.as_ref()).map_err(to_js)?;
            check_startable(state.running.get() || state.stopped.get(), &state.subscriptions.borrow()).map_err(to_js)?;
            state.running.set(true);
            let looping = state.clone();
            *state.ended.borrow_mut() = Some(js_promise(Box::pin(async move {
                remote_loop(looping, handler).await;
                Ok(JsValue::UNDEFINED)
            })));
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// `stop()`: no new leases; resolves once the round in hand is handled and settled.
    pub fn stop(&self) -> Promise {
        let state = self.state.clone();
        js_promise(Box::pin(async move {
            state.stopped.set(true);
            state.wakers.wake_all();
            let ended = state.ended.borrow().clone();
            if let Some(ended) = ended {
                JsFuture::from(ended).await?;
            }
            Ok(JsValue::UNDEFINED)
        }))
    }
}

impl RemoteState {
    /// One lease from `subscription`'s topic.
    async fn receive(&self, subscription: &Subscription) -> std::result::Result<Vec<Leased>, Verdict> {
        let max = RECEIVE_MAX.min(u64::from(self.config.batch_size_max) * u64::from(self.config.concurrency)).max(1);
        let body = receive_body(&self.group, &self.config, subscription.from_beginning, max);
        let response = self.endpoint.fetch(&format!("/v1/topics/{}/receive", subscription.topic), Some(&body)).await.map_err(|e| network_error(&error_message(&e)))?;
        let (verdict, text) = read_verdict(&response).await;
        if verdict != Verdict::Forwarded {
            return Err(verdict);
        }
        leased(&text).map_err(|error| Verdict::Transient { error: error.message, delay_ms: None })
    }

    /// `POST /v1/acks` of a round's settlements. Not retried: a message whose ack
    /// is lost comes again when its lease runs out (at least once).
    async fn settle(&self, settles: &[Settle]) {
        if settles.is_empty() {
            return;
        }
        let mut body = String::from("{\"receipts\":[");
        for (i, settle) in settles.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str("{\"receipt\":");
            match settle {
                Settle::Ack(receipt) => json::string(&mut body, receipt),
                Settle::Retry(receipt, error) => {
                    json::string(&mut body, receipt);
                    body.push_str(",\"retry\":{\"error\":");
                    json::string(&mut body, error);
                    body.push('}');
                }
            }
            body.push('}');
        }
        body.push_str("]}");
        let _ = self.endpoint.fetch("/v1/acks", Some(&body)).await;
    }
}

/// A receive's `{ messages: [...] }` as leases, each message shaped as a local
/// delivery (bytes that crossed as base64 are bytes again).
fn leased(text: &str) -> Result<Vec<Leased>> {
    let unreadable = || FerryError::storage("the edge answered a receive with a body that is not its JSON");
    let body = JSON::parse(text).map_err(|_| unreadable())?;
    let messages = Reflect::get(&body, &"messages".into()).ok().filter(Array::is_array).ok_or_else(unreadable)?;
    crate::interop::args::each(&Array::from(&messages), |_, m| {
        let get = |name: &str| Reflect::get(&m, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let (topic, receipt) = (get("topic").as_string().ok_or_else(unreadable)?, get("receipt").as_string().ok_or_else(unreadable)?);
        let (partition, offset) = (get("partition").as_f64().ok_or_else(unreadable)?, get("offset").as_f64().ok_or_else(unreadable)?);
        let headers = get("headers");
        let mut value = get("value");
        let encoding = Reflect::get(&headers, &VALUE_ENCODING_HEADER.into()).ok().and_then(|e| e.as_string());
        if encoding.as_deref() == Some("base64") {
            let bytes = value.as_string().and_then(|text| base64_decode(&text)).ok_or_else(unreadable)?;
            value = Uint8Array::from(bytes.as_slice()).into();
            let _ = Reflect::delete_property(headers.unchecked_ref::<js_sys::Object>(), &VALUE_ENCODING_HEADER.into());
        }
        let message = make_remote_message(&m, value);
        Ok(Leased { topic, partition: partition as u32, offset, receipt, message })
    })
}

async fn remote_loop(state: Rc<RemoteState>, handler: Handler) {
    let subscriptions = state.subscriptions.borrow().clone();
    let mut next = 0;
    // Empty answers in a row: a sleep comes once every topic had one.
    let mut empty = 0;
    // Receives that failed in a row, for the consumer's own backoff.
    let mut failures = 0;
    let mut rng = Rng::new((js_sys::Math::random() * 2f64.powi(53)) as u64);
    while !state.stopped.get() {
        let subscription = &subscriptions[next % subscriptions.len()];
        next += 1;
        match state.receive(subscription).await {
            Ok(leases) if leases.is_empty() => {
                empty += 1;
                if empty >= subscriptions.len() {
                    empty = 0;
                    state.wakers.sleep(state.poll_interval_ms as f64).await;
                }
            }
            Ok(leases) => {
                empty = 0;
                failures = 0;
                let settles = handle_round(&state, &handler, leases).await;
                state.settle(&settles).await;
            }
            Err(Verdict::Refused { error }) => {
                // The edge will not take this consumer as it is (its token, its options): the loop ends.
                console_error(&format!("ferry: remote consumer of group '{}' stopped: {error}", state.group));
                state.stopped.set(true);
            }
            Err(Verdict::Transient { delay_ms, .. }) => {
                failures += 1;
                let backoff_ms = state.config.retry.backoff_ms(failures, &mut rng).max(REMOTE_BACKOFF_MS_MIN);
                state.wakers.sleep(delay_ms.unwrap_or(backoff_ms) as f64).await;
            }
            Err(Verdict::Forwarded) => {}
        }
    }
}

/// Hands a round's runs (one per partition, in offset order) to the handler, the
/// runs at once; resolves to how each message settles, in the order leased.
async fn handle_round(state: &Rc<RemoteState>, handler: &Handler, leases: Vec<Leased>) -> Vec<Settle> {
    let mut runs: Vec<Vec<Leased>> = Vec::new();
    for lease in leases {
        match runs.last_mut() {
            Some(run) if run[0].topic == lease.topic && run[0].partition == lease.partition => run.push(lease),
            _ => runs.push(vec![lease]),
        }
    }
    let outcomes: Rc<RefCell<Vec<Vec<Settle>>>> = Rc::new(RefCell::new(runs.iter().map(|_| Vec::new()).collect()));
    let tasks = Array::new();
    for (i, run) in runs.into_iter().enumerate() {
        let (state, handler, outcomes) = (state.clone(), handler.clone(), outcomes.clone());
        tasks.push(&js_promise(Box::pin(async move {
            let settles = match &handler {
                Handler::EachBatch(f, auto_resolve) => handle_batch(&state, f, *auto_resolve, run).await,
                Handler::EachMessage(f) => handle_messages(f, run).await,
                // A bridge is a local bus's consumer: never made here.
                Handler::Forward(_) => Vec::new(),
            };
            outcomes.borrow_mut()[i] = settles;
            Ok(JsValue::UNDEFINED)
        })));
    }
    let _ = JsFuture::from(Promise::all(&tasks)).await;
    outcomes.take().into_iter().flatten().collect()
}

async fn handle_messages(handler: &Function, run: Vec<Leased>) -> Vec<Settle> {
    let mut settles = Vec::new();
    for lease in run {
        let payload = make_message_payload(&lease.topic, lease.partition, lease.message.clone());
        match call_handler(handler, &payload).await {
            Ok(_) => settles.push(Settle::Ack(lease.receipt)),
            Err(error) => {
                // The rest of the run comes again after this one.
                settles.push(Settle::Retry(lease.receipt, error_message(&error)));
                break;
            }
        }
    }
    settles
}

async fn handle_batch(state: &Rc<RemoteState>, handler: &Function, auto_resolve: bool, run: Vec<Leased>) -> Vec<Settle> {
    let (topic, partition) = (run[0].topic.clone(), run[0].partition);
    let high_watermark = run[run.len() - 1].offset + 1.0;
    let messages: Array = run.iter().map(|lease| lease.message.clone()).collect();
    let offsets: Vec<f64> = run.iter().map(|lease| lease.offset).collect();
    let resolved = Rc::new(Cell::new(0usize));
    let control = {
        let (state, resolved) = (state.clone(), resolved.clone());
        Closure::<dyn Fn(u32, JsValue) -> JsValue>::new(move |asked: u32, argument: JsValue| match asked {
            // KafkaJS passes offsets as strings too.
            BATCH_RESOLVE_OFFSET => {
                let offset = argument.as_f64().or_else(|| argument.as_string().and_then(|s| s.parse().ok())).unwrap_or(-1.0);
                resolved.set(resolved.get().max(offsets.iter().take_while(|o| **o <= offset).count()));
                JsValue::UNDEFINED
            }
            // The lease is the edge's, by ackTimeoutMs: nothing to renew here.
            BATCH_HEARTBEAT => Promise::resolve(&JsValue::UNDEFINED).into(),
            BATCH_IS_RUNNING => JsValue::from_bool(!state.stopped.get()),
            // BATCH_IS_STALE: there is no seek of a remote consumer to make it so.
            _ => JsValue::FALSE,
        })
    };
    let argument = make_batch_payload(&topic, partition, messages, high_watermark, control.as_ref().unchecked_ref());
    let outcome = call_handler(handler, &argument).await;
    if outcome.is_ok() && auto_resolve {
        resolved.set(run.len());
    }
    let mut settles = Vec::new();
    for (i, lease) in run.into_iter().enumerate() {
        if i < resolved.get() {
            settles.push(Settle::Ack(lease.receipt));
        } else {
            // A throw fails the first message not resolved; what a call that
            // resolved left unresolved is left to its lease, and comes again.
            if let Err(error) = &outcome {
                settles.push(Settle::Retry(lease.receipt, error_message(error)));
            }
            break;
        }
    }
    settles
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(text: &str);
}
