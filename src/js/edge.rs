//! The bus inside Cloudflare Durable Objects (`ferry/workers`): the same engine,
//! on each object's SQLite storage ([`DurableStore`]), driven by the objects'
//! calls and alarms instead of a run loop.
//!
//! A bus is split over objects so that a topic's throughput grows with its
//! partitions: the object named `{bus}` is the directory (topics and their
//! settings), and the object named `{bus}/{topic}/{partition}` serves that one
//! partition ([`Engine::set_home`]): its log, its groups' cursors and leases, its
//! dedup ids. What such an object appends to another partition (the rest of a
//! send it coordinates, dead letters, redriven messages) waits in its storage
//! until forwarded ([`EdgeBus::outbound`], [`EdgeBus::accept`]): a send is stored
//! whole in one object's transaction, and so is atomic, before any of it moves.
//!
//! Every method is synchronous: the object runs one call at a time, its storage
//! API is synchronous, and a call's writes are committed before it returns. A
//! Worker's consumers pull: `receive` leases a partition's messages to the
//! group's one pull member in its object, and `settle` acks or retries them by
//! receipt.

use std::cell::RefCell;

use js_sys::{Array, Date, Object, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;

use super::args;
use super::bus::{bus_config, messages, outgoing, parse_json, topic_config};
use super::consumer::{consumer_config, payload, seek_options, subscriptions};
use super::error::to_js;
use super::json;
use crate::core::config::{check_name, TopicConfig};
use crate::core::limits::*;
use crate::core::message::Chunk;
use crate::core::murmur2::partition_for_key;
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
    /// `{bus}` for the directory, `{bus}/{topic}/{partition}` for a partition.
    name: String,
    /// The topic and partition of `name`; `None` for the directory.
    home: Option<(String, u32)>,
    /// Topics the current call says exist ([`EdgeBus::configure`]): made here, if
    /// missing, with the call's first commit, so a refused call makes none.
    known: RefCell<Vec<(String, TopicConfig)>>,
}

/// `{ error: { code, message } }`: an error as plain data.
fn error_data(error: &FerryError) -> JsValue {
    let data = Object::new();
    let inner = Object::new();
    // Setting properties on fresh objects cannot fail.
    let _ = Reflect::set(&inner, &JsValue::from_str("code"), &JsValue::from_str(error.code.as_str()));
    let _ = Reflect::set(&inner, &JsValue::from_str("message"), &JsValue::from_str(&error.message));
    let _ = Reflect::set(&data, &JsValue::from_str("error"), &inner);
    data.into()
}

/// One item of [`EdgeBus::settle`], checked.
struct Settle {
    group: String,
    receipt: Receipt,
    /// `None`: an ack; else a failed attempt's error and its own delay, if any.
    retry: Option<(String, Option<u64>)>,
}

impl Settle {
    fn parse(item: &JsValue) -> Result<Settle> {
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
        Ok(Settle {
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
}

/// The topic and partition the object named `name` serves; `None` for a directory.
fn home_of(name: &str) -> Result<Option<(String, u32)>> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts[..] {
        [bus] => check_name("name", bus).map(|()| None),
        [bus, topic, partition] => {
            check_name("name", bus)?;
            check_name("topic", topic)?;
            let partition = partition.parse::<u32>().ok().filter(|p| *p < PARTITIONS_MAX).ok_or_else(|| FerryError::invalid(format!("object name '{name}' has no partition number")))?;
            Ok(Some((topic.to_string(), partition)))
        }
        _ => Err(FerryError::invalid(format!("object name '{name}' is neither 'bus' nor 'bus/topic/partition'"))),
    }
}

type JsResult = std::result::Result<JsValue, JsValue>;

impl EdgeBus {
    /// The engine; a call that re-enters the bus while it changes is refused.
    fn engine(&self) -> Result<std::cell::Ref<'_, Engine>> {
        self.engine.try_borrow().map_err(|_| FerryError::storage("the bus was re-entered while it was changing"))
    }

    fn engine_mut(&self) -> Result<std::cell::RefMut<'_, Engine>> {
        self.engine.try_borrow_mut().map_err(|_| FerryError::storage("the bus was re-entered while it was changing"))
    }

    /// Runs `op` and commits its writes before returning; a refused `op` or a
    /// failed commit changes nothing.
    fn operate<T>(&self, op: impl FnOnce(&mut Engine, u64) -> Result<T>) -> Result<T> {
        let mut engine = self.engine_mut()?;
        let known = self.known.take();
        let now_ms = Date::now() as u64;
        engine.housekeep(now_ms);
        let out = known.into_iter().try_for_each(|(name, settings)| engine.topic_or_create(&name, Some(settings)).map(|_| ())).and_then(|()| op(&mut engine, now_ms));
        let writes = engine.begin_commit();
        let stored = if out.is_ok() { self.store.commit(&writes) } else { Ok(()) };
        engine.end_commit(out.is_ok() && stored.is_ok());
        stored?;
        out
    }

}

#[wasm_bindgen]
impl EdgeBus {
    /// Opens the part of a bus kept in `storage` (a Durable Object's `ctx.storage`)
    /// by the object named `name`: its first call names it; later ones, and its
    /// alarm (`name` undefined), find the name it stored.
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue, name: Option<String>) -> std::result::Result<EdgeBus, JsValue> {
        let open = || -> Result<EdgeBus> {
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
            let mut engine = Engine::open(BusConfig::default(), seed, store.load()?)?;
            let home = home_of(&name)?;
            if let Some((topic, partition)) = &home {
                engine.set_home(topic, *partition);
            }
            let bus = EdgeBus { engine: RefCell::new(engine), store, name, home, known: RefCell::default() };
            // A new bus stores its schema version before anything else.
            bus.operate(|_, _| Ok(()))?;
            Ok(bus)
        };
        open().map_err(to_js)
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// `{ bus, topic, partition }` this object serves, or `null` for the directory.
    #[wasm_bindgen(getter)]
    pub fn home(&self) -> JsResult {
        let Some((topic, partition)) = &self.home else { return Ok(JsValue::NULL) };
        let bus = self.name.split('/').next().unwrap_or_default();
        let home = Object::new();
        Reflect::set(&home, &JsValue::from_str("bus"), &JsValue::from_str(bus))?;
        Reflect::set(&home, &JsValue::from_str("topic"), &JsValue::from_str(topic))?;
        Reflect::set(&home, &JsValue::from_str("partition"), &JsValue::from(*partition))?;
        Ok(home.into())
    }

    /// Every topic's settings, as [`EdgeBus::topic`] gives them, from the directory.
    pub fn settings(&self) -> JsResult {
        let run = || -> Result<JsValue> {
            let engine = self.engine()?;
            let list = Array::new();
            for info in engine.topics() {
                let config = engine.topic_config(&info.topic).unwrap_or_default();
                list.push(&parse_json(&json::topic_config(&info.topic, &config))?);
            }
            Ok(list.into())
        };
        run().map_err(to_js)
    }

    /// Takes the options of `connect()` for the calls that follow, checked as
    /// `Bus.open` checks them (`storage` and `durability` mean nothing here but must
    /// still be valid): each client's own `autoCreateTopics` and `maxMessageBytes`.
    /// `topics` lists settings (as [`EdgeBus::topic`] gives them) of topics the next
    /// call needs here: a partition's own topic, where a redrive may send.
    pub fn configure(&self, options: JsValue, topics: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let (config, _storage) = bus_config(args::options(&options, "options")?.as_ref())?;
            let mut known = Vec::new();
            if !topics.is_undefined() {
                for topic in args::array(&topics, "topics")?.iter() {
                    let settings = args::options(&topic, "topics[]")?;
                    known.push((args::string(&args::get(settings.as_ref(), "topic")?, "topic")?, topic_config(settings.as_ref())?));
                }
            }
            self.engine_mut()?.set_config(config)?;
            *self.known.borrow_mut() = known;
            Ok(JsValue::UNDEFINED)
        };
        run().map_err(to_js)
    }

    /// The settings of `name` (`{ topic, partitions, retentionMs, maxDepth,
    /// dedupWindowMs }`), from the directory. A missing topic is created with
    /// `partitions` when given (a dead-letter topic made on demand), else as
    /// `autoCreateTopics` says when `create`; without `create` nothing is made and
    /// a topic that would be is described with `missing: true`, for a send that
    /// may yet be refused.
    pub fn topic(&self, name: JsValue, partitions: JsValue, create: bool) -> JsResult {
        let run = || -> Result<JsValue> {
            let name = args::string(&name, "topic")?;
            let missing = args::opt_integer(&partitions, "partitions", 1, u64::from(PARTITIONS_MAX))?.map(|p| TopicConfig::with_partitions(p as u32));
            let (config, exists) = if create || missing.is_some() {
                (self.operate(|e, _| e.topic_or_create(&name, missing))?, true)
            } else {
                self.engine()?.topic_or_auto(&name)?
            };
            let described = parse_json(&json::topic_config(&name, &config))?;
            if !exists {
                Reflect::set(&described, &JsValue::from_str("missing"), &JsValue::TRUE).map_err(|_| FerryError::storage("a result could not be built"))?;
            }
            Ok(described)
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

    /// `producer().send({ topic, messages })`, each message bound for its entry of
    /// `partitions` ([`route_send`]): this object's own part is stored as a send,
    /// the others' are stored with it and forwarded after.
    pub fn send(&self, record: JsValue, partitions: Vec<u32>) -> JsResult {
        let run = || -> Result<JsValue> {
            let record = args::options(&record, "record")?;
            let topic = args::string(&args::get(record.as_ref(), "topic")?, "topic")?;
            let mut messages = messages(record.as_ref())?;
            for (message, partition) in messages.iter_mut().zip(partitions) {
                message.partition = Some(partition);
            }
            parse_json(&json::metadata(&self.operate(|e, now| e.send(&topic, &messages, now))?))
        };
        run().map_err(to_js)
    }

    /// `publish(topic, value, options)`, bound for `partition` ([`route_publish`]).
    pub fn publish(&self, topic: JsValue, value: JsValue, options: JsValue, partition: u32) -> JsResult {
        let run = || -> Result<JsValue> {
            let topic = args::string(&topic, "topic")?;
            let mut message = outgoing(&value, args::options(&options, "options")?.as_ref(), &|| "message".to_string())?;
            message.partition = Some(partition);
            let list = parse_json(&json::metadata(&self.operate(|e, now| e.send(&topic, std::slice::from_ref(&message), now))?))?;
            Ok(Array::from(&list).get(0))
        };
        run().map_err(to_js)
    }

    /// `QUEUE_FULL` when `added` more messages would pass this partition's
    /// `maxDepth`: asked of the other partitions of a send before its coordinating
    /// object stores it, since their part is not refused once stored.
    #[wasm_bindgen(js_name = checkRoom)]
    pub fn check_room(&self, added: u32) -> JsResult {
        let run = || -> Result<JsValue> {
            let Some((topic, partition)) = &self.home else { return Ok(JsValue::UNDEFINED) };
            let engine = self.engine()?;
            engine.check_room(topic, *partition, u64::from(added)).map(|()| JsValue::UNDEFINED)
        };
        run().map_err(to_js)
    }

    /// What waits here for other partitions: `[{ topic, partition, partitions,
    /// send, from, end, bytes }]`, one chunk of the oldest messages of each (offsets
    /// `from` to `end`); `partitions` is the topic's count here (a dead-letter topic
    /// is made on demand with it); `send` says whether the receiver takes them as a
    /// send ([`EdgeBus::accept`]).
    pub fn outbound(&self) -> JsResult {
        let run = || -> Result<JsValue> {
            let engine = self.engine()?;
            let list = Array::new();
            for out in engine.outbound()? {
                let item = Object::new();
                for (field, value) in [
                    ("topic", JsValue::from_str(&out.topic)),
                    ("partition", JsValue::from(out.partition)),
                    ("partitions", JsValue::from(out.partitions)),
                    ("send", JsValue::from_bool(out.send)),
                    ("from", JsValue::from_f64(out.chunk.base_offset as f64)),
                    ("end", JsValue::from_f64(out.chunk.end_offset() as f64)),
                    ("bytes", Uint8Array::from(out.chunk.bytes()).into()),
                ] {
                    Reflect::set(&item, &JsValue::from_str(field), &value).map_err(|_| FerryError::storage("an outbound entry could not be built"))?;
                }
                list.push(&item);
            }
            Ok(list.into())
        };
        run().map_err(to_js)
    }

    /// The entries of [`EdgeBus::outbound`] in `taken` reached the partitions that
    /// serve them: their messages (before each one's `end`) are dropped here.
    ///
    /// The drop is stored with this object's next commit, not in one of its own:
    /// until then a restart forwards them again, and the partitions that took them
    /// skip them ([`EdgeBus::accept`]). A send spanning partitions so costs its
    /// coordinating object one transaction, not two.
    pub fn forwarded(&self, taken: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let mut done = Vec::new();
            for entry in args::array(&taken, "taken")?.iter() {
                let entry = args::options(&entry, "taken[]")?;
                let topic = args::string(&args::get(entry.as_ref(), "topic")?, "topic")?;
                let partition = args::integer(&args::get(entry.as_ref(), "partition")?, "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32;
                done.push((topic, partition, args::integer(&args::get(entry.as_ref(), "end")?, "end", 0, SAFE_INTEGER_MAX)?));
            }
            let mut engine = self.engine_mut()?;
            for (topic, partition, end) in &done {
                engine.forwarded(topic, *partition, *end);
            }
            Ok(JsValue::UNDEFINED)
        };
        run().map_err(to_js)
    }

    /// Takes messages another object forwards to this partition: `bytes` of an
    /// [`EdgeBus::outbound`] entry of the object and partition `source`, whose
    /// offsets there start at `from` ([`Engine::accept`]). Resolves to
    /// `{ skipped, results }`: how many it had taken before, and the metadata of
    /// the others.
    pub fn accept(&self, source: String, send: bool, from: f64, bytes: Vec<u8>) -> JsResult {
        let run = || -> Result<JsValue> {
            let chunk = Chunk::from_bytes(from as u64, &bytes)?;
            let (skipped, results) = self.operate(|e, now| e.accept(&source, &chunk, send, now))?;
            let out = Object::new();
            let fail = |_| FerryError::storage("a result could not be built");
            Reflect::set(&out, &JsValue::from_str("skipped"), &JsValue::from_f64(skipped as f64)).map_err(fail)?;
            Reflect::set(&out, &JsValue::from_str("results"), &parse_json(&json::metadata(&results))?).map_err(fail)?;
            Ok(out.into())
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
            // The directory only checks the call: the partitions' objects move the
            // dead letters, each knowing whether it holds any.
            if self.home.is_none() {
                self.engine()?.check_redrive(&from, limit)?;
                return Ok(JsValue::from_f64(0.0));
            }
            Ok(JsValue::from_f64(self.operate(|e, now| e.redrive(&from, limit, now))? as f64))
        };
        run().map_err(to_js)
    }

    /// Leases up to `max` messages of this partition that the group may handle
    /// now, each for the consumer's `ackTimeoutMs`: `[{ topic, partition, message,
    /// generation }]` (`generation` goes back with the receipt: see [`Engine::seek`]).
    /// `subscribed` is one `{ topic, fromBeginning }` of [`pull_plan`];
    /// `max` 0 joins the group here without leasing anything.
    pub fn receive(&self, consumer: JsValue, subscribed: JsValue, max: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let options: Option<Object> = args::options(&consumer, "options")?;
            let group = args::string(&args::get(options.as_ref(), "groupId")?, "groupId")?;
            check_name("groupId", &group)?;
            let mut config = consumer_config(options.as_ref())?;
            // Leases bound each message's time; the pull member itself never times out
            // between the invocations that pull.
            config.session_timeout_ms = SESSION_TIMEOUT_MS_MAX;
            let subscribed = subscriptions(&subscribed)?;
            let max = args::integer(&max, "max", 0, RECEIVE_MAX)? as usize;
            let deliveries = self.operate(|e, now| {
                e.join(&group, PULL_MEMBER, &subscribed, &config, now)?;
                e.poll(&group, PULL_MEMBER, max, now)
            })?;
            let received = Array::new();
            for delivery in &deliveries {
                let item = payload(delivery);
                Reflect::set(&item, &JsValue::from_str("generation"), &JsValue::from(delivery.generation)).map_err(|_| FerryError::storage("a message could not be handed over"))?;
                received.push(&item);
            }
            Ok(received.into())
        };
        run().map_err(to_js)
    }

    /// Moves `group`'s position in this partition: `target` is `consumer.seek`'s
    /// `{ topic, partition, offset }` or `{ topic, partition, timestamp }`.
    /// Resolves to the offset the group consumes next.
    pub fn seek(&self, group: JsValue, target: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let group = args::string(&group, "groupId")?;
            let (topic, partition, to) = seek_options(&target)?;
            Ok(JsValue::from_f64(self.operate(|e, _| e.seek(&group, &topic, partition, to))? as f64))
        };
        run().map_err(to_js)
    }

    /// Settles received messages in one commit: `items` holds `["ack", groupId,
    /// topic, partition, offset, attempt, generation]` or `["retry", ..., { delayMs, error }]`
    /// (a failed attempt: retried after `delayMs`, else the backoff, or
    /// dead-lettered after `maxAttempts`). Resolves to one entry per item:
    /// `{ error: { code, message } }` when the item is malformed (as data, to cross
    /// RPC), else `false` when the message's lease had run out, `true` when it was
    /// settled.
    pub fn settle(&self, items: JsValue) -> JsResult {
        let run = || -> Result<JsValue> {
            let parsed: Vec<Result<Settle>> = args::array(&items, "items")?.iter().map(|item| Settle::parse(&item)).collect();
            let settled = self.operate(|e, now| {
                Ok(parsed
                    .iter()
                    .map(|item| {
                        let item = item.as_ref().ok()?;
                        let (group, receipt) = (&item.group, &item.receipt);
                        Some(match &item.retry {
                            None => e.ack(group, PULL_MEMBER, receipt, now),
                            Some((error, Some(delay_ms))) => e.fail_after(group, PULL_MEMBER, receipt, error, *delay_ms, now),
                            Some((error, None)) => e.fail(group, PULL_MEMBER, receipt, error, now),
                        })
                    })
                    .collect::<Vec<_>>())
            })?;
            Ok(parsed
                .into_iter()
                .zip(settled)
                .map(|(item, done)| match (item, done) {
                    (Err(error), _) => error_data(&error),
                    (Ok(_), settled) => JsValue::from_bool(settled == Some(true)),
                })
                .collect::<Array>()
                .into())
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
        let engine = self.engine().map_err(to_js)?;
        Ok(engine.next_tick_ms().map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64)))
    }
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
        let max = args::opt_integer(&max, "max", 1, RECEIVE_MAX)?.unwrap_or(10);
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
