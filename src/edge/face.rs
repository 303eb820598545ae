//! The bus inside Cloudflare Durable Objects (`ferry/workers`), as JavaScript sees
//! it. [`EdgeObject`] is one object: the protocol of [`super::object`] on the
//! object's SQLite storage ([`DurableStore`]). [`EdgeClient`] is `connect()`'s
//! client: the protocol of [`super::client`], with the API's arguments read and its
//! results built here. Calls and replies cross RPC as bytes ([`super::wire`]):
//! nothing between the two is converted from or to JavaScript.

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::client::{ConsumerId, EdgeClient as ClientProtocol, OpId};
use super::http::{browsed_body, parse_receipt, received_body};
use super::object::{home_of, Alarm, CallId, EdgeObject as ObjectProtocol, Transmit, TransmitId};
use crate::core::config::check_name;
use crate::core::limits::*;
use crate::core::{FerryError, Receipt, Result, Subscription};
use crate::interop::error::{from_js_or, to_js};
use crate::interop::options::{self, bus_options, consumer_config, messages, outgoing, seek_options, subscriptions, topic_config};
use crate::interop::{args, object_of, reply};
use crate::protocol::wire::{decode_call, decode_reply, encode_call, encode_reply};
use crate::protocol::{Reply, SettleItem};
use crate::store::durable::DurableStore;

type JsResult = std::result::Result<JsValue, JsValue>;

/// A transmit as the transport carries it: `{ id, to, bytes }`.
fn transmit_to_js(transmit: &Transmit) -> Result<JsValue> {
    let bytes = Uint8Array::from(encode_call(&transmit.context, &transmit.call).as_slice());
    object_of(&[("id", JsValue::from_f64(transmit.id as f64)), ("to", JsValue::from_str(&transmit.to)), ("bytes", bytes.into())])
}

/// What an object answered a transmit: `{ bytes }`, or `{ error: { code, message } }`
/// when the call never reached it (the transport failed).
fn answer_of(outcome: &JsValue) -> Result<Reply> {
    let outcome = args::options(outcome, "outcome")?;
    let error = args::get(outcome.as_ref(), "error")?;
    if !error.is_undefined() {
        return Err(from_js_or(&error, FerryError::storage));
    }
    let bytes = args::get(outcome.as_ref(), "bytes")?.dyn_into::<Uint8Array>().map_err(|_| FerryError::storage("an object answered without bytes"))?;
    decode_reply(&bytes.to_vec())
}

/// The transmit an answer is for: its `id`.
fn answer_id(answer: &JsValue) -> Result<TransmitId> {
    let id = Reflect::get(answer, &JsValue::from_str("id")).ok().and_then(|id| id.as_f64());
    id.filter(|id| id.fract() == 0.0 && *id >= 0.0).map(|id| id as TransmitId).ok_or_else(|| FerryError::storage("an answer names no transmit"))
}

/// One Durable Object of the bus (`FerryObject` in `pkg/entry/workers.js`).
#[wasm_bindgen]
pub struct EdgeObject {
    object: ObjectProtocol<DurableStore>,
}

#[wasm_bindgen]
impl EdgeObject {
    /// Opens the part of a bus kept in `storage` (a Durable Object's `ctx.storage`)
    /// by the object named `name`: its first call names it; later ones, and its
    /// alarm (`name` undefined), find the name it stored.
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue, name: Option<String>) -> std::result::Result<EdgeObject, JsValue> {
        let open = || -> Result<EdgeObject> {
            let store = DurableStore::open(storage)?;
            let name = match (store.name()?, name) {
                (Some(stored), Some(given)) if stored != given => {
                    return Err(FerryError::storage(format!("this Durable Object holds '{stored}', not '{given}'")));
                }
                (Some(stored), _) => stored,
                (None, Some(given)) => {
                    home_of(&given)?;
                    store.set_name(&given)?;
                    given
                }
                (None, None) => return Err(FerryError::storage("this Durable Object was never used by a bus")),
            };
            let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
            Ok(EdgeObject { object: ObjectProtocol::open(store, name, seed)? })
        };
        open().map_err(to_js)
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.object.name().to_string()
    }

    /// One RPC's bytes. Like every input, returns what the transport is to do next
    /// (see `work`).
    #[wasm_bindgen(js_name = handleCall)]
    pub fn handle_call(&mut self, id: f64, bytes: &[u8], now_ms: f64) -> JsResult {
        match decode_call(bytes) {
            Ok((context, call)) => self.object.handle_call(id as CallId, context, call, now_ms as u64),
            Err(error) => self.object.refuse(id as CallId, error),
        }
        self.work(now_ms)
    }

    /// The alarm.
    #[wasm_bindgen(js_name = handleAlarm)]
    pub fn handle_alarm(&mut self, now_ms: f64) -> JsResult {
        self.object.handle_alarm(now_ms as u64).map_err(to_js)?;
        self.work(now_ms)
    }

    /// What the objects called answered, `[{ id, bytes } | { id, error }]` (see
    /// `answer_of`): the transport hands over together the answers of the
    /// transmits it got together.
    #[wasm_bindgen(js_name = handleTransmitResults)]
    pub fn handle_transmit_results(&mut self, answers: Array, now_ms: f64) -> JsResult {
        for answer in answers.iter() {
            self.object.handle_transmit_result(answer_id(&answer).map_err(to_js)?, answer_of(&answer), now_ms as u64);
        }
        self.work(now_ms)
    }

    /// Everything the protocol has for the transport, handed over with the input that
    /// made it: `{ transmits: [{ id, to, bytes }], results: [{ id, bytes }], alarm }`,
    /// where `alarm` is a time (ms) to set it to, `null` to cancel it, or undefined
    /// to leave it. An alarm due already is set a millisecond from `now_ms`:
    /// `setAlarm` takes a time to come.
    fn work(&mut self, now_ms: f64) -> JsResult {
        let mut work = || -> Result<JsValue> {
            let transmits = Array::new();
            while let Some(transmit) = self.object.poll_transmit() {
                transmits.push(&transmit_to_js(&transmit)?);
            }
            let results = Array::new();
            while let Some((id, result)) = self.object.poll_result() {
                results.push(&object_of(&[("id", JsValue::from_f64(id as f64)), ("bytes", Uint8Array::from(encode_reply(&result).as_slice()).into())])?);
            }
            let alarm = match self.object.poll_alarm() {
                None => JsValue::UNDEFINED,
                Some(Alarm::Cancel) => JsValue::NULL,
                Some(Alarm::At(ms)) => JsValue::from_f64((ms as f64).max(now_ms + 1.0)),
            };
            object_of(&[("transmits", transmits.into()), ("results", results.into()), ("alarm", alarm)])
        };
        work().map_err(to_js)
    }
}

/// `connect()`'s client: each method starts an operation and returns its id, or
/// throws a `FerryError` for bad input; `poll` gives what each resolves to.
#[wasm_bindgen]
pub struct EdgeClient {
    client: ClientProtocol,
    /// Operations started as `publish`: they resolve to one metadata, not a list.
    publishes: Vec<OpId>,
    /// Operations started by `handleHttp`: they resolve to the answer's JSON text.
    http_answers: Vec<(OpId, HttpAnswer)>,
}

/// What an HTTP operation's reply becomes.
enum HttpAnswer {
    /// A receive's messages, each with a receipt of the group.
    Received { group: String },
    /// A partition's messages read by `GET /v1/topics/{topic}/messages`.
    Browsed,
}

fn op(id: OpId) -> f64 {
    id as f64
}

#[wasm_bindgen]
impl EdgeClient {
    /// A client with `connect()`'s options (`name`, `autoCreateTopics`, `maxMessageBytes`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> std::result::Result<EdgeClient, JsValue> {
        let make = || -> Result<EdgeClient> {
            let (config, placement) = bus_options(args::options(&options, "options")?.as_ref())?;
            let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
            Ok(EdgeClient { client: ClientProtocol::new(placement.name, config, seed)?, publishes: Vec::new(), http_answers: Vec::new() })
        };
        make().map_err(to_js)
    }

    #[wasm_bindgen(js_name = createTopic)]
    pub fn create_topic(&mut self, name: JsValue, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let name = args::string(&name, "name")?;
            let config = topic_config(args::options(&options, "options")?.as_ref())?;
            Ok(self.client.create_topic(name, config))
        };
        start().map(op).map_err(to_js)
    }

    pub fn topics(&mut self) -> f64 {
        op(self.client.topics())
    }

    /// One job queue operation of `ferry/bullmq` (pkg/entry/bullmq.js).
    pub fn jobs(&mut self, queue: JsValue, job: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let queue = args::string(&queue, "queueName")?;
            Ok(self.client.jobs(queue, crate::interop::jobs::job_op(&job)?))
        };
        start().map(op).map_err(to_js)
    }

    /// `producer().send({ topic, messages })`.
    pub fn send(&mut self, record: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let record = args::options(&record, "record")?;
            let topic = args::string(&args::get(record.as_ref(), "topic")?, "topic")?;
            crate::core::config::check_name("topic", &topic)?;
            let messages = messages(record.as_ref())?;
            Ok(self.client.send(topic, messages))
        };
        start().map(op).map_err(to_js)
    }

    /// `publish(topic, value, options)`.
    pub fn publish(&mut self, topic: JsValue, value: JsValue, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let topic = args::string(&topic, "topic")?;
            crate::core::config::check_name("topic", &topic)?;
            let message = outgoing(&value, args::options(&options, "options")?.as_ref(), &|| "options".to_string())?;
            Ok(self.client.send(topic, vec![message]))
        };
        let id = start().map_err(to_js)?;
        self.publishes.push(id);
        Ok(op(id))
    }

    pub fn stats(&mut self) -> f64 {
        op(self.client.stats())
    }

    /// `redrive({ from, limit, offsets })`.
    pub fn redrive(&mut self, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let (from, limit, offsets) = options::redrive_options(&options)?;
            Ok(self.client.redrive(from, limit, offsets))
        };
        start().map(op).map_err(to_js)
    }

    /// `purge({ topic })`.
    pub fn purge(&mut self, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> { Ok(self.client.purge(options::purge_options(&options)?)) };
        start().map(op).map_err(to_js)
    }

    /// `browse({ topic, partition, offset, limit, groupId })`.
    pub fn browse(&mut self, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let (topic, partition, offset, max, group) = options::browse_options(&options)?;
            Ok(self.client.browse(topic, partition, offset, max, group))
        };
        start().map(op).map_err(to_js)
    }

    /// `consumer(options)`: a pull consumer's number, checked as the browser checks it.
    pub fn consumer(&mut self, options: JsValue) -> std::result::Result<u32, JsValue> {
        let mut make = || -> Result<ConsumerId> {
            let options = args::options(&options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a groupId"))?;
            let group = args::string(&args::get(Some(&options), "groupId")?, "groupId")?;
            self.client.consumer(group, consumer_config(Some(&options))?)
        };
        make().map(|id| id as u32).map_err(to_js)
    }

    /// Forgets a consumer whose JavaScript object was collected.
    pub fn release(&mut self, consumer: u32) {
        self.client.release(consumer as ConsumerId);
    }

    /// `POST /v1/topics/{topic}/receive` with `body` (parsed JSON): `group` (or `groupId`), and
    /// `max`, `fromBeginning` and the consumer options (`ackTimeoutMs`, `retry`,
    /// `ordering`, `deadLetterTopic`). Resolves to the answer's JSON text.
    #[wasm_bindgen(js_name = receiveHttp)]
    pub fn receive_http(&mut self, topic: String, body: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<(OpId, String)> {
            let body = args::options(&body, "the body")?.ok_or_else(|| FerryError::invalid("the body must be a JSON object { \"group\": ... }"))?;
            let body = Some(&body);
            check_name("topic", &topic)?;
            // `group`, or `groupId` as a consumer's options name it.
            let named = args::get(body, "group")?;
            let group = match named.is_undefined() {
                true => args::string(&args::get(body, "groupId")?, "group")?,
                false => args::string(&named, "group")?,
            };
            let config = consumer_config(body)?;
            let from_beginning = args::opt_bool(&args::get(body, "fromBeginning")?, "fromBeginning")?.unwrap_or(false);
            let max = args::opt_integer(&args::get(body, "max")?, "max", 1, RECEIVE_MAX)?.unwrap_or(RECEIVE_DEFAULT);
            Ok((self.client.receive_once(group.clone(), config, Subscription::new(topic.clone(), from_beginning), max as usize)?, group))
        };
        let (id, group) = start().map_err(to_js)?;
        self.http_answers.push((id, HttpAnswer::Received { group }));
        Ok(op(id))
    }

    /// `GET /v1/topics/{topic}/messages?partition&offset&limit&groupId`, the query
    /// as an object of its parameters: the answer is the page as JSON text, bytes
    /// as base64 as a receive gives them.
    #[wasm_bindgen(js_name = browseHttp)]
    pub fn browse_http(&mut self, topic: String, query: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let query = args::options(&query, "the query")?.unwrap_or_default();
            // Query parameters are text: a number's text is read as the number, anything else is refused by name below
            // (`offset` takes digits as KafkaJS gives offsets).
            for name in ["partition", "limit"] {
                let text = args::get(Some(&query), name)?;
                if let Some(n) = text.as_string().filter(|t| !t.is_empty()).and_then(|t| t.parse::<f64>().ok()) {
                    Reflect::set(&query, &JsValue::from_str(name), &JsValue::from_f64(n)).map_err(|_| FerryError::invalid(format!("{name} could not be read")))?;
                }
            }
            Reflect::set(&query, &JsValue::from_str("topic"), &JsValue::from_str(&topic)).map_err(|_| FerryError::invalid("the query could not be read"))?;
            let (topic, partition, offset, max, group) = options::browse_options(&query.into())?;
            Ok(self.client.browse(topic, partition, offset, max, group))
        };
        let id = start().map_err(to_js)?;
        self.http_answers.push((id, HttpAnswer::Browsed));
        Ok(op(id))
    }

    /// `POST /v1/acks` with `body` (parsed JSON): `{ receipts: [...] }`, each a
    /// receipt (an ack) or `{ receipt, retry?: { error?, delayMs? } | true, error?,
    /// delayMs? }`, a failed attempt when `retry`, `error` or `delayMs` is given. Every item is checked before any is sent. Returns the operations'
    /// ids, in the order of the receipts; each resolves to whether it settled.
    #[wasm_bindgen(js_name = settleHttp)]
    pub fn settle_http(&mut self, body: JsValue) -> std::result::Result<Vec<f64>, JsValue> {
        let read = || -> Result<Vec<SettleItem>> {
            let body = args::options(&body, "the body")?.ok_or_else(|| FerryError::invalid("the body must be a JSON object { \"receipts\": [...] }"))?;
            let list = args::array(&args::get(Some(&body), "receipts")?, "receipts")?;
            if list.length() == 0 || u64::from(list.length()) > HTTP_ACKS_MAX {
                return Err(FerryError::invalid(format!("receipts must hold 1 to {HTTP_ACKS_MAX} items, got {}", list.length())));
            }
            (0..list.length())
                .map(|i| {
                    let field = format!("receipts[{i}]");
                    let value = list.get(i);
                    // A receipt alone is an ack.
                    if let Some(text) = value.as_string() {
                        let (group, receipt) = parse_receipt(&text, &field)?;
                        return Ok(SettleItem { group, receipt, retry: None });
                    }
                    let item =
                        args::options(&value, &field)?.ok_or_else(|| FerryError::invalid(format!("{field} must be a receipt or an object {{ \"receipt\": ... }}")))?;
                    let item = Some(&item);
                    let (group, receipt) = parse_receipt(&args::string(&args::get(item, "receipt")?, &format!("{field}.receipt"))?, &format!("{field}.receipt"))?;
                    // A failed attempt: `retry: { error, delayMs }`, `retry: true`, or
                    // `error` or `delayMs` on the item itself; `retry: false` is an ack.
                    let retry = args::get(item, "retry")?;
                    let (asked, from, prefix) = match (retry.as_bool(), args::options(&retry, &format!("{field}.retry"))) {
                        (Some(asked), _) => (Some(asked), item.cloned(), field.clone()),
                        (None, retry) => match retry? {
                            Some(retry) => (Some(true), Some(retry), format!("{field}.retry")),
                            None => (None, item.cloned(), field.clone()),
                        },
                    };
                    let error = args::opt_string(&args::get(from.as_ref(), "error")?, &format!("{prefix}.error"))?;
                    let delay_ms = args::opt_integer(&args::get(from.as_ref(), "delayMs")?, &format!("{prefix}.delayMs"), 0, DELAY_MS_MAX)?;
                    let retry = asked.unwrap_or(error.is_some() || delay_ms.is_some()).then(|| (error.unwrap_or_else(|| "retried".into()), delay_ms));
                    Ok(SettleItem { group, receipt, retry })
                })
                .collect()
        };
        let items = read().map_err(to_js)?;
        let ids = items.into_iter().map(|item| op(self.client.settle_receipt(item))).collect();
        self.client.flush_settles();
        Ok(ids)
    }

    pub fn subscribe(&mut self, consumer: u32, options: JsValue) -> std::result::Result<f64, JsValue> {
        let list = subscriptions(&options).map_err(to_js)?;
        Ok(op(self.client.subscribe(consumer as ConsumerId, list)))
    }

    /// `receive({ max })`: resolves to `[{ topic, partition, message, generation }]`.
    pub fn receive(&mut self, consumer: u32, options: JsValue) -> std::result::Result<f64, JsValue> {
        let mut start = || -> Result<OpId> {
            let options = args::options(&options, "options")?;
            let max = args::opt_integer(&args::get(options.as_ref(), "max")?, "max", 1, RECEIVE_MAX)?.unwrap_or(RECEIVE_DEFAULT);
            Ok(self.client.receive(consumer as ConsumerId, max as usize))
        };
        start().map(op).map_err(to_js)
    }

    pub fn seek(&mut self, consumer: u32, target: JsValue) -> std::result::Result<f64, JsValue> {
        let (topic, partition, to) = seek_options(&target).map_err(to_js)?;
        Ok(op(self.client.seek(consumer as ConsumerId, topic, partition, to)))
    }

    /// An ack of a received message (its topic, partition, offset, attempt and generation).
    pub fn ack(&mut self, consumer: u32, topic: String, partition: u32, offset: f64, attempt: u32, generation: u32) -> f64 {
        let receipt = Receipt { topic: topic.into(), partition, offset: offset as u64, attempt, generation };
        op(self.client.settle(consumer as ConsumerId, receipt, None))
    }

    /// `retry({ delayMs, error })` of a received message: a failed attempt.
    #[allow(clippy::too_many_arguments)]
    pub fn retry(
        &mut self,
        consumer: u32,
        topic: String,
        partition: u32,
        offset: f64,
        attempt: u32,
        generation: u32,
        options: JsValue,
    ) -> std::result::Result<f64, JsValue> {
        let start = || -> Result<OpId> {
            let options = args::options(&options, "options")?;
            let error = args::opt_string(&args::get(options.as_ref(), "error")?, "error")?.unwrap_or_else(|| "retried".into());
            let delay_ms = args::opt_integer(&args::get(options.as_ref(), "delayMs")?, "delayMs", 0, DELAY_MS_MAX)?;
            let receipt = Receipt { topic: topic.into(), partition, offset: offset as u64, attempt, generation };
            Ok(self.client.settle(consumer as ConsumerId, receipt, Some((error, delay_ms))))
        };
        start().map(op).map_err(to_js)
    }

    /// Sends the acks and retries made since the last flush: one call per partition.
    /// Returns what `poll` would.
    #[wasm_bindgen(js_name = flushSettles)]
    pub fn flush_settles(&mut self) -> JsResult {
        self.client.flush_settles();
        self.poll()
    }

    /// What the objects called answered, `[{ id, bytes } | { id, error }]`: those
    /// of the transmits one `poll` gave, together. Returns what `poll` would.
    #[wasm_bindgen(js_name = handleReplies)]
    pub fn handle_replies(&mut self, answers: Array) -> JsResult {
        for answer in answers.iter() {
            self.client.handle_reply(answer_id(&answer).map_err(to_js)?, answer_of(&answer));
        }
        self.poll()
    }

    /// Everything the protocol has for the transport, in one crossing: `{ transmits:
    /// [{ id, to, bytes }], done: [{ id, value } | { id, error }] }`.
    pub fn poll(&mut self) -> JsResult {
        let mut poll = || -> Result<JsValue> {
            let transmits = Array::new();
            while let Some(transmit) = self.client.poll_transmit() {
                transmits.push(&transmit_to_js(&transmit)?);
            }
            let done = Array::new();
            while let Some((id, result)) = self.client.poll_done() {
                let publish = self.publishes.iter().position(|p| *p == id).map(|i| self.publishes.swap_remove(i)).is_some();
                let http = self.http_answers.iter().position(|(p, _)| *p == id).map(|i| self.http_answers.swap_remove(i).1);
                let outcome = match result.and_then(|reply| match (http, reply) {
                    (Some(HttpAnswer::Received { group }), Reply::Deliveries(list)) => Ok(JsValue::from_str(&received_body(&group, &list))),
                    (Some(HttpAnswer::Browsed), Reply::Browsed(page)) => Ok(JsValue::from_str(&browsed_body(&page))),
                    (_, reply) => reply::to_js(reply, publish),
                }) {
                    Ok(value) => ("value", value),
                    Err(error) => ("error", to_js(error)),
                };
                done.push(&object_of(&[("id", JsValue::from_f64(id as f64)), outcome])?);
            }
            object_of(&[("transmits", transmits.into()), ("done", done.into())])
        };
        poll().map_err(to_js)
    }
}

/// `handleHttp`'s `maxBodyBytes`, checked; its default when undefined.
#[wasm_bindgen(js_name = checkHttpOptions)]
pub fn check_http_options(max_body_bytes: JsValue, allow_origins: JsValue) -> std::result::Result<f64, JsValue> {
    // `allowOrigins`: absent (no cross-origin caller), "*", or a list of origins.
    let origins_ok = allow_origins.is_undefined()
        || allow_origins.as_string().is_some_and(|s| s == "*")
        || (js_sys::Array::is_array(&allow_origins)
            && js_sys::Array::from(&allow_origins).iter().all(|o| o.as_string().is_some_and(|o| o.starts_with("http://") || o.starts_with("https://"))));
    if !origins_ok {
        return Err(to_js(crate::core::FerryError::invalid("allowOrigins must be \"*\" or an array of origins such as \"https://app.example\"")));
    }
    let checked = args::opt_integer(&max_body_bytes, "maxBodyBytes", 1, SAFE_INTEGER_MAX).map_err(to_js)?;
    Ok(checked.unwrap_or(HTTP_BODY_BYTES_DEFAULT) as f64)
}
