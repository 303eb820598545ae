//! A bus split over several engines, one per partition (the edge: one Durable
//! Object per topic partition). An engine serves its home partition; whatever it
//! appends to another partition (the other parts of a send it coordinates, dead
//! letters, redriven messages) waits in that partition's log here, as an outbox,
//! until its driver has handed it to the engine serving that partition and called
//! [`Engine::forwarded`].

use super::log::{self, Admission, Append};
use super::*;
use crate::core::config::check_range;
use crate::core::limits::*;
use crate::core::message::{Chunk, ChunkBuilder, OutgoingMessage};

/// Messages waiting here for a partition another engine serves.
#[derive(Debug)]
pub struct Outbound {
    pub topic: Name,
    pub partition: u32,
    /// The topic's partition count in this engine.
    pub partitions: u32,
    /// Parts of a send (the home topic's other partitions): the serving engine
    /// takes them as a send, deduplicating ids ([`Engine::accept`]). Otherwise
    /// dead letters or redriven messages, appended as they are.
    pub send: bool,
    /// The oldest waiting messages, as one chunk (at most a stored chunk's worth)
    /// whose offsets are this engine's: compact to hand over, and the same bytes
    /// the log stores.
    pub chunk: Chunk,
}

/// The messages of an [`Outbound`] chunk as the serving engine takes them, bound
/// for its `partition`; a delay counts from when they were first appended.
pub(super) fn forwarded_messages(chunk: &Chunk, partition: u32, now_ms: u64) -> Result<Vec<OutgoingMessage>> {
    (chunk.base_offset..chunk.end_offset())
        .map(|offset| {
            let m = chunk.message(offset).unwrap_or_else(|| Err(FerryError::invalid("a forwarded chunk is cut short")))?;
            Ok(OutgoingMessage { key: m.key, value: m.value, headers: m.headers, id: m.id, delay_ms: m.deliver_at_ms.saturating_sub(now_ms), partition: Some(partition) })
        })
        .collect()
}

impl Engine {
    /// Makes this engine serve `partition` of `topic` alone: consumers are handed
    /// only its messages, stats report only it, and what is appended elsewhere
    /// waits for forwarding ([`Engine::outbound`]).
    pub fn set_home(&mut self, topic: &str, partition: u32) {
        self.home = Some((Name::from(topic), partition));
    }

    pub(super) fn serves(&self, topic: &str, partition: u32) -> bool {
        self.home.as_ref().map_or(true, |(t, p)| &**t == topic && *p == partition)
    }

    pub(super) fn serves_topic(&self, topic: &str) -> bool {
        self.home.as_ref().map_or(true, |(t, _)| &**t == topic)
    }

    /// The oldest waiting messages of each partition this engine does not serve.
    pub fn outbound(&self) -> Result<Vec<Outbound>> {
        let Some((home, _)) = &self.home else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for (p, state) in topic.partitions.iter().enumerate() {
                let p = p as u32;
                if self.serves(name, p) || state.head.high == state.head.low {
                    continue;
                }
                let mut builder = ChunkBuilder::new(state.head.low);
                for offset in state.head.low..state.head.high {
                    if builder.is_full() {
                        break;
                    }
                    let m = self.message_at(name, p, offset)?;
                    builder.push(m.timestamp_ms, m.deliver_at_ms - m.timestamp_ms, m.key.as_deref(), &m.value, &m.headers, m.id.as_deref());
                }
                out.push(Outbound { topic: name.clone(), partition: p, partitions: topic.config.partitions, send: name == home, chunk: builder.finish() });
            }
        }
        Ok(out)
    }

    /// The serving engine stored the waiting messages of a partition before
    /// offset `end`: they are dropped here.
    pub fn forwarded(&mut self, topic: &str, partition: u32, end: u64) {
        let (Some(name), Some(state)) = (self.topic_name(topic), self.partition(topic, partition)) else { return };
        if self.serves(topic, partition) || end <= state.head.low {
            return;
        }
        let end = end.min(state.head.high);
        self.advance_low(&name, partition, end, 0);
    }

    /// Takes the chunk of an [`Outbound`] another engine forwards to this one's
    /// home partition: `source` names that engine and its partition, `send` is the
    /// entry's. Messages of `source` taken before are skipped, so a repeated
    /// forward stores nothing twice; resolves to how many were skipped and the
    /// metadata of the others.
    ///
    /// Parts of a send are taken as [`Engine::send`] takes messages, except that
    /// neither `maxDepth` nor `maxMessageBytes` refuses them any more (the engine
    /// coordinating the send checked them, and has stored it). Dead letters and
    /// redriven messages are appended as they are, as the engine that made them
    /// would have: no dedup, no `maxDepth`.
    pub fn accept(&mut self, source: &str, chunk: &Chunk, send: bool, now_ms: u64) -> Result<(u64, Vec<RecordMetadata>)> {
        let Some((topic, partition)) = self.home.clone() else { return Err(FerryError::invalid("an engine serving the whole bus takes no forwarded messages")) };
        let next = self.forwarded.get(source).copied().unwrap_or(0);
        let skipped = next.saturating_sub(chunk.base_offset).min(chunk.len());
        if skipped == chunk.len() {
            return Ok((skipped, Vec::new()));
        }
        let messages = forwarded_messages(chunk, partition, now_ms)?.split_off(skipped as usize);
        let results = if send { self.send_with(&topic, &messages, now_ms, Admission::Forwarded)? } else { self.append_as_made(&topic, partition, &messages, now_ms)? };
        self.put(Key::Forwarded(Name::from(source)), Some(Record::Forwarded(chunk.end_offset())));
        Ok((skipped, results))
    }

    fn append_as_made(&mut self, topic: &Name, partition: u32, messages: &[OutgoingMessage], now_ms: u64) -> Result<Vec<RecordMetadata>> {
        let Some(config) = self.topic_config(topic) else { return Err(FerryError::unknown_topic(topic)) };
        check_range("partition", u64::from(partition), 0, u64::from(config.partitions) - 1)?;
        if messages.len() > SEND_BATCH_MAX {
            return Err(FerryError::invalid(format!("messages must hold 1 to {SEND_BATCH_MAX} messages, got {}", messages.len())));
        }
        for (index, message) in messages.iter().enumerate() {
            self.check_message(index, message, config.partitions, Admission::Forwarded)?;
        }
        let appends: Vec<_> = messages
            .iter()
            .map(|m| Append { timestamp_ms: now_ms, delay_ms: m.delay_ms, key: m.key.as_deref(), value: &m.value, headers: &m.headers, id: m.id.as_deref() })
            .collect();
        // Dead letters are kept until redriven (or consumed by every group), as
        // where they are made: the redrive position starts before the first.
        if messages.iter().any(|m| m.headers.iter().any(|(k, _)| k == log::DLQ_TOPIC)) {
            self.ensure_cursors(&Name::from(REDRIVE_GROUP), topic, false);
        }
        let first = self.append(topic, partition, &appends);
        Ok((first..first + messages.len() as u64)
            .map(|offset| RecordMetadata { topic: topic.clone(), partition, offset, timestamp_ms: now_ms, duplicate: false })
            .collect())
    }
}
