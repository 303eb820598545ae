//! The bus inside Cloudflare Durable Objects (`ferry/workers`), as JavaScript sees
//! it: [`EdgeObject`] is the protocol of [`crate::edge`] on an object's SQLite
//! storage ([`DurableStore`]), its calls, transmits and replies converted from and
//! to the values that cross Durable Object RPC here; the other exports are what a
//! Worker's client checks and routes before it calls an object.

use std::collections::{HashMap, HashSet};

use js_sys::{Array, Object, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;

use super::object::{home_of, Alarm, CallId, EdgeObject as EdgeProtocol, Transmit, TransmitId};
use super::protocol::{Call, Context, Reply, SettleItem};
use crate::interop::delivered::payload;
use crate::interop::error::{error_data, to_js};
use crate::interop::options::{bus_options, consumer_config, messages, outgoing, seek_options, subscriptions, topic_config};
use crate::interop::{args, json, parse_json};
use crate::core::config::{check_name, TopicConfig};
use crate::core::limits::*;
use crate::core::message::Chunk;
use crate::core::murmur2::partition_for_key;
use crate::core::{ErrorCode, FerryError, Receipt, RecordMetadata, Result};
use crate::store::durable::DurableStore;

type JsResult = std::result::Result<JsValue, JsValue>;

/// One Durable Object of the bus (`FerryObject` in `pkg/entry/workers.js`): the
/// protocol of [`crate::edge::object`] on the object's SQLite storage, with its
/// calls, transmits and replies converted from and to JavaScript here.
#[wasm_bindgen]
pub struct EdgeObject {
    object: EdgeProtocol<DurableStore>,
    /// Calls made as `publish`, answered with one metadata instead of a list.
    publishes: HashSet<CallId>,
    /// The call each transmit out makes: what its answer is read back as.
    transmitted: HashMap<TransmitId, &'static str>,
}

/// `{ field: value, ... }`.
fn object_of(fields: &[(&str, JsValue)]) -> Result<JsValue> {
    let out = Object::new();
    for (field, value) in fields {
        Reflect::set(&out, &JsValue::from_str(field), value).map_err(|_| FerryError::storage("a value could not be handed to JavaScript"))?;
    }
    Ok(out.into())
}

/// One item of a settle call: `["ack", groupId, topic, partition, offset, attempt,
/// generation]` or `["retry", ..., { delayMs, error }]`.
fn settle_item(item: &JsValue) -> Result<SettleItem> {
    let item = args::array(item, "item")?;
    let retry = match args::string(&item.get(0), "item[0]")?.as_str() {
        "ack" => None,
        "retry" => {
            let options = args::options(&item.get(7), "options")?;
            let error = args::opt_string(&args::get(options.as_ref(), "error")?, "error")?.unwrap_or_else(|| "retried".into());
            Some((error, args::opt_integer(&args::get(options.as_ref(), "delayMs")?, "delayMs", 0, DELAY_MS_MAX)?))
        }
        other => return Err(FerryError::invalid(format!("a received message is settled by ack or retry, not '{other}'"))),
    };
    Ok(SettleItem {
        group: args::string(&item.get(1), "groupId")?,
        receipt: Receipt {
            topic: args::string(&item.get(2), "topic")?.into(),
            partition: args::integer(&item.get(3), "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32,
            offset: args::integer(&item.get(4), "offset", 0, SAFE_INTEGER_MAX)?,
            attempt: args::integer(&item.get(5), "attempt", 1, u64::from(ATTEMPTS_MAX))? as u32,
            generation: args::integer(&item.get(6), "generation", 0, u64::from(u32::MAX))? as u32,
        },
        retry,
    })
}

/// A request's `options` and `topics`: `connect()`'s options (the engine's count;
/// where the bus lives means nothing here), and the settings of topics the call
/// needs, as `topic` describes them.
fn context_of(request: Option<&Object>) -> Result<Context> {
    let (config, _placement) = bus_options(args::options(&args::get(request, "options")?, "options")?.as_ref())?;
    let mut topics = Vec::new();
    let listed = args::get(request, "topics")?;
    if !listed.is_undefined() {
        for topic in args::array(&listed, "topics")?.iter() {
            let settings = args::options(&topic, "topics[]")?;
            topics.push((args::string(&args::get(settings.as_ref(), "topic")?, "topic")?, topic_config(settings.as_ref())?));
        }
    }
    Ok(Context { config, topics })
}

/// A request's call: `{ method, args }`.
fn call_of(request: Option<&Object>) -> Result<(Call, bool)> {
    let method = args::string(&args::get(request, "method")?, "method")?;
    let list = args::get(request, "args")?;
    let arg = |i: u32| if list.is_undefined() { JsValue::UNDEFINED } else { Array::from(&list).get(i) };
    let call = match method.as_str() {
        "createTopic" => Call::CreateTopic { name: args::string(&arg(0), "name")?, config: topic_config(args::options(&arg(1), "options")?.as_ref())? },
        "topics" => Call::Topics,
        "topic" => Call::Topic {
            name: args::string(&arg(0), "topic")?,
            partitions: args::opt_integer(&arg(1), "partitions", 1, u64::from(PARTITIONS_MAX))?.map(|p| p as u32),
            create: arg(2).is_truthy(),
        },
        "settings" => Call::Settings,
        "send" => {
            let record = args::options(&arg(0), "record")?;
            let topic = args::string(&args::get(record.as_ref(), "topic")?, "topic")?;
            let mut messages = messages(record.as_ref())?;
            // From routeSend: a Uint32Array.
            let partitions = Array::from(&arg(1));
            if partitions.length() as usize != messages.len() {
                return Err(FerryError::invalid("send needs a partition for each message"));
            }
            for (i, message) in messages.iter_mut().enumerate() {
                message.partition = Some(args::integer(&partitions.get(i as u32), "partitions[]", 0, u64::from(PARTITIONS_MAX) - 1)? as u32);
            }
            Call::Send { topic, messages }
        }
        "publish" => {
            let topic = args::string(&arg(0), "topic")?;
            let mut message = outgoing(&arg(1), args::options(&arg(2), "options")?.as_ref(), &|| "message".to_string())?;
            message.partition = Some(args::integer(&arg(3), "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32);
            return Ok((Call::Send { topic, messages: vec![message] }, true));
        }
        "stats" => Call::Stats,
        "redrive" => {
            let options = args::options(&arg(0), "options")?;
            let from = args::string(&args::get(options.as_ref(), "from")?, "from")?;
            Call::Redrive { from, limit: args::opt_integer(&args::get(options.as_ref(), "limit")?, "limit", 1, REDRIVE_LIMIT_MAX)? }
        }
        "receive" => {
            let options: Option<Object> = args::options(&arg(0), "options")?;
            let group = args::string(&args::get(options.as_ref(), "groupId")?, "groupId")?;
            check_name("groupId", &group)?;
            let mut config = consumer_config(options.as_ref())?;
            // Leases bound each message's time; the pull member itself never times out
            // between the invocations that pull.
            config.session_timeout_ms = SESSION_TIMEOUT_MS_MAX;
            Call::Receive { group, config, subscriptions: subscriptions(&arg(1))?, max: args::integer(&arg(2), "max", 0, RECEIVE_MAX)? as usize }
        }
        "settle" => Call::Settle { items: args::array(&arg(0), "items")?.iter().map(|item| settle_item(&item)).collect() },
        "seek" => {
            let group = args::string(&arg(0), "groupId")?;
            let (topic, partition, to) = seek_options(&arg(1))?;
            Call::Seek { group, topic, partition, to }
        }
        "accept" => {
            let from = args::integer(&arg(2), "from", 0, SAFE_INTEGER_MAX)?;
            let bytes = arg(3).dyn_into::<Uint8Array>().map_err(|_| FerryError::invalid("accept takes the chunk's bytes"))?.to_vec();
            Call::Accept { source: args::string(&arg(0), "source")?, send: arg(1).is_truthy(), chunk: Chunk::from_bytes(from, &bytes)? }
        }
        "checkRoom" => Call::CheckRoom { added: args::integer(&arg(0), "added", 0, SAFE_INTEGER_MAX)? },
        other => return Err(FerryError::invalid(format!("unknown bus method '{other}'"))),
    };
    Ok((call, false))
}

/// A reply as the caller gets it.
fn reply_to_js(reply: Reply, publish: bool) -> Result<JsValue> {
    Ok(match reply {
        Reply::Done => JsValue::UNDEFINED,
        Reply::Bool(b) => JsValue::from_bool(b),
        Reply::Count(n) => JsValue::from_f64(n as f64),
        Reply::Topics(list) => parse_json(&json::topics(&list))?,
        Reply::Topic { name, config, missing } => {
            let described = parse_json(&json::topic_config(&name, &config))?;
            if missing {
                Reflect::set(&described, &JsValue::from_str("missing"), &JsValue::TRUE).map_err(|_| FerryError::storage("a result could not be built"))?;
            }
            described
        }
        Reply::Settings(list) => list.iter().map(|(name, config)| parse_json(&json::topic_config(name, config))).collect::<Result<Array>>()?.into(),
        Reply::Metadata(list) if publish => Array::from(&parse_json(&json::metadata(&list))?).get(0),
        Reply::Metadata(list) => parse_json(&json::metadata(&list))?,
        Reply::Stats(stats) => parse_json(&json::stats(&stats))?,
        Reply::Deliveries(deliveries) => {
            let received = Array::new();
            for delivery in &deliveries {
                let item = payload(delivery);
                // The generation goes back with the receipt (see Engine::seek).
                Reflect::set(&item, &JsValue::from_str("generation"), &JsValue::from(delivery.generation)).map_err(|_| FerryError::storage("a message could not be handed over"))?;
                received.push(&item);
            }
            received.into()
        }
        Reply::Settled(list) => list
            .iter()
            .map(|settled| match settled {
                Ok(done) => JsValue::from_bool(*done),
                Err(error) => error_data(error),
            })
            .collect::<Array>()
            .into(),
        Reply::Accepted { skipped, results } => object_of(&[("skipped", JsValue::from_f64(skipped as f64)), ("results", parse_json(&json::metadata(&results))?)])?,
    })
}

/// A transmit as a request to the object it names.
fn transmit_to_js(transmit: &Transmit) -> Result<JsValue> {
    let topics: Array = transmit.context.topics.iter().map(|(name, config)| parse_json(&json::topic_config(name, config))).collect::<Result<_>>()?;
    let args: Array = match &transmit.call {
        Call::CheckRoom { added } => Array::of1(&JsValue::from_f64(*added as f64)),
        Call::Topic { name, partitions, create } => Array::of3(&JsValue::from_str(name), &partitions.map_or(JsValue::UNDEFINED, JsValue::from), &JsValue::from_bool(*create)),
        Call::Accept { source, send, chunk } => {
            let args = Array::of3(&JsValue::from_str(source), &JsValue::from_bool(*send), &JsValue::from_f64(chunk.base_offset as f64));
            args.push(&Uint8Array::from(chunk.bytes()));
            args
        }
        _ => Array::new(),
    };
    let request = object_of(&[("name", JsValue::from_str(&transmit.to)), ("topics", topics.into()), ("method", JsValue::from_str(transmit.call.method())), ("args", args.into())])?;
    object_of(&[("id", JsValue::from_f64(transmit.id as f64)), ("request", request)])
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
            Ok(EdgeObject { object: EdgeProtocol::open(store, name, seed)?, publishes: HashSet::new(), transmitted: HashMap::new() })
        };
        open().map_err(to_js)
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.object.name().to_string()
    }

    /// One RPC: `{ options, topics, method, args }`, answered through `pollResult`.
    #[wasm_bindgen(js_name = handleCall)]
    pub fn handle_call(&mut self, id: f64, request: JsValue, now_ms: f64) {
        let id = id as CallId;
        let parsed = args::options(&request, "request").and_then(|request| Ok((context_of(request.as_ref())?, call_of(request.as_ref())?)));
        match parsed {
            Ok((context, (call, publish))) => {
                if publish {
                    self.publishes.insert(id);
                }
                self.object.handle_call(id, context, call, now_ms as u64);
            }
            Err(error) => self.object.refuse(id, error),
        }
    }

    /// The alarm.
    #[wasm_bindgen(js_name = handleAlarm)]
    pub fn handle_alarm(&mut self, now_ms: f64) -> std::result::Result<(), JsValue> {
        self.object.handle_alarm(now_ms as u64).map_err(to_js)
    }

    /// The next call to make to another object: `{ id, request }`, or undefined.
    #[wasm_bindgen(js_name = pollTransmit)]
    pub fn poll_transmit(&mut self) -> JsResult {
        let Some(transmit) = self.object.poll_transmit() else { return Ok(JsValue::UNDEFINED) };
        self.transmitted.insert(transmit.id, transmit.call.method());
        transmit_to_js(&transmit).map_err(to_js)
    }

    /// What a transmit's object answered: `{ value }` or `{ error: { code, message } }`.
    #[wasm_bindgen(js_name = handleTransmitResult)]
    pub fn handle_transmit_result(&mut self, id: f64, outcome: JsValue, now_ms: f64) {
        let id = id as TransmitId;
        let method = self.transmitted.remove(&id).unwrap_or_default();
        self.object.handle_transmit_result(id, answer_of(method, &outcome), now_ms as u64);
    }

    /// The next answered call: `{ id, value }`, `{ id, error: { code, message } }`, or undefined.
    #[wasm_bindgen(js_name = pollResult)]
    pub fn poll_result(&mut self) -> JsResult {
        let Some((id, result)) = self.object.poll_result() else { return Ok(JsValue::UNDEFINED) };
        let publish = self.publishes.remove(&id);
        let answer = match result.and_then(|reply| reply_to_js(reply, publish)) {
            Ok(value) => object_of(&[("value", value)]),
            Err(error) => Ok(error_data(&error)),
        };
        let answer = answer.map_err(to_js)?;
        Reflect::set(&answer, &JsValue::from_str("id"), &JsValue::from_f64(id as f64))?;
        Ok(answer)
    }

    /// Where the alarm must go, if that changed: a time (ms), `null` to cancel it,
    /// or undefined.
    #[wasm_bindgen(js_name = pollAlarm)]
    pub fn poll_alarm(&mut self) -> JsValue {
        match self.object.poll_alarm() {
            None => JsValue::UNDEFINED,
            Some(Alarm::Cancel) => JsValue::NULL,
            Some(Alarm::At(ms)) => JsValue::from_f64(ms as f64),
        }
    }
}

/// A transmit's outcome as the protocol takes it: the object's reply, read back
/// from the JavaScript it crossed RPC as.
fn answer_of(method: &str, outcome: &JsValue) -> Result<Reply> {
    let outcome = args::options(outcome, "outcome")?;
    let error = args::get(outcome.as_ref(), "error")?;
    if !error.is_undefined() {
        let error = args::options(&error, "error")?;
        let code = args::opt_string(&args::get(error.as_ref(), "code")?, "code")?.unwrap_or_default();
        let message = args::opt_string(&args::get(error.as_ref(), "message")?, "message")?.unwrap_or_default();
        return Err(FerryError::new(ErrorCode::parse(&code).unwrap_or(ErrorCode::Storage), message));
    }
    let value = args::get(outcome.as_ref(), "value")?;
    let described = |value: &JsValue| -> Result<(String, TopicConfig)> {
        let settings = args::options(value, "topic")?;
        Ok((args::string(&args::get(settings.as_ref(), "topic")?, "topic")?, topic_config(settings.as_ref())?))
    };
    Ok(match method {
        "topic" => {
            let (name, config) = described(&value)?;
            Reply::Topic { name, config, missing: false }
        }
        "settings" => Reply::Settings(args::array(&value, "settings")?.iter().map(|t| described(&t)).collect::<Result<_>>()?),
        "accept" => {
            let answer = args::options(&value, "accepted")?;
            let skipped = args::integer(&args::get(answer.as_ref(), "skipped")?, "skipped", 0, SAFE_INTEGER_MAX)?;
            let results = args::array(&args::get(answer.as_ref(), "results")?, "results")?.iter().map(|r| metadata_of(&r)).collect::<Result<_>>()?;
            Reply::Accepted { skipped, results }
        }
        _ => Reply::Done,
    })
}

/// One `RecordMetadata` read back from JavaScript.
fn metadata_of(value: &JsValue) -> Result<RecordMetadata> {
    let m = args::options(value, "metadata")?;
    let m = m.as_ref();
    Ok(RecordMetadata {
        topic: args::string(&args::get(m, "topic")?, "topic")?.into(),
        partition: args::integer(&args::get(m, "partition")?, "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32,
        offset: args::integer(&args::get(m, "offset")?, "offset", 0, SAFE_INTEGER_MAX)?,
        timestamp_ms: args::integer(&args::get(m, "timestamp")?, "timestamp", 0, SAFE_INTEGER_MAX)?,
        duplicate: args::opt_bool(&args::get(m, "duplicate")?, "duplicate")?.unwrap_or(false),
    })
}

/// The partition of each message of `record` (`{ messages }`) in a topic of
/// `partitions`, as `send` picks it: its `partition`, else Kafka's for its key,
/// else (at the edge, so that a repeated id meets the first in the object that
/// keeps ids) the same for its id, else round-robin from `round_robin`.
/// Resolves to `{ partitions, roundRobin }`, the position after.
#[wasm_bindgen(js_name = routeSend)]
pub fn route_send(record: JsValue, partitions: u32, round_robin: u32) -> JsResult {
    let run = || -> Result<JsValue> {
        let record = args::options(&record, "record")?;
        let list = args::array(&args::get(record.as_ref(), "messages")?, "messages")?;
        let count = list.length() as usize;
        if count == 0 || count > SEND_BATCH_MAX {
            return Err(FerryError::invalid(format!("messages must hold 1 to {SEND_BATCH_MAX} messages, got {count}")));
        }
        let mut next = round_robin;
        let mut routed = Vec::with_capacity(count);
        for (i, item) in list.iter().enumerate() {
            let field = || format!("messages[{i}]");
            let message = args::named(|f| args::options(&item, f), field)?.ok_or_else(|| FerryError::invalid(format!("{} must be an object", field())))?;
            routed.push(route(Some(&message), &field, partitions, &mut next)?);
        }
        routed_to_js(&routed, next)
    };
    run().map_err(to_js)
}

/// [`route_send`] for `publish(topic, value, options)`.
#[wasm_bindgen(js_name = routePublish)]
pub fn route_publish(options: JsValue, partitions: u32, round_robin: u32) -> JsResult {
    let run = || -> Result<JsValue> {
        let mut next = round_robin;
        let partition = route(args::options(&options, "options")?.as_ref(), &|| "options".to_string(), partitions, &mut next)?;
        routed_to_js(&[partition], next)
    };
    run().map_err(to_js)
}

fn route(message: Option<&Object>, field: &dyn Fn() -> String, partitions: u32, round_robin: &mut u32) -> Result<u32> {
    let explicit = args::named(|f| args::opt_integer(&args::get(message, "partition")?, f, 0, u64::from(PARTITIONS_MAX) - 1), || format!("{}.partition", field()))?;
    if let Some(p) = explicit {
        return match u32::try_from(p).ok().filter(|p| *p < partitions) {
            Some(p) => Ok(p),
            None => Err(FerryError::new(crate::core::ErrorCode::UnknownTopic, format!("{}.partition {p} does not exist: the topic has {partitions} partition(s)", field()))),
        };
    }
    let key = args::named(|f| args::opt_string(&args::get(message, "key")?, f), || format!("{}.key", field()))?;
    let id = || args::named(|f| args::opt_string(&args::get(message, "id")?, f), || format!("{}.id", field()));
    Ok(match key.map_or_else(id, |key| Ok(Some(key)))? {
        Some(key) => partition_for_key(&key, partitions),
        None => {
            let p = *round_robin % partitions;
            *round_robin = round_robin.wrapping_add(1);
            p
        }
    })
}

fn routed_to_js(partitions: &[u32], round_robin: u32) -> Result<JsValue> {
    let out = Object::new();
    let fail = |_| FerryError::storage("a route could not be built");
    Reflect::set(&out, &JsValue::from_str("partitions"), &Uint32Array::from(partitions)).map_err(fail)?;
    Reflect::set(&out, &JsValue::from_str("roundRobin"), &JsValue::from(round_robin)).map_err(fail)?;
    Ok(out.into())
}

/// What a pull consumer's `receive({ max })` asks of the partitions, checked:
/// `{ max, subscriptions: [{ topic, fromBeginning }] }` from `max` (1 to 100,
/// default 10) and the options of each `subscribe` call.
#[wasm_bindgen(js_name = pullPlan)]
pub fn pull_plan(subscribed: JsValue, max: JsValue) -> JsResult {
    let run = || -> Result<JsValue> {
        let calls = args::array(&subscribed, "subscriptions")?;
        if calls.length() == 0 {
            return Err(FerryError::invalid("subscribe to a topic before receive"));
        }
        let max = args::opt_integer(&max, "max", 1, RECEIVE_MAX)?.unwrap_or(RECEIVE_DEFAULT);
        let list = Array::new();
        for call in calls.iter() {
            for subscription in subscriptions(&call)? {
                let item = Object::new();
                Reflect::set(&item, &JsValue::from_str("topic"), &JsValue::from_str(&subscription.topic)).map_err(|_| FerryError::storage("a plan could not be built"))?;
                Reflect::set(&item, &JsValue::from_str("fromBeginning"), &JsValue::from_bool(subscription.from_beginning)).map_err(|_| FerryError::storage("a plan could not be built"))?;
                list.push(&item);
            }
        }
        let plan = Object::new();
        Reflect::set(&plan, &JsValue::from_str("max"), &JsValue::from_f64(max as f64)).map_err(|_| FerryError::storage("a plan could not be built"))?;
        Reflect::set(&plan, &JsValue::from_str("subscriptions"), &list).map_err(|_| FerryError::storage("a plan could not be built"))?;
        Ok(plan.into())
    };
    run().map_err(to_js)
}

/// Checks `consumer.seek(target)` where the client runs, and gives the partition
/// whose object moves the position; with the topic's `partitions` count, a
/// partition past it is `UNKNOWN_TOPIC`.
#[wasm_bindgen(js_name = seekPartition)]
pub fn seek_partition(target: JsValue, partitions: Option<u32>) -> std::result::Result<u32, JsValue> {
    let check = || -> Result<u32> {
        let (topic, partition, _) = seek_options(&target)?;
        match partitions {
            Some(count) if partition >= count => {
                Err(FerryError::new(crate::core::ErrorCode::UnknownTopic, format!("partition {partition} of topic '{topic}' does not exist: the topic has {count} partition(s)")))
            }
            _ => Ok(partition),
        }
    };
    check().map_err(to_js)
}

/// Checks `bus.consumer(options)` where the client runs, so that bad options throw
/// at once as they do in the browser, not at the first `receive`.
#[wasm_bindgen(js_name = checkConsumerOptions)]
pub fn check_consumer_options(options: JsValue) -> std::result::Result<(), JsValue> {
    let check = || -> Result<()> {
        let options = args::options(&options, "options")?.ok_or_else(|| FerryError::invalid("options must be an object with a groupId"))?;
        check_name("groupId", &args::string(&args::get(Some(&options), "groupId")?, "groupId")?)?;
        consumer_config(Some(&options)).map(|_| ())
    };
    check().map_err(to_js)
}

/// `handleHttp`'s `maxBodyBytes`, checked; its default when undefined.
#[wasm_bindgen(js_name = checkHttpOptions)]
pub fn check_http_options(max_body_bytes: JsValue) -> std::result::Result<f64, JsValue> {
    let checked = args::opt_integer(&max_body_bytes, "maxBodyBytes", 1, SAFE_INTEGER_MAX).map_err(to_js)?;
    Ok(checked.unwrap_or(HTTP_BODY_BYTES_DEFAULT) as f64)
}
