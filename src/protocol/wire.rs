//! Calls and replies as bytes, the one form in which they cross Durable Object
//! RPC: a client or an object encodes a call with [`encode_call`], the object
//! decodes it with [`decode_call`] and answers with [`encode_reply`], which the
//! caller reads with [`decode_reply`]. Both ends are this build's Rust, so
//! nothing is converted from or to JavaScript on the way, and reading never
//! panics: bad bytes are a `STORAGE` error.

use super::{Call, Context, Reply, RunEnd, SettleItem};
use crate::core::codec::{Reader, Writer};
use crate::core::config::{BusConfig, TopicConfig};
use crate::core::engine::{Browsed, BrowsedMessage, GroupPartitionStats, GroupStats, MemberStats, PartitionStats, Pause, TopicStats, Wait};
use crate::core::limits::{BROWSE_MAX, MEMBERS_PER_GROUP_MAX, PARTITIONS_MAX, POLL_MAX, REDRIVE_LIMIT_MAX, SEND_BATCH_MAX, SUBSCRIPTIONS_MAX, TOPICS_MAX};
use crate::core::message::{Chunk, Message, OutgoingMessage, Value, ValueKind};
use crate::core::records::{decode_consumer_config, decode_topic_config, encode_consumer_config, encode_topic_config};
use crate::core::{Delivery, ErrorCode, FerryError, PollLimit, Receipt, RecordMetadata, Result, SeekTo, Stats, Subscription, TopicInfo};

/// A count read from the wire, refused past `max` so that bad bytes cannot make
/// a reader allocate without bound.
fn count(r: &mut Reader<'_>, max: usize) -> Result<usize> {
    let n = r.u64()?;
    if n > max as u64 {
        return Err(FerryError::storage(format!("a call or reply holds {n} items, more than {max}")));
    }
    Ok(n as usize)
}

pub(super) fn list<T>(r: &mut Reader<'_>, max: usize, mut item: impl FnMut(&mut Reader<'_>) -> Result<T>) -> Result<Vec<T>> {
    let n = count(r, max)?;
    // A loop, not a collect into a Result: that compiles its adapter anew for each
    // of the lists read here.
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(item(r)?);
    }
    Ok(items)
}

fn bool(r: &mut Reader<'_>) -> Result<bool> {
    Ok(r.u8()? != 0)
}

pub(super) fn string(r: &mut Reader<'_>) -> Result<String> {
    Ok(r.str()?.to_owned())
}

fn opt_string(r: &mut Reader<'_>) -> Result<Option<String>> {
    Ok(r.opt_str()?.map(str::to_owned))
}

fn opt_u32(r: &mut Reader<'_>) -> Result<Option<u32>> {
    r.opt_u64()?.map(|n| u32::try_from(n).map_err(|_| FerryError::storage("a number out of range"))).transpose()
}

fn put_value(w: &mut Writer, value: &Value) {
    w.u8(match value.kind {
        ValueKind::String => 0,
        ValueKind::Bytes => 1,
        ValueKind::Json => 2,
    });
    w.bytes(&value.bytes);
}

fn value(r: &mut Reader<'_>) -> Result<Value> {
    let kind = match r.u8()? {
        0 => ValueKind::String,
        1 => ValueKind::Bytes,
        2 => ValueKind::Json,
        other => return Err(FerryError::storage(format!("unknown value kind {other}"))),
    };
    Ok(Value { kind, bytes: r.bytes()?.to_vec() })
}

fn put_headers(w: &mut Writer, headers: &[(String, String)]) {
    w.u64(headers.len() as u64);
    for (name, text) in headers {
        w.str(name);
        w.str(text);
    }
}

fn headers(r: &mut Reader<'_>) -> Result<Vec<(String, String)>> {
    list(r, crate::core::limits::HEADERS_MAX, |r| Ok((string(r)?, string(r)?)))
}

fn put_receipt(w: &mut Writer, r: &Receipt) {
    w.str(&r.topic);
    w.u64(u64::from(r.partition));
    w.u64(r.offset);
    w.u64(u64::from(r.attempt));
    w.u64(u64::from(r.generation));
}

fn receipt(r: &mut Reader<'_>) -> Result<Receipt> {
    Ok(Receipt { topic: r.str()?.into(), partition: r.u32()?, offset: r.u64()?, attempt: r.u32()?, generation: r.u32()? })
}

/// A receipt alone, as bytes: what a client asks the engine it loaded whether its
/// member still holds (src/js/local_host.rs).
pub fn encode_receipt(receipt: &Receipt) -> Vec<u8> {
    let mut w = Writer::default();
    put_receipt(&mut w, receipt);
    w.buf
}

/// What [`encode_receipt`] wrote.
pub fn decode_receipt(bytes: &[u8]) -> Result<Receipt> {
    receipt(&mut Reader::new(bytes))
}

fn put_subscriptions(w: &mut Writer, subscriptions: &[Subscription]) {
    w.u64(subscriptions.len() as u64);
    for s in subscriptions {
        w.str(&s.topic);
        w.u8(u8::from(s.from_beginning));
    }
}

fn subscriptions(r: &mut Reader<'_>) -> Result<Vec<Subscription>> {
    list(r, SUBSCRIPTIONS_MAX, |r| Ok(Subscription::new(string(r)?, bool(r)?)))
}

fn put_deliveries(w: &mut Writer, deliveries: &[Delivery]) {
    w.u64(deliveries.len() as u64);
    for d in deliveries {
        w.str(&d.topic);
        w.u64(u64::from(d.partition));
        w.u64(u64::from(d.attempt));
        w.u64(u64::from(d.generation));
        put_message(w, &d.message);
    }
}

fn deliveries(r: &mut Reader<'_>) -> Result<Vec<Delivery>> {
    list(r, POLL_MAX, |r| {
        let (topic, partition, attempt, generation) = (r.str()?.into(), r.u32()?, r.u32()?, r.u32()?);
        Ok(Delivery { topic, partition, attempt, generation, message: message(r)? })
    })
}

fn put_message(w: &mut Writer, m: &Message) {
    w.u64(m.offset);
    w.u64(m.timestamp_ms);
    w.u64(m.deliver_at_ms);
    w.opt_str(m.key.as_deref());
    put_value(w, &m.value);
    put_headers(w, &m.headers);
    w.opt_str(m.id.as_deref());
}

fn message(r: &mut Reader<'_>) -> Result<Message> {
    Ok(Message { offset: r.u64()?, timestamp_ms: r.u64()?, deliver_at_ms: r.u64()?, key: opt_string(r)?, value: value(r)?, headers: headers(r)?, id: opt_string(r)? })
}

fn put_topics(w: &mut Writer, topics: &[(String, TopicConfig)]) {
    w.u64(topics.len() as u64);
    for (name, config) in topics {
        w.str(name);
        encode_topic_config(w, config);
    }
}

/// A topic's settings, checked as `createTopic` checks them: a partition count of
/// 0 from bad bytes would divide by zero where messages are routed.
fn topic_config(r: &mut Reader<'_>) -> Result<TopicConfig> {
    let config = decode_topic_config(r)?;
    config.check().map_err(|e| FerryError::storage(format!("a call or reply holds bad topic settings: {}", e.message)))?;
    Ok(config)
}

fn topics(r: &mut Reader<'_>) -> Result<Vec<(String, TopicConfig)>> {
    list(r, TOPICS_MAX, |r| Ok((string(r)?, topic_config(r)?)))
}

fn put_metadata(w: &mut Writer, list: &[RecordMetadata]) {
    w.u64(list.len() as u64);
    for m in list {
        w.str(&m.topic);
        w.u64(u64::from(m.partition));
        w.u64(m.offset);
        w.u64(m.timestamp_ms);
        w.u8(u8::from(m.duplicate));
    }
}

fn metadata(r: &mut Reader<'_>) -> Result<Vec<RecordMetadata>> {
    list(r, SEND_BATCH_MAX, |r| Ok(RecordMetadata { topic: r.str()?.into(), partition: r.u32()?, offset: r.u64()?, timestamp_ms: r.u64()?, duplicate: bool(r)? }))
}

fn put_error(w: &mut Writer, error: &FerryError) {
    w.str(error.code.as_str());
    w.str(&error.message);
}

fn error(r: &mut Reader<'_>) -> Result<FerryError> {
    let code = r.str()?;
    let code = ErrorCode::parse(code).ok_or_else(|| FerryError::storage(format!("unknown error code {code}")))?;
    Ok(FerryError::new(code, r.str()?))
}

/// `context` and `call`, as one call's bytes.
pub fn encode_call(context: &Context, call: &Call) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(u8::from(context.config.auto_create_topics));
    w.u64(context.config.max_message_bytes);
    put_topics(&mut w, &context.topics);
    match call {
        Call::CreateTopic { name, config } => {
            w.u8(0);
            w.str(name);
            encode_topic_config(&mut w, config);
        }
        Call::Topics => w.u8(1),
        Call::Topic { name, partitions, create } => {
            w.u8(2);
            w.str(name);
            w.opt_u64(partitions.map(u64::from));
            w.u8(u8::from(*create));
        }
        Call::Settings => w.u8(3),
        Call::Send { topic, messages } => {
            w.u8(4);
            w.str(topic);
            w.u64(messages.len() as u64);
            for m in messages {
                w.opt_str(m.key.as_deref());
                put_value(&mut w, &m.value);
                put_headers(&mut w, &m.headers);
                w.opt_str(m.id.as_deref());
                w.u64(m.delay_ms);
                w.opt_u64(m.partition.map(u64::from));
            }
        }
        Call::Stats => w.u8(5),
        Call::Redrive { from, limit, offsets } => {
            w.u8(6);
            w.str(from);
            w.opt_u64(*limit);
            w.u64(offsets.len() as u64);
            for (partition, offset) in offsets {
                w.u64(u64::from(*partition));
                w.u64(*offset);
            }
        }
        Call::Purge { topic } => {
            w.u8(19);
            w.str(topic);
        }
        Call::Browse { topic, partition, offset, max, group } => {
            w.u8(20);
            w.str(topic);
            w.u64(u64::from(*partition));
            w.u64(*offset);
            w.u64(*max);
            w.opt_str(group.as_deref());
        }
        Call::Receive { group, config, subscriptions, max } => {
            w.u8(7);
            w.str(group);
            encode_consumer_config(&mut w, config);
            put_subscriptions(&mut w, subscriptions);
            w.u64(*max as u64);
        }
        Call::Settle { items } => {
            w.u8(8);
            w.u64(items.len() as u64);
            for item in items {
                // A client sends only items it checked; one it could not read is refused alone.
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        w.u8(2);
                        put_error(&mut w, e);
                        continue;
                    }
                };
                w.u8(1);
                w.str(&item.group);
                put_receipt(&mut w, &item.receipt);
                match &item.retry {
                    None => w.u8(0),
                    Some((error, delay_ms)) => {
                        w.u8(1);
                        w.str(error);
                        w.opt_u64(*delay_ms);
                    }
                }
            }
        }
        Call::Seek { group, topic, partition, to } => {
            w.u8(9);
            w.str(group);
            w.str(topic);
            w.u64(u64::from(*partition));
            match to {
                SeekTo::Offset(offset) => {
                    w.u8(0);
                    w.u64(*offset);
                }
                SeekTo::Timestamp(ms) => {
                    w.u8(1);
                    w.u64(*ms);
                }
            }
        }
        Call::Accept { source, send, chunk } => {
            w.u8(10);
            w.str(source);
            w.u8(u8::from(*send));
            w.u64(chunk.base_offset);
            w.bytes(chunk.bytes());
        }
        Call::CheckRoom { added } => {
            w.u8(11);
            w.u64(*added);
        }
        Call::Join { group, member, subscriptions, config } => {
            w.u8(12);
            w.str(group);
            w.str(member);
            put_subscriptions(&mut w, subscriptions);
            encode_consumer_config(&mut w, config);
        }
        Call::Round { group, member, subscriptions, config, heartbeat, limit, wait_ms, paused } => {
            w.u8(13);
            w.str(group);
            w.str(member);
            put_subscriptions(&mut w, subscriptions);
            encode_consumer_config(&mut w, config);
            w.u8(u8::from(*heartbeat));
            w.u64(limit.messages as u64);
            w.u64(limit.runs as u64);
            w.u64(*wait_ms);
            w.u64(paused.len() as u64);
            for pause in paused {
                w.str(&pause.topic);
                w.u8(u8::from(pause.all));
                w.u64(pause.partitions.len() as u64);
                for p in &pause.partitions {
                    w.u64(u64::from(*p));
                }
            }
        }
        Call::SettleRun { group, member, acks, end } => {
            w.u8(14);
            w.str(group);
            w.str(member);
            w.u64(acks.len() as u64);
            for (receipt, finished_ms) in acks {
                put_receipt(&mut w, receipt);
                w.u64(*finished_ms);
            }
            match end {
                None => w.u8(0),
                Some(RunEnd::Fail { receipt, error, finished_ms, wait }) => {
                    w.u8(1);
                    put_receipt(&mut w, receipt);
                    w.str(error);
                    w.u64(*finished_ms);
                    match wait {
                        Wait::Backoff => w.u8(0),
                        Wait::Ms(ms) => {
                            w.u8(1);
                            w.u64(*ms);
                        }
                        Wait::Never => w.u8(2),
                    }
                }
                Some(RunEnd::Release(receipt)) => {
                    w.u8(2);
                    put_receipt(&mut w, receipt);
                }
                Some(RunEnd::Refuse { receipts, error, finished_ms }) => {
                    w.u8(3);
                    w.u64(receipts.len() as u64);
                    for receipt in receipts {
                        put_receipt(&mut w, receipt);
                    }
                    w.str(error);
                    w.u64(*finished_ms);
                }
            }
        }
        Call::Heartbeat { group, member } => {
            w.u8(15);
            w.str(group);
            w.str(member);
        }
        Call::RetryNow { group } => {
            w.u8(17);
            w.str(group);
        }
        Call::Leave { group, member, evicted } => {
            w.u8(16);
            w.str(group);
            w.str(member);
            w.u8(u8::from(*evicted));
        }
        #[cfg(feature = "jobs")]
        Call::Jobs { queue, op } => {
            w.u8(18);
            w.str(queue);
            super::wire_jobs::put_op(&mut w, op);
        }
        // Only ever decoded (a build without job queues makes no job calls): its
        // tag alone, which a build with them refuses as a short call.
        #[cfg(not(feature = "jobs"))]
        Call::Unserved => w.u8(18),
    }
    w.buf
}

/// What [`encode_call`] wrote.
pub fn decode_call(bytes: &[u8]) -> Result<(Context, Call)> {
    let mut r = Reader::new(bytes);
    let config = BusConfig { auto_create_topics: bool(&mut r)?, max_message_bytes: r.u64()? };
    let context = Context { config, topics: topics(&mut r)? };
    let r = &mut r;
    let call = match r.u8()? {
        0 => Call::CreateTopic { name: string(r)?, config: topic_config(r)? },
        1 => Call::Topics,
        2 => Call::Topic { name: string(r)?, partitions: opt_u32(r)?, create: bool(r)? },
        3 => Call::Settings,
        4 => {
            let topic = string(r)?;
            let messages = list(r, SEND_BATCH_MAX, |r| {
                Ok(OutgoingMessage { key: opt_string(r)?, value: value(r)?, headers: headers(r)?, id: opt_string(r)?, delay_ms: r.u64()?, partition: opt_u32(r)? })
            })?;
            Call::Send { topic, messages }
        }
        5 => Call::Stats,
        6 => Call::Redrive { from: string(r)?, limit: r.opt_u64()?, offsets: list(r, REDRIVE_LIMIT_MAX as usize, |r| Ok((r.u32()?, r.u64()?)))? },
        7 => Call::Receive { group: string(r)?, config: decode_consumer_config(r)?, subscriptions: subscriptions(r)?, max: count(r, POLL_MAX)? },
        8 => Call::Settle {
            items: list(r, POLL_MAX, |r| {
                if r.u8()? == 2 {
                    return Ok(Err(error(r)?));
                }
                let group = string(r)?;
                let receipt = receipt(r)?;
                let retry = if bool(r)? { Some((string(r)?, r.opt_u64()?)) } else { None };
                Ok(Ok(SettleItem { group, receipt, retry }))
            })?,
        },
        9 => {
            let (group, topic, partition) = (string(r)?, string(r)?, r.u32()?);
            let to = if bool(r)? { SeekTo::Timestamp(r.u64()?) } else { SeekTo::Offset(r.u64()?) };
            Call::Seek { group, topic, partition, to }
        }
        10 => {
            let (source, send, base) = (string(r)?, bool(r)?, r.u64()?);
            Call::Accept { source, send, chunk: Chunk::from_bytes(base, r.bytes()?)? }
        }
        11 => Call::CheckRoom { added: r.u64()? },
        12 => Call::Join { group: string(r)?, member: string(r)?, subscriptions: subscriptions(r)?, config: decode_consumer_config(r)? },
        13 => Call::Round {
            group: string(r)?,
            member: string(r)?,
            subscriptions: subscriptions(r)?,
            config: decode_consumer_config(r)?,
            heartbeat: bool(r)?,
            limit: PollLimit { messages: count(r, POLL_MAX)?, runs: count(r, POLL_MAX)? },
            wait_ms: r.u64()?,
            paused: list(r, SUBSCRIPTIONS_MAX, |r| {
                Ok(Pause { topic: string(r)?, all: bool(r)?, partitions: list(r, PARTITIONS_MAX as usize, |r| Ok(count(r, PARTITIONS_MAX as usize)? as u32))? })
            })?,
        },
        14 => {
            let (group, member) = (string(r)?, string(r)?);
            let acks = list(r, POLL_MAX, |r| Ok((receipt(r)?, r.u64()?)))?;
            let end = match r.u8()? {
                0 => None,
                1 => {
                    let (receipt, error, finished_ms) = (receipt(r)?, string(r)?, r.u64()?);
                    let wait = match r.u8()? {
                        0 => Wait::Backoff,
                        1 => Wait::Ms(r.u64()?),
                        2 => Wait::Never,
                        other => return Err(FerryError::storage(format!("unknown next attempt {other}"))),
                    };
                    Some(RunEnd::Fail { receipt, error, finished_ms, wait })
                }
                2 => Some(RunEnd::Release(receipt(r)?)),
                3 => Some(RunEnd::Refuse { receipts: list(r, POLL_MAX, receipt)?, error: string(r)?, finished_ms: r.u64()? }),
                other => return Err(FerryError::storage(format!("unknown end of a run {other}"))),
            };
            Call::SettleRun { group, member, acks, end }
        }
        15 => Call::Heartbeat { group: string(r)?, member: string(r)? },
        16 => Call::Leave { group: string(r)?, member: string(r)?, evicted: bool(r)? },
        17 => Call::RetryNow { group: string(r)? },
        #[cfg(feature = "jobs")]
        18 => Call::Jobs { queue: string(r)?, op: super::wire_jobs::op(r)? },
        #[cfg(not(feature = "jobs"))]
        18 => return Ok((context, Call::Unserved)),
        19 => Call::Purge { topic: string(r)? },
        20 => Call::Browse { topic: string(r)?, partition: r.u32()?, offset: r.u64()?, max: r.u64()?, group: opt_string(r)? },
        other => return Err(FerryError::storage(format!("unknown call {other}"))),
    };
    if !r.is_empty() {
        return Err(FerryError::storage("a call has trailing bytes"));
    }
    Ok((context, call))
}

/// A call's outcome, as the bytes that answer it.
pub fn encode_reply(result: &Result<Reply>) -> Vec<u8> {
    let mut w = Writer::default();
    let reply = match result {
        Err(e) => {
            w.u8(0);
            put_error(&mut w, e);
            return w.buf;
        }
        Ok(reply) => reply,
    };
    match reply {
        Reply::Done => w.u8(1),
        Reply::Bool(b) => {
            w.u8(2);
            w.u8(u8::from(*b));
        }
        Reply::Count(n) => {
            w.u8(3);
            w.u64(*n);
        }
        Reply::Topics(list) => {
            w.u8(4);
            w.u64(list.len() as u64);
            for t in list {
                w.str(&t.topic);
                w.u64(u64::from(t.partitions));
                w.opt_u64(t.retention_ms);
                w.opt_u64(t.max_depth);
            }
        }
        Reply::Topic { name, config, missing } => {
            w.u8(5);
            w.str(name);
            encode_topic_config(&mut w, config);
            w.u8(u8::from(*missing));
        }
        Reply::Settings(list) => {
            w.u8(6);
            put_topics(&mut w, list);
        }
        Reply::Metadata(list) => {
            w.u8(7);
            put_metadata(&mut w, list);
        }
        Reply::Stats(stats) => {
            w.u8(8);
            w.u64(stats.topics.len() as u64);
            for t in &stats.topics {
                w.str(&t.topic);
                w.u8(u8::from(t.dead_letter));
                w.u64(t.partitions.len() as u64);
                for p in &t.partitions {
                    for n in [u64::from(p.partition), p.low_offset, p.high_offset, p.depth, p.expired] {
                        w.u64(n);
                    }
                }
            }
            w.u64(stats.groups.len() as u64);
            for g in &stats.groups {
                w.str(&g.group_id);
                w.str(&g.topic);
                w.u64(g.dead_lettered);
                w.u64(g.partitions.len() as u64);
                for p in &g.partitions {
                    for n in [u64::from(p.partition), p.committed_offset, p.lag, p.in_flight, p.retrying] {
                        w.u64(n);
                    }
                    w.opt_str(p.owner.as_deref());
                }
            }
            w.u64(stats.members.len() as u64);
            for m in &stats.members {
                w.str(&m.group_id);
                w.str(&m.member_id);
                w.u64(m.last_seen_ms);
            }
        }
        Reply::Deliveries(deliveries) => {
            w.u8(9);
            put_deliveries(&mut w, deliveries);
        }
        Reply::Browsed(browsed) => {
            w.u8(14);
            w.u64(browsed.low_offset);
            w.u64(browsed.high_offset);
            w.u64(browsed.next_offset);
            w.u64(browsed.messages.len() as u64);
            for m in &browsed.messages {
                put_message(&mut w, &m.message);
                w.opt_u64(m.attempt.map(u64::from));
                w.u8(u8::from(m.redriven));
            }
        }
        Reply::Settled(list) => {
            w.u8(10);
            w.u64(list.len() as u64);
            for item in list {
                match item {
                    Ok(settled) => w.u8(u8::from(*settled)),
                    Err(e) => {
                        w.u8(2);
                        put_error(&mut w, e);
                    }
                }
            }
        }
        Reply::Accepted { skipped, results } => {
            w.u8(11);
            w.u64(*skipped);
            put_metadata(&mut w, results);
        }
        Reply::Round { deliveries, high_offsets, members } => {
            w.u8(12);
            put_deliveries(&mut w, deliveries);
            w.u64(high_offsets.len() as u64);
            for (topic, partition, high) in high_offsets {
                w.str(topic);
                w.u64(u64::from(*partition));
                w.u64(*high);
            }
            w.u64(members.len() as u64);
            for member in members {
                w.str(member);
            }
        }
        #[cfg(feature = "jobs")]
        Reply::Json(text) => {
            w.u8(13);
            w.str(text);
        }
        Reply::Unserved => w.u8(15),
    }
    w.buf
}

/// What [`encode_reply`] wrote.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply> {
    let mut r = Reader::new(bytes);
    let r = &mut r;
    let reply = match r.u8()? {
        0 => return Err(error(r)?),
        1 => Reply::Done,
        2 => Reply::Bool(bool(r)?),
        3 => Reply::Count(r.u64()?),
        4 => Reply::Topics(list(r, TOPICS_MAX, |r| Ok(TopicInfo { topic: r.str()?.into(), partitions: r.u32()?, retention_ms: r.opt_u64()?, max_depth: r.opt_u64()? }))?),
        5 => Reply::Topic { name: string(r)?, config: topic_config(r)?, missing: bool(r)? },
        6 => Reply::Settings(topics(r)?),
        7 => Reply::Metadata(metadata(r)?),
        8 => {
            let partitions = PARTITIONS_MAX as usize;
            let topics = list(r, TOPICS_MAX, |r| {
                let (topic, dead_letter) = (r.str()?.into(), bool(r)?);
                let partitions =
                    list(r, partitions, |r| Ok(PartitionStats { partition: r.u32()?, low_offset: r.u64()?, high_offset: r.u64()?, depth: r.u64()?, expired: r.u64()? }))?;
                Ok(TopicStats { topic, dead_letter, partitions })
            })?;
            let groups = list(r, usize::MAX, |r| {
                let (group_id, topic, dead_lettered) = (r.str()?.into(), r.str()?.into(), r.u64()?);
                let partitions = list(r, partitions, |r| {
                    Ok(GroupPartitionStats {
                        partition: r.u32()?,
                        committed_offset: r.u64()?,
                        lag: r.u64()?,
                        in_flight: r.u64()?,
                        retrying: r.u64()?,
                        owner: r.opt_str()?.map(Into::into),
                    })
                })?;
                Ok(GroupStats { group_id, topic, dead_lettered, partitions })
            })?;
            let members = list(r, usize::MAX, |r| Ok(MemberStats { group_id: r.str()?.into(), member_id: r.str()?.into(), last_seen_ms: r.u64()? }))?;
            Reply::Stats(Box::new(Stats { topics, groups, members }))
        }
        9 => Reply::Deliveries(deliveries(r)?),
        10 => Reply::Settled(list(r, POLL_MAX, |r| match r.u8()? {
            2 => Ok(Err(error(r)?)),
            settled => Ok(Ok(settled != 0)),
        })?),
        11 => Reply::Accepted { skipped: r.u64()?, results: metadata(r)? },
        12 => Reply::Round {
            deliveries: deliveries(r)?,
            high_offsets: list(r, POLL_MAX, |r| Ok((string(r)?, r.u32()?, r.u64()?)))?,
            members: list(r, MEMBERS_PER_GROUP_MAX, string)?,
        },
        #[cfg(feature = "jobs")]
        13 => Reply::Json(string(r)?),
        14 => Reply::Browsed(Box::new(Browsed {
            low_offset: r.u64()?,
            high_offset: r.u64()?,
            next_offset: r.u64()?,
            messages: list(r, BROWSE_MAX as usize, |r| {
                Ok(BrowsedMessage { message: message(r)?, attempt: r.opt_u64()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)), redriven: bool(r)? })
            })?,
        })),
        15 => Reply::Unserved,
        other => return Err(FerryError::storage(format!("unknown reply {other}"))),
    };
    if !r.is_empty() {
        return Err(FerryError::storage("a reply has trailing bytes"));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::ConsumerConfig;
    use crate::core::rng::Rng;

    fn calls() -> Vec<Call> {
        let message = OutgoingMessage {
            key: Some("k".into()),
            value: Value::json("{\"a\":[1]}"),
            headers: vec![("h".into(), "v".into())],
            id: Some("id-1".into()),
            delay_ms: 5,
            partition: Some(3),
        };
        let receipt = Receipt { topic: "t".into(), partition: 1, offset: 7, attempt: 2, generation: 4 };
        vec![
            Call::CreateTopic { name: "t".into(), config: TopicConfig { retention_ms: Some(9), max_depth: Some(8), ..TopicConfig::with_partitions(4) } },
            Call::Topics,
            Call::Topic { name: "t.dlq".into(), partitions: Some(4), create: true },
            Call::Settings,
            Call::Send { topic: "t".into(), messages: vec![message.clone(), OutgoingMessage::new(Value::bytes(vec![0, 255]))] },
            Call::Stats,
            Call::Redrive { from: "t.dlq".into(), limit: Some(10), offsets: vec![(0, 3), (2, 7)] },
            Call::Purge { topic: "t.dlq".into() },
            Call::Browse { topic: "t".into(), partition: 2, offset: 40, max: 100, group: Some("g".into()) },
            Call::Receive { group: "g".into(), config: ConsumerConfig::default(), subscriptions: vec![Subscription::new("t", true)], max: 100 },
            Call::Settle {
                items: vec![
                    Ok(SettleItem { group: "g".into(), receipt: receipt.clone(), retry: None }),
                    Ok(SettleItem { group: "g".into(), receipt: receipt.clone(), retry: Some(("boom".into(), Some(0))) }),
                    Err(FerryError::invalid("delayMs must be a number")),
                ],
            },
            Call::Seek { group: "g".into(), topic: "t".into(), partition: 2, to: SeekTo::Timestamp(1_700_000_000_000) },
            Call::CheckRoom { added: 3 },
            Call::Join { group: "g".into(), member: "g-1".into(), subscriptions: vec![Subscription::new("t", false)], config: ConsumerConfig::default() },
            Call::Round {
                group: "g".into(),
                member: "g-1".into(),
                subscriptions: vec![Subscription::new("t", true), Subscription::new("u", false)],
                config: ConsumerConfig { concurrency: 3, ..ConsumerConfig::default() },
                heartbeat: true,
                limit: PollLimit::runs(2, 50),
                wait_ms: 2500,
                paused: vec![Pause { topic: "t".into(), all: true, partitions: vec![2] }, Pause { topic: "u".into(), all: false, partitions: vec![0, 5] }],
            },
            Call::SettleRun { group: "g".into(), member: "g-1".into(), acks: vec![(receipt.clone(), 10), (receipt.clone(), 11)], end: None },
            Call::SettleRun {
                group: "g".into(),
                member: "g-1".into(),
                acks: vec![],
                end: Some(RunEnd::Fail { receipt: receipt.clone(), error: "boom".into(), finished_ms: 12, wait: Wait::Ms(250) }),
            },
            Call::SettleRun { group: "g".into(), member: "g-1".into(), acks: vec![(receipt.clone(), 13)], end: Some(RunEnd::Release(receipt.clone())) },
            Call::SettleRun {
                group: "g".into(),
                member: "g-1".into(),
                acks: vec![],
                end: Some(RunEnd::Refuse { receipts: vec![receipt.clone(), receipt], error: "HTTP 401".into(), finished_ms: 14 }),
            },
            Call::Heartbeat { group: "g".into(), member: "g-1".into() },
            Call::Leave { group: "g".into(), member: "g-2".into(), evicted: true },
            Call::RetryNow { group: "ferry-bridge".into() },
        ]
    }

    #[test]
    fn every_call_crosses_as_it_was() {
        let context = Context { config: BusConfig { auto_create_topics: false, max_message_bytes: 1000 }, topics: vec![("t".into(), TopicConfig::with_partitions(4))] };
        for call in calls() {
            let (back_context, back) = decode_call(&encode_call(&context, &call)).unwrap();
            assert_eq!(format!("{back_context:?} {back:?}"), format!("{context:?} {call:?}"));
        }
    }

    #[test]
    fn a_receipt_crosses_as_it_was() {
        let receipt = Receipt { topic: "t".into(), partition: 1, offset: 7, attempt: 2, generation: 4 };
        assert_eq!(format!("{:?}", decode_receipt(&encode_receipt(&receipt)).unwrap()), format!("{receipt:?}"));
        assert!(decode_receipt(&encode_receipt(&receipt)[..3]).is_err(), "a cut receipt is refused");
    }

    #[test]
    fn every_reply_crosses_as_it_was() {
        let metadata = RecordMetadata { topic: "t".into(), partition: 1, offset: 2, timestamp_ms: 3, duplicate: true };
        let message =
            Message {
                offset: 4, timestamp_ms: 5, deliver_at_ms: 6, key: None, value: Value::string("é"), headers: vec![("a".into(), "b".into())], id: Some("x".into())
            };
        let stats = Stats {
            topics: vec![TopicStats {
                topic: "t".into(),
                dead_letter: true,
                partitions: vec![PartitionStats { partition: 0, low_offset: 1, high_offset: 5, depth: 4, expired: 2 }],
            }],
            groups: vec![GroupStats {
                group_id: "g".into(),
                topic: "t".into(),
                dead_lettered: 1,
                partitions: vec![GroupPartitionStats { partition: 0, committed_offset: 3, lag: 2, in_flight: 1, retrying: 0, owner: Some("pull".into()) }],
            }],
            members: vec![MemberStats { group_id: "g".into(), member_id: "g-page-w00000000001".into(), last_seen_ms: 7 }],
        };
        let replies = vec![
            Ok(Reply::Done),
            Ok(Reply::Bool(true)),
            Ok(Reply::Count(42)),
            Ok(Reply::Topics(vec![TopicInfo { topic: "t".into(), partitions: 2, retention_ms: None, max_depth: Some(3) }])),
            Ok(Reply::Topic { name: "t".into(), config: TopicConfig::default(), missing: true }),
            Ok(Reply::Settings(vec![("t".into(), TopicConfig::with_partitions(8))])),
            Ok(Reply::Metadata(vec![metadata.clone()])),
            Ok(Reply::Stats(Box::new(stats))),
            Ok(Reply::Deliveries(vec![Delivery { topic: "t".into(), partition: 1, attempt: 2, generation: 3, message: message.clone() }])),
            Ok(Reply::Browsed(Box::new(Browsed {
                low_offset: 2,
                high_offset: 9,
                next_offset: 4,
                messages: vec![
                    BrowsedMessage { message: message.clone(), attempt: Some(2), redriven: false },
                    BrowsedMessage { message: message.clone(), attempt: None, redriven: true },
                ],
            }))),
            Ok(Reply::Round {
                deliveries: vec![Delivery { topic: "t".into(), partition: 0, attempt: 1, generation: 0, message }],
                high_offsets: vec![("t".into(), 0, 9)],
                members: vec!["g-1".into(), "g-2".into()],
            }),
            Ok(Reply::Settled(vec![Ok(true), Ok(false), Err(FerryError::invalid("bad"))])),
            Ok(Reply::Accepted { skipped: 1, results: vec![metadata] }),
            Err(FerryError::new(ErrorCode::QueueFull, "full")),
        ];
        for reply in replies {
            assert_eq!(format!("{:?}", decode_reply(&encode_reply(&reply))), format!("{reply:?}"));
        }
    }

    #[test]
    fn topic_settings_no_topic_could_have_are_refused() {
        let none = TopicConfig { partitions: 0, ..TopicConfig::default() };
        let bytes = encode_reply(&Ok(Reply::Topic { name: "t".into(), config: none, missing: false }));
        assert_eq!(decode_reply(&bytes).unwrap_err().code, ErrorCode::Storage);
    }

    #[test]
    fn bad_bytes_are_refused_never_a_panic() {
        let mut rng = Rng::new(7);
        let context = Context::default();
        let encoded: Vec<Vec<u8>> = calls().iter().map(|call| encode_call(&context, call)).collect();
        for round in 0..20_000u64 {
            let mut bytes = encoded[(round % encoded.len() as u64) as usize].clone();
            match rng.between(0, 2) {
                0 => bytes.truncate(rng.between(0, bytes.len() as u64) as usize),
                1 if !bytes.is_empty() => {
                    let at = rng.between(0, bytes.len() as u64 - 1) as usize;
                    bytes[at] = rng.between(0, 255) as u8;
                }
                _ => bytes.push(rng.between(0, 255) as u8),
            }
            let _ = decode_call(&bytes);
            let _ = decode_reply(&bytes);
        }
    }
}
