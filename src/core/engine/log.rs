//! Topics and their partitioned logs: creation, sends (partitioning, dedup, depth
//! limits) and retention. Dead-letter topics are dead_letters.rs's.

use super::*;
use crate::core::config::{check_name, check_range, TopicConfig};
use crate::core::limits::*;
use crate::core::message::{ChunkBuilder, Message, OutgoingMessage, Value};
use crate::core::murmur2::partition_for_key;

/// Where a sent message was stored (`RecordMetadata` in pkg/README.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Name,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: u64,
    /// The `id` was seen within the dedup window: nothing was appended, and
    /// partition, offset and timestamp are the first message's.
    pub duplicate: bool,
}

/// One topic as `bus.topics()` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic: Name,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub max_depth: Option<u64>,
}

/// A message about to be appended to a partition.
pub(super) struct Append<'a> {
    pub timestamp_ms: u64,
    pub delay_ms: u64,
    pub key: Option<&'a str>,
    pub value: &'a Value,
    pub headers: &'a [(String, String)],
    pub id: Option<&'a str>,
}

impl Engine {
    /// Creates a topic: `Ok(true)` when created, `Ok(false)` when it exists with the
    /// same partition count (its other settings are left as they are), and
    /// `TOPIC_CONFLICT` when it exists with another count.
    pub fn create_topic(&mut self, name: &str, config: TopicConfig) -> Result<bool> {
        check_name("topic", name)?;
        config.check()?;
        if let Some(existing) = self.topics.get(name) {
            let have = existing.config.partitions;
            if have == config.partitions {
                return Ok(false);
            }
            return Err(FerryError::new(ErrorCode::TopicConflict, format!("topic '{name}' exists with {have} partitions, not {}", config.partitions)));
        }
        self.check_topic_room()?;
        self.insert_topic(Name::from(name), config);
        Ok(true)
    }

    /// The configuration of `topic`. A missing topic is created: with `missing`
    /// when given (a dead-letter topic made on demand), else with defaults when
    /// auto-creation is on; else it is `UNKNOWN_TOPIC`.
    pub fn topic_or_create(&mut self, topic: &str, missing: Option<TopicConfig>) -> Result<TopicConfig> {
        let (config, exists) = match missing {
            Some(config) if !self.topics.contains_key(topic) => (config, false),
            _ => self.topic_or_auto(topic)?,
        };
        if !exists {
            self.create_topic(topic, config.clone())?;
        }
        Ok(config)
    }

    /// The configuration of `topic` and `true`; for a missing topic, that of the
    /// topic auto-creation would make and `false` (`UNKNOWN_TOPIC` when it is off).
    pub fn topic_or_auto(&self, topic: &str) -> Result<(TopicConfig, bool)> {
        check_name("topic", topic)?;
        match self.topics.get(topic) {
            Some(t) => Ok((t.config.clone(), true)),
            None => Ok((TopicConfig::with_partitions(self.topic_partitions_or_auto(topic)?), false)),
        }
    }

    pub fn topic_config(&self, topic: &str) -> Option<TopicConfig> {
        self.topics.get(topic).map(|t| t.config.clone())
    }

    pub fn topics(&self) -> Vec<TopicInfo> {
        self.topics
            .iter()
            .map(|(name, t)| TopicInfo { topic: name.clone(), partitions: t.config.partitions, retention_ms: t.config.retention_ms, max_depth: t.config.max_depth })
            .collect()
    }

    fn check_topic_room(&self) -> Result<()> {
        if self.topics.len() >= TOPICS_MAX {
            return Err(FerryError::invalid(format!("the bus already holds {TOPICS_MAX} topics, its limit")));
        }
        Ok(())
    }

    pub(super) fn insert_topic(&mut self, name: Name, config: TopicConfig) {
        self.put(Key::Topic(name), Some(Record::Topic(config)));
    }

    /// The partition count of `topic`, or of the topic auto-creation would make;
    /// `UNKNOWN_TOPIC` when it does not exist and may not be created.
    pub(super) fn topic_partitions_or_auto(&self, topic: &str) -> Result<u32> {
        match self.topics.get(topic) {
            Some(t) => Ok(t.config.partitions),
            None if self.config.auto_create_topics => {
                self.check_topic_room()?;
                Ok(TopicConfig::default().partitions)
            }
            None => Err(FerryError::unknown_topic(topic)),
        }
    }

    /// The topic's name, created with defaults when missing (callers checked
    /// [`Engine::topic_partitions_or_auto`] first).
    pub(super) fn ensure_topic(&mut self, topic: &str) -> Name {
        match self.topic_name(topic) {
            Some(name) => name,
            None => {
                let name = Name::from(topic);
                self.insert_topic(name.clone(), TopicConfig::default());
                name
            }
        }
    }

    /// Checks a message as a send takes it. A forwarded one was checked (or made,
    /// as a dead letter with its extra headers) by the engine that first took it:
    /// only its partition is checked again.
    pub(super) fn check_message(&self, index: usize, m: &OutgoingMessage, partitions: u32, admission: Admission) -> Result<()> {
        let bytes = m.encoded_bytes();
        if admission == Admission::New && bytes > self.config.max_message_bytes {
            return Err(FerryError::new(
                ErrorCode::MessageTooLarge,
                format!("messages[{index}] is {bytes} bytes (key + value + headers); maxMessageBytes is {}", self.config.max_message_bytes),
            ));
        }
        if let Some(p) = m.partition {
            if p >= partitions {
                return Err(FerryError::new(ErrorCode::UnknownTopic, format!("messages[{index}].partition {p} does not exist: the topic has {partitions} partition(s)")));
            }
        }
        if admission == Admission::Forwarded {
            return Ok(());
        }
        check_range(&format!("messages[{index}].delayMs"), m.delay_ms, 0, DELAY_MS_MAX)?;
        if m.headers.len() > HEADERS_MAX {
            return Err(FerryError::invalid(format!("messages[{index}].headers has {} entries; at most {HEADERS_MAX}", m.headers.len())));
        }
        // Redrive trusts a `ferry-dlq-topic` header to say where a dead letter goes.
        if let Some((name, _)) = m.headers.iter().find(|(name, _)| name.starts_with(RESERVED_HEADER_PREFIX)) {
            return Err(FerryError::invalid(format!(
                "messages[{index}].headers.{name}: header names starting with \"{RESERVED_HEADER_PREFIX}\" are the bus's own (a dead letter's ferry-dlq-* headers)"
            )));
        }
        if let Some(id) = &m.id {
            check_range(&format!("messages[{index}].id length"), id.len() as u64, 1, MESSAGE_ID_BYTES_MAX as u64)?;
        }
        Ok(())
    }

    /// Appends `messages` to `topic` atomically: all are stored or none.
    ///
    /// A message goes to its `partition` when given, else to Kafka's partition for
    /// its key, else round-robin. A message whose `id` was seen on the topic within
    /// the dedup window is not appended; its metadata says `duplicate` and points
    /// at the first one. Refused with `QUEUE_FULL` when a partition's unconsumed
    /// depth would pass the topic's `maxDepth`.
    ///
    /// In an engine serving one partition of a split bus ([`Engine::set_home`]),
    /// messages for the topic's other partitions are only staged here for
    /// forwarding: their ids and depth are the serving engines' concern.
    pub fn send(&mut self, topic: &str, messages: &[OutgoingMessage], now_ms: u64) -> Result<Vec<RecordMetadata>> {
        self.send_with(topic, messages, now_ms, Admission::New)
    }

    pub(super) fn send_with(&mut self, topic: &str, messages: &[OutgoingMessage], now_ms: u64, admission: Admission) -> Result<Vec<RecordMetadata>> {
        check_name("topic", topic)?;
        if messages.is_empty() || messages.len() > SEND_BATCH_MAX {
            return Err(FerryError::invalid(format!("messages must hold 1 to {SEND_BATCH_MAX} messages, got {}", messages.len())));
        }
        let partitions = self.topic_partitions_or_auto(topic)?;
        for (index, message) in messages.iter().enumerate() {
            self.check_message(index, message, partitions, admission)?;
        }
        let (config, heads) = match self.topics.get(topic) {
            Some(t) => (t.config.clone(), t.partitions.iter().map(|p| p.head.high).collect()),
            None => (TopicConfig::default(), vec![0; partitions as usize]),
        };
        let mut round_robin = self.topics.get(topic).map_or(0, |t| t.round_robin);
        let mut next_offset: Vec<u64> = heads;
        let mut first_in_batch: FxHashMap<&str, usize> = FxHashMap::default();
        let mut results: Vec<(u32, u64, u64, bool)> = Vec::with_capacity(messages.len());
        for (index, m) in messages.iter().enumerate() {
            let served = m.partition.map_or(true, |p| self.serves(topic, p));
            let seen = m.id.as_deref().filter(|_| config.dedup_window_ms > 0 && served).and_then(|id| {
                if let Some(&first) = first_in_batch.get(id) {
                    let (p, offset, ts, _) = results[first];
                    return Some((p, offset, ts));
                }
                first_in_batch.insert(id, index);
                self.dedup.get(topic).and_then(|ids| ids.get(id)).filter(|d| d.expires_ms > now_ms).map(|d| (d.partition, d.offset, d.timestamp_ms))
            });
            if let Some((p, offset, ts)) = seen {
                results.push((p, offset, ts, true));
                continue;
            }
            let p = match (m.partition, &m.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, partitions),
                (None, None) => {
                    let p = round_robin % partitions;
                    round_robin = round_robin.wrapping_add(1);
                    p
                }
            };
            let offset = next_offset[p as usize];
            next_offset[p as usize] += 1;
            results.push((p, offset, now_ms, false));
        }
        if admission == Admission::New {
            for p in (0..partitions).filter(|p| self.serves(topic, *p)) {
                self.check_room(topic, p, next_offset[p as usize] - self.partition(topic, p).map_or(0, |s| s.head.high))?;
            }
        }
        if next_offset.iter().any(|&n| n > SAFE_INTEGER_MAX) {
            return Err(FerryError::invalid(format!("topic '{topic}' reached the largest offset JavaScript can hold")));
        }

        // Everything is checked: from here on nothing fails.
        let name = self.ensure_topic(topic);
        if let Some(t) = self.topics.get_mut(topic) {
            t.round_robin = round_robin;
        }
        for p in 0..partitions {
            let appends: Vec<Append<'_>> = messages
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.0 == p && !r.3)
                .map(|(m, _)| Append { timestamp_ms: now_ms, delay_ms: m.delay_ms, key: m.key.as_deref(), value: &m.value, headers: &m.headers, id: m.id.as_deref() })
                .collect();
            if !appends.is_empty() {
                self.append(&name, p, &appends);
            }
        }
        if config.dedup_window_ms > 0 {
            for (m, r) in messages.iter().zip(&results) {
                if let (Some(id), false, true) = (&m.id, r.3, self.serves(topic, r.0)) {
                    let entry = DedupEntry { partition: r.0, offset: r.1, timestamp_ms: now_ms, expires_ms: now_ms.saturating_add(config.dedup_window_ms) };
                    self.put(Key::Dedup(name.clone(), Name::from(id.as_str())), Some(Record::Dedup(entry)));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|(partition, offset, timestamp_ms, duplicate)| RecordMetadata { topic: name.clone(), partition, offset, timestamp_ms, duplicate })
            .collect())
    }

    /// `QUEUE_FULL` when `added` more messages would make the partition's
    /// unconsumed depth pass its topic's `maxDepth`.
    pub fn check_room(&self, topic: &str, partition: u32, added: u64) -> Result<()> {
        let Some(max_depth) = self.topics.get(topic).and_then(|t| t.config.max_depth) else { return Ok(()) };
        let depth = self.unconsumed_depth(topic, partition);
        if added > 0 && depth + added > max_depth {
            return Err(FerryError::new(
                ErrorCode::QueueFull,
                format!("partition {partition} of topic '{topic}' holds {depth} unconsumed messages; {added} more would pass maxDepth {max_depth}"),
            ));
        }
        Ok(())
    }

    /// Writes `appends` at the end of a partition, packed into chunks; returns the
    /// first offset written.
    pub(super) fn append(&mut self, topic: &Name, partition: u32, appends: &[Append<'_>]) -> u64 {
        let mut head = self.partition(topic, partition).map(|s| s.head).unwrap_or_default();
        let first = head.high;
        let mut builder = self.take_open_chunk(topic, partition, head.high).unwrap_or_else(|| ChunkBuilder::new(head.high));
        for a in appends {
            if builder.is_full() {
                let full = std::mem::replace(&mut builder, ChunkBuilder::new(0));
                let chunk = full.finish();
                builder = ChunkBuilder::new(chunk.end_offset());
                self.put(Key::Chunk(topic.clone(), partition, chunk.base_offset), Some(Record::Chunk(chunk)));
            }
            builder.push(a.timestamp_ms, a.delay_ms, a.key, a.value, a.headers, a.id);
        }
        let chunk = builder.finish();
        head.high = chunk.end_offset();
        self.put(Key::Chunk(topic.clone(), partition, chunk.base_offset), Some(Record::Chunk(chunk)));
        self.put(Key::Partition(topic.clone(), partition), Some(Record::Partition(head)));
        first
    }

    /// The partition's last chunk, when this commit created it and it has room:
    /// taken out of the state (the caller puts it back at once, extended) so it is
    /// extended in place rather than copied.
    fn take_open_chunk(&mut self, topic: &Name, partition: u32, high: u64) -> Option<ChunkBuilder> {
        let state = self.partition(topic, partition)?;
        let (base, chunk) = state.chunks.last_key_value()?;
        let key = Key::Chunk(topic.clone(), partition, *base);
        if chunk.end_offset() != high || !self.txn.new_chunks.contains(&key) {
            return None;
        }
        let builder_would_be_full = chunk.len() as usize >= CHUNK_MESSAGES_MAX || chunk.bytes().len() >= CHUNK_BYTES_MAX;
        if builder_would_be_full {
            return None;
        }
        let base = *base;
        self.partition_mut(topic, partition)?.chunks.remove(&base).map(ChunkBuilder::resume)
    }

    /// The next offset to be written in a partition (Kafka's high watermark).
    pub fn high_offset(&self, topic: &str, partition: u32) -> Option<u64> {
        self.partition(topic, partition).map(|s| s.head.high)
    }

    /// Reads up to `max` retained messages of a partition from `offset` on.
    pub fn read_log(&self, topic: &str, partition: u32, offset: u64, max: usize) -> Result<Vec<Message>> {
        let Some(state) = self.partition(topic, partition) else {
            return Err(FerryError::unknown_partition(topic, partition));
        };
        let from = offset.max(state.head.low);
        (from..state.head.high).take(max).map(|o| self.message_at(topic, partition, o)).collect()
    }

    /// The stored message at an offset known to be retained.
    pub(super) fn message_at(&self, topic: &str, partition: u32, offset: u64) -> Result<Message> {
        self.partition(topic, partition)
            .and_then(|s| s.chunk_for(offset))
            .and_then(|c| c.message(offset))
            .unwrap_or_else(|| Err(FerryError::storage(format!("offset {offset} of {topic}/{partition} is missing from the log"))))
    }

    /// The lowest committed offset over the groups reading a partition, if any do.
    fn min_committed(&self, topic: &str, partition: u32) -> Option<u64> {
        self.groups.values().filter_map(|g| g.topics.get(topic)?.cursors.get(&partition)).map(|c| c.cursor.committed).min()
    }

    /// Messages of a partition that some group of the topic has not consumed yet
    /// (all retained ones when no group reads it).
    pub(super) fn unconsumed_depth(&self, topic: &str, partition: u32) -> u64 {
        let Some(state) = self.partition(topic, partition) else { return 0 };
        let from = self.min_committed(topic, partition).unwrap_or(0).max(state.head.low);
        state.head.high.saturating_sub(from)
    }

    /// Drops what every group of the topic has committed past.
    /// With `retentionMs` a message is kept until it is that old, consumed or not
    /// (Kafka's rule), so that a new group can replay it.
    pub(super) fn trim_consumed(&mut self, topic: &Name, partition: u32) {
        if self.serves(topic, partition) && self.topics.get(topic).is_some_and(|t| t.config.retention_ms.is_some()) {
            return;
        }
        let (Some(min), Some(state)) = (self.min_committed(topic, partition), self.partition(topic, partition)) else { return };
        if min > state.head.low {
            self.advance_low(topic, partition, min.min(state.head.high), 0);
        }
    }

    /// Moves a partition's first retained offset to `new_low`: drops whole chunks
    /// below it and moves every group's cursor that lagged behind.
    pub(super) fn advance_low(&mut self, topic: &Name, partition: u32, new_low: u64, expired: u64) {
        let Some(state) = self.partition(topic, partition) else { return };
        let mut head = state.head;
        head.low = new_low;
        head.expired += expired;
        let dropped: Vec<u64> = state.chunks.values().filter(|c| c.end_offset() <= new_low).map(|c| c.base_offset).collect();
        self.put(Key::Partition(topic.clone(), partition), Some(Record::Partition(head)));
        for base in dropped {
            self.put(Key::Chunk(topic.clone(), partition, base), None);
        }
        let behind: Vec<Name> = self
            .groups
            .iter()
            .filter(|(_, state)| state.topics.get(topic).and_then(|t| t.cursors.get(&partition)).is_some_and(|cs| cs.cursor.committed < new_low))
            .map(|(g, _)| g.clone())
            .collect();
        for group in behind {
            self.move_committed(&group, topic, partition, new_low);
        }
    }

    /// Moves `group`'s committed offset in a partition to `to`, and on over the
    /// offsets acked just past it (settled too: the committed offset moves over them
    /// as `settle` would, or nothing ever would); forgets the pending entries below.
    pub(super) fn move_committed(&mut self, group: &Name, topic: &Name, partition: u32, to: u64) {
        let (cleared, cursor): (Vec<u64>, Cursor) = match self.cursor(group, topic, partition) {
            Some(cs) => {
                let mut committed = to;
                while cs.pending.get(&committed) == Some(&Pending::Acked) {
                    committed += 1;
                }
                // `next` also passes the entries above it: a redrive's, which no member takes.
                let next = cs.pending.keys().next_back().map_or(0, |o| o + 1).max(cs.cursor.next).max(committed);
                (cs.pending.range(..committed).map(|(o, _)| *o).collect(), Cursor { committed, next, ..cs.cursor })
            }
            None => (Vec::new(), Cursor::at(to)),
        };
        for offset in cleared {
            self.put(Key::Pending(group.clone(), topic.clone(), partition, offset), None);
        }
        self.put(Key::Cursor(group.clone(), topic.clone(), partition), Some(Record::Cursor(cursor)));
    }

    /// Removes a partition's messages below `low` (`expired` of them not consumed
    /// yet by some group). A run whose message in flight was removed gives the
    /// rest back, no attempt counted, or nothing would ever hand it out again.
    pub(super) fn remove_below(&mut self, topic: &Name, partition: u32, low: u64, expired: u64, now_ms: u64) {
        self.advance_low(topic, partition, low, expired);
        let groups: Vec<Name> = self.groups.keys().cloned().collect();
        for group in groups {
            self.release_run(&group, topic, partition, low, now_ms);
        }
    }

    /// Removes messages older than their topic's `retentionMs`, consumed or not.
    pub(super) fn expire_retention(&mut self, now_ms: u64) {
        let mut moves: Vec<(Name, u32, u64, u64)> = Vec::new();
        for (name, topic) in &self.topics {
            let Some(retention_ms) = topic.config.retention_ms else { continue };
            // A partition served elsewhere holds only messages waiting to be
            // forwarded there; its own engine applies retention to them.
            for (p, state) in topic.partitions.iter().enumerate().filter(|(p, _)| self.serves(name, *p as u32)) {
                let mut low = state.head.low;
                while low < state.head.high {
                    match state.chunk_for(low).and_then(|c| c.times(low)) {
                        Some((timestamp_ms, _)) if timestamp_ms.saturating_add(retention_ms) <= now_ms => low += 1,
                        _ => break,
                    }
                }
                if low > state.head.low {
                    // `expired` counts what some group had not consumed yet.
                    let consumed = self.min_committed(name, p as u32).unwrap_or(state.head.low).clamp(state.head.low, low);
                    moves.push((name.clone(), p as u32, low, low - consumed));
                }
            }
        }
        for (topic, p, low, expired) in moves {
            self.remove_below(&topic, p, low, expired, now_ms);
        }
    }

    pub(super) fn expire_dedup(&mut self, now_ms: u64) {
        while let Some((expires_ms, topic, id)) = self.dedup_expiry.first().cloned() {
            if expires_ms > now_ms {
                break;
            }
            self.put(Key::Dedup(topic, id), None);
        }
    }

    /// The key's partition, or the next round-robin one.
    pub(super) fn pick_partition(&mut self, topic: &str, key: Option<&str>) -> u32 {
        let Some(state) = self.topics.get_mut(topic) else { return 0 };
        let partitions = state.config.partitions;
        match key {
            Some(key) => partition_for_key(key, partitions),
            None => {
                let p = state.round_robin % partitions;
                state.round_robin = state.round_robin.wrapping_add(1);
                p
            }
        }
    }
}

/// Whether a send may still be refused for its size or the topic's `maxDepth`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    New,
    /// Messages another engine of a split bus already took (or made, as dead
    /// letters): refusing them now would break their send's atomicity, or lose them.
    Forwarded,
}

/// Header names a send may not use: the bus writes them.
pub(super) const RESERVED_HEADER_PREFIX: &str = "ferry-";
pub(super) const DLQ_HEADER_PREFIX: &str = "ferry-dlq-";
pub(super) const DLQ_TOPIC: &str = "ferry-dlq-topic";
pub(super) const DLQ_PARTITION: &str = "ferry-dlq-partition";
