//! The engine: the whole bus as a deterministic state machine.
//!
//! # How a driver uses it
//!
//! 1. Open it from the stored records: [`Engine::open`].
//! 2. Call [`Engine::housekeep`], then operations ([`Engine::send`],
//!    [`Engine::join`], [`Engine::poll`], [`Engine::ack`], [`Engine::fail`], ...),
//!    each with the current time. An operation either refuses (a [`FerryError`], nothing changed)
//!    or changes the engine and returns its result. Several operations may run
//!    before one commit: that is group commit.
//! 3. Take the writes with [`Engine::begin_commit`], store them atomically, and
//!    report the outcome with [`Engine::end_commit`]. On failure the engine undoes
//!    every operation since the last commit, and their callers must be told they
//!    failed: results are only true once their commit succeeded.
//! 4. Sleep until [`Engine::next_due_ms`] (or until new work arrives) and commit
//!    again then: housekeeping ([`Engine::tick`]) expires sessions, leases and
//!    retention.
//!
//! The engine never reads a clock, never awaits and never touches storage; its only
//! randomness (retry jitter) comes from the seed given to `open`.
//!
//! # Runs
//!
//! Under partition ordering a poll leases a *run* per partition: up to the
//! member's `maxBatchSize` consecutive offsets from the first unsettled one, in one
//! commit. The rules a driver relies on:
//!
//! - The run's first message is in flight ([`Pending::InFlight`], leased for
//!   `ackTimeoutMs`); the others are leased behind it ([`Pending::Leased`]), with no
//!   attempt counted. Acking the message in flight puts the next one in flight,
//!   leased from the ack's `now_ms`: the handler of a run's messages runs one after
//!   another, and `ackTimeoutMs` runs from when each starts.
//! - Acks are settled in offset order. One made ahead of its turn is held and
//!   settles when the messages before it have; the committed offset never passes
//!   an unsettled one. A driver queues a run's acks and commits them together
//!   with its next poll.
//! - When the message in flight fails (the handler failed, its lease ran out, or
//!   its member was lost), that is one failed attempt for it alone; the rest of the
//!   run is given back ([`Engine::release`] does the same without a failure),
//!   waiting with its attempts unchanged, and is handed out again once the failed
//!   message settles (Pub/Sub's rule for ordering keys).
//! - A message not deliverable yet (a retry in its backoff, a delayed message)
//!   ends a run and holds the partition.
//!
//! # State is records
//!
//! Every change is a record written through [`Engine::put`], which applies it to the
//! in-memory state and remembers the old value. The state is therefore always the
//! fold of the stored records: a context that opens the bus later rebuilds exactly
//! the same engine, and a failed commit is undone record by record.
//!
//! Every operation validates its whole input before its first write, so a refused
//! operation leaves no partial change behind.

mod dead_letters;
mod delivery;
mod forward;
mod group;
#[cfg(feature = "jobs")]
mod jobs;
mod log;
mod replies;
mod stats;

use std::collections::{BTreeMap, BTreeSet};

use super::config::BusConfig;
use super::error::{ErrorCode, FerryError, Result};
use super::fxhash::{FxHashMap, FxHashSet};
use super::limits::HOUSEKEEPING_INTERVAL_MS;
use super::message::{Chunk, Name};
use super::records::*;
use super::rng::Rng;
use super::vec_map::VecMap;

pub use delivery::{Delivery, Pause, PollLimit, Receipt, Wait};
pub use forward::Outbound;
pub use group::{SeekTo, Subscription};
#[cfg(feature = "jobs")]
pub use jobs::{FlowNode, JobOp, Limiter, Settlement, JOB_STATES};
pub use log::{RecordMetadata, TopicInfo};
pub use stats::{member_context, Browsed, BrowsedMessage, GroupPartitionStats, GroupStats, MemberStats, PartitionStats, Stats, TopicStats};

/// One write of a commit: a record to store, or `None` to delete the key.
pub type Write = (Key, Option<Record>);

/// The internal group whose cursor marks how far a dead-letter topic was redriven.
/// The colon keeps it out of the names users may pick.
pub(crate) const REDRIVE_GROUP: &str = "ferry:redrive";

/// The member a group's pulls and acks go through in one edge object: pulls come
/// from any Worker invocation, so the group is one member that is never idle for long.
pub const PULL_MEMBER: &str = "pull";

#[derive(Debug)]
pub struct Engine {
    config: BusConfig,
    rng: Rng,
    schema_version: Option<u32>,
    topics: VecMap<Name, TopicState>,
    dedup: FxHashMap<Name, FxHashMap<Name, DedupEntry>>,
    /// `(expires_ms, topic, id)` of every dedup entry, to expire them in order.
    dedup_expiry: BTreeSet<(u64, Name, Name)>,
    groups: VecMap<Name, GroupState>,
    txn: Txn,
    /// Partitions whose groups committed further since the last commit: their log
    /// is trimmed once per commit rather than once per ack.
    trim_due: FxHashSet<(Name, u32)>,
    /// Rotates where a poll starts, so one busy partition does not starve the others.
    poll_rotation: usize,
    /// The one partition this engine serves when the bus is split over several
    /// engines (one per partition at the edge); `None`: it serves the whole bus.
    /// See [`Engine::set_home`].
    home: Option<(Name, u32)>,
    /// [`Key::Forwarded`]: by source, the offset after the last message taken.
    forwarded: VecMap<Name, u64>,
    /// [`Key::Replies`], by context: a few (an origin's contexts), so a list.
    replies: Vec<(Name, StoredReplies)>,
    /// When [`Engine::housekeep`] next runs the housekeeping.
    housekeeping_due_ms: u64,
    /// Job queues (`ferry/bullmq`), by name.
    #[cfg(feature = "jobs")]
    queues: VecMap<Name, jobs::QueueState>,
    /// Events of job transitions since the last commit, comma-separated JSON
    /// objects ([`Engine::take_job_events`]).
    #[cfg(feature = "jobs")]
    job_events: String,
}

#[derive(Debug)]
struct TopicState {
    config: super::config::TopicConfig,
    partitions: Vec<PartitionState>,
    /// Round-robin position for messages without key or partition; per context, as
    /// a Kafka producer's is.
    round_robin: u32,
}

#[derive(Debug, Default)]
struct PartitionState {
    head: PartitionHead,
    chunks: BTreeMap<u64, Chunk>,
}

impl PartitionState {
    fn chunk_for(&self, offset: u64) -> Option<&Chunk> {
        self.chunks.range(..=offset).next_back().map(|(_, c)| c).filter(|c| offset < c.end_offset())
    }
}

#[derive(Debug, Default)]
struct GroupState {
    members: VecMap<Name, MemberRecord>,
    topics: VecMap<Name, GroupTopicState>,
}

#[derive(Debug, Default)]
struct GroupTopicState {
    record: GroupTopicRecord,
    cursors: VecMap<u32, CursorState>,
}

#[derive(Debug, Default)]
struct CursorState {
    cursor: Cursor,
    pending: BTreeMap<u64, Pending>,
}

/// Writes since the last commit, with each key's value before its first write.
#[derive(Debug, Default)]
struct Txn {
    undo: Vec<(Key, Option<Record>)>,
    touched: FxHashSet<Key>,
    /// Chunks that did not exist before this commit: later sends of the same commit
    /// may extend them instead of writing a chunk each.
    new_chunks: FxHashSet<Key>,
}

impl Engine {
    /// Rebuilds the bus from its stored records (none for a new bus).
    ///
    /// Refuses a store written by a newer schema with `INCOMPATIBLE_STORAGE`. A new
    /// bus writes its schema version with the first commit.
    pub fn open(config: BusConfig, seed: u64, records: impl IntoIterator<Item = (Key, Record)>) -> Result<Engine> {
        config.check()?;
        let mut engine = Engine {
            config,
            rng: Rng::new(seed),
            schema_version: None,
            topics: VecMap::new(),
            dedup: FxHashMap::default(),
            dedup_expiry: BTreeSet::new(),
            groups: VecMap::new(),
            txn: Txn::default(),
            trim_due: FxHashSet::default(),
            poll_rotation: 0,
            home: None,
            forwarded: VecMap::new(),
            replies: Vec::new(),
            housekeeping_due_ms: 0,
            #[cfg(feature = "jobs")]
            queues: VecMap::new(),
            #[cfg(feature = "jobs")]
            job_events: String::new(),
        };
        let mut records: Vec<(Key, Record)> = records.into_iter().collect();
        super::sort::sort_by(&mut records, |a, b| a.0.cmp(&b.0));
        if let Some((_, Record::Meta { schema_version })) = records.first() {
            refuse_newer(*schema_version)?;
        }
        for (key, record) in records {
            engine.write(&key, Some(record))?;
        }
        // A new bus writes its version; an older one is migrated (see SCHEMA_VERSION).
        if engine.schema_version != Some(SCHEMA_VERSION) {
            engine.put(Key::Meta, Some(Record::Meta { schema_version: SCHEMA_VERSION }));
        }
        Ok(engine)
    }

    /// Rebuilds the bus from every stored record, as [`Engine::open`] would, for a
    /// context too far behind to catch up change by change. What is this engine's
    /// own and not stored stays: its options, its random stream, its home.
    pub fn reload(&mut self, records: impl IntoIterator<Item = (Key, Record)>) -> Result<()> {
        let mut reloaded = Engine::open(self.config.clone(), 0, records)?;
        reloaded.rng = self.rng.clone();
        reloaded.home = self.home.clone();
        *self = reloaded;
        Ok(())
    }

    /// Applies what other contexts stored since this engine last looked: each
    /// changed key with its stored record, or `None` where it was deleted. The
    /// engine ends as [`Engine::open`] on the stored records would build it, at the
    /// cost of the changes instead of the whole bus. Call it between commits only.
    pub fn apply_stored(&mut self, mut changes: Vec<Write>) -> Result<()> {
        if let Some((_, Some(Record::Meta { schema_version }))) = changes.iter().find(|(key, _)| *key == Key::Meta) {
            refuse_newer(*schema_version)?;
        }
        // Parents before children for what is stored, children first for what is
        // deleted: the order a rebuild from scratch would see.
        super::sort::sort_by(&mut changes, |(a, ra), (b, rb)| match (ra.is_some(), rb.is_some()) {
            (true, true) => a.cmp(b),
            (false, false) => b.cmp(a),
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
        });
        for (key, record) in changes {
            self.write(&key, record)?;
        }
        Ok(())
    }

    /// Replaces the options that shape operations (`autoCreateTopics`,
    /// `maxMessageBytes`): a bus at the edge takes each caller's own.
    pub fn set_config(&mut self, config: BusConfig) -> Result<()> {
        config.check()?;
        self.config = config;
        Ok(())
    }

    /// Runs `f` with `config` in place of the engine's own options, which come back
    /// after: one context's bus running another context's call.
    pub fn with_config<T>(&mut self, config: BusConfig, f: impl FnOnce(&mut Engine) -> Result<T>) -> Result<T> {
        config.check()?;
        let own = std::mem::replace(&mut self.config, config);
        let out = f(self);
        self.config = own;
        out
    }

    /// True when operations since the last commit wrote something.
    pub fn has_writes(&self) -> bool {
        !self.txn.undo.is_empty() || !self.trim_due.is_empty()
    }

    /// Drops what every group has committed past, in the partitions whose groups
    /// moved since the last commit ([`Engine::begin_commit`] does it too): a read
    /// made in the same commit, such as `stats`, then sees the log as it will be
    /// stored.
    pub fn trim_settled(&mut self) {
        for (topic, partition) in std::mem::take(&mut self.trim_due) {
            self.trim_consumed(&topic, partition);
        }
    }

    /// The writes of every operation since the last commit, in first-write order,
    /// each key once with its latest value, in the stored layout: a cursor and its
    /// pending deliveries go as one record, and jobs as their pages. Call [`Engine::end_commit`] next.
    pub fn begin_commit(&mut self) -> Vec<Write> {
        self.trim_settled();
        // Chunks are complete for this commit: they keep no room to grow.
        for key in &self.txn.new_chunks {
            if let Key::Chunk(topic, partition, base) = key {
                if let Some(chunk) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(*partition as usize)).and_then(|p| p.chunks.get_mut(base)) {
                    chunk.shrink();
                }
            }
        }
        let mut cursors_written: FxHashSet<Key> = FxHashSet::default();
        let mut writes = Vec::with_capacity(self.txn.undo.len());
        for (key, _) in &self.txn.undo {
            let cursor_key = match key {
                Key::Pending(g, t, p, _) => Key::Cursor(g.clone(), t.clone(), *p),
                Key::Cursor(..) => key.clone(),
                #[cfg(feature = "jobs")]
                Key::Job(q, id) => {
                    let page = Key::JobPage(q.clone(), crate::core::jobs::job_page(id));
                    if cursors_written.insert(page.clone()) {
                        let stored = self.record(&page);
                        writes.push((page, stored));
                    }
                    continue;
                }
                other => {
                    writes.push((other.clone(), self.record(other)));
                    continue;
                }
            };
            if cursors_written.insert(cursor_key.clone()) {
                let Key::Cursor(g, t, p) = &cursor_key else { continue };
                let stored = self
                    .cursor(g, t, *p)
                    .map(|cs| Record::GroupPartition { cursor: cs.cursor, pending: cs.pending.iter().map(|(offset, pending)| (*offset, pending.clone())).collect() });
                writes.push((cursor_key, stored));
            }
        }
        writes
    }

    /// Reports whether the writes of [`Engine::begin_commit`] were stored. When they
    /// were not, every operation since the last commit is undone.
    pub fn end_commit(&mut self, stored: bool) {
        let undo = std::mem::take(&mut self.txn.undo);
        self.txn.touched.clear();
        self.txn.new_chunks.clear();
        if !stored {
            #[cfg(feature = "jobs")]
            self.job_events.clear();
            for (key, old) in undo.into_iter().rev() {
                // Restoring a value this engine held, children before parents.
                let restored = self.write(&key, old);
                debug_assert!(restored.is_ok(), "{restored:?}");
            }
            // A new or older bus whose first commit failed still owes storage its
            // schema version.
            if self.schema_version != Some(SCHEMA_VERSION) {
                self.put(Key::Meta, Some(Record::Meta { schema_version: SCHEMA_VERSION }));
            }
        }
    }

    /// Remembers `key`'s value before this commit's first write of it, for undo;
    /// what writes the key in place (not through [`Engine::put`]) calls it first.
    fn touch(&mut self, key: &Key) {
        if self.txn.touched.insert(key.clone()) {
            let old = self.record(key);
            if old.is_none() && matches!(key, Key::Chunk(..)) {
                self.txn.new_chunks.insert(key.clone());
            }
            self.txn.undo.push((key.clone(), old));
        }
    }

    /// Writes one record (or deletes it), remembering the old value for undo.
    fn put(&mut self, key: Key, record: Option<Record>) {
        self.touch(&key);
        // Records built by the engine always fit its state.
        let applied = self.write(&key, record);
        debug_assert!(applied.is_ok(), "{applied:?}");
    }

    /// The record under `key` in the current state.
    fn record(&self, key: &Key) -> Option<Record> {
        match key {
            Key::Meta => self.schema_version.map(|schema_version| Record::Meta { schema_version }),
            Key::Topic(t) => self.topics.get(t).map(|s| Record::Topic(s.config.clone())),
            Key::Partition(t, p) => self.partition(t, *p).map(|s| Record::Partition(s.head)),
            Key::Chunk(t, p, base) => self.partition(t, *p)?.chunks.get(base).cloned().map(Record::Chunk),
            Key::Dedup(t, id) => self.dedup.get(t)?.get(id).copied().map(Record::Dedup),
            Key::Member(g, m) => self.groups.get(g)?.members.get(m).map(|r| Record::Member(Box::new(r.clone()))),
            Key::GroupTopic(g, t) => self.groups.get(g)?.topics.get(t).map(|s| Record::GroupTopic(s.record.clone())),
            Key::Cursor(g, t, p) => self.cursor(g, t, *p).map(|c| Record::Cursor(c.cursor)),
            Key::Pending(g, t, p, o) => self.cursor(g, t, *p)?.pending.get(o).cloned().map(Record::Pending),
            Key::Forwarded(source) => self.forwarded.get(source).copied().map(Record::Forwarded),
            Key::Replies(context) => self.replies_of(context).cloned().map(Record::Replies),
            #[cfg(feature = "jobs")]
            Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..) => self.queue_record(key),
            // A build without job queues never writes their records.
            #[cfg(not(feature = "jobs"))]
            Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..) => None,
        }
    }

    /// Applies one record to the state; the only place state changes.
    fn write(&mut self, key: &Key, record: Option<Record>) -> Result<()> {
        let mismatch = || FerryError::storage(format!("record of the wrong kind under a key of kind {}", key.to_parts().0));
        match (key, record) {
            (Key::Meta, Some(Record::Meta { schema_version })) => self.schema_version = Some(schema_version),
            (Key::Meta, None) => self.schema_version = None,
            (Key::Topic(t), Some(Record::Topic(config))) => {
                let count = config.partitions as usize;
                let state = self.topics.get_or_insert_with(t.clone(), || TopicState { config: config.clone(), partitions: Vec::new(), round_robin: 0 });
                state.config = config;
                state.partitions.resize_with(count, PartitionState::default);
            }
            (Key::Topic(t), None) => {
                self.topics.remove(t);
            }
            (Key::Partition(t, p), record) => {
                let partition = self.partition_mut(t, *p).ok_or_else(|| FerryError::storage(format!("partition {t}/{p} without its topic")))?;
                partition.head = match record {
                    Some(Record::Partition(head)) => head,
                    None => PartitionHead::default(),
                    Some(_) => return Err(mismatch()),
                };
            }
            (Key::Chunk(t, p, base), record) => {
                let partition = self.partition_mut(t, *p).ok_or_else(|| FerryError::storage(format!("chunk of {t}/{p} without its topic")))?;
                match record {
                    Some(Record::Chunk(chunk)) => {
                        partition.chunks.insert(*base, chunk);
                    }
                    None => {
                        partition.chunks.remove(base);
                    }
                    Some(_) => return Err(mismatch()),
                }
            }
            (Key::Dedup(t, id), record) => {
                let ids = self.dedup.entry(t.clone()).or_default();
                if let Some(old) = ids.remove(id) {
                    self.dedup_expiry.remove(&(old.expires_ms, t.clone(), id.clone()));
                }
                match record {
                    Some(Record::Dedup(entry)) => {
                        self.dedup_expiry.insert((entry.expires_ms, t.clone(), id.clone()));
                        ids.insert(id.clone(), entry);
                    }
                    None => {
                        if ids.is_empty() {
                            self.dedup.remove(t);
                        }
                    }
                    Some(_) => return Err(mismatch()),
                }
            }
            (Key::Member(g, m), record) => {
                let group = self.groups.get_or_default(g.clone());
                match record {
                    Some(Record::Member(member)) => {
                        group.members.insert(m.clone(), *member);
                    }
                    None => {
                        group.members.remove(m);
                    }
                    Some(_) => return Err(mismatch()),
                }
                self.drop_group_if_empty(g);
            }
            (Key::GroupTopic(g, t), record) => {
                let group = self.groups.get_or_default(g.clone());
                match record {
                    Some(Record::GroupTopic(r)) => group.topics.get_or_default(t.clone()).record = r,
                    None => {
                        group.topics.remove(t);
                    }
                    Some(_) => return Err(mismatch()),
                }
                self.drop_group_if_empty(g);
            }
            (Key::Cursor(g, t, p), record) => {
                let cursors = &mut self.groups.get_or_default(g.clone()).topics.get_or_default(t.clone()).cursors;
                match record {
                    Some(Record::Cursor(c)) => cursors.get_or_default(*p).cursor = c,
                    Some(Record::GroupPartition { cursor, pending }) => {
                        let state = cursors.get_or_default(*p);
                        state.cursor = cursor;
                        // Inserted, not collected: collecting into a map sorts, a sort compiled for this alone.
                        state.pending.clear();
                        state.pending.extend(pending);
                    }
                    None => {
                        cursors.remove(p);
                    }
                    Some(_) => return Err(mismatch()),
                }
            }
            (Key::Pending(g, t, p, o), record) => {
                let cursor = self.groups.get_or_default(g.clone()).topics.get_or_default(t.clone()).cursors.get_or_default(*p);
                match record {
                    Some(Record::Pending(pending)) => {
                        cursor.pending.insert(*o, pending);
                    }
                    None => {
                        cursor.pending.remove(o);
                    }
                    Some(_) => return Err(mismatch()),
                }
            }
            (Key::Forwarded(source), Some(Record::Forwarded(next))) => {
                self.forwarded.insert(source.clone(), next);
            }
            (Key::Forwarded(source), None) => {
                self.forwarded.remove(source);
            }
            (Key::Replies(context), Some(Record::Replies(stored))) => {
                self.replies.retain(|(c, _)| c != context);
                self.replies.push((context.clone(), stored));
            }
            (Key::Replies(context), None) => {
                self.replies.retain(|(c, _)| c != context);
            }
            #[cfg(feature = "jobs")]
            (Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..), record) => return self.write_queue_record(key, record),
            // Left as stored by a build that has them ([`Record::Unread`]).
            #[cfg(not(feature = "jobs"))]
            (Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..), _) => {}
            (_, Some(_)) => return Err(mismatch()),
        }
        Ok(())
    }

    fn drop_group_if_empty(&mut self, group: &Name) {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty() && g.topics.is_empty()) {
            self.groups.remove(group);
        }
    }

    fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionState> {
        self.topics.get_mut(topic)?.partitions.get_mut(partition as usize)
    }

    fn cursor(&self, group: &str, topic: &str, partition: u32) -> Option<&CursorState> {
        self.groups.get(group)?.topics.get(topic)?.cursors.get(&partition)
    }

    /// The interned name of an existing topic.
    fn topic_name(&self, topic: &str) -> Option<Name> {
        self.topics.get_key_value(topic).map(|(name, _)| name.clone())
    }

    /// The earliest time anything is due: a session or lease expiring, a retry or a
    /// delayed message becoming deliverable, a dedup id or a retained message
    /// expiring. The driver should poll and [`Engine::tick`] by then.
    pub fn next_due_ms(&self) -> Option<u64> {
        let mut due = Earliest::default();
        self.offer_tick_times(&mut due);
        self.offer_deliverable_times(&mut due);
        due.0
    }

    /// The earliest time [`Engine::tick`] has work: a session or lease expiring, a
    /// dedup id or a retained message expiring. A driver that only delivers when
    /// asked (a pull consumer's object) wakes for this alone.
    pub fn next_tick_ms(&self) -> Option<u64> {
        let mut due = Earliest::default();
        self.offer_tick_times(&mut due);
        due.0
    }

    fn offer_tick_times(&self, due: &mut Earliest) {
        for group in self.groups.values() {
            for member in group.members.values() {
                due.offer(member.session_expires_ms);
            }
            for gt in group.topics.values() {
                for cs in gt.cursors.values() {
                    for pending in cs.pending.values() {
                        if let Pending::InFlight { deadline_ms, .. } = pending {
                            due.offer(*deadline_ms);
                        }
                    }
                }
            }
        }
        if let Some((expires_ms, _, _)) = self.dedup_expiry.first() {
            due.offer(*expires_ms);
        }
        #[cfg(feature = "jobs")]
        self.offer_job_times(due);
        for (name, topic) in &self.topics {
            if let Some(retention_ms) = topic.config.retention_ms {
                for partition in topic.partitions.iter().enumerate().filter(|(p, _)| self.serves(name, *p as u32)).map(|(_, s)| s) {
                    let low = partition.head.low;
                    if let Some((timestamp_ms, _)) = partition.chunk_for(low).and_then(|c| c.times(low)) {
                        due.offer(timestamp_ms.saturating_add(retention_ms));
                    }
                }
            }
        }
    }

    /// Retries after their backoff, and the next message of each partition with
    /// nothing unsettled (it may be delayed). Under partition ordering only a
    /// partition's first unsettled offset can be due: what waits behind it (the
    /// rest of a run given back) follows it.
    fn offer_deliverable_times(&self, due: &mut Earliest) {
        for group in self.groups.values() {
            for (topic, gt) in &group.topics {
                for (p, cs) in &gt.cursors {
                    let owner = gt.record.owners.get(*p as usize).and_then(Option::as_ref);
                    let ordering = owner.and_then(|o| group.members.get(o)).map_or(super::config::Ordering::Partition, |m| m.config.ordering);
                    let mut unsettled = cs.pending.values().filter(|pending| !matches!(pending, Pending::Acked)).peekable();
                    if unsettled.peek().is_none() {
                        // The next new message matters only when nothing earlier is
                        // unsettled: otherwise that earlier message's time governs.
                        if owner.is_some() {
                            if let Some((_, deliver_at_ms)) = self.partition(topic, *p).and_then(|s| s.chunk_for(cs.cursor.next)).and_then(|c| c.times(cs.cursor.next)) {
                                due.offer(deliver_at_ms);
                            }
                        }
                        continue;
                    }
                    let governing = if ordering == super::config::Ordering::Partition { 1 } else { usize::MAX };
                    for pending in unsettled.take(governing) {
                        if let Pending::Waiting { due_ms, .. } = pending {
                            due.offer(*due_ms);
                        }
                    }
                }
            }
        }
    }

    /// Housekeeping due at `now_ms`: expires members whose session ran out (their
    /// partitions move, their in-flight messages are redelivered), in-flight leases
    /// past `ackTimeoutMs` (a failed attempt), dedup ids past their window, and
    /// messages past `retentionMs`.
    pub fn tick(&mut self, now_ms: u64) {
        self.expire_members(now_ms);
        self.expire_leases(now_ms);
        self.expire_dedup(now_ms);
        self.expire_retention(now_ms);
        self.expire_replies(now_ms);
        #[cfg(feature = "jobs")]
        self.expire_jobs(now_ms);
    }

    /// [`Engine::tick`], when [`HOUSEKEEPING_INTERVAL_MS`] has passed since it last
    /// ran here (or the clock went back). Drivers call it first in every commit, so
    /// what comes due (messages past `retentionMs` above all) is done by the next
    /// operation, whether or not a consumer runs.
    pub fn housekeep(&mut self, now_ms: u64) {
        if now_ms >= self.housekeeping_due_ms || now_ms.saturating_add(HOUSEKEEPING_INTERVAL_MS) < self.housekeeping_due_ms {
            self.tick(now_ms);
            self.housekeeping_due_ms = now_ms.saturating_add(HOUSEKEEPING_INTERVAL_MS);
        }
    }
}

#[cfg(test)]
mod tests;

/// Storage written by a newer ferry is refused rather than misread.
fn refuse_newer(schema_version: u32) -> Result<()> {
    if schema_version > SCHEMA_VERSION {
        return Err(FerryError::new(
            ErrorCode::IncompatibleStorage,
            format!("the bus was written by schema version {schema_version}; this ferry reads up to {SCHEMA_VERSION}"),
        ));
    }
    Ok(())
}

/// The earliest of the times offered to it.
#[derive(Default)]
struct Earliest(Option<u64>);

impl Earliest {
    fn offer(&mut self, ms: u64) {
        self.0 = Some(self.0.map_or(ms, |earliest| earliest.min(ms)));
    }
}
