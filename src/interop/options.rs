//! The options and arguments of the API, read from JavaScript and checked: each
//! wrong type or range is `INVALID_ARGUMENT` naming the field (pkg/README.md).

use js_sys::Object;
use wasm_bindgen::prelude::*;

use super::args;
use crate::core::config::{check_name, BusConfig, ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
use crate::core::limits::*;
use crate::core::{FerryError, OutgoingMessage, Result, SeekTo, Subscription};

/// Where `Bus.open`'s options say the bus lives. They mean something only in the
/// browser build, but every build refuses bad ones: the options are the same
/// everywhere (`connect` takes them too).
// The edge build only checks them.
#[cfg_attr(feature = "edge", allow(dead_code))]
pub struct Placement {
    pub name: String,
    /// `None`: IndexedDB where the context has it, else memory.
    pub indexeddb: Option<bool>,
    pub strict: bool,
    /// `writer: "one"` (the default): one context of the origin writes the bus, the
    /// others send it their calls; `"each"`: every context writes.
    pub one_writer: bool,
    /// `sharedWorker: true` (the default): with one writer, a page starts a
    /// SharedWorker to be it, where the browser has them.
    pub shared_worker: bool,
}

/// `Bus.open`'s options, checked: the engine's, and where the bus lives.
pub fn bus_options(options: Option<&Object>) -> Result<(BusConfig, Placement)> {
    let name = args::opt_string(&args::get(options, "name")?, "name")?.unwrap_or_else(|| "ferry".into());
    check_name("name", &name)?;
    let strict = match args::opt_string(&args::get(options, "durability")?, "durability")?.as_deref() {
        None | Some("relaxed") => false,
        Some("strict") => true,
        Some(other) => return Err(FerryError::invalid(format!("durability must be \"relaxed\" or \"strict\", got \"{other}\""))),
    };
    let indexeddb = match args::opt_string(&args::get(options, "storage")?, "storage")?.as_deref() {
        None => None,
        Some("memory") => Some(false),
        Some("indexeddb") => Some(true),
        Some(other) => return Err(FerryError::invalid(format!("storage must be \"indexeddb\" or \"memory\", got \"{other}\""))),
    };
    let one_writer = match args::opt_string(&args::get(options, "writer")?, "writer")?.as_deref() {
        Some("each") => false,
        None | Some("one") => true,
        Some(other) => return Err(FerryError::invalid(format!("writer must be \"one\" or \"each\", got \"{other}\""))),
    };
    let shared_worker = args::opt_bool(&args::get(options, "sharedWorker")?, "sharedWorker")?.unwrap_or(true);
    Ok((engine_config(options)?, Placement { name, indexeddb, strict, one_writer, shared_worker }))
}

/// The options that shape the engine itself, wherever the bus lives.
fn engine_config(options: Option<&Object>) -> Result<BusConfig> {
    let mut config = BusConfig::default();
    if let Some(auto) = args::opt_bool(&args::get(options, "autoCreateTopics")?, "autoCreateTopics")? {
        config.auto_create_topics = auto;
    }
    if let Some(bytes) = args::opt_integer(&args::get(options, "maxMessageBytes")?, "maxMessageBytes", 1, MESSAGE_BYTES_CEILING)? {
        config.max_message_bytes = bytes;
    }
    Ok(config)
}

pub fn topic_config(options: Option<&Object>) -> Result<TopicConfig> {
    let defaults = TopicConfig::default();
    Ok(TopicConfig {
        partitions: args::opt_integer(&args::get(options, "partitions")?, "partitions", 1, u64::from(PARTITIONS_MAX))?.map_or(defaults.partitions, |p| p as u32),
        retention_ms: args::opt_integer(&args::get(options, "retentionMs")?, "retentionMs", 1, RETENTION_MS_MAX)?,
        max_depth: args::opt_integer(&args::get(options, "maxDepth")?, "maxDepth", 1, SAFE_INTEGER_MAX)?,
        dedup_window_ms: args::opt_integer(&args::get(options, "dedupWindowMs")?, "dedupWindowMs", 0, RETENTION_MS_MAX)?.unwrap_or(defaults.dedup_window_ms),
    })
}

/// One message of `send` (or the arguments of `publish`), checked; `field()`
/// names it in an error.
pub fn outgoing(value: &JsValue, message: Option<&Object>, field: &dyn Fn() -> String) -> Result<OutgoingMessage> {
    let mut out = OutgoingMessage::new(args::named(|f| args::value(value, f), || format!("{}.value", field()))?);
    out.key = args::named(|f| args::opt_string(&args::get(message, "key")?, f), || format!("{}.key", field()))?;
    out.headers = args::named(|f| args::headers(&args::get(message, "headers")?, f), || format!("{}.headers", field()))?;
    out.id = args::named(|f| args::opt_string(&args::get(message, "id")?, f), || format!("{}.id", field()))?;
    out.delay_ms = args::named(|f| args::opt_integer(&args::get(message, "delayMs")?, f, 0, DELAY_MS_MAX), || format!("{}.delayMs", field()))?.unwrap_or(0);
    out.partition = args::named(|f| args::opt_integer(&args::get(message, "partition")?, f, 0, u64::from(PARTITIONS_MAX) - 1), || format!("{}.partition", field()))?
        .map(|p| p as u32);
    Ok(out)
}

pub fn messages(record: Option<&Object>) -> Result<Vec<OutgoingMessage>> {
    let list = args::array(&args::get(record, "messages")?, "messages")?;
    let count = list.length() as usize;
    if count == 0 || count > SEND_BATCH_MAX {
        return Err(FerryError::invalid(format!("messages must hold 1 to {SEND_BATCH_MAX} messages, got {count}")));
    }
    args::each(&list, |i, item| {
        let field = || format!("messages[{i}]");
        let message = args::named(|f| args::options(&item, f), field)?.ok_or_else(|| FerryError::invalid(format!("{} must be an object", field())))?;
        outgoing(&args::get(Some(&message), "value")?, Some(&message), &field)
    })
}

pub fn consumer_config(options: Option<&Object>) -> Result<ConsumerConfig> {
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
        batch_size_max: args::opt_integer(&args::get(options, "maxBatchSize")?, "maxBatchSize", 1, u64::from(BATCH_SIZE_MAX))?.map_or(d.batch_size_max, |n| n as u32),
    };
    config.check()?;
    Ok(config)
}

/// `{ topic, fromBeginning }` or `{ topics: [...], fromBeginning }`, checked.
pub fn subscriptions(options: &JsValue) -> Result<Vec<Subscription>> {
    let options = args::options(options, "options")?;
    let from_beginning = args::opt_bool(&args::get(options.as_ref(), "fromBeginning")?, "fromBeginning")?.unwrap_or(false);
    let topics_value = args::get(options.as_ref(), "topics")?;
    let subscription = |topic: String| {
        check_name("topic", &topic)?;
        Ok(Subscription::new(topic, from_beginning))
    };
    if topics_value.is_undefined() {
        return Ok(vec![subscription(args::string(&args::get(options.as_ref(), "topic")?, "topic")?)?]);
    }
    let list = args::array(&topics_value, "topics")?;
    if list.length() as usize > SUBSCRIPTIONS_MAX {
        return Err(FerryError::invalid(format!("a consumer subscribes to at most {SUBSCRIPTIONS_MAX} topics")));
    }
    args::each(&list, |i, topic| subscription(args::string(&topic, &format!("topics[{i}]"))?))
}

/// `seek`'s `{ topic, partition, offset }` or `{ topic, partition, timestamp }`, checked.
pub fn seek_options(options: &JsValue) -> Result<(String, u32, SeekTo)> {
    let options = args::options(options, "options")?;
    let options = options.as_ref();
    let topic = args::string(&args::get(options, "topic")?, "topic")?;
    check_name("topic", &topic)?;
    let partition = args::integer(&args::get(options, "partition")?, "partition", 0, u64::from(PARTITIONS_MAX) - 1)? as u32;
    let (offset, timestamp) = (args::get(options, "offset")?, args::get(options, "timestamp")?);
    let to = match (offset.is_undefined(), timestamp.is_undefined()) {
        (false, true) => SeekTo::Offset(position(&offset, "offset")?),
        (true, false) => SeekTo::Timestamp(position(&timestamp, "timestamp")?),
        (true, true) => return Err(FerryError::invalid("seek needs an offset or a timestamp")),
        (false, false) => return Err(FerryError::invalid("seek takes one of offset and timestamp, not both")),
    };
    Ok((topic, partition, to))
}

/// The dead letters a redrive names, as `(partition, offset)`.
type ChosenOffsets = Vec<(u32, u64)>;

/// `redrive`'s `{ from, limit?, offsets? }`, checked; `offsets` lists the dead
/// letters to move as `{ partition, offset }`.
pub fn redrive_options(options: &JsValue) -> Result<(String, Option<u64>, ChosenOffsets)> {
    let options = args::options(options, "options")?;
    let options = options.as_ref();
    let from = args::string(&args::get(options, "from")?, "from")?;
    let limit = args::opt_integer(&args::get(options, "limit")?, "limit", 1, REDRIVE_LIMIT_MAX)?;
    let listed = args::get(options, "offsets")?;
    let mut offsets = Vec::new();
    if !listed.is_undefined() {
        let listed = args::array(&listed, "offsets")?;
        if u64::from(listed.length()) > REDRIVE_LIMIT_MAX {
            return Err(FerryError::invalid(format!("offsets holds {} messages, more than {REDRIVE_LIMIT_MAX}", listed.length())));
        }
        for (i, item) in listed.iter().enumerate() {
            let item = args::options(&item, &format!("offsets[{i}]"))?;
            let item = item.as_ref();
            let partition = args::integer(&args::get(item, "partition")?, &format!("offsets[{i}].partition"), 0, u64::from(PARTITIONS_MAX) - 1)? as u32;
            offsets.push((partition, position(&args::get(item, "offset")?, &format!("offsets[{i}].offset"))?));
        }
    }
    Ok((from, limit, offsets))
}

/// `purge`'s `{ topic }`, checked.
pub fn purge_options(options: &JsValue) -> Result<String> {
    let options = args::options(options, "options")?;
    let topic = args::string(&args::get(options.as_ref(), "topic")?, "topic")?;
    check_name("topic", &topic)?;
    Ok(topic)
}

/// `browse`'s `{ topic, partition = 0, offset = 0, limit = 100, groupId? }`,
/// checked: `(topic, partition, offset, limit, group)`.
pub fn browse_options(options: &JsValue) -> Result<(String, u32, u64, u64, Option<String>)> {
    let options = args::options(options, "options")?;
    let options = options.as_ref();
    let topic = args::string(&args::get(options, "topic")?, "topic")?;
    check_name("topic", &topic)?;
    let partition = args::opt_integer(&args::get(options, "partition")?, "partition", 0, u64::from(PARTITIONS_MAX) - 1)?.unwrap_or(0) as u32;
    let offset = match args::get(options, "offset")? {
        v if v.is_undefined() => 0,
        v => position(&v, "offset")?,
    };
    let limit = args::opt_integer(&args::get(options, "limit")?, "limit", 1, BROWSE_MAX)?.unwrap_or(BROWSE_DEFAULT);
    let group = args::opt_string(&args::get(options, "groupId")?, "groupId")?;
    if let Some(group) = &group {
        check_name("groupId", group)?;
    }
    Ok((topic, partition, offset, limit, group))
}

/// A non-negative integer given as a number, or as KafkaJS gives offsets: a string
/// of decimal digits.
fn position(value: &JsValue, field: &str) -> Result<u64> {
    match value.as_string() {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= SAFE_INTEGER_MAX)
            .ok_or_else(|| FerryError::invalid(format!("{field} must be a non-negative integer, got \"{text}\""))),
        None => args::integer(value, field, 0, SAFE_INTEGER_MAX),
    }
}
