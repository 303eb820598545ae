//! A bus split over several engines, one per partition (the edge: one Durable
//! Object per topic partition). An engine serves its home partition; whatever it
//! appends to another partition (the other parts of a send it coordinates, dead
//! letters, redriven messages) waits in that partition's log here, as an outbox,
//! until its driver has handed it to the engine serving that partition and called
//! [`Engine::forwarded`].

use super::log::{self, Admission, Append};
use super::*;
use crate::core::config::{check_name, check_range};
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
    /// takes them as a send ([`Engine::send_forwarded`]), deduplicating ids.
    /// Otherwise dead letters or redriven messages, appended as they are
    /// ([`Engine::append_forwarded`]).
    pub send: bool,
    /// The oldest waiting messages, as one chunk (at most a stored chunk's worth)
    /// whose offsets are this engine's: compact to hand over, and the same bytes
    /// the log stores. [`forwarded_messages`] reads it back.
    pub chunk: Chunk,
}

/// The messages of an [`Outbound`] chunk as the serving engine takes them, bound
/// for its `partition`; a delay counts from when they were first appended.
pub fn forwarded_messages(chunk: &Chunk, partition: u32, now_ms: u64) -> Result<Vec<OutgoingMessage>> {
    (chunk.base_offset..chunk.end_offset())
        .map(|offset| {
            let m = chunk.message(offset).unwrap_or_else(|| Err(FerryError::invalid("a forwarded chunk is cut short")))?;
            Ok(OutgoingMessage {
                key: m.key,
                value: m.value,
                headers: m.headers,
                id: m.id,
                delay_ms: m.deliver_at_ms.saturating_sub(now_ms),
                partition: Some(partition),
            })
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

    /// Takes the part of a send that the engine coordinating it has already
    /// stored: as [`Engine::send`], except that neither `maxDepth` nor
    /// `maxMessageBytes` refuses it any more.
    pub fn send_forwarded(&mut self, topic: &str, messages: &[OutgoingMessage], now_ms: u64) -> Result<Vec<RecordMetadata>> {
        self.send_with(topic, messages, now_ms, Admission::Forwarded)
    }

    /// Appends dead letters or redriven messages forwarded from another engine to
    /// `partition` of `topic` as they are: no dedup, no `maxDepth`, as the engine
    /// that made them would have appended them.
    pub fn append_forwarded(&mut self, topic: &str, partition: u32, messages: &[OutgoingMessage], now_ms: u64) -> Result<Vec<RecordMetadata>> {
        check_name("topic", topic)?;
        let Some(name) = self.topic_name(topic) else { return Err(FerryError::unknown_topic(topic)) };
        let partitions = self.topics[topic].config.partitions;
        check_range("partition", u64::from(partition), 0, u64::from(partitions) - 1)?;
        if messages.is_empty() || messages.len() > SEND_BATCH_MAX {
            return Err(FerryError::invalid(format!("messages must hold 1 to {SEND_BATCH_MAX} messages, got {}", messages.len())));
        }
        for (index, message) in messages.iter().enumerate() {
            self.check_message(index, message, partitions, Admission::Forwarded)?;
        }
        let appends: Vec<_> = messages
            .iter()
            .map(|m| Append { timestamp_ms: now_ms, delay_ms: m.delay_ms, key: m.key.as_deref(), value: &m.value, headers: &m.headers, id: m.id.as_deref() })
            .collect();
        // Dead letters are kept until redriven (or consumed by every group), as
        // where the dead-letter topic is made on demand.
        if messages.iter().any(|m| m.headers.iter().any(|(k, _)| k == log::DLQ_TOPIC)) {
            self.ensure_cursors(&Name::from(REDRIVE_GROUP), &name, true);
        }
        let first = self.append(&name, partition, &appends);
        Ok((first..first + messages.len() as u64)
            .map(|offset| RecordMetadata { topic: name.clone(), partition, offset, timestamp_ms: now_ms, duplicate: false })
            .collect())
    }
}
