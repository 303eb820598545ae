//! The bus inside a Cloudflare Durable Object (`ferry/workers`): the same engine,
//! on the object's SQLite storage ([`DurableStore`]), driven by the object's calls
//! and its alarm instead of a run loop.
//!
//! Every method is synchronous: the object runs one call at a time, its storage
//! API is synchronous, and a call's writes are committed before it returns. A
//! Worker's consumers pull: `receive` leases messages to the group's one pull
//! member in this object, and `ack` / `retry` settle them by receipt.

use std::cell::RefCell;

use js_sys::{Array, Date, Object};
use wasm_bindgen::prelude::*;

use super::args;
use super::bus::{bus_config, messages, outgoing, parse_json, topic_config};
use super::consumer::{consumer_config, payload, subscriptions};
use super::error::to_js;
use super::json;
use crate::core::config::check_name;
use crate::core::limits::*;
use crate::core::{BusConfig, Engine, FerryError, Receipt, Result};
use crate::store::durable::DurableStore;

/// The member a group's pulls and acks go through in one object: pulls come from
/// any Worker invocation, so the group is one member that is never idle for long.
const PULL_MEMBER: &str = "pull";
/// Messages one `receive` may return (API.md: `max` is 1 to 100).
const RECEIVE_MAX: u64 = 100;

#[wasm_bindgen]
pub struct EdgeBus {
    engine: RefCell<Engine>,
    store: DurableStore,
}

type JsResult = std::result::Result<JsValue, JsValue>;

impl EdgeBus {
    /// Runs `op` and commits its writes before returning; a failed commit undoes it.
    fn operate<T>(&self, op: impl FnOnce(&mut Engine, u64) -> Result<T>) -> Result<T> {
        let mut engine = self.engine.try_borrow_mut().map_err(|_| FerryError::storage("the bus was re-entered while it was changing"))?;
        let out = op(&mut engine, Date::now() as u64);
        let writes = engine.begin_commit();
        let stored = self.store.commit(&writes);
        engine.end_commit(stored.is_ok());
        stored?;
        out
    }

    fn receipt(topic: &JsValue, partition: &JsValue, offset: &JsValue, attempt: &JsValue) -> Result<Receipt> {
        Ok(Receipt {
            topic: args::string(topic, "topic")?.into(),
            partition: args::integer(partition, "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32,
            offset: args::integer(offset, "offset", 0, SAFE_INTEGER_MAX)?,
            attempt: args::integer(attempt, "attempt", 1, u64::from(ATTEMPTS_MAX))? as u32,
        })
    }
}

#[wasm_bindgen]
impl EdgeBus {
    /// Opens the bus kept in `storage` (a Durable Object's `ctx.storage`).
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue) -> std::result::Result<EdgeBus, JsValue> {
        let open = || -> Result<EdgeBus> {
            let store = DurableStore::open(storage)?;
            let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
            let engine = Engine::open(BusConfig::default(), seed, store.load()?)?;
            let bus = EdgeBus { engine: RefCell::new(engine), store };
            // A new bus stores its schema version before anything else.
            bus.operate(|_, _| Ok(()))?;
            Ok(bus)
        };
        open().map_err(to_js)
    }

    /// Takes the options of `connect()` for the calls that follow, checked as
    /// `Bus.open` checks them (`storage` and `durability` mean nothing here but must
    /// still be valid): each client's own `autoCreateTopics` and `maxMessageBytes`.
    pub fn configure(&self, options: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let (config, _storage) = bus_config(args::options(&options, "options")?.as_ref())?;
            let mut engine = self.engine.try_borrow_mut().map_err(|_| FerryError::storage("the bus was re-entered while it was changing"))?;
            engine.set_config(config)?;
            Ok(JsValue::UNDEFINED)
        };
        run().map_err(to_js)
    }

    #[wasm_bindgen(js_name = createTopic)]
    pub fn create_topic(&self, name: JsValue, options: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let name = args::string(&name, "name")?;
            let config = topic_config(args::options(&options, "options")?.as_ref())?;
            Ok(JsValue::from_bool(self.operate(|e, _| e.create_topic(&name, config))?))
        };
        run().map_err(to_js)
    }

    pub fn topics(&self) -> JsResult {
        self.operate(|e, _| Ok(json::topics(&e.topics()))).and_then(|text| parse_json(&text)).map_err(to_js)
    }

    /// `producer().send({ topic, messages })`.
    pub fn send(&self, record: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let record = args::options(&record, "record")?;
            let topic = args::string(&args::get(record.as_ref(), "topic")?, "topic")?;
            let messages = messages(record.as_ref())?;
            parse_json(&json::metadata(&self.operate(|e, now| e.send(&topic, &messages, now))?))
        };
        run().map_err(to_js)
    }

    pub fn publish(&self, topic: JsValue, value: JsValue, options: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let topic = args::string(&topic, "topic")?;
            let message = outgoing(&value, args::options(&options, "options")?.as_ref(), "message")?;
            let list = parse_json(&json::metadata(&self.operate(|e, now| e.send(&topic, std::slice::from_ref(&message), now))?))?;
            Ok(Array::from(&list).get(0))
        };
        run().map_err(to_js)
    }

    pub fn stats(&self) -> JsResult {
        self.operate(|e, _| Ok(json::stats(&e.stats()))).and_then(|text| parse_json(&text)).map_err(to_js)
    }

    pub fn redrive(&self, options: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let options = args::options(&options, "options")?;
            let from = args::string(&args::get(options.as_ref(), "from")?, "from")?;
            let limit = args::opt_integer(&args::get(options.as_ref(), "limit")?, "limit", 1, REDRIVE_LIMIT_MAX)?;
            Ok(JsValue::from_f64(self.operate(|e, now| e.redrive(&from, limit, now))? as f64))
        };
        run().map_err(to_js)
    }

    /// Leases up to `max` messages the group may handle now, each for the
    /// consumer's `ackTimeoutMs`: `[{ topic, partition, message }]`. `subscribed`
    /// holds the options of each `subscribe` call.
    pub fn receive(&self, consumer: JsValue, subscribed: JsValue, max: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let options: Option<Object> = args::options(&consumer, "options")?;
            let group = args::string(&args::get(options.as_ref(), "groupId")?, "groupId")?;
            check_name("groupId", &group)?;
            let mut config = consumer_config(options.as_ref())?;
            // Leases bound each message's time; the pull member itself never times out
            // between the invocations that pull.
            config.session_timeout_ms = SESSION_TIMEOUT_MS_MAX;
            // One entry per `subscribe` call of the client.
            let calls = args::array(&subscribed, "subscriptions")?;
            if calls.length() == 0 {
                return Err(FerryError::invalid("subscribe to a topic before receive"));
            }
            let mut subscribed = Vec::new();
            for call in calls.iter() {
                subscribed.extend(subscriptions(&call)?);
            }
            let max = args::opt_integer(&max, "max", 1, RECEIVE_MAX)?.unwrap_or(10) as usize;
            let deliveries = self.operate(|e, now| {
                e.join(&group, PULL_MEMBER, &subscribed, &config, now)?;
                e.poll(&group, PULL_MEMBER, max, now)
            })?;
            Ok(deliveries.iter().map(payload).collect::<Array>().into())
        };
        run().map_err(to_js)
    }

    /// Acks a received message; `false` when its lease had run out.
    pub fn ack(&self, group: JsValue, topic: JsValue, partition: JsValue, offset: JsValue, attempt: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let group = args::string(&group, "groupId")?;
            let receipt = Self::receipt(&topic, &partition, &offset, &attempt)?;
            Ok(JsValue::from_bool(self.operate(|e, now| Ok(e.ack(&group, PULL_MEMBER, &receipt, now)))?))
        };
        run().map_err(to_js)
    }

    /// A failed attempt of a received message: retried after `options.delayMs` or
    /// else the backoff, or dead-lettered after `maxAttempts`; `false` when its
    /// lease had run out.
    pub fn retry(&self, group: JsValue, topic: JsValue, partition: JsValue, offset: JsValue, attempt: JsValue, options: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let group = args::string(&group, "groupId")?;
            let receipt = Self::receipt(&topic, &partition, &offset, &attempt)?;
            let options = args::options(&options, "options")?;
            let error = args::opt_string(&args::get(options.as_ref(), "error")?, "error")?.unwrap_or_else(|| "retried".into());
            let delay_ms = args::opt_integer(&args::get(options.as_ref(), "delayMs")?, "delayMs", 0, DELAY_MS_MAX)?;
            let failed = self.operate(|e, now| {
                Ok(match delay_ms {
                    Some(delay_ms) => e.fail_after(&group, PULL_MEMBER, &receipt, &error, delay_ms, now),
                    None => e.fail(&group, PULL_MEMBER, &receipt, &error, now),
                })
            })?;
            Ok(JsValue::from_bool(failed))
        };
        run().map_err(to_js)
    }

    /// Runs the housekeeping that is due (lease and session expiry, dedup windows,
    /// retention): the object's alarm.
    pub fn tick(&self) -> std::result::Result<(), JsValue> {
        self.operate(|e, now| {
            e.tick(now);
            Ok(())
        })
        .map_err(to_js)
    }

    /// When housekeeping is next due (ms since the epoch), or `null`: where the
    /// object's alarm goes. Messages waiting to become deliverable need no alarm:
    /// nothing happens to them until a `receive` asks.
    #[wasm_bindgen(js_name = nextTickMs)]
    pub fn next_tick_ms(&self) -> JsResult {
        let engine = self.engine.try_borrow().map_err(|_| to_js(FerryError::storage("the bus was re-entered while it was changing")))?;
        Ok(engine.next_tick_ms().map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64)))
    }
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
