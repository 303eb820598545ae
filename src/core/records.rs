//! The storage layout: every piece of bus state is one record under one key.
//!
//! The engine's state is exactly the set of these records: it mutates itself only by
//! writing records, a store persists the same records, and a context that opens
//! the bus rebuilds the engine from them. The layout is chosen for IndexedDB:
//! the log is packed into chunk records keyed by `[topic, partition, baseOffset]`;
//! cursors, leases and retry state are small records of their own, so an ack
//! rewrites a few bytes, never the log.

#[cfg(feature = "jobs")]
use std::sync::Arc;

use super::codec::{Reader, Writer};
use super::config::{ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
use super::error::{FerryError, Result};
#[cfg(feature = "jobs")]
use super::jobs::{JobRecord, QueueRecord, RepeatRecord};
use super::message::{Chunk, Name};

/// The schema written by this version of ferry; a store holding a newer one is
/// refused with `INCOMPATIBLE_STORAGE`.
///
/// - 1: the first layout.
/// - 2: runs: a pending delivery may be [`Pending::Leased`], and a member's
///   settings end with `maxBatchSize`.
/// - 3: seek: a group's position ends with its [`Cursor::generation`].
/// - 4: one writer: [`Key::Replies`], the replies the writer gave a context's
///   calls.
/// - 5: job queues: [`Key::Queue`], [`Key::Job`] and [`Key::Repeat`].
///
/// Every record of an earlier version reads as it is (what it lacks takes its
/// default), so opening an older bus only rewrites this number.
pub const SCHEMA_VERSION: u32 = 5;

/// Where a record lives. The derived order puts parents before children (a topic
/// before its partitions, a group's topic before its cursors), so records applied
/// in key order always find what they hang on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The schema version.
    Meta,
    Topic(Name),
    /// Offsets and counters of one partition.
    Partition(Name, u32),
    /// Messages `base..base+len` of a partition.
    Chunk(Name, u32, u64),
    /// An idempotency key seen on a topic.
    Dedup(Name, Name),
    /// `(group, member)`.
    Member(Name, Name),
    /// `(group, topic)`: partition owners and the dead-letter count.
    GroupTopic(Name, Name),
    /// `(group, topic, partition)`: the committed and fetch positions, and, as
    /// stored, the partition's pending deliveries.
    Cursor(Name, Name, u32),
    /// `(group, topic, partition, offset)`: a message handed out and not yet
    /// committed. The engine tracks each on its own; storage keeps them inside
    /// their cursor's record ([`Record::GroupPartition`]).
    Pending(Name, Name, u32, u64),
    /// How far the messages forwarded from one partition of another engine of a
    /// split bus were taken here; the name says which engine and partition.
    Forwarded(Name),
    /// The replies the writer of a bus (`writer: "one"`) gave one context's calls
    /// that change it; the name says which context.
    Replies(Name),
    /// A job queue's own record ([`super::jobs::QueueRecord`]).
    Queue(Name),
    /// `(queue, job id)`: a job. The engine tracks each on its own; storage keeps
    /// them by page ([`Key::JobPage`]).
    Job(Name, Name),
    /// `(queue, page)`: the jobs of one page ([`super::jobs::job_page`]).
    JobPage(Name, u64),
    /// `(queue, key)`: a repeatable job.
    Repeat(Name, Name),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Meta {
        schema_version: u32,
    },
    Topic(TopicConfig),
    Partition(PartitionHead),
    Chunk(Chunk),
    Dedup(DedupEntry),
    /// Boxed: the largest record by far, and the rarest.
    Member(Box<MemberRecord>),
    GroupTopic(GroupTopicRecord),
    Cursor(Cursor),
    Pending(Pending),
    /// How a cursor is stored: with every pending delivery of its partition, so a
    /// round of deliveries or acks rewrites one record, not one per message.
    GroupPartition {
        cursor: Cursor,
        pending: Vec<(u64, Pending)>,
    },
    /// The offset (in the sending engine) after the last forwarded message taken.
    Forwarded(u64),
    Replies(StoredReplies),
    #[cfg(feature = "jobs")]
    Queue(QueueRecord),
    #[cfg(feature = "jobs")]
    /// Jobs are shared (`Arc`) between the engine's table, its undo log and the
    /// pages a commit writes: none of those copies a job.
    Job(Arc<JobRecord>),
    #[cfg(feature = "jobs")]
    /// How jobs are stored: a page of them, by id, so that a commit moving a run of
    /// jobs rewrites a record or two, not one per job.
    JobPage(Vec<(Name, Arc<JobRecord>)>),
    #[cfg(feature = "jobs")]
    Repeat(Box<RepeatRecord>),
    /// A job queue's record, in a build without job queues: left in storage as a
    /// build with them wrote it, never read, never written.
    #[cfg(not(feature = "jobs"))]
    Unread,
}

/// Replies to one context's calls, by call id (ascending), each as its bytes
/// (`protocol::wire`), and when the context is forgotten if it calls no more.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredReplies {
    pub expires_ms: u64,
    pub replies: Vec<(u64, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionHead {
    /// First retained offset.
    pub low: u64,
    /// Next offset to be written.
    pub high: u64,
    /// Messages removed by `retentionMs`.
    pub expired: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupEntry {
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: u64,
    pub expires_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberRecord {
    pub topics: Vec<Name>,
    pub config: ConsumerConfig,
    /// The member's lease: without a heartbeat by then it loses its partitions.
    pub session_expires_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupTopicRecord {
    /// The member that holds each partition.
    pub owners: Vec<Option<Name>>,
    pub dead_lettered: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The next offset the group will consume: everything below is settled.
    pub committed: u64,
    /// The next offset never handed out; offsets in `committed..next` have a
    /// `Pending` record each.
    pub next: u64,
    /// How many times [`crate::core::Engine::seek`] moved this position: a
    /// delivery made before a seek carries the old number, so it settles nothing
    /// even when the same offset is handed out again.
    pub generation: u32,
}

impl Cursor {
    /// A position where nothing is pending: the group next consumes `offset`.
    pub fn at(offset: u64) -> Cursor {
        Cursor { committed: offset, next: offset, generation: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Handed to `member` for its `attempt`-th delivery, leased until `deadline_ms`.
    InFlight { member: Name, attempt: u32, deadline_ms: u64 },
    /// Waiting until `due_ms` after `failed` failed attempts (0: a delayed message).
    Waiting { failed: u32, due_ms: u64, error: Option<String> },
    /// Settled, waiting for lower offsets before the committed offset can move past it.
    Acked,
    /// Part of a run leased to `member` behind the run's message in flight: its
    /// handler has not started, so no attempt is counted for it yet. It becomes
    /// [`Pending::InFlight`] when the message before it is acked; `acked` when the
    /// member acked it early, to be settled then.
    Leased { member: Name, attempt: u32, acked: bool },
}

impl Record {
    /// The stored bytes of a record (the key says which kind to decode it as).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Record::Meta { schema_version } => w.u64(u64::from(*schema_version)),
            Record::Topic(c) => encode_topic_config(&mut w, c),
            Record::Partition(h) => {
                w.u64(h.low);
                w.u64(h.high);
                w.u64(h.expired);
            }
            Record::Chunk(c) => w.buf.extend_from_slice(c.bytes()),
            Record::Dedup(d) => {
                w.u64(u64::from(d.partition));
                w.u64(d.offset);
                w.u64(d.timestamp_ms);
                w.u64(d.expires_ms);
            }
            Record::Member(m) => {
                w.u64(m.session_expires_ms);
                w.u64(m.topics.len() as u64);
                for t in &m.topics {
                    w.str(t);
                }
                encode_consumer_config(&mut w, &m.config);
            }
            Record::GroupTopic(g) => {
                w.u64(g.dead_lettered);
                w.u64(g.owners.len() as u64);
                for owner in &g.owners {
                    w.opt_str(owner.as_deref());
                }
            }
            Record::Cursor(c) => encode_group_partition(&mut w, c, &[]),
            Record::GroupPartition { cursor, pending } => encode_group_partition(&mut w, cursor, pending),
            Record::Pending(p) => encode_pending(&mut w, p, None),
            Record::Forwarded(next) => w.u64(*next),
            Record::Replies(stored) => {
                w.u64(stored.expires_ms);
                w.u64(stored.replies.len() as u64);
                for (id, reply) in &stored.replies {
                    w.u64(*id);
                    w.bytes(reply);
                }
            }
            #[cfg(feature = "jobs")]
            Record::Queue(q) => {
                w.u8(u8::from(q.paused));
                w.u64(q.last_id);
            }
            #[cfg(feature = "jobs")]
            Record::Job(job) => job.encode(&mut w),
            #[cfg(feature = "jobs")]
            Record::JobPage(jobs) => {
                w.u64(jobs.len() as u64);
                for (id, job) in jobs {
                    w.str(id);
                    job.encode(&mut w);
                }
            }
            #[cfg(feature = "jobs")]
            Record::Repeat(repeat) => {
                super::jobs::put_spec(&mut w, &repeat.spec);
                w.u64(u64::from(repeat.count));
                w.opt_u64(repeat.next_ms);
            }
            // Never among an engine's writes ([`Record::Unread`]).
            #[cfg(not(feature = "jobs"))]
            Record::Unread => {}
        }
        w.buf
    }

    /// Decodes what [`Record::encode`] wrote for a record under `key`.
    pub fn decode(key: &Key, bytes: &[u8]) -> Result<Record> {
        let mut r = Reader::new(bytes);
        let record = match key {
            Key::Meta => Record::Meta { schema_version: r.u32()? },
            Key::Topic(_) => Record::Topic(decode_topic_config(&mut r)?),
            Key::Partition(..) => Record::Partition(PartitionHead { low: r.u64()?, high: r.u64()?, expired: r.u64()? }),
            Key::Chunk(_, _, base) => return Ok(Record::Chunk(Chunk::from_bytes(*base, bytes)?)),
            Key::Dedup(..) => Record::Dedup(DedupEntry { partition: r.u32()?, offset: r.u64()?, timestamp_ms: r.u64()?, expires_ms: r.u64()? }),
            Key::Member(..) => {
                let session_expires_ms = r.u64()?;
                let count = r.u64()?;
                if count > super::limits::SUBSCRIPTIONS_MAX as u64 {
                    return Err(FerryError::storage("corrupt record: too many subscriptions"));
                }
                let mut topics = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    topics.push(Name::from(r.str()?));
                }
                let config = decode_consumer_config(&mut r)?;
                Record::Member(Box::new(MemberRecord { topics, config, session_expires_ms }))
            }
            Key::GroupTopic(..) => {
                let dead_lettered = r.u64()?;
                let count = r.u64()?;
                if count > u64::from(super::limits::PARTITIONS_MAX) {
                    return Err(FerryError::storage("corrupt record: too many partitions"));
                }
                let mut owners = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    owners.push(r.opt_str()?.map(Name::from));
                }
                Record::GroupTopic(GroupTopicRecord { owners, dead_lettered })
            }
            Key::Cursor(..) => {
                let mut cursor = Cursor { committed: r.u64()?, next: r.u64()?, generation: 0 };
                let count = r.u64()?;
                if count > cursor.next.saturating_sub(cursor.committed) {
                    return Err(FerryError::storage("corrupt record: more pending deliveries than offsets"));
                }
                let mut pending = Vec::with_capacity(count as usize);
                let mut previous_member: Option<Name> = None;
                for _ in 0..count {
                    let offset = r.u64()?;
                    let decoded = decode_pending(&mut r, previous_member.as_ref())?;
                    previous_member = member_of(&decoded).cloned().or(previous_member);
                    pending.push((offset, decoded));
                }
                // Positions stored before schema version 3 have no generation.
                if !r.is_empty() {
                    cursor.generation = r.u32()?;
                }
                Record::GroupPartition { cursor, pending }
            }
            Key::Pending(..) => Record::Pending(decode_pending(&mut r, None)?),
            Key::Forwarded(_) => Record::Forwarded(r.u64()?),
            Key::Replies(_) => {
                let expires_ms = r.u64()?;
                let count = r.u64()?;
                let mut replies = Vec::new();
                for _ in 0..count {
                    replies.push((r.u64()?, r.bytes()?.to_vec()));
                }
                Record::Replies(StoredReplies { expires_ms, replies })
            }
            #[cfg(feature = "jobs")]
            Key::Queue(_) => Record::Queue(QueueRecord { paused: r.u8()? != 0, last_id: r.u64()? }),
            #[cfg(feature = "jobs")]
            Key::Job(..) => Record::Job(Arc::new(JobRecord::decode(&mut r)?)),
            #[cfg(feature = "jobs")]
            Key::JobPage(..) => {
                let count = r.u64()?;
                if count > r.remaining() as u64 {
                    return Err(FerryError::storage("corrupt record: more jobs than bytes"));
                }
                let mut jobs = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let id = Name::from(r.str()?);
                    jobs.push((id, Arc::new(JobRecord::decode(&mut r)?)));
                }
                Record::JobPage(jobs)
            }
            #[cfg(feature = "jobs")]
            Key::Repeat(..) => Record::Repeat(Box::new(RepeatRecord { spec: super::jobs::spec(&mut r)?, count: r.u32()?, next_ms: r.opt_u64()? })),
            #[cfg(not(feature = "jobs"))]
            Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..) => return Ok(Record::Unread),
        };
        if !r.is_empty() {
            return Err(FerryError::storage("corrupt record: trailing bytes"));
        }
        Ok(record)
    }
}

/// A topic's settings, as stored and as they cross between Durable Objects.
pub(crate) fn encode_topic_config(w: &mut Writer, c: &TopicConfig) {
    w.u64(u64::from(c.partitions));
    w.opt_u64(c.retention_ms);
    w.opt_u64(c.max_depth);
    w.u64(c.dedup_window_ms);
}

pub(crate) fn decode_topic_config(r: &mut Reader<'_>) -> Result<TopicConfig> {
    Ok(TopicConfig { partitions: r.u32()?, retention_ms: r.opt_u64()?, max_depth: r.opt_u64()?, dedup_window_ms: r.u64()? })
}

/// A consumer's settings, as a member record stores them and as a pull
/// consumer's receive carries them.
pub(crate) fn encode_consumer_config(w: &mut Writer, c: &ConsumerConfig) {
    w.u64(u64::from(c.retry.max_attempts));
    w.u64(c.retry.initial_backoff_ms);
    w.u64(c.retry.multiplier.to_bits());
    w.u64(c.retry.max_backoff_ms);
    w.u8(u8::from(c.retry.jitter));
    w.opt_str(c.dead_letter_topic.as_deref());
    w.u64(c.ack_timeout_ms);
    w.u64(c.session_timeout_ms);
    w.u64(c.heartbeat_interval_ms);
    w.u8(match c.ordering {
        Ordering::Partition => 0,
        Ordering::None => 1,
    });
    w.u64(u64::from(c.concurrency));
    w.u64(u64::from(c.batch_size_max));
}

/// What [`encode_consumer_config`] wrote; settings stored by schema version 1 end
/// before `maxBatchSize`, so `r` must hold nothing after them.
pub(crate) fn decode_consumer_config(r: &mut Reader<'_>) -> Result<ConsumerConfig> {
    let retry =
        RetryPolicy { max_attempts: r.u32()?, initial_backoff_ms: r.u64()?, multiplier: f64::from_bits(r.u64()?), max_backoff_ms: r.u64()?, jitter: r.u8()? != 0 };
    Ok(ConsumerConfig {
        retry,
        dead_letter_topic: r.opt_str()?.map(str::to_owned),
        ack_timeout_ms: r.u64()?,
        session_timeout_ms: r.u64()?,
        heartbeat_interval_ms: r.u64()?,
        ordering: if r.u8()? == 0 { Ordering::Partition } else { Ordering::None },
        concurrency: r.u32()?,
        // Members stored by schema version 1 have no run length.
        batch_size_max: if r.is_empty() { super::limits::BATCH_SIZE_DEFAULT } else { r.u32()? },
    })
}

fn encode_group_partition(w: &mut Writer, cursor: &Cursor, pending: &[(u64, Pending)]) {
    w.u64(cursor.committed);
    w.u64(cursor.next);
    w.u64(pending.len() as u64);
    let mut previous_member: Option<&Name> = None;
    for (offset, p) in pending {
        w.u64(*offset);
        encode_pending(w, p, previous_member);
        previous_member = member_of(p).or(previous_member);
    }
    w.u64(u64::from(cursor.generation));
}

/// The member holding a pending delivery, if one does.
fn member_of(pending: &Pending) -> Option<&Name> {
    match pending {
        Pending::InFlight { member, .. } | Pending::Leased { member, .. } => Some(member),
        Pending::Waiting { .. } | Pending::Acked => None,
    }
}

/// Tag 4 is a leased delivery whose member is the one named last in its record:
/// a run's messages are all one member's, so the name is stored (and decoded into
/// a string) once per run, not once per message.
fn encode_pending(w: &mut Writer, pending: &Pending, previous_member: Option<&Name>) {
    match pending {
        Pending::InFlight { member, attempt, deadline_ms } => {
            w.u8(0);
            w.str(member);
            w.u64(u64::from(*attempt));
            w.u64(*deadline_ms);
        }
        Pending::Waiting { failed, due_ms, error } => {
            w.u8(1);
            w.u64(u64::from(*failed));
            w.u64(*due_ms);
            w.opt_str(error.as_deref());
        }
        Pending::Acked => w.u8(2),
        Pending::Leased { member, attempt, acked } => {
            if previous_member == Some(member) {
                w.u8(4);
            } else {
                w.u8(3);
                w.str(member);
            }
            w.u64(u64::from(*attempt));
            w.u8(u8::from(*acked));
        }
    }
}

fn decode_pending(r: &mut Reader<'_>, previous_member: Option<&Name>) -> Result<Pending> {
    Ok(match r.u8()? {
        0 => Pending::InFlight { member: Name::from(r.str()?), attempt: r.u32()?, deadline_ms: r.u64()? },
        1 => Pending::Waiting { failed: r.u32()?, due_ms: r.u64()?, error: r.opt_str()?.map(str::to_owned) },
        2 => Pending::Acked,
        3 => Pending::Leased { member: Name::from(r.str()?), attempt: r.u32()?, acked: r.u8()? != 0 },
        4 => {
            let member = previous_member.cloned().ok_or_else(|| FerryError::storage("corrupt record: a leased delivery names no member"))?;
            Pending::Leased { member, attempt: r.u32()?, acked: r.u8()? != 0 }
        }
        tag => return Err(FerryError::storage(format!("corrupt record: pending state {tag}"))),
    })
}

/// One component of a key in its portable form: what a store with structured keys
/// (IndexedDB arrays, SQLite columns) keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    Str(Name),
    Num(u64),
}

impl Key {
    /// `[kind, ...components]`: the key as a store with structured keys holds it.
    pub fn to_parts(&self) -> (u8, Vec<KeyPart>) {
        use KeyPart::{Num, Str};
        match self {
            Key::Meta => (0, vec![]),
            Key::Topic(t) => (1, vec![Str(t.clone())]),
            Key::Partition(t, p) => (2, vec![Str(t.clone()), Num(u64::from(*p))]),
            Key::Chunk(t, p, base) => (3, vec![Str(t.clone()), Num(u64::from(*p)), Num(*base)]),
            Key::Dedup(t, id) => (4, vec![Str(t.clone()), Str(id.clone())]),
            Key::Member(g, m) => (5, vec![Str(g.clone()), Str(m.clone())]),
            Key::GroupTopic(g, t) => (6, vec![Str(g.clone()), Str(t.clone())]),
            Key::Cursor(g, t, p) => (7, vec![Str(g.clone()), Str(t.clone()), Num(u64::from(*p))]),
            Key::Pending(g, t, p, o) => (8, vec![Str(g.clone()), Str(t.clone()), Num(u64::from(*p)), Num(*o)]),
            Key::Forwarded(source) => (9, vec![Str(source.clone())]),
            Key::Replies(context) => (10, vec![Str(context.clone())]),
            Key::Queue(q) => (11, vec![Str(q.clone())]),
            Key::Job(q, id) => (12, vec![Str(q.clone()), Str(id.clone())]),
            Key::Repeat(q, k) => (13, vec![Str(q.clone()), Str(k.clone())]),
            Key::JobPage(q, page) => (14, vec![Str(q.clone()), Num(*page)]),
        }
    }

    /// The inverse of [`Key::to_parts`]; a malformed key is a `STORAGE` error.
    pub fn from_parts(kind: u8, parts: &[KeyPart]) -> Result<Key> {
        use KeyPart::{Num, Str};
        let bad = || FerryError::storage(format!("corrupt key: kind {kind} with {} components", parts.len()));
        let p32 = |n: &u64| u32::try_from(*n).map_err(|_| bad());
        Ok(match (kind, parts) {
            (0, []) => Key::Meta,
            (1, [Str(t)]) => Key::Topic(t.clone()),
            (2, [Str(t), Num(p)]) => Key::Partition(t.clone(), p32(p)?),
            (3, [Str(t), Num(p), Num(base)]) => Key::Chunk(t.clone(), p32(p)?, *base),
            (4, [Str(t), Str(id)]) => Key::Dedup(t.clone(), id.clone()),
            (5, [Str(g), Str(m)]) => Key::Member(g.clone(), m.clone()),
            (6, [Str(g), Str(t)]) => Key::GroupTopic(g.clone(), t.clone()),
            (7, [Str(g), Str(t), Num(p)]) => Key::Cursor(g.clone(), t.clone(), p32(p)?),
            (8, [Str(g), Str(t), Num(p), Num(o)]) => Key::Pending(g.clone(), t.clone(), p32(p)?, *o),
            (9, [Str(source)]) => Key::Forwarded(source.clone()),
            (10, [Str(context)]) => Key::Replies(context.clone()),
            (11, [Str(q)]) => Key::Queue(q.clone()),
            (12, [Str(q), Str(id)]) => Key::Job(q.clone(), id.clone()),
            (13, [Str(q), Str(k)]) => Key::Repeat(q.clone(), k.clone()),
            (14, [Str(q), Num(page)]) => Key::JobPage(q.clone(), *page),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_names_its_member_once() {
        let m = |s: &str| Name::from(s);
        let leased = |member: &str| Pending::Leased { member: m(member), attempt: 1, acked: false };
        let pending = vec![
            (10, Pending::InFlight { member: m("member-a"), attempt: 2, deadline_ms: 99 }),
            (11, leased("member-a")),
            (12, Pending::Leased { member: m("member-a"), attempt: 1, acked: true }),
            (13, Pending::Waiting { failed: 0, due_ms: 5, error: None }),
            (14, leased("member-a")),
            (15, leased("member-b")),
        ];
        let record = Record::GroupPartition { cursor: Cursor { committed: 10, next: 16, generation: 7 }, pending };
        let bytes = record.encode();
        assert_eq!(bytes.windows(8).filter(|w| *w == b"member-a").count(), 1);
        assert_eq!(Record::decode(&Key::Cursor(m("g"), m("t"), 0), &bytes), Ok(record));
        let orphan = Record::GroupPartition { cursor: Cursor { committed: 0, next: 1, generation: 0 }, pending: vec![(0, leased("x"))] }.encode();
        let mut corrupt = orphan.clone();
        // Its one entry's tag, after the one-byte varints committed, next, count and offset.
        assert_eq!(corrupt[4], 3);
        corrupt[4] = 4;
        let refused = Record::decode(&Key::Cursor(m("g"), m("t"), 0), &corrupt).unwrap_err();
        assert!(refused.message.contains("names no member"), "{refused}");
    }

    #[test]
    fn a_position_stored_before_seek_existed_has_generation_0() {
        let stored = Record::GroupPartition { cursor: Cursor { committed: 4, next: 6, generation: 2 }, pending: Vec::new() }.encode();
        // Schema version 2 ended the record after its pending deliveries.
        let version_2 = &stored[..stored.len() - 1];
        let key = Key::Cursor(Name::from("g"), Name::from("t"), 0);
        assert_eq!(Record::decode(&key, version_2), Ok(Record::GroupPartition { cursor: Cursor { committed: 4, next: 6, generation: 0 }, pending: Vec::new() }));
    }

    #[test]
    fn keys_round_trip_through_parts() {
        let n = |s: &str| Name::from(s);
        let keys = [
            Key::Meta,
            Key::Topic(n("t")),
            Key::Partition(n("t"), 3),
            Key::Chunk(n("t"), 3, 1 << 40),
            Key::Dedup(n("t"), n("id")),
            Key::Member(n("g"), n("m")),
            Key::GroupTopic(n("g"), n("t")),
            Key::Cursor(n("g"), n("t"), 255),
            Key::Pending(n("g"), n("t"), 1, 7),
            Key::Forwarded(n("bus/t/1>t.dlq/1")),
            Key::Replies(n("3f2a9c")),
            Key::Queue(n("emails")),
            Key::Job(n("emails"), n("42")),
            Key::Repeat(n("emails"), n("digest::::0 9 * * *")),
            Key::JobPage(n("emails"), u64::MAX - 7),
        ];
        for key in keys {
            let (kind, parts) = key.to_parts();
            assert_eq!(Key::from_parts(kind, &parts), Ok(key));
        }
        assert!(Key::from_parts(2, &[KeyPart::Str(n("t")), KeyPart::Num(1 << 33)]).is_err());
        assert!(Key::from_parts(10, &[]).is_err());
        assert!(Key::from_parts(1, &[KeyPart::Num(1)]).is_err());
    }
}
