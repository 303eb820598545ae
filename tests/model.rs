//! Model-based property tests of the engine.
//!
//! Random operation sequences run against the engine and against a plain model of
//! the contract (pkg/README.md) written here: a `Vec` of messages per partition and, per group and
//! partition, a committed offset plus the offsets in flight, leased or waiting.
//! Every result (metadata, error codes, deliveries with their attempts,
//! ack/fail/release outcomes), the stats, the retained log and every stored
//! cursor with its pending deliveries must agree after every operation; at the
//! end, consumers that ack everything must drain every partition they own.
//!
//! Under partition ordering a poll hands out runs, as the engine documents them:
//! consecutive offsets of a partition from its first unsettled one, up to
//! `maxBatchSize`, the first in flight and the rest leased behind it. Acks ahead
//! of their turn settle when it comes; a failure, a lease running out or a lost
//! member counts an attempt for the message in flight only and gives the rest of
//! its run back, as does `release`, which counts none. The model checks itself
//! too: a group settles a partition's offsets in order, and each leased message
//! sits right behind its run's message in flight.
//!
//! A seek moves a group's position in one partition (below the first retained
//! offset, within, at the end, past it; to a time; while a run is in flight,
//! leased or waiting; before the group ever joined): the model computes where it
//! lands, drops everything pending there with no attempt counted, and moves the
//! position's generation on. Every delivery carries its generation; receipts from
//! before a seek, some of them for offsets, attempts and members handed out again
//! since, must settle nothing, and `holds` must say so.
//!
//! The model follows the engine only where the contract leaves the choice open: the
//! sticky assignment function; consumed messages trimmed at the commit; a lost
//! member's in-flight messages count as a failed attempt, redelivered at once;
//! a dead letter lands in its source partition, or by key / round-robin when the
//! dead-letter topic has fewer partitions; created dead-letter topics keep their
//! messages until redriven; a failed commit does not rewind round-robin; when
//! retention removes a run's message in flight, the rest of the run is given back
//! as when that message's lease runs out; a group that seeks before it joins has
//! a position in that partition alone until then.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferry::core::assign::sticky_assign;
use ferry::core::engine::{GroupPartitionStats, GroupStats, MemberStats, PartitionStats, TopicStats};
use ferry::core::limits::{MEMBER_ID_LEN_MAX, POLL_MAX};
use ferry::core::murmur2::partition_for_key;
use ferry::core::records::{Cursor, Key, Pending, Record};
use ferry::core::{
    BusConfig, ConsumerConfig, Engine, ErrorCode, FerryError, Message, Name, Ordering, OutgoingMessage, PollLimit, Receipt, RecordMetadata, RetryPolicy, SeekTo, Stats,
    Subscription, TopicConfig, TopicInfo, Value, ValueKind,
};
use ferry::runtime::block_on;
use ferry::store::{MemoryStore, Store, Version};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError};

const T0: u64 = 1_700_000_000_000;
/// Small, so that oversized messages are cheap to generate.
const MAX_MESSAGE_BYTES: u64 = 64;
/// `a.dlq` and `dead` are also dead-letter topics, so sends, subscriptions and
/// conflicting creations hit them too.
const TOPICS: [&str; 5] = ["a", "b", "c", "a.dlq", "dead"];
const BAD_NAMES: [&str; 4] = ["", "a b", "ü", "a/b"];
const REDRIVE_SOURCES: [&str; 6] = ["a.dlq", "b.dlq", "c.dlq", "dead", "a", "a b"];
/// The last group consumes with `ordering: "none"`, the others with `"partition"`.
const GROUPS: [&str; 3] = ["g1", "g2", "unordered"];
/// A group that seeks and never joins: its positions hold back what trimming drops.
const SEEK_ONLY_GROUP: &str = "archive";
const MEMBERS: [&str; 2] = ["m1", "m2"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "order-42"];
const IDS: [&str; 3] = ["id-0", "id-1", "id-2"];
const CUSTOM_DEAD_LETTER_TOPIC: &str = "dead";
const DLQ_ERROR_BYTES: usize = 1024;
/// The final drain's rounds: past the longest lease (30 s) of a delivery whose
/// ack was rolled back, and every backoff and delay.
const DRAIN_ROUNDS_MAX: usize = 40;
const DRAIN_ROUND_MS: u64 = 1_000;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// A header value as the model predicts it. Failure reasons the engine words
/// itself (ack timeouts, lost members) only have to mention their cause.
#[derive(Clone, Debug, PartialEq)]
enum Expected {
    Exact(String),
    Mentioning(String),
}

impl Expected {
    fn matches(&self, actual: &str) -> bool {
        match self {
            Expected::Exact(text) => text == actual,
            Expected::Mentioning(part) => actual.contains(part.as_str()),
        }
    }
}

#[derive(Clone, Debug)]
struct StoredMessage {
    timestamp_ms: u64,
    deliver_at_ms: u64,
    key: Option<String>,
    value: Value,
    headers: Vec<(String, Expected)>,
    id: Option<String>,
}

impl StoredMessage {
    fn sent(m: &OutgoingMessage, now_ms: u64) -> Self {
        StoredMessage {
            timestamp_ms: now_ms,
            deliver_at_ms: now_ms + m.delay_ms,
            key: m.key.clone(),
            value: m.value.clone(),
            headers: m.headers.iter().map(|(k, v)| (k.clone(), Expected::Exact(v.clone()))).collect(),
            id: m.id.clone(),
        }
    }

    fn exact_header(&self, name: &str) -> Option<&str> {
        match self.headers.iter().find(|(k, _)| k == name) {
            Some((_, Expected::Exact(value))) => Some(value),
            _ => None,
        }
    }

    fn matches(&self, offset: u64, actual: &Message) -> bool {
        actual.offset == offset
            && actual.timestamp_ms == self.timestamp_ms
            && actual.deliver_at_ms == self.deliver_at_ms
            && actual.key == self.key
            && actual.value == self.value
            && actual.id == self.id
            && actual.headers.len() == self.headers.len()
            && actual.headers.iter().zip(&self.headers).all(|((name, value), (want_name, want))| name == want_name && want.matches(value))
    }
}

#[derive(Clone, Debug, Default)]
struct PartitionModel {
    low: u64,
    expired: u64,
    /// Every message ever appended; the offset is the index.
    log: Vec<StoredMessage>,
}

impl PartitionModel {
    fn high(&self) -> u64 {
        self.log.len() as u64
    }

    fn append(&mut self, message: StoredMessage) -> u64 {
        self.log.push(message);
        self.high() - 1
    }
}

#[derive(Clone, Debug)]
struct SeenId {
    partition: u32,
    offset: u64,
    timestamp_ms: u64,
    expires_ms: u64,
}

#[derive(Clone, Debug)]
struct TopicModel {
    config: TopicConfig,
    partitions: Vec<PartitionModel>,
    round_robin: u32,
    seen_ids: HashMap<String, SeenId>,
}

impl TopicModel {
    fn new(config: TopicConfig) -> Self {
        let partitions = vec![PartitionModel::default(); config.partitions as usize];
        TopicModel { config, partitions, round_robin: 0, seen_ids: HashMap::new() }
    }

    fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Kafka's partition for a key, else the next round-robin one.
    fn pick_partition(&mut self, key: Option<&str>) -> u32 {
        match key {
            Some(key) => partition_for_key(key, self.partition_count()),
            None => {
                let p = self.round_robin % self.partition_count();
                self.round_robin = self.round_robin.wrapping_add(1);
                p
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Slot {
    InFlight {
        member: String,
        attempt: u32,
        deadline_ms: u64,
    },
    /// Behind its run's message in flight: no handler started, no attempt counted
    /// yet; `acked` when the member acked it ahead of its turn.
    Leased {
        member: String,
        attempt: u32,
        acked: bool,
    },
    /// `failed` 0: a delayed message skipped by an unordered group, or a first
    /// delivery given back. `error` is the failure's, none when given back.
    Waiting {
        failed: u32,
        due_ms: u64,
        error: Option<Expected>,
    },
    Acked,
}

impl Slot {
    /// When a waiting delivery is due.
    fn due_ms(&self) -> Option<u64> {
        match self {
            Slot::Waiting { due_ms, .. } => Some(*due_ms),
            _ => None,
        }
    }

    /// Whether the engine's pending delivery is this one.
    fn matches(&self, pending: &Pending) -> bool {
        match (self, pending) {
            (Slot::InFlight { member, attempt, deadline_ms }, Pending::InFlight { member: m, attempt: a, deadline_ms: d }) => {
                **m == *member && (a, d) == (attempt, deadline_ms)
            }
            (Slot::Leased { member, attempt, acked }, Pending::Leased { member: m, attempt: a, acked: k }) => **m == *member && (a, k) == (attempt, acked),
            (Slot::Waiting { failed, due_ms, error }, Pending::Waiting { failed: f, due_ms: d, error: e }) => {
                (f, d) == (failed, due_ms)
                    && match (error, e) {
                        (Some(want), Some(got)) => want.matches(got),
                        (want, got) => want.is_none() && got.is_none(),
                    }
            }
            (Slot::Acked, Pending::Acked) => true,
            _ => false,
        }
    }
}

/// How a member holds a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Its handler runs, within its lease.
    InFlight,
    /// Behind its run's message in flight.
    Leased,
}

#[derive(Clone, Debug)]
struct CursorModel {
    committed: u64,
    /// Offsets from here on were never handed out.
    next: u64,
    unsettled: BTreeMap<u64, Slot>,
    /// How many seeks moved this position: a receipt from an earlier generation
    /// holds nothing, even when its offset, attempt and member are handed out again.
    generation: u32,
}

impl CursorModel {
    fn at(offset: u64) -> Self {
        CursorModel { committed: offset, next: offset, unsettled: BTreeMap::new(), generation: 0 }
    }

    /// Moves the committed offset over offsets already acked.
    fn skip_acked(&mut self) {
        while self.unsettled.get(&self.committed) == Some(&Slot::Acked) {
            self.unsettled.remove(&self.committed);
            self.committed += 1;
        }
        self.next = self.next.max(self.committed);
    }

    /// Puts back a delivery for its `attempt`-th time as if it never happened:
    /// due at once, no attempt counted.
    fn give_back(&mut self, offset: u64, attempt: u32, now_ms: u64) {
        self.unsettled.insert(offset, Slot::Waiting { failed: attempt - 1, due_ms: now_ms, error: None });
    }

    /// Gives back the messages from `from` on that are leased behind their run's
    /// message in flight.
    fn give_back_run(&mut self, from: u64, now_ms: u64) {
        let mut offset = from;
        while let Some(&Slot::Leased { attempt, .. }) = self.unsettled.get(&offset) {
            self.give_back(offset, attempt, now_ms);
            offset += 1;
        }
    }
}

#[derive(Clone, Debug)]
struct GroupTopicModel {
    owners: Vec<Option<Name>>,
    dead_lettered: u64,
    /// By partition: a group that sought before it joined has a position only in
    /// the partitions it sought; joining gives it the others.
    cursors: BTreeMap<usize, CursorModel>,
}

impl GroupTopicModel {
    fn new(partitions: usize) -> Self {
        GroupTopicModel { owners: vec![None; partitions], dead_lettered: 0, cursors: BTreeMap::new() }
    }
}

#[derive(Clone, Debug)]
struct MemberModel {
    topics: Vec<String>,
    config: ConsumerConfig,
    session_expires_ms: u64,
}

#[derive(Clone, Debug, Default)]
struct GroupModel {
    members: BTreeMap<String, MemberModel>,
    topics: BTreeMap<String, GroupTopicModel>,
}

/// What one partition may hand out now, as `(offset, failed attempts so far)`.
type Candidates = Vec<(String, u32, Vec<(u64, u32)>)>;

/// One delivery: `(topic, partition, offset, attempt)`.
type Handout = (String, u32, u64, u32);

#[derive(Clone, Debug)]
struct Model {
    auto_create_topics: bool,
    topics: BTreeMap<String, TopicModel>,
    groups: BTreeMap<String, GroupModel>,
    /// How far each dead-letter topic was redriven, per partition; dead letters
    /// are kept until then.
    redriven: BTreeMap<String, Vec<u64>>,
    /// Partitions a group committed further in since the last commit: the engine
    /// trims their log with the commit, not with each ack.
    trim_due: BTreeSet<(String, usize)>,
}

fn valid_name(name: &str) -> bool {
    (1..=249).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn encoded_bytes(m: &OutgoingMessage) -> u64 {
    let key = m.key.as_ref().map_or(0, String::len);
    let headers: usize = m.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    (key + m.value.bytes.len() + headers) as u64
}

/// `min(maxBackoffMs, initialBackoffMs * multiplier^(failed-1))`, for the integer
/// multipliers the tests use.
fn backoff_ms(retry: &RetryPolicy, failed: u32) -> u64 {
    let mut delay = retry.initial_backoff_ms;
    for _ in 1..failed {
        delay = delay.saturating_mul(retry.multiplier as u64);
    }
    delay.min(retry.max_backoff_ms)
}

/// The longest prefix of `text` of at most `max` bytes.
fn prefix_of_bytes(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn dead_letter_topic_for(config: &ConsumerConfig, topic: &str) -> String {
    config.dead_letter_topic.clone().unwrap_or_else(|| format!("{topic}.dlq"))
}

impl Model {
    fn new(auto_create_topics: bool) -> Self {
        Model { auto_create_topics, topics: BTreeMap::new(), groups: BTreeMap::new(), redriven: BTreeMap::new(), trim_due: BTreeSet::new() }
    }

    /// Back to `before` after a failed commit. The round-robin position is per
    /// context, like a Kafka producer's, and is not rewound.
    fn roll_back_to(&mut self, mut before: Model) {
        for (name, topic) in &mut before.topics {
            if let Some(current) = self.topics.get(name) {
                topic.round_robin = current.round_robin;
            }
        }
        *self = before;
    }

    fn create_topic(&mut self, name: &str, config: &TopicConfig) -> Result<bool, ErrorCode> {
        if !valid_name(name) || !(1..=256).contains(&config.partitions) {
            return Err(ErrorCode::InvalidArgument);
        }
        match self.topics.get(name) {
            Some(existing) if existing.partition_count() == config.partitions => Ok(false),
            Some(_) => Err(ErrorCode::TopicConflict),
            None => {
                self.topics.insert(name.to_string(), TopicModel::new(config.clone()));
                Ok(true)
            }
        }
    }

    fn send(&mut self, topic: &str, messages: &[OutgoingMessage], now_ms: u64) -> Result<Vec<RecordMetadata>, ErrorCode> {
        if !valid_name(topic) || messages.is_empty() || messages.len() > 10_000 {
            return Err(ErrorCode::InvalidArgument);
        }
        // Built on a copy: a refused send stores nothing.
        let mut state = match self.topics.get(topic) {
            Some(existing) => existing.clone(),
            None if self.auto_create_topics => TopicModel::new(TopicConfig::default()),
            None => return Err(ErrorCode::UnknownTopic),
        };
        let partitions = state.partition_count();
        for m in messages {
            if encoded_bytes(m) > MAX_MESSAGE_BYTES {
                return Err(ErrorCode::MessageTooLarge);
            }
            if m.partition.is_some_and(|p| p >= partitions) {
                return Err(ErrorCode::UnknownTopic);
            }
            // ferry-* headers are the bus's own: a forged ferry-dlq-topic would let
            // redrive move (and drop) what is no dead letter.
            if m.headers.iter().any(|(name, _)| name.starts_with("ferry-")) {
                return Err(ErrorCode::InvalidArgument);
            }
        }
        let highs_before: Vec<u64> = state.partitions.iter().map(PartitionModel::high).collect();
        let window_ms = state.config.dedup_window_ms;
        let metadata = |partition, offset, timestamp_ms, duplicate| RecordMetadata { topic: Name::from(topic), partition, offset, timestamp_ms, duplicate };
        let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
        let mut results: Vec<RecordMetadata> = Vec::new();
        for m in messages {
            let id = m.id.as_deref().filter(|_| window_ms > 0);
            if let Some(id) = id {
                if let Some(&first) = first_in_batch.get(id) {
                    results.push(RecordMetadata { duplicate: true, ..results[first].clone() });
                    continue;
                }
                first_in_batch.insert(id, results.len());
                if let Some(seen) = state.seen_ids.get(id).filter(|seen| seen.expires_ms > now_ms) {
                    results.push(metadata(seen.partition, seen.offset, seen.timestamp_ms, true));
                    continue;
                }
            }
            let p = match (m.partition, &m.key) {
                (Some(p), _) => p,
                (None, key) => state.pick_partition(key.as_deref()),
            };
            let offset = state.partitions[p as usize].append(StoredMessage::sent(m, now_ms));
            if let Some(id) = id {
                let seen = SeenId { partition: p, offset, timestamp_ms: now_ms, expires_ms: now_ms + window_ms };
                state.seen_ids.insert(id.to_string(), seen);
            }
            results.push(metadata(p, offset, now_ms, false));
        }
        if let Some(max_depth) = state.config.max_depth {
            for (p, partition) in state.partitions.iter().enumerate() {
                let added = partition.high() - highs_before[p];
                let consumed_to = self.min_committed(topic, p).unwrap_or(0).max(partition.low);
                let depth = highs_before[p].saturating_sub(consumed_to);
                if added > 0 && depth + added > max_depth {
                    return Err(ErrorCode::QueueFull);
                }
            }
        }
        self.topics.insert(topic.to_string(), state);
        Ok(results)
    }

    /// The lowest committed offset over everything that reads a partition: the
    /// groups of its topic and, for a dead-letter topic, its redrive position.
    fn min_committed(&self, topic: &str, p: usize) -> Option<u64> {
        let groups = self.groups.values().filter_map(|g| g.topics.get(topic)?.cursors.get(&p)).map(|cursor| cursor.committed);
        groups.chain(self.redriven.get(topic).map(|cursors| cursors[p])).min()
    }

    fn commit(&mut self) {
        for (topic, p) in std::mem::take(&mut self.trim_due) {
            self.trim(&topic, p);
        }
    }

    /// With no retention limit a message is dropped once everything reading it
    /// committed past it; with one, only once it is that old (Kafka's rule).
    fn trim(&mut self, topic: &str, p: usize) {
        if self.topics[topic].config.retention_ms.is_some() {
            return;
        }
        let Some(min) = self.min_committed(topic, p) else { return };
        let partition = &self.topics[topic].partitions[p];
        if min > partition.low {
            let high = partition.high();
            self.advance_low(topic, p, min.min(high), 0);
        }
    }

    fn advance_low(&mut self, topic: &str, p: usize, new_low: u64, expired: u64) {
        let partition = &mut self.topics.get_mut(topic).expect("topic").partitions[p];
        partition.low = new_low;
        partition.expired += expired;
        for group in self.groups.values_mut() {
            let Some(cursor) = group.topics.get_mut(topic).and_then(|gt| gt.cursors.get_mut(&p)) else { continue };
            if cursor.committed < new_low {
                cursor.unsettled.retain(|&offset, _| offset >= new_low);
                cursor.committed = new_low;
                // Offsets above the new low that the group acked are consumed too.
                cursor.skip_acked();
            }
        }
        if let Some(cursors) = self.redriven.get_mut(topic) {
            cursors[p] = cursors[p].max(new_low);
        }
    }

    fn join(&mut self, group: &str, member: &str, subscriptions: &[(&str, bool)], config: &ConsumerConfig, now_ms: u64) -> Result<(), ErrorCode> {
        if !valid_name(group) {
            return Err(ErrorCode::InvalidArgument);
        }
        for (topic, _) in subscriptions {
            let dead_letter_topic = dead_letter_topic_for(config, topic);
            if !valid_name(topic) || !valid_name(&dead_letter_topic) || dead_letter_topic == *topic {
                return Err(ErrorCode::InvalidArgument);
            }
            if !self.topics.contains_key(*topic) && !self.auto_create_topics {
                return Err(ErrorCode::UnknownTopic);
            }
        }
        let mut topics: Vec<String> = Vec::new();
        for (topic, from_beginning) in subscriptions {
            let state = self.topics.entry(topic.to_string()).or_insert_with(|| TopicModel::new(TopicConfig::default()));
            let group_state = self.groups.entry(group.to_string()).or_default();
            let gt = group_state.topics.entry(topic.to_string()).or_insert_with(|| GroupTopicModel::new(state.partitions.len()));
            // A partition the group sought in keeps that position.
            for (p, partition) in state.partitions.iter().enumerate() {
                gt.cursors.entry(p).or_insert_with(|| CursorModel::at(if *from_beginning { partition.low } else { partition.high() }));
            }
            if !topics.iter().any(|t| t == topic) {
                topics.push(topic.to_string());
            }
        }
        let record = MemberModel { topics, config: config.clone(), session_expires_ms: now_ms + config.session_timeout_ms };
        self.groups.entry(group.to_string()).or_default().members.insert(member.to_string(), record);
        self.rebalance(group);
        Ok(())
    }

    fn rebalance(&mut self, group: &str) {
        let Some(state) = self.groups.get_mut(group) else { return };
        for (topic, gt) in state.topics.iter_mut() {
            let members: Vec<Name> = state.members.iter().filter(|(_, m)| m.topics.contains(topic)).map(|(name, _)| Name::from(name.as_str())).collect();
            gt.owners = sticky_assign(&gt.owners, &members);
        }
    }

    fn heartbeat(&mut self, group: &str, member: &str, now_ms: u64) -> bool {
        let Some(record) = self.groups.get_mut(group).and_then(|g| g.members.get_mut(member)) else { return false };
        record.session_expires_ms = now_ms + record.config.session_timeout_ms;
        true
    }

    /// Removes a member; what it had in flight counts as a failed attempt,
    /// redelivered without a backoff.
    fn remove_member(&mut self, group: &str, member: &str, now_ms: u64, error: Expected) {
        let Some(record) = self.groups.get(group).and_then(|g| g.members.get(member)).cloned() else { return };
        let mut in_flight = Vec::new();
        for (topic, gt) in &self.groups[group].topics {
            for (&p, cursor) in &gt.cursors {
                for (offset, slot) in &cursor.unsettled {
                    if let Slot::InFlight { member: holder, attempt, .. } = slot {
                        if holder == member {
                            in_flight.push((topic.clone(), p, *offset, *attempt));
                        }
                    }
                }
            }
        }
        for (topic, p, offset, attempt) in in_flight {
            self.failed_attempt(group, &topic, p, offset, attempt, error.clone(), &record.config, now_ms, false);
        }
        self.groups.get_mut(group).expect("group").members.remove(member);
        self.rebalance(group);
    }

    fn leave(&mut self, group: &str, member: &str, now_ms: u64) {
        self.remove_member(group, member, now_ms, Expected::Mentioning(member.to_string()));
    }

    /// Per partition the member owns, in the order of its subscriptions, what it
    /// may be handed now: under partition ordering the longest run it could give.
    fn candidates(&self, group: &str, member: &str, now_ms: u64) -> Candidates {
        let Some(state) = self.groups.get(group) else { return Vec::new() };
        let Some(record) = state.members.get(member) else { return Vec::new() };
        let mut out = Vec::new();
        for topic in &record.topics {
            let gt = &state.topics[topic];
            for (p, owner) in gt.owners.iter().enumerate() {
                if owner.as_deref() == Some(member) {
                    out.push((topic.clone(), p as u32, self.deliverable(&gt.cursors[&p], &self.topics[topic].partitions[p], record.config.ordering, now_ms)));
                }
            }
        }
        out
    }

    fn deliverable(&self, cursor: &CursorModel, partition: &PartitionModel, ordering: Ordering, now_ms: u64) -> Vec<(u64, u32)> {
        let due_retry = |slot: &Slot| match slot {
            Slot::Waiting { failed, due_ms, .. } if *due_ms <= now_ms => Some(*failed),
            _ => None,
        };
        let is_due = |offset: u64| partition.log[offset as usize].deliver_at_ms <= now_ms;
        match ordering {
            // A run: consecutive offsets from the first unsettled one, each a retry
            // that is due or a new message past its delay, up to the first that is
            // neither (in flight, leased, waiting, delayed, or the end).
            Ordering::Partition => {
                let first = cursor.unsettled.iter().find(|(_, slot)| **slot != Slot::Acked).map_or(cursor.next, |(offset, _)| *offset);
                let mut run = Vec::new();
                for offset in first.. {
                    let failed = match cursor.unsettled.get(&offset) {
                        Some(slot) => due_retry(slot),
                        None => (offset >= cursor.next && offset < partition.high() && is_due(offset)).then_some(0),
                    };
                    let Some(failed) = failed else { break };
                    run.push((offset, failed));
                }
                run
            }
            Ordering::None => {
                let retries = cursor.unsettled.iter().filter_map(|(offset, slot)| due_retry(slot).map(|failed| (*offset, failed)));
                let fresh = (cursor.next..partition.high()).filter(|&offset| is_due(offset)).map(|offset| (offset, 0));
                retries.chain(fresh).collect()
            }
        }
    }

    /// What a poll within `limit` hands out when the engine starts at the
    /// `start`-th of `candidates`: each partition in turn gives a run, at most
    /// `maxBatchSize` long, that counts as one, or (unordered) messages that count
    /// a run each, until the messages or the runs are used up.
    fn poll_from(candidates: &Candidates, config: &ConsumerConfig, limit: PollLimit, start: usize) -> Vec<Handout> {
        let max = limit.messages.min(POLL_MAX);
        let mut out = Vec::new();
        let mut runs = 0;
        for i in 0..candidates.len() {
            let remaining = max - out.len();
            if remaining == 0 || runs == limit.runs {
                break;
            }
            let (topic, p, offsets) = &candidates[(start + i) % candidates.len()];
            let (take, counted) = match config.ordering {
                Ordering::Partition => {
                    let take = offsets.len().min(remaining).min(config.batch_size_max as usize);
                    (take, usize::from(take > 0))
                }
                Ordering::None => {
                    let take = offsets.len().min(remaining).min(limit.runs - runs);
                    (take, take)
                }
            };
            runs += counted;
            out.extend(offsets[..take].iter().map(|(offset, failed)| (topic.clone(), *p, *offset, failed + 1)));
        }
        out
    }

    /// Records what a poll handed out: the first delivery of each partition's run
    /// is in flight, the rest leased behind it; unordered, each is in flight.
    fn handed_out(&mut self, group: &str, member: &str, deliveries: &[Handout], now_ms: u64) {
        if deliveries.is_empty() {
            return;
        }
        let state = self.groups.get_mut(group).expect("group");
        let config = &state.members[member].config;
        let (deadline_ms, runs) = (now_ms + config.ack_timeout_ms, config.ordering == Ordering::Partition);
        let mut previous: Option<(&str, u32)> = None;
        for (topic, p, offset, attempt) in deliveries {
            let log = &self.topics[topic].partitions[*p as usize].log;
            let cursor = state.topics.get_mut(topic).and_then(|gt| gt.cursors.get_mut(&(*p as usize))).expect("cursor");
            if *offset >= cursor.next {
                // Delayed messages an unordered group passed wait until they are due.
                for skipped in cursor.next..*offset {
                    let due_ms = log[skipped as usize].deliver_at_ms.max(now_ms);
                    cursor.unsettled.entry(skipped).or_insert(Slot::Waiting { failed: 0, due_ms, error: None });
                }
                cursor.next = offset + 1;
            }
            let (member, attempt) = (member.to_string(), *attempt);
            let slot = if runs && previous == Some((topic.as_str(), *p)) {
                Slot::Leased { member, attempt, acked: false }
            } else {
                Slot::InFlight { member, attempt, deadline_ms }
            };
            cursor.unsettled.insert(*offset, slot);
            previous = Some((topic.as_str(), *p));
        }
    }

    fn cursor_mut(&mut self, group: &str, topic: &str, p: usize) -> &mut CursorModel {
        self.groups.get_mut(group).and_then(|g| g.topics.get_mut(topic)).and_then(|gt| gt.cursors.get_mut(&p)).expect("cursor")
    }

    fn generation(&self, group: &str, topic: &str, p: usize) -> Option<u32> {
        Some(self.groups.get(group)?.topics.get(topic)?.cursors.get(&p)?.generation)
    }

    fn slot(&self, group: &str, topic: &str, p: usize, offset: u64) -> Option<&Slot> {
        self.groups.get(group)?.topics.get(topic)?.cursors.get(&p)?.unsettled.get(&offset)
    }

    /// How `member` holds `receipt`'s delivery, if it still does: in flight with a
    /// lease that has not run out, or leased behind its run's message in flight;
    /// and handed out since the last seek of its partition.
    fn held(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> Option<Held> {
        if self.generation(group, &receipt.topic, receipt.partition as usize)? != receipt.generation {
            return None;
        }
        match self.slot(group, &receipt.topic, receipt.partition as usize, receipt.offset)? {
            Slot::InFlight { member: holder, attempt, deadline_ms } if holder == member && *attempt == receipt.attempt && now_ms < *deadline_ms => Some(Held::InFlight),
            Slot::Leased { member: holder, attempt, .. } if holder == member && *attempt == receipt.attempt => Some(Held::Leased),
            _ => None,
        }
    }

    /// An ack in flight settles and moves its run on; one ahead of its turn waits
    /// for it.
    fn ack(&mut self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        let (topic, p, offset) = (&*receipt.topic, receipt.partition as usize, receipt.offset);
        match self.held(group, member, receipt, now_ms) {
            None => return false,
            Some(Held::InFlight) => {
                self.settle(group, topic, p, offset);
                self.advance_run(group, topic, p, offset + 1, now_ms);
            }
            Some(Held::Leased) => {
                let early = Slot::Leased { member: member.to_string(), attempt: receipt.attempt, acked: true };
                self.cursor_mut(group, topic, p).unsettled.insert(offset, early);
            }
        }
        true
    }

    /// A failed attempt when in flight; a message leased behind its run's message
    /// in flight cannot fail before its turn: it and the rest of its run are given
    /// back.
    fn fail(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, now_ms: u64) -> bool {
        let (topic, p, offset) = (&*receipt.topic, receipt.partition as usize, receipt.offset);
        match self.held(group, member, receipt, now_ms) {
            None => return false,
            Some(Held::InFlight) => {
                let config = self.groups[group].members[member].config.clone();
                let error = Expected::Exact(prefix_of_bytes(error, DLQ_ERROR_BYTES));
                self.failed_attempt(group, topic, p, offset, receipt.attempt, error, &config, now_ms, true);
            }
            Some(Held::Leased) => self.cursor_mut(group, topic, p).give_back_run(offset, now_ms),
        }
        true
    }

    /// Gives back a delivery whose handler never started, with the rest of its run.
    fn release(&mut self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        if self.held(group, member, receipt, now_ms).is_none() {
            return false;
        }
        let cursor = self.cursor_mut(group, &receipt.topic, receipt.partition as usize);
        cursor.give_back(receipt.offset, receipt.attempt, now_ms);
        cursor.give_back_run(receipt.offset + 1, now_ms);
        true
    }

    /// Moves `group`'s position in a partition: below the first retained offset
    /// goes there, past the end is refused, a time goes to the first retained
    /// message sent then or later (else the end). Everything pending there is
    /// dropped, no attempt counted, and the generation moves on. A group with no
    /// position there gets one in that partition alone; a missing topic is made
    /// as a subscription makes it.
    fn seek(&mut self, group: &str, topic: &str, partition: u32, to: SeekTo) -> Result<u64, ErrorCode> {
        if !valid_name(group) || !valid_name(topic) {
            return Err(ErrorCode::InvalidArgument);
        }
        let default = TopicModel::new(TopicConfig::default());
        let state = match self.topics.get(topic) {
            Some(state) => state,
            None if self.auto_create_topics => &default,
            None => return Err(ErrorCode::UnknownTopic),
        };
        let Some(log) = state.partitions.get(partition as usize) else { return Err(ErrorCode::UnknownTopic) };
        let offset = match to {
            SeekTo::Offset(offset) if offset > log.high() => return Err(ErrorCode::InvalidArgument),
            SeekTo::Offset(offset) => offset.max(log.low),
            SeekTo::Timestamp(ms) => (log.low..log.high()).find(|&o| log.log[o as usize].timestamp_ms >= ms).unwrap_or(log.high()),
        };
        let state = self.topics.entry(topic.to_string()).or_insert(default);
        let gt = self.groups.entry(group.to_string()).or_default().topics.entry(topic.to_string()).or_insert_with(|| GroupTopicModel::new(state.partitions.len()));
        let p = partition as usize;
        let generation = gt.cursors.get(&p).map_or(0, |cursor| cursor.generation + 1);
        gt.cursors.insert(p, CursorModel { generation, ..CursorModel::at(offset) });
        self.trim_due.insert((topic.to_string(), p));
        Ok(offset)
    }

    /// After the message before `offset` settled: the run's messages acked ahead of
    /// their turn settle, then its next message goes in flight, its lease running
    /// from now.
    fn advance_run(&mut self, group: &str, topic: &str, p: usize, mut offset: u64, now_ms: u64) {
        while let Some(Slot::Leased { member, attempt, acked }) = self.slot(group, topic, p, offset).cloned() {
            if !acked {
                let deadline_ms = now_ms + self.groups[group].members[&member].config.ack_timeout_ms;
                self.cursor_mut(group, topic, p).unsettled.insert(offset, Slot::InFlight { member, attempt, deadline_ms });
                return;
            }
            self.settle(group, topic, p, offset);
            offset += 1;
        }
    }

    fn settle(&mut self, group: &str, topic: &str, p: usize, offset: u64) {
        let cursor = self.cursor_mut(group, topic, p);
        if offset != cursor.committed {
            cursor.unsettled.insert(offset, Slot::Acked);
            return;
        }
        cursor.unsettled.remove(&offset);
        cursor.committed = offset + 1;
        cursor.skip_acked();
        self.trim_due.insert((topic.to_string(), p));
    }

    /// A failed attempt of a message in flight; the rest of its run is given back.
    #[allow(clippy::too_many_arguments)]
    fn failed_attempt(&mut self, group: &str, topic: &str, p: usize, offset: u64, attempt: u32, error: Expected, config: &ConsumerConfig, now_ms: u64, backoff: bool) {
        self.cursor_mut(group, topic, p).give_back_run(offset + 1, now_ms);
        if attempt >= config.retry.max_attempts {
            self.dead_letter(group, topic, p, offset, attempt, error, config, now_ms);
            self.settle(group, topic, p, offset);
            return;
        }
        let wait_ms = if backoff { backoff_ms(&config.retry, attempt) } else { 0 };
        let waiting = Slot::Waiting { failed: attempt, due_ms: now_ms + wait_ms, error: Some(error) };
        self.cursor_mut(group, topic, p).unsettled.insert(offset, waiting);
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter(&mut self, group: &str, topic: &str, p: usize, offset: u64, attempts: u32, error: Expected, config: &ConsumerConfig, now_ms: u64) {
        let source = &self.topics[topic];
        let message = source.partitions[p].log[offset as usize].clone();
        let source_partitions = source.partitions.len();
        let dead_letter_topic = dead_letter_topic_for(config, topic);
        if !self.topics.contains_key(&dead_letter_topic) {
            self.topics.insert(dead_letter_topic.clone(), TopicModel::new(TopicConfig::with_partitions(source_partitions as u32)));
        }
        // A topic used as it is is redriven from where its dead letters start.
        if !self.redriven.contains_key(&dead_letter_topic) {
            let ends = self.topics[&dead_letter_topic].partitions.iter().map(|p| p.high()).collect();
            self.redriven.insert(dead_letter_topic.clone(), ends);
        }
        let target_topic = self.topics.get_mut(&dead_letter_topic).expect("dead-letter topic");
        let target = if p < target_topic.partitions.len() { p as u32 } else { target_topic.pick_partition(message.key.as_deref()) };
        // The message's own ferry-dlq-* headers give way to the new ones.
        let mut headers: Vec<_> = message.headers.iter().filter(|(name, _)| !name.starts_with("ferry-dlq-")).cloned().collect();
        for (name, value) in [
            ("ferry-dlq-topic", topic.to_string()),
            ("ferry-dlq-partition", p.to_string()),
            ("ferry-dlq-offset", offset.to_string()),
            ("ferry-dlq-group", group.to_string()),
            ("ferry-dlq-attempts", attempts.to_string()),
        ] {
            headers.push((name.to_string(), Expected::Exact(value)));
        }
        headers.push(("ferry-dlq-error".to_string(), error));
        let dead_letter = StoredMessage { timestamp_ms: now_ms, deliver_at_ms: now_ms, headers, ..message };
        target_topic.partitions[target as usize].append(dead_letter);
        self.groups.get_mut(group).expect("group").topics.get_mut(topic).expect("group topic").dead_lettered += 1;
    }

    /// Expired sessions, then expired leases, then retention.
    fn tick(&mut self, now_ms: u64) {
        let mut expired_members = Vec::new();
        for (group, state) in &self.groups {
            for (member, record) in &state.members {
                if record.session_expires_ms <= now_ms {
                    expired_members.push((group.clone(), member.clone()));
                }
            }
        }
        for (group, member) in expired_members {
            self.remove_member(&group, &member, now_ms, Expected::Mentioning(member.clone()));
        }

        let mut expired_leases = Vec::new();
        for (group, state) in &self.groups {
            for (topic, gt) in &state.topics {
                for (&p, cursor) in &gt.cursors {
                    for (offset, slot) in &cursor.unsettled {
                        if let Slot::InFlight { member, attempt, deadline_ms } = slot {
                            if *deadline_ms <= now_ms {
                                let config = state.members[member].config.clone();
                                expired_leases.push((group.clone(), topic.clone(), p, *offset, *attempt, config));
                            }
                        }
                    }
                }
            }
        }
        for (group, topic, p, offset, attempt, config) in expired_leases {
            self.failed_attempt(&group, &topic, p, offset, attempt, Expected::Mentioning("ACK_TIMEOUT".into()), &config, now_ms, true);
        }

        let mut retention_moves = Vec::new();
        for (name, topic) in &self.topics {
            let Some(retention_ms) = topic.config.retention_ms else { continue };
            for (p, partition) in topic.partitions.iter().enumerate() {
                let new_low = (partition.low..partition.high()).find(|&o| partition.log[o as usize].timestamp_ms + retention_ms > now_ms).unwrap_or(partition.high());
                if new_low > partition.low {
                    // Expired: what some group had not consumed when it was removed.
                    let consumed = self.min_committed(name, p).unwrap_or(partition.low).clamp(partition.low, new_low);
                    retention_moves.push((name.clone(), p, new_low, new_low - consumed));
                }
            }
        }
        for (topic, p, new_low, expired) in retention_moves {
            self.advance_low(&topic, p, new_low, expired);
            // A run whose message in flight expired gives the rest back, as when
            // that message's lease runs out: nothing else would ever move it on.
            for group in self.groups.values_mut() {
                if let Some(cursor) = group.topics.get_mut(&topic).and_then(|gt| gt.cursors.get_mut(&p)) {
                    cursor.give_back_run(new_low, now_ms);
                }
            }
        }
    }

    fn redrive(&mut self, from: &str, limit: Option<u64>, now_ms: u64) -> Result<u64, ErrorCode> {
        let limit = limit.unwrap_or(10_000);
        if !valid_name(from) || !(1..=10_000).contains(&limit) {
            return Err(ErrorCode::InvalidArgument);
        }
        let Some(source) = self.topics.get(from) else {
            return if self.auto_create_topics { Ok(0) } else { Err(ErrorCode::UnknownTopic) };
        };
        // Only a topic the bus dead-lettered into is redriven.
        if !self.redriven.contains_key(from) {
            return Err(ErrorCode::InvalidArgument);
        }
        let mut moves: Vec<(StoredMessage, String)> = Vec::new();
        let mut positions = Vec::new();
        for (p, partition) in source.partitions.iter().enumerate() {
            let start = self.redriven.get(from).map_or(0, |cursors| cursors[p]).max(partition.low);
            let mut end = start;
            // It stops at a message that is not a dead letter: never dropped unmoved.
            while end < partition.high() && (moves.len() as u64) < limit {
                let message = &partition.log[end as usize];
                let Some(target) = message.exact_header("ferry-dlq-topic").filter(|t| valid_name(t)) else { break };
                moves.push((message.clone(), target.to_string()));
                end += 1;
            }
            if end > start {
                positions.push((p, end));
            }
        }
        if !self.auto_create_topics && moves.iter().any(|(_, target)| !self.topics.contains_key(target)) {
            return Err(ErrorCode::UnknownTopic);
        }
        let moved = moves.len() as u64;
        for (message, target) in moves {
            let state = self.topics.entry(target).or_insert_with(|| TopicModel::new(TopicConfig::default()));
            let original = message.exact_header("ferry-dlq-partition").and_then(|p| p.parse::<u32>().ok()).filter(|p| *p < state.partition_count());
            let p = original.unwrap_or_else(|| state.pick_partition(message.key.as_deref()));
            let headers = message.headers.iter().filter(|(name, _)| !name.starts_with("ferry-dlq-")).cloned().collect();
            state.partitions[p as usize].append(StoredMessage { timestamp_ms: now_ms, deliver_at_ms: now_ms, headers, ..message });
        }
        for (p, end) in positions {
            self.redriven.get_mut(from).expect("redrive position")[p] = end;
            self.trim(from, p);
        }
        Ok(moved)
    }

    fn stats(&self) -> Stats {
        let topics = self
            .topics
            .iter()
            .map(|(name, topic)| TopicStats {
                topic: Name::from(name.as_str()),
                dead_letter: self.redriven.contains_key(name),
                partitions: topic
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(p, s)| PartitionStats { partition: p as u32, low_offset: s.low, high_offset: s.high(), depth: s.high() - s.low, expired: s.expired })
                    .collect(),
            })
            .collect();
        let mut groups = Vec::new();
        let mut members = Vec::new();
        for (group, state) in &self.groups {
            for (member, record) in &state.members {
                let last_seen_ms = record.session_expires_ms - record.config.session_timeout_ms;
                members.push(MemberStats { group_id: Name::from(group.as_str()), member_id: Name::from(member.as_str()), last_seen_ms });
            }
            for (topic, gt) in &state.topics {
                let partitions = gt
                    .cursors
                    .iter()
                    .map(|(&p, cursor)| {
                        let count = |f: &dyn Fn(&Slot) -> bool| cursor.unsettled.values().filter(|slot| f(slot)).count() as u64;
                        GroupPartitionStats {
                            partition: p as u32,
                            committed_offset: cursor.committed,
                            lag: self.topics[topic].partitions[p].high() - cursor.committed,
                            in_flight: count(&|slot| matches!(slot, Slot::InFlight { .. } | Slot::Leased { .. })),
                            retrying: count(&|slot| matches!(slot, Slot::Waiting { failed, .. } if *failed > 0)),
                            owner: gt.owners[p].clone(),
                        }
                    })
                    .collect();
                groups.push(GroupStats { group_id: Name::from(group.as_str()), topic: Name::from(topic.as_str()), dead_lettered: gt.dead_lettered, partitions });
            }
        }
        Stats { topics, groups, members }
    }

    /// The latest a driver sleeping until `next_due_ms` may wake: when a retry or a
    /// given-back run of a partition with an owner is due (under partition
    /// ordering only its first unsettled offset holds it), or, with nothing
    /// unsettled, when its next message's delay ends.
    fn wake_by_ms(&self) -> Option<u64> {
        let mut wake_by_ms = None::<u64>;
        for state in self.groups.values() {
            for (topic, gt) in &state.topics {
                for (&p, cursor) in &gt.cursors {
                    let Some(owner) = gt.owners[p].as_deref() else { continue };
                    let governing = if state.members[owner].config.ordering == Ordering::Partition { 1 } else { usize::MAX };
                    let mut unsettled = cursor.unsettled.values().filter(|slot| **slot != Slot::Acked).peekable();
                    let partition = &self.topics[topic].partitions[p];
                    let due = match unsettled.peek() {
                        None => partition.log.get(cursor.next as usize).map(|m| m.deliver_at_ms),
                        Some(_) => unsettled.take(governing).filter_map(Slot::due_ms).min(),
                    };
                    wake_by_ms = wake_by_ms.into_iter().chain(due).min();
                }
            }
        }
        wake_by_ms
    }

    fn topic_infos(&self) -> Vec<TopicInfo> {
        self.topics
            .iter()
            .map(|(name, t)| TopicInfo {
                topic: Name::from(name.as_str()),
                partitions: t.partition_count(),
                retention_ms: t.config.retention_ms,
                max_depth: t.config.max_depth,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct MessageSpec {
    key: Option<&'static str>,
    kind: ValueKind,
    oversize: bool,
    id: Option<&'static str>,
    partition: Option<u32>,
    delay_ms: u64,
    header: Option<(&'static str, &'static str)>,
}

/// Which unsettled delivery an ack, fail or release is for.
#[derive(Clone, Debug)]
enum Pick {
    /// The last one handed out: acking it before earlier ones leaves acked offsets
    /// above an unsettled one in unordered groups, and acks it ahead of its turn
    /// when it ends a run.
    Newest,
    Any(usize),
    /// One the model has leased behind its run's message in flight (any, when there
    /// are none): acked ahead of its turn, failed or released before it starts.
    Leased(usize),
    /// One from before a seek of its partition (any, when there are none), at best
    /// one whose offset, attempt and member were handed out again since.
    Stale(usize),
}

/// Where a seek goes, relative to the partition as the model has it when the
/// seek runs (generated operations cannot know its offsets).
#[derive(Clone, Debug)]
enum SeekSpec {
    /// This far below the first retained offset (the first itself when it is 0).
    BelowLow(u64),
    /// One of the retained offsets or the end, by index.
    Within(usize),
    AtHigh,
    /// This far past the end, plus one: refused.
    PastHigh(u64),
    /// This far from the group's committed offset: into or behind a run in
    /// flight, retries waiting, or what it consumed.
    FromCommitted(i64),
    /// The time a retained message (by index) was sent, plus this.
    SentAt(usize, i64),
    /// The clock now, plus this; or a time before any message was sent.
    Now(i64),
}

/// Which member an operation is for.
#[derive(Clone, Debug)]
enum Who {
    /// One of the members in their groups now (any, when there are none).
    Live(usize),
    /// Any name, a member or not.
    Named(usize, usize),
}

#[derive(Clone, Debug)]
enum Op {
    CreateTopic {
        name: &'static str,
        config: TopicConfig,
    },
    Send {
        topic: &'static str,
        messages: Vec<MessageSpec>,
    },
    Join {
        group: usize,
        member: usize,
        subscriptions: Vec<(&'static str, bool)>,
    },
    Poll {
        who: Who,
        limit: PollLimit,
    },
    /// Settles one of the deliveries handed out so far (stale ones included), as
    /// the member that got it or, with `as_other_member`, as the other one.
    Ack {
        pick: Pick,
        as_other_member: bool,
    },
    Fail {
        pick: Pick,
        long_error: bool,
    },
    /// A consumer stopping gives back a delivery whose handler never started.
    Release {
        pick: Pick,
    },
    /// With `held` (and deliveries unsettled), the partition of one of them instead
    /// of the one named, by the group it was handed to: a driver seeking while a
    /// run is in flight, leased, or waiting to be retried.
    Seek {
        group: &'static str,
        topic: &'static str,
        partition: u32,
        held: Option<usize>,
        to: SeekSpec,
    },
    Leave {
        who: Who,
    },
    Heartbeat {
        who: Who,
    },
    /// The clock moves on; with `heartbeat_first` every member heartbeats at the
    /// new time before the tick, as a live driver does.
    AdvanceAndTick {
        ms: u64,
        heartbeat_first: bool,
    },
    Redrive {
        from: &'static str,
        limit: Option<u64>,
    },
    /// The operation, then a commit that fails: the engine must be as before.
    RolledBack(Box<Op>),
    /// Operations whose writes share one commit, as a driver's group commit has a
    /// seek share it with other consumers' polls and acks.
    Together(Vec<Op>),
}

fn topic_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![20 => select(TOPICS.to_vec()), 1 => select(BAD_NAMES.to_vec())]
}

fn message_spec() -> impl Strategy<Value = MessageSpec> {
    (
        prop::option::weighted(0.6, select(KEYS.to_vec())),
        select(vec![ValueKind::String, ValueKind::Bytes, ValueKind::Json]),
        prop::bool::weighted(0.02),
        prop::option::weighted(0.25, select(IDS.to_vec())),
        prop::option::weighted(0.08, 0u32..5),
        prop_oneof![8 => Just(0u64), 1 => Just(300), 1 => Just(1_500)],
        prop_oneof![10 => Just(None), 2 => Just(Some(("h", "1"))), 1 => Just(Some(("ferry-dlq-topic", "b")))],
    )
        .prop_map(|(key, kind, oversize, id, partition, delay_ms, header)| MessageSpec { key, kind, oversize, id, partition, delay_ms, header })
}

fn topic_config() -> impl Strategy<Value = TopicConfig> {
    (
        prop_oneof![12 => 1u32..=4, 1 => select(vec![0u32, 300])],
        prop_oneof![4 => Just(None), 1 => Just(Some(2_000u64)), 1 => Just(Some(5_000))],
        prop_oneof![6 => Just(None), 1 => Just(Some(3u64))],
        prop_oneof![6 => Just(86_400_000u64), 1 => Just(0), 1 => Just(1_500)],
    )
        .prop_map(|(partitions, retention_ms, max_depth, dedup_window_ms)| TopicConfig { partitions, retention_ms, max_depth, dedup_window_ms })
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        2 => Just(Pick::Newest),
        2 => any::<usize>().prop_map(Pick::Any),
        1 => any::<usize>().prop_map(Pick::Leased),
        2 => any::<usize>().prop_map(Pick::Stale),
    ]
}

fn seek_spec() -> impl Strategy<Value = SeekSpec> {
    prop_oneof![
        1 => (0u64..3).prop_map(SeekSpec::BelowLow),
        3 => any::<usize>().prop_map(SeekSpec::Within),
        1 => Just(SeekSpec::AtHigh),
        1 => prop_oneof![3 => 0u64..3, 1 => Just(u64::MAX - 1)].prop_map(SeekSpec::PastHigh),
        4 => (-3i64..=2).prop_map(SeekSpec::FromCommitted),
        2 => (any::<usize>(), -1i64..=1).prop_map(|(index, delta)| SeekSpec::SentAt(index, delta)),
        1 => select(vec![i64::MIN, -1_000, 0, 1]).prop_map(SeekSpec::Now),
    ]
}

fn seek_op() -> impl Strategy<Value = Op> {
    (seek_group(), topic_name(), prop_oneof![12 => Just(0u32), 2 => 1u32..=3, 1 => Just(4)], prop::option::weighted(0.6, any::<usize>()), seek_spec())
        .prop_map(|(group, topic, partition, held, to)| Op::Seek { group, topic, partition, held, to })
}

/// The groups that consume, now and then one that only ever seeks, or a bad name.
fn seek_group() -> impl Strategy<Value = &'static str> {
    prop_oneof![12 => select(GROUPS.to_vec()), 2 => Just(SEEK_ONLY_GROUP), 1 => select(BAD_NAMES.to_vec())]
}

/// Plain numbers (messages, each in a run of its own at most) and a run loop's
/// free slots with a run length that may be under `maxBatchSize`.
fn poll_limit() -> impl Strategy<Value = PollLimit> {
    prop_oneof![
        4 => (1usize..=3).prop_map(PollLimit::from),
        1 => Just(PollLimit::from(50)),
        2 => (1usize..=3, 1usize..=4).prop_map(|(runs, run_messages)| PollLimit::runs(runs, run_messages)),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![4 => any::<usize>().prop_map(Who::Live), 1 => (0..GROUPS.len(), 0..MEMBERS.len()).prop_map(|(g, m)| Who::Named(g, m))]
}

fn basic_op() -> impl Strategy<Value = Op> {
    let group = 0..GROUPS.len();
    let member = 0..MEMBERS.len();
    prop_oneof![
        2 => (topic_name(), topic_config()).prop_map(|(name, config)| Op::CreateTopic { name, config }),
        6 => (topic_name(), prop_oneof![40 => prop::collection::vec(message_spec(), 1..=5), 1 => Just(Vec::new())])
            .prop_map(|(topic, messages)| Op::Send { topic, messages }),
        3 => (group, member, prop::collection::vec((topic_name(), prop::bool::weighted(0.7)), 1..=2))
            .prop_map(|(group, member, subscriptions)| Op::Join { group, member, subscriptions }),
        8 => (who(), poll_limit()).prop_map(|(who, limit)| Op::Poll { who, limit }),
        6 => (pick(), prop::bool::weighted(0.1)).prop_map(|(pick, as_other_member)| Op::Ack { pick, as_other_member }),
        3 => (pick(), prop::bool::weighted(0.2)).prop_map(|(pick, long_error)| Op::Fail { pick, long_error }),
        1 => pick().prop_map(|pick| Op::Release { pick }),
        2 => seek_op(),
        1 => who().prop_map(|who| Op::Leave { who }),
        1 => who().prop_map(|who| Op::Heartbeat { who }),
        3 => (prop_oneof![8 => select(vec![0u64, 1, 100, 500, 1_000, 2_500, 3_000]), 1 => Just(20_000)], prop::bool::weighted(0.7))
            .prop_map(|(ms, heartbeat_first)| Op::AdvanceAndTick { ms, heartbeat_first }),
        1 => (select(REDRIVE_SOURCES.to_vec()), prop::option::weighted(0.5, 1u64..=3)).prop_map(|(from, limit)| Op::Redrive { from, limit }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let together = (prop::collection::vec(prop_oneof![1 => seek_op(), 2 => basic_op()], 2..=3), any::<bool>()).prop_map(|(ops, rolled_back)| {
        if rolled_back {
            Op::RolledBack(Box::new(Op::Together(ops)))
        } else {
            Op::Together(ops)
        }
    });
    prop_oneof![20 => basic_op(), 1 => basic_op().prop_map(|op| Op::RolledBack(Box::new(op))), 1 => together]
}

/// Topics are usually auto-created with the defaults by the first send or join;
/// creating some first gives retention, depth limits and partitions a chance.
fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let setup = prop::collection::vec((select(TOPICS.to_vec()), topic_config()).prop_map(|(name, config)| Op::CreateTopic { name, config }), 0..=3);
    (setup, prop::collection::vec(op(), 1..max_len)).prop_map(|(mut setup, ops)| {
        setup.extend(ops);
        setup
    })
}

/// Exact backoffs (no jitter) so the model can predict every retry time; runs
/// short enough for their length and the poll limits to cut them.
fn consumer_config(ordering: Ordering) -> impl Strategy<Value = ConsumerConfig> {
    (
        select(vec![1u32, 2, 3, 100]),
        1u32..=3,
        select(vec![100u64, 1_000]),
        select(vec![1u32, 2, 3]),
        select(vec![250u64, 5_000]),
        select(vec![500u64, 30_000]),
        select(vec![3_000u64, 10_000]),
        prop::option::weighted(0.2, Just(CUSTOM_DEAD_LETTER_TOPIC)),
    )
        .prop_map(move |(batch_size_max, max_attempts, initial_backoff_ms, multiplier, max_backoff_ms, ack_timeout_ms, session_timeout_ms, dead_letter_topic)| {
            ConsumerConfig {
                retry: RetryPolicy { max_attempts, initial_backoff_ms, multiplier: f64::from(multiplier), max_backoff_ms, jitter: false },
                dead_letter_topic: dead_letter_topic.map(String::from),
                ack_timeout_ms,
                session_timeout_ms,
                heartbeat_interval_ms: 50,
                ordering,
                concurrency: 1,
                batch_size_max,
            }
        })
}

fn group_configs() -> impl Strategy<Value = [ConsumerConfig; 3]> {
    (consumer_config(Ordering::Partition), consumer_config(Ordering::Partition), consumer_config(Ordering::None)).prop_map(|(a, b, c)| [a, b, c])
}

// ---------------------------------------------------------------------------
// The harness: one operation on both, then compare
// ---------------------------------------------------------------------------

fn code<T>(result: Result<T, FerryError>) -> Result<T, ErrorCode> {
    result.map_err(|e| e.code)
}

/// Every retained message of every partition.
fn logs(engine: &Engine) -> Vec<(Name, u32, Vec<Message>)> {
    let mut out = Vec::new();
    for topic in engine.topics() {
        for p in 0..topic.partitions {
            out.push((topic.topic.clone(), p, engine.read_log(&topic.topic, p, 0, usize::MAX).expect("read_log of an existing partition")));
        }
    }
    out
}

struct Harness {
    bus_config: BusConfig,
    engine: Engine,
    model: Model,
    configs: [ConsumerConfig; 3],
    now_ms: u64,
    /// `(group, member, receipt)` of deliveries not yet settled by this test.
    receipts: Vec<(usize, usize, Receipt)>,
    values_sent: u64,
    /// When set, every commit is stored here and the engine reopened from it.
    store: Option<MemoryStore>,
    /// The store's version after the last commit: only this engine writes it.
    stored_version: Version,
    /// With a store: an engine that only ever sees each commit's stored records (as
    /// another context of a shared bus does) and must stay the live one.
    follower: Option<Engine>,
    /// Every cursor as the last commit that wrote it stored it, with its pending
    /// deliveries, keyed `Key::Cursor`: the model must hold the same.
    stored_cursors: BTreeMap<Key, (Cursor, Vec<(u64, Pending)>)>,
}

impl Harness {
    fn new(auto_create_topics: bool, configs: [ConsumerConfig; 3], store: Option<MemoryStore>) -> Self {
        let bus_config = BusConfig { auto_create_topics, max_message_bytes: MAX_MESSAGE_BYTES };
        let engine = Engine::open(bus_config.clone(), 7, Vec::new()).expect("open");
        let follower = store.as_ref().map(|_| Engine::open(bus_config.clone(), 7, Vec::new()).expect("open"));
        let mut harness = Harness {
            bus_config,
            engine,
            model: Model::new(auto_create_topics),
            configs,
            now_ms: T0,
            receipts: Vec::new(),
            values_sent: 0,
            store,
            stored_version: 0,
            follower,
            stored_cursors: BTreeMap::new(),
        };
        harness.commit();
        harness
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        if let Op::RolledBack(inner) = op {
            let stats = self.engine.stats();
            let logs_before = logs(&self.engine);
            let model = self.model.clone();
            self.apply(inner)?;
            let _ = self.engine.begin_commit();
            self.engine.end_commit(false);
            self.model.roll_back_to(model);
            prop_assert_eq!(self.engine.stats(), stats, "a failed commit must change nothing");
            prop_assert_eq!(logs(&self.engine), logs_before, "a failed commit must change nothing");
            prop_assert!(!self.engine.has_writes());
        } else {
            self.apply(op)?;
            self.commit();
        }
        self.check_state()?;
        if self.store.is_some() {
            self.check_reopened()?;
        }
        Ok(())
    }

    fn commit(&mut self) {
        self.model.commit();
        let writes = self.engine.begin_commit();
        if let Some(store) = &self.store {
            let stored = writes.clone();
            self.stored_version = block_on(store.transact(Some(self.stored_version), |fresh| {
                assert!(fresh.is_none(), "only this engine writes the store");
                Ok(stored)
            }))
            .expect("memory store commit");
        }
        if let Some(follower) = &mut self.follower {
            // Through the byte encoding, as IndexedDB hands records over.
            let stored = writes.iter().map(|(key, record)| (key.clone(), record.as_ref().map(|r| Record::decode(key, &r.encode()).expect("decode")))).collect();
            follower.apply_stored(stored).expect("apply stored records");
        }
        for (key, record) in writes {
            match record {
                Some(Record::GroupPartition { cursor, pending }) => self.stored_cursors.insert(key, (cursor, pending)),
                _ => self.stored_cursors.remove(&key),
            };
        }
        self.engine.end_commit(true);
    }

    fn outgoing(&mut self, specs: &[MessageSpec]) -> Vec<OutgoingMessage> {
        specs
            .iter()
            .map(|spec| {
                self.values_sent += 1;
                // Digits are a valid string, byte string and JSON value alike.
                let text = if spec.oversize { "9".repeat(MAX_MESSAGE_BYTES as usize + 1) } else { self.values_sent.to_string() };
                let value = match spec.kind {
                    ValueKind::String => Value::string(text),
                    ValueKind::Bytes => Value::bytes(text.into_bytes()),
                    ValueKind::Json => Value::json(text),
                };
                OutgoingMessage {
                    key: spec.key.map(String::from),
                    value,
                    headers: spec.header.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    id: spec.id.map(String::from),
                    delay_ms: spec.delay_ms,
                    partition: spec.partition,
                }
            })
            .collect()
    }

    /// `(group, member)` indices of the members in their groups now.
    fn live_members(&self) -> Vec<(usize, usize)> {
        let mut live = Vec::new();
        for (g, group) in GROUPS.iter().enumerate() {
            for (m, member) in MEMBERS.iter().enumerate() {
                if self.model.groups.get(*group).is_some_and(|state| state.members.contains_key(*member)) {
                    live.push((g, m));
                }
            }
        }
        live
    }

    /// `(group, member)` indices.
    fn resolve(&self, who: &Who) -> (usize, usize) {
        match who {
            Who::Named(group, member) => (*group, *member),
            Who::Live(pick) => {
                let live = self.live_members();
                if live.is_empty() {
                    (pick % GROUPS.len(), pick / GROUPS.len() % MEMBERS.len())
                } else {
                    live[pick % live.len()]
                }
            }
        }
    }

    /// One of the unsettled receipts (removed unless `keep`), or one that matches
    /// nothing when there are none.
    fn pick_receipt(&mut self, pick: &Pick, keep: bool) -> (usize, usize, Receipt) {
        if self.receipts.is_empty() {
            return (0, 0, Receipt { topic: Name::from("a"), partition: 0, offset: 0, attempt: 1, generation: 0 });
        }
        let matching = |matches: &dyn Fn(&str, &str, &Receipt) -> bool| -> Vec<usize> {
            (0..self.receipts.len())
                .filter(|&i| {
                    let (group, member, receipt) = &self.receipts[i];
                    matches(GROUPS[*group], MEMBERS[*member], receipt)
                })
                .collect()
        };
        let preferred = match pick {
            Pick::Leased(_) => matching(&|group, member, receipt| self.model.held(group, member, receipt, self.now_ms) == Some(Held::Leased)),
            Pick::Stale(_) => {
                let current = |group: &str, receipt: &Receipt| self.model.generation(group, &receipt.topic, receipt.partition as usize);
                let stale = matching(&|group, _, receipt| current(group, receipt).is_some_and(|generation| generation != receipt.generation));
                // The same delivery handed out again since: only the generation tells them apart.
                let shadowing: Vec<usize> = stale
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let (group, member, receipt) = &self.receipts[i];
                        let again = Receipt { generation: current(GROUPS[*group], receipt).unwrap_or_default(), ..receipt.clone() };
                        self.model.held(GROUPS[*group], MEMBERS[*member], &again, self.now_ms).is_some()
                    })
                    .collect();
                if shadowing.is_empty() {
                    stale
                } else {
                    shadowing
                }
            }
            Pick::Newest | Pick::Any(_) => Vec::new(),
        };
        let index = match pick {
            Pick::Newest => self.receipts.len() - 1,
            Pick::Any(n) => n % self.receipts.len(),
            Pick::Leased(n) | Pick::Stale(n) if preferred.is_empty() => n % self.receipts.len(),
            Pick::Leased(n) | Pick::Stale(n) => preferred[n % preferred.len()],
        };
        if keep {
            self.receipts[index].clone()
        } else {
            self.receipts.remove(index)
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now_ms = self.now_ms;
        match op {
            Op::CreateTopic { name, config } => {
                let got = code(self.engine.create_topic(name, config.clone()));
                prop_assert_eq!(got, self.model.create_topic(name, config));
            }
            Op::Send { topic, messages } => {
                let outgoing = self.outgoing(messages);
                let got = code(self.engine.send(topic, &outgoing, now_ms));
                prop_assert_eq!(got, self.model.send(topic, &outgoing, now_ms));
            }
            Op::Join { group, member, subscriptions } => {
                let subs: Vec<Subscription> = subscriptions.iter().map(|(t, from_beginning)| Subscription::new(*t, *from_beginning)).collect();
                let config = &self.configs[*group];
                let got = code(self.engine.join(GROUPS[*group], MEMBERS[*member], &subs, config, now_ms));
                prop_assert_eq!(got, self.model.join(GROUPS[*group], MEMBERS[*member], subscriptions, config, now_ms));
            }
            Op::Poll { who, limit } => {
                let (group, member) = self.resolve(who);
                self.poll(group, member, *limit)?;
            }
            Op::Ack { pick, as_other_member } => {
                let (group, member, receipt) = self.pick_receipt(pick, *as_other_member);
                let member = if *as_other_member { 1 - member } else { member };
                self.check_holds(group, member, &receipt)?;
                let got = self.engine.ack(GROUPS[group], MEMBERS[member], &receipt, now_ms);
                prop_assert_eq!(got, self.model.ack(GROUPS[group], MEMBERS[member], &receipt, now_ms), "ack of {:?}", receipt);
            }
            Op::Fail { pick, long_error } => {
                let (group, member, receipt) = self.pick_receipt(pick, false);
                self.check_holds(group, member, &receipt)?;
                // Past 1 KiB, in two-byte characters, so the cut must respect them.
                let error = if *long_error { "é".repeat(600) } else { "boom".to_string() };
                let got = self.engine.fail(GROUPS[group], MEMBERS[member], &receipt, &error, now_ms);
                prop_assert_eq!(got, self.model.fail(GROUPS[group], MEMBERS[member], &receipt, &error, now_ms), "fail of {:?}", receipt);
            }
            Op::Release { pick } => {
                let (group, member, receipt) = self.pick_receipt(pick, false);
                self.check_holds(group, member, &receipt)?;
                let got = self.engine.release(GROUPS[group], MEMBERS[member], &receipt, now_ms);
                prop_assert_eq!(got, self.model.release(GROUPS[group], MEMBERS[member], &receipt, now_ms), "release of {:?}", receipt);
            }
            Op::Seek { group, topic, partition, held, to } => {
                let (group, topic, partition) = match held.filter(|_| !self.receipts.is_empty()) {
                    Some(n) => {
                        let (group, _, receipt) = &self.receipts[n % self.receipts.len()];
                        (GROUPS[*group], &*receipt.topic, receipt.partition)
                    }
                    None => (*group, *topic, *partition),
                };
                let to = self.seek_to(group, topic, partition, to);
                // Alone in its commit, a refused seek must write nothing; after other
                // operations, change nothing they left.
                let before = self.engine.has_writes().then(|| self.engine.stats());
                let got = code(self.engine.seek(group, topic, partition, to));
                let refused = got.is_err();
                prop_assert_eq!(got, self.model.seek(group, topic, partition, to), "seek by {} of {}/{} to {:?}", group, topic, partition, to);
                let unchanged = match &before {
                    None => !self.engine.has_writes(),
                    Some(stats) => self.engine.stats() == *stats,
                };
                prop_assert!(!refused || unchanged, "a refused seek changed something");
            }
            Op::Leave { who } => {
                let (group, member) = self.resolve(who);
                self.engine.leave(GROUPS[group], MEMBERS[member], now_ms);
                self.model.leave(GROUPS[group], MEMBERS[member], now_ms);
            }
            Op::Heartbeat { who } => {
                let (group, member) = self.resolve(who);
                let got = self.engine.heartbeat(GROUPS[group], MEMBERS[member], now_ms);
                prop_assert_eq!(got, self.model.heartbeat(GROUPS[group], MEMBERS[member], now_ms));
            }
            Op::AdvanceAndTick { ms, heartbeat_first } => {
                self.now_ms += ms;
                if *heartbeat_first {
                    for group in GROUPS {
                        for member in MEMBERS {
                            let got = self.engine.heartbeat(group, member, self.now_ms);
                            prop_assert_eq!(got, self.model.heartbeat(group, member, self.now_ms));
                        }
                    }
                }
                self.engine.tick(self.now_ms);
                self.model.tick(self.now_ms);
            }
            Op::Redrive { from, limit } => {
                let got = code(self.engine.redrive(from, *limit, &[], now_ms));
                prop_assert_eq!(got, self.model.redrive(from, *limit, now_ms));
            }
            Op::RolledBack(inner) => self.apply(inner)?,
            Op::Together(ops) => {
                for op in ops {
                    self.apply(op)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the engine says a receipt still counts, as a run loop asks before
    /// each message of a run, must be whether the model has it held.
    fn check_holds(&self, group: usize, member: usize, receipt: &Receipt) -> Result<(), TestCaseError> {
        let (group, member) = (GROUPS[group], MEMBERS[member]);
        let held = self.model.held(group, member, receipt, self.now_ms).is_some();
        prop_assert_eq!(self.engine.holds(group, member, receipt, self.now_ms), held, "holds of {:?} by {}/{}", receipt, group, member);
        Ok(())
    }

    /// The position a seek spec names in the partition as the model has it now
    /// (an empty one when the topic or partition does not exist).
    fn seek_to(&self, group: &str, topic: &str, partition: u32, spec: &SeekSpec) -> SeekTo {
        let empty = PartitionModel::default();
        let log = self.model.topics.get(topic).and_then(|t| t.partitions.get(partition as usize)).unwrap_or(&empty);
        let retained = log.high() - log.low;
        let committed = self.model.groups.get(group).and_then(|g| g.topics.get(topic)?.cursors.get(&(partition as usize))).map_or(log.low, |c| c.committed);
        match *spec {
            SeekSpec::BelowLow(by) => SeekTo::Offset(log.low.saturating_sub(by + 1)),
            SeekSpec::Within(index) => SeekTo::Offset(log.low + index as u64 % (retained + 1)),
            SeekSpec::AtHigh => SeekTo::Offset(log.high()),
            SeekSpec::PastHigh(by) => SeekTo::Offset(log.high().saturating_add(by + 1)),
            SeekSpec::FromCommitted(delta) => SeekTo::Offset(committed.saturating_add_signed(delta)),
            SeekSpec::SentAt(index, delta) if retained > 0 => {
                SeekTo::Timestamp(log.log[(log.low + index as u64 % retained) as usize].timestamp_ms.saturating_add_signed(delta))
            }
            SeekSpec::SentAt(_, delta) | SeekSpec::Now(delta) => SeekTo::Timestamp(self.now_ms.saturating_add_signed(delta)),
        }
    }

    /// The engine starts each poll at a rotating partition, so the poll must match
    /// what the model hands out from some starting partition.
    fn poll(&mut self, group: usize, member: usize, limit: PollLimit) -> Result<(), TestCaseError> {
        let (group_name, member_name) = (GROUPS[group], MEMBERS[member]);
        let candidates = self.model.candidates(group_name, member_name, self.now_ms);
        let deliveries = self.engine.poll(group_name, member_name, limit, self.now_ms).map_err(|e| TestCaseError::fail(format!("poll refused: {e}")))?;
        let got: Vec<Handout> = deliveries.iter().map(|d| (d.topic.to_string(), d.partition, d.message.offset, d.attempt)).collect();
        let allowed = match self.model.groups.get(group_name).and_then(|g| g.members.get(member_name)) {
            Some(record) if !candidates.is_empty() => (0..candidates.len()).any(|start| Model::poll_from(&candidates, &record.config, limit, start) == got),
            _ => got.is_empty(),
        };
        prop_assert!(allowed, "poll of {}/{} ({:?}) at {} handed out {:?}; the model has {:?}", group_name, member_name, limit, self.now_ms, got, candidates);
        for d in &deliveries {
            let stored = &self.model.topics[&*d.topic].partitions[d.partition as usize].log[d.message.offset as usize];
            prop_assert!(stored.matches(d.message.offset, &d.message), "delivered {:?}, the model stored {:?}", d, stored);
            let generation = self.model.generation(group_name, &d.topic, d.partition as usize);
            prop_assert_eq!(Some(d.generation), generation, "generation of {:?}", d);
            self.receipts.push((group, member, d.receipt()));
        }
        self.model.handed_out(group_name, member_name, &got, self.now_ms);
        Ok(())
    }

    /// Faults stop and every member acks what it is handed, each run in order, until
    /// nothing is left to hand out, with a heartbeat and a tick each round: every
    /// partition with an owner must end consumed, each of its messages acked or
    /// dead-lettered.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..DRAIN_ROUNDS_MAX {
            if self.drained() {
                return Ok(());
            }
            self.run(&Op::AdvanceAndTick { ms: DRAIN_ROUND_MS, heartbeat_first: true })?;
            for (group, member) in self.live_members() {
                loop {
                    // Oldest first: stale receipts, then each run's messages in order.
                    while !self.receipts.is_empty() {
                        self.run(&Op::Ack { pick: Pick::Any(0), as_other_member: false })?;
                    }
                    self.run(&Op::Poll { who: Who::Named(group, member), limit: PollLimit::from(POLL_MAX) })?;
                    if self.receipts.is_empty() {
                        break;
                    }
                }
            }
        }
        prop_assert!(self.drained(), "consumers that ack everything did not drain the bus: {:?}", self.engine.stats().groups);
        Ok(())
    }

    /// Without `retentionMs`, a message is removed only once every group with a
    /// position in its partition committed past it, and a partition no group has a
    /// position in keeps everything, unless it is a dead-letter topic's whose
    /// messages redrive moved: no operation (a redrive of an ordinary topic, a forged
    /// `ferry-dlq-topic` header) loses an unconsumed message. A seek forward commits
    /// past messages the group never handled, on purpose: for trimming, "consumed"
    /// is "committed past", as the engine counts it, however the group got there;
    /// and a group that sought before joining has a position in that partition only.
    fn check_nothing_unconsumed_lost(&self) -> Result<(), TestCaseError> {
        let stats = self.engine.stats();
        for topic in stats.topics.iter().filter(|t| self.model.topics.get(&*t.topic).is_some_and(|m| m.config.retention_ms.is_none())) {
            for partition in &topic.partitions {
                let readers = stats.groups.iter().filter(|g| g.topic == topic.topic).filter_map(|g| g.partitions.iter().find(|gp| gp.partition == partition.partition));
                match readers.map(|gp| gp.committed_offset).min() {
                    Some(committed) => prop_assert!(
                        partition.low_offset <= committed,
                        "{}/{}: low {} passed a group's committed {}",
                        topic.topic,
                        partition.partition,
                        partition.low_offset,
                        committed
                    ),
                    None if !self.model.redriven.contains_key(&*topic.topic) => {
                        prop_assert_eq!(partition.low_offset, 0, "{}/{}: messages no group read were removed", topic.topic, partition.partition)
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    fn drained(&self) -> bool {
        self.model.stats().groups.iter().flat_map(|g| &g.partitions).all(|gp| gp.owner.is_none() || gp.lag == 0)
    }

    fn check_state(&self) -> Result<(), TestCaseError> {
        self.check_runs()?;
        self.check_stored_cursors()?;
        self.check_nothing_unconsumed_lost()?;
        prop_assert_eq!(self.engine.stats(), self.model.stats());
        prop_assert_eq!(self.engine.topics(), self.model.topic_infos());
        if let Some(wake_by_ms) = self.model.wake_by_ms() {
            let due_ms = self.engine.next_due_ms();
            prop_assert!(due_ms.is_some_and(|d| d <= wake_by_ms), "next due at {:?}, yet the model has work due at {}", due_ms, wake_by_ms);
        }
        for (name, topic) in &self.model.topics {
            for (p, partition) in topic.partitions.iter().enumerate() {
                let got = self.engine.read_log(name, p as u32, 0, usize::MAX).map_err(|e| TestCaseError::fail(format!("read_log {name}/{p}: {e}")))?;
                prop_assert_eq!(got.len() as u64, partition.high() - partition.low, "retained messages of {}/{}", name, p);
                for (message, offset) in got.iter().zip(partition.low..) {
                    let stored = &partition.log[offset as usize];
                    prop_assert!(stored.matches(offset, message), "{}/{} holds {:?}, the model {:?}", name, p, message, stored);
                }
            }
        }
        Ok(())
    }

    /// What the model promises of every partition: a group under partition ordering
    /// settles its offsets in order (none is acked above an unsettled one) and has
    /// in flight only its first unsettled offset; a leased message sits right
    /// behind a message of its run, in flight or leased, of the same member.
    fn check_runs(&self) -> Result<(), TestCaseError> {
        for (g, group) in GROUPS.iter().enumerate() {
            let Some(state) = self.model.groups.get(*group) else { continue };
            let ordered = self.configs[g].ordering == Ordering::Partition;
            for (topic, gt) in &state.topics {
                for (p, cursor) in &gt.cursors {
                    let first = cursor.unsettled.keys().next();
                    for (offset, slot) in &cursor.unsettled {
                        let where_ = || format!("{group} on {topic}/{p}@{offset}");
                        let ahead = offset.checked_sub(1).and_then(|o| cursor.unsettled.get(&o));
                        match slot {
                            Slot::Leased { member, .. } => {
                                let behind_its_run = matches!(ahead, Some(Slot::InFlight { member: m, .. } | Slot::Leased { member: m, .. }) if m == member);
                                prop_assert!(behind_its_run, "{} is leased to {} behind {:?}, no message of its run", where_(), member, ahead);
                            }
                            Slot::Acked => prop_assert!(!ordered, "{} is acked ahead of an unsettled offset", where_()),
                            Slot::InFlight { .. } => prop_assert!(!ordered || first == Some(offset), "{} is in flight behind an unsettled offset", where_()),
                            Slot::Waiting { .. } => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every cursor the engine stored holds the model's positions and pending
    /// deliveries: attempts, leases and their deadlines, early acks, retry times.
    fn check_stored_cursors(&self) -> Result<(), TestCaseError> {
        for (group, state) in &self.model.groups {
            for (topic, gt) in &state.topics {
                for (&p, cursor) in &gt.cursors {
                    let key = Key::Cursor(Name::from(group.as_str()), Name::from(topic.as_str()), p as u32);
                    let Some((stored, pending)) = self.stored_cursors.get(&key) else { return Err(TestCaseError::fail(format!("{key:?} was never stored"))) };
                    let expected = Cursor { committed: cursor.committed, next: cursor.next, generation: cursor.generation };
                    prop_assert_eq!(*stored, expected, "{} on {}/{}", group, topic, p);
                    let same = pending.len() == cursor.unsettled.len()
                        && pending.iter().zip(&cursor.unsettled).all(|((offset, pending), (at, slot))| offset == at && slot.matches(pending));
                    prop_assert!(same, "{} on {}/{} stored {:?}; the model has {:?}", group, topic, p, pending, cursor.unsettled);
                }
            }
        }
        Ok(())
    }

    /// An engine opened from the stored records (through their byte encoding, as a
    /// persistent store keeps them) is the live one.
    fn check_reopened(&self) -> Result<(), TestCaseError> {
        let store = self.store.as_ref().expect("store");
        let mut records = Vec::new();
        for (key, record) in block_on(store.load()).expect("memory store load").0 {
            let decoded = Record::decode(&key, &record.encode());
            prop_assert_eq!(decoded.as_ref(), Ok(&record), "{:?} does not survive encoding", key);
            records.push((key, record));
        }
        let reopened = Engine::open(self.bus_config.clone(), 7, records).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
        prop_assert!(!reopened.has_writes(), "a reopened bus has nothing to write");
        self.check_same_bus(&reopened)?;
        self.check_same_bus(self.follower.as_ref().expect("follower"))
    }

    /// `reopened` answers every read as the live engine does, `holds` of every
    /// receipt handed out included (so the generations survived).
    fn check_same_bus(&self, reopened: &Engine) -> Result<(), TestCaseError> {
        for (group, member, receipt) in &self.receipts {
            let (group, member) = (GROUPS[*group], MEMBERS[*member]);
            prop_assert_eq!(reopened.holds(group, member, receipt, self.now_ms), self.engine.holds(group, member, receipt, self.now_ms), "holds of {:?}", receipt);
        }
        prop_assert_eq!(reopened.stats(), self.engine.stats());
        prop_assert_eq!(reopened.topics(), self.engine.topics());
        prop_assert_eq!(logs(reopened), logs(&self.engine));
        prop_assert_eq!(reopened.next_due_ms(), self.engine.next_due_ms());
        for group in GROUPS {
            prop_assert_eq!(reopened.members(group), self.engine.members(group));
            for member in MEMBERS {
                for topic in TOPICS {
                    prop_assert_eq!(reopened.owned_partitions(group, member, topic), self.engine.owned_partitions(group, member, topic));
                }
            }
        }
        Ok(())
    }
}

fn run_case(auto_create_topics: bool, configs: [ConsumerConfig; 3], ops: &[Op], store: Option<MemoryStore>) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(auto_create_topics, configs, store);
    for op in ops {
        harness.run(op)?;
    }
    harness.drain()
}

fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal operation sequence.
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config(8000))]

    #[test]
    fn engine_matches_model(
        auto_create_topics in prop::bool::weighted(0.9),
        configs in group_configs(),
        ops in ops(100),
    ) {
        run_case(auto_create_topics, configs, &ops, None)?;
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn reopened_engine_matches_live_engine(
        auto_create_topics in prop::bool::weighted(0.85),
        configs in group_configs(),
        ops in ops(60),
    ) {
        run_case(auto_create_topics, configs, &ops, Some(MemoryStore::new()))?;
    }
}

// ---------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------

/// Names every entry point must refuse: empty, a space, 250 characters, non-ASCII.
fn bad_names() -> Vec<String> {
    vec![String::new(), "a b".into(), "a".repeat(250), "ü".into(), "名前".into(), "a/b".into(), "a:b".into()]
}

fn message(value: &str) -> OutgoingMessage {
    OutgoingMessage::new(Value::string(value))
}

/// An engine with a topic, a group, a message in flight, one leased behind it and
/// one waiting, so that a refused call has state it could damage.
fn busy_engine(bus_config: BusConfig) -> Engine {
    let mut engine = Engine::open(bus_config, 1, Vec::new()).expect("open");
    engine.create_topic("t", TopicConfig::with_partitions(2)).expect("create");
    engine.join("g", "m1", &[Subscription::new("t", true)], &ConsumerConfig::default(), T0).expect("join");
    engine.send("t", &[message("a").with_partition(0), message("b").with_partition(0), message("c").with_partition(1)], T0).expect("send");
    let deliveries = engine.poll("g", "m1", 10, T0).expect("poll");
    assert_eq!(deliveries.len(), 3, "a run of two in partition 0, one in partition 1");
    let lone = deliveries.iter().find(|d| d.partition == 1).expect("partition 1's run");
    assert!(engine.fail("g", "m1", &lone.receipt(), "boom", T0));
    let _ = engine.begin_commit();
    engine.end_commit(true);
    engine
}

/// Makes one call that must be refused: checks its code, that its message names
/// `field`, and that the engine did not change.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(engine: &mut Engine, code: ErrorCode, field: &str, call: impl FnOnce(&mut Engine) -> Result<T, FerryError>) {
    let before = engine.stats();
    let error = call(engine).expect_err("must be refused");
    assert_eq!(error.code, code, "{error}");
    assert!(error.message.contains(field), "the message should name {field:?}: {error}");
    assert!(!engine.has_writes(), "a refused call wrote something: {error}");
    assert_eq!(engine.stats(), before, "a refused call changed the stats: {error}");
}

#[test]
fn malformed_bus_config_is_refused() {
    for max_message_bytes in [0, (16 << 20) + 1, u64::MAX] {
        let error = Engine::open(BusConfig { auto_create_topics: true, max_message_bytes }, 1, Vec::new()).expect_err("must be refused");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
        assert!(error.message.contains("maxMessageBytes"), "{error}");
    }
}

#[test]
fn malformed_topics_are_refused() {
    let mut engine = busy_engine(BusConfig::default());
    for name in bad_names() {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "topic", |e| e.create_topic(&name, TopicConfig::default()));
    }
    let bad_configs = [
        (TopicConfig::with_partitions(0), "partitions"),
        (TopicConfig::with_partitions(257), "partitions"),
        (TopicConfig::with_partitions(u32::MAX), "partitions"),
        (TopicConfig { retention_ms: Some(0), ..TopicConfig::default() }, "retentionMs"),
        (TopicConfig { retention_ms: Some(u64::MAX), ..TopicConfig::default() }, "retentionMs"),
        (TopicConfig { max_depth: Some(0), ..TopicConfig::default() }, "maxDepth"),
        (TopicConfig { max_depth: Some(u64::MAX), ..TopicConfig::default() }, "maxDepth"),
        (TopicConfig { dedup_window_ms: u64::MAX, ..TopicConfig::default() }, "dedupWindowMs"),
    ];
    for (config, field) in bad_configs {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, field, |e| e.create_topic("fresh", config));
    }
    assert_refused(&mut engine, ErrorCode::TopicConflict, "'t'", |e| e.create_topic("t", TopicConfig::with_partitions(3)));
}

#[test]
fn malformed_sends_are_refused() {
    let mut engine = busy_engine(BusConfig::default());
    for name in bad_names() {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "topic", |e| e.send(&name, &[message("x")], T0));
    }
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "messages", |e| e.send("t", &[], T0));
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "messages", |e| e.send("t", &vec![message("x"); 10_001], T0));

    let oversized = OutgoingMessage::new(Value::bytes(vec![0; (1 << 20) + 1]));
    assert_refused(&mut engine, ErrorCode::MessageTooLarge, "messages[1]", |e| e.send("t", &[message("fine"), oversized], T0));
    // Key and headers count too.
    let heavy_key = message("x").with_key("k".repeat(1 << 20));
    assert_refused(&mut engine, ErrorCode::MessageTooLarge, "maxMessageBytes", |e| e.send("t", &[heavy_key], T0));

    for partition in [2, 256, 257, u32::MAX] {
        assert_refused(&mut engine, ErrorCode::UnknownTopic, "messages[0].partition", |e| e.send("t", &[message("x").with_partition(partition)], T0));
    }
    for delay_ms in [u64::MAX, 31 * 24 * 3_600_000] {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "messages[0].delayMs", |e| e.send("t", &[message("x").with_delay_ms(delay_ms)], T0));
    }
    let many_headers = (0..65).fold(message("x"), |m, i| m.with_header(format!("h{i}"), "v"));
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "messages[0].headers", |e| e.send("t", &[many_headers], T0));
    for id in [String::new(), "i".repeat(2048)] {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "messages[0].id", |e| e.send("t", &[message("x").with_id(id)], T0));
    }
    // A bad message anywhere refuses the whole batch.
    assert_refused(&mut engine, ErrorCode::UnknownTopic, "messages[1].partition", |e| e.send("t", &[message("fine"), message("x").with_partition(9)], T0));

    engine.create_topic("capped", TopicConfig { max_depth: Some(1), ..TopicConfig::default() }).expect("create");
    let _ = engine.begin_commit();
    engine.end_commit(true);
    assert_refused(&mut engine, ErrorCode::QueueFull, "maxDepth", |e| e.send("capped", &[message("1"), message("2")], T0));
}

#[test]
fn malformed_joins_are_refused() {
    let mut engine = busy_engine(BusConfig::default());
    let subscribe_t = [Subscription::new("t", true)];
    let fine = ConsumerConfig::default();
    for name in bad_names() {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "groupId", |e| e.join(&name, "m", &subscribe_t, &fine, T0));
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "topic", |e| e.join("g", "m", &[Subscription::new(name.clone(), true)], &fine, T0));
    }
    for member in [String::new(), "m".repeat(MEMBER_ID_LEN_MAX + 1)] {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "member id", |e| e.join("g", &member, &subscribe_t, &fine, T0));
    }
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "subscribed topics", |e| e.join("g", "m", &[], &fine, T0));
    let too_many: Vec<Subscription> = (0..101).map(|i| Subscription::new(format!("t{i}"), false)).collect();
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "subscribed topics", |e| e.join("g", "m", &too_many, &fine, T0));
    // The default dead-letter topic `${topic}.dlq` of a 246-character topic is too long.
    let long_topic = [Subscription::new("t".repeat(246), true)];
    assert_refused(&mut engine, ErrorCode::InvalidArgument, "deadLetterTopic", |e| e.join("g", "m", &long_topic, &fine, T0));

    let retry = |retry: RetryPolicy| ConsumerConfig { retry, ..ConsumerConfig::default() };
    let mut bad_configs: Vec<(ConsumerConfig, &str)> = Vec::new();
    for multiplier in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, -2.0, 1000.5] {
        bad_configs.push((retry(RetryPolicy { multiplier, ..RetryPolicy::default() }), "retry.multiplier"));
    }
    for max_attempts in [0, 1001, u32::MAX] {
        bad_configs.push((retry(RetryPolicy { max_attempts, ..RetryPolicy::default() }), "retry.maxAttempts"));
    }
    for huge in [8 * 24 * 3_600_000, u64::MAX] {
        bad_configs.push((retry(RetryPolicy { initial_backoff_ms: huge, ..RetryPolicy::default() }), "retry.initialBackoffMs"));
        bad_configs.push((retry(RetryPolicy { max_backoff_ms: huge, ..RetryPolicy::default() }), "retry.maxBackoffMs"));
    }
    for concurrency in [0, 1001] {
        bad_configs.push((ConsumerConfig { concurrency, ..ConsumerConfig::default() }, "concurrency"));
    }
    for ack_timeout_ms in [0, 9, u64::MAX] {
        bad_configs.push((ConsumerConfig { ack_timeout_ms, ..ConsumerConfig::default() }, "ackTimeoutMs"));
    }
    for session_timeout_ms in [0, u64::MAX] {
        bad_configs.push((ConsumerConfig { session_timeout_ms, ..ConsumerConfig::default() }, "sessionTimeoutMs"));
    }
    for heartbeat_interval_ms in [0, 10_000, u64::MAX] {
        bad_configs.push((ConsumerConfig { heartbeat_interval_ms, ..ConsumerConfig::default() }, "heartbeatIntervalMs"));
    }
    for dead_letter_topic in bad_names().into_iter().chain(["t".to_string()]) {
        bad_configs.push((ConsumerConfig { dead_letter_topic: Some(dead_letter_topic), ..ConsumerConfig::default() }, "deadLetterTopic"));
    }
    for (config, field) in bad_configs {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, field, |e| e.join("g", "m2", &subscribe_t, &config, T0));
    }
}

#[test]
fn malformed_redrive_and_reads_are_refused() {
    let mut engine = busy_engine(BusConfig::default());
    for name in bad_names() {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "from", |e| e.redrive(&name, None, &[], T0));
    }
    for limit in [0, 10_001, u64::MAX] {
        assert_refused(&mut engine, ErrorCode::InvalidArgument, "limit", |e| e.redrive("t.dlq", Some(limit), &[], T0));
    }
    assert_refused(&mut engine, ErrorCode::UnknownTopic, "nope", |e| e.read_log("nope", 0, 0, 10));
    for partition in [2, 257, u32::MAX] {
        assert_refused(&mut engine, ErrorCode::UnknownTopic, "partition", |e| e.read_log("t", partition, 0, 10));
    }
    assert_eq!(engine.read_log("t", 0, u64::MAX, usize::MAX).expect("past the end is empty"), Vec::new());
    assert_eq!(engine.read_log("t", 0, 0, 0).expect("zero messages"), Vec::new());
}

#[test]
fn unknown_topics_without_auto_creation_are_refused() {
    let mut engine = busy_engine(BusConfig { auto_create_topics: false, ..BusConfig::default() });
    assert_refused(&mut engine, ErrorCode::UnknownTopic, "nope", |e| e.send("nope", &[message("x")], T0));
    assert_refused(&mut engine, ErrorCode::UnknownTopic, "nope", |e| e.join("g", "m2", &[Subscription::new("nope", true)], &ConsumerConfig::default(), T0));
    assert_refused(&mut engine, ErrorCode::UnknownTopic, "nope", |e| e.redrive("nope", None, &[], T0));
}

/// Calls that answer "nothing" rather than an error must not panic or change
/// anything on garbage either.
#[test]
fn garbage_to_infallible_calls_changes_nothing() {
    let mut engine = busy_engine(BusConfig::default());
    let before = engine.stats();
    let bogus = [
        Receipt { topic: Name::from(""), partition: u32::MAX, offset: u64::MAX, attempt: 0, generation: 0 },
        Receipt { topic: Name::from("t"), partition: 0, offset: 0, attempt: u32::MAX, generation: 0 },
        Receipt { topic: Name::from("t"), partition: 0, offset: u64::MAX, attempt: 1, generation: 0 },
    ];
    for name in bad_names().into_iter().chain(["g".to_string(), "nobody".to_string()]) {
        assert_eq!(engine.poll(&name, &name, usize::MAX, T0).expect("poll of an unknown member"), Vec::new());
        assert!(!engine.heartbeat(&name, &name, u64::MAX));
        engine.leave(&name, &name, u64::MAX);
        assert!(engine.owned_partitions(&name, &name, &name).is_empty());
        for receipt in &bogus {
            assert!(!engine.ack(&name, "m1", receipt, T0));
            assert!(!engine.fail("g", &name, receipt, &"e".repeat(1 << 20), u64::MAX));
            assert!(!engine.release(&name, "m1", receipt, T0));
        }
    }
    assert!(engine.members("").is_empty());
    assert!(!engine.has_writes());
    assert_eq!(engine.stats(), before);
}

/// Extreme clock values and the longest allowed waits saturate instead of
/// overflowing.
#[test]
fn extreme_times_do_not_panic() {
    let mut engine = Engine::open(BusConfig::default(), 1, Vec::new()).expect("open");
    let longest = ConsumerConfig {
        retry: RetryPolicy { max_attempts: 1000, initial_backoff_ms: 7 * 24 * 3_600_000, multiplier: 1000.0, max_backoff_ms: 7 * 24 * 3_600_000, jitter: true },
        ack_timeout_ms: 24 * 3_600_000,
        session_timeout_ms: 3_600_000,
        ..ConsumerConfig::default()
    };
    let retained = TopicConfig { retention_ms: Some(10 * 365 * 24 * 3_600_000), dedup_window_ms: 10 * 365 * 24 * 3_600_000, ..TopicConfig::default() };
    engine.create_topic("t", retained).expect("create");
    let now = u64::MAX - 1;
    engine.join("g", "m", &[Subscription::new("t", true)], &longest, now).expect("join");
    engine.send("t", &[message("x").with_delay_ms(30 * 24 * 3_600_000).with_id("i"), message("y")], now).expect("send");
    let _ = engine.poll("g", "m", usize::MAX, u64::MAX).expect("poll");
    engine.tick(u64::MAX);
    let _ = engine.next_due_ms();
    let _ = engine.stats();
}

// ---------------------------------------------------------------------------
// Regressions the model found, kept as plain cases
// ---------------------------------------------------------------------------

/// Retention cutting just below an offset an unordered group already acked: the
/// committed offset must move past that offset too, or it never moves again.
#[test]
fn retention_cut_below_an_acked_offset_commits_it() {
    let mut engine = Engine::open(BusConfig::default(), 1, Vec::new()).expect("open");
    engine.create_topic("t", TopicConfig { retention_ms: Some(2_000), ..TopicConfig::default() }).expect("create");
    let unordered = ConsumerConfig { ordering: Ordering::None, ..ConsumerConfig::default() };
    engine.join("g", "m", &[Subscription::new("t", true)], &unordered, T0).expect("join");
    engine.send("t", &[message("old")], T0).expect("send");
    engine.send("t", &[message("newer")], T0 + 1_000).expect("send");
    let deliveries = engine.poll("g", "m", 10, T0 + 1_000).expect("poll");
    assert!(engine.ack("g", "m", &deliveries[1].receipt(), T0 + 1_000));
    engine.heartbeat("g", "m", T0 + 2_000);
    engine.tick(T0 + 2_000);
    assert_eq!(engine.stats().groups[0].partitions[0].committed_offset, 2);
}

/// Redrive from a topic holding no dead letters is refused and changes nothing: it
/// must not trim a log no group consumed, nor hold one back from trimming.
#[test]
fn redrive_from_a_topic_without_dead_letters_changes_nothing() {
    let mut engine = Engine::open(BusConfig::default(), 1, Vec::new()).expect("open");
    engine.create_topic("orders", TopicConfig { max_depth: Some(2), ..TopicConfig::default() }).expect("create");
    engine.send("orders", &[message("1")], T0).expect("send");
    let _ = engine.begin_commit();
    engine.end_commit(true);
    let before = engine.stats();
    assert_eq!(engine.redrive("orders", None, &[], T0).map_err(|e| e.code), Err(ErrorCode::InvalidArgument), "not a dead-letter topic");
    assert!(!engine.has_writes());
    assert_eq!(engine.stats(), before);
    engine.join("g", "m", &[Subscription::new("orders", true)], &ConsumerConfig::default(), T0).expect("join");
    let deliveries = engine.poll("g", "m", 1, T0).expect("poll");
    assert!(engine.ack("g", "m", &deliveries[0].receipt(), T0));
    let _ = engine.begin_commit();
    engine.end_commit(true);
    assert_eq!(engine.stats().topics[0].partitions[0].low_offset, 1, "consumed by its only group");
    engine.send("orders", &[message("2"), message("3")], T0).expect("within maxDepth once consumed");
}

/// Retention removing a run's message in flight: the rest of the run must not stay
/// leased behind a message that is gone (nothing would move it on, and the
/// partition would hand out nothing, even to another member, until retention
/// removed those too): it is given back, its attempts unchanged.
#[test]
fn retention_removing_a_run_s_message_in_flight_gives_the_rest_back() {
    let mut engine = Engine::open(BusConfig::default(), 1, Vec::new()).expect("open");
    engine.create_topic("t", TopicConfig { retention_ms: Some(2_000), ..TopicConfig::default() }).expect("create");
    engine.join("g", "m", &[Subscription::new("t", true)], &ConsumerConfig::default(), T0).expect("join");
    engine.send("t", &[message("old")], T0).expect("send");
    engine.send("t", &[message("newer"), message("newest")], T0 + 1_000).expect("send");
    assert_eq!(engine.poll("g", "m", 10, T0 + 1_000).expect("poll").len(), 3, "one run");
    engine.heartbeat("g", "m", T0 + 2_000);
    engine.tick(T0 + 2_000);
    let again = engine.poll("g", "m", 10, T0 + 2_000).expect("poll");
    let handed: Vec<(u64, u32)> = again.iter().map(|d| (d.message.offset, d.attempt)).collect();
    assert_eq!(handed, vec![(1, 1), (2, 1)], "{:?}", engine.stats().groups[0].partitions[0]);
}
