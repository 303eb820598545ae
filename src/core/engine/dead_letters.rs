//! Dead-letter topics: redriving their messages back to the topics they came
//! from, all of them or chosen ones, and purging them.
//!
//! A dead-letter topic is one the bus dead-lettered into: it has a redrive
//! position, a cursor of the group [`REDRIVE_GROUP`] in each partition.
//! Everything below its `committed` offset was moved; a dead letter moved on its
//! own above it (`bus.redrive({ offsets })`) is an `Acked` pending entry there, so
//! that no redrive moves it again. No member ever takes from this group, so its
//! other offsets need no entry.

use super::log::{Append, DLQ_HEADER_PREFIX, DLQ_PARTITION, DLQ_TOPIC};
use super::*;
use crate::core::config::{check_name, check_range};
use crate::core::limits::*;
use crate::core::message::Message;
use crate::core::vec_map::VecMap;

impl Engine {
    /// Moves dead letters of the dead-letter topic `from` back to the topic each came
    /// from (key, value and user headers kept, `ferry-dlq-*` dropped): those at
    /// `offsets` (`(partition, offset)`), or when none are given the first ones of
    /// each partition, at most `limit` of them (default and ceiling
    /// [`REDRIVE_LIMIT_MAX`]); returns how many moved. Each dead letter is moved
    /// once: one moved already, or removed since, is passed over. Refused for a
    /// topic that is not a dead-letter topic, and for an offset chosen that does
    /// not hold a dead letter; all of `from` stops at a message that is not one.
    pub fn redrive(&mut self, from: &str, limit: Option<u64>, offsets: &[(u32, u64)], now_ms: u64) -> Result<u64> {
        let limit = self.check_redrive(from, limit, offsets)?;
        let Some(source) = self.dead_letter_topic(from)? else { return Ok(0) };
        // Read and decode everything first: a corrupt record or a wrong offset
        // refuses the call whole.
        let mut moves: Vec<(u32, u64, Message, Name)> = Vec::new();
        let mut positions: Vec<(u32, u64)> = Vec::new();
        if offsets.is_empty() {
            for p in 0..self.topics[from].config.partitions {
                let Some(state) = self.partition(from, p) else { continue };
                let start = self.redrive_position(from, p);
                let mut end = start;
                // The position never passes a message that is not a dead letter (one
                // sent to this topic directly): redrive must not drop what it did not move.
                while end < state.head.high && (moves.len() as u64) < limit {
                    if !self.redriven_above(from, p, end) {
                        let message = self.message_at(from, p, end)?;
                        let Some(target) = dead_letter_target(&message) else { break };
                        moves.push((p, end, message, target));
                    }
                    end += 1;
                }
                if end > start {
                    positions.push((p, end));
                }
            }
        } else {
            for (i, &(p, offset)) in offsets.iter().enumerate() {
                // An offset never written is a mistake; one removed since (purged,
                // expired) is a dead letter gone, passed over as one moved.
                let high = self.partition(from, p).map_or(0, |s| s.head.high);
                if offset >= high {
                    return Err(FerryError::invalid(format!("offsets[{i}].offset: {from}/{p} holds offsets below {high}, not {offset}")));
                }
                // One named twice moves once. (A scan of what is chosen so far: a
                // redrive is an operator's call, and a set type of its own would cost
                // every page's wasm more than the scan costs the call.)
                let chosen = moves.iter().any(|(mp, mo, _, _)| (*mp, *mo) == (p, offset));
                if chosen || offset < self.redrive_position(from, p) || self.redriven_above(from, p, offset) {
                    continue;
                }
                let message = self.message_at(from, p, offset)?;
                let target = dead_letter_target(&message).ok_or_else(|| {
                    FerryError::invalid(format!("offsets[{i}]: offset {offset} of {from}/{p} is not a dead letter (it was sent to the topic directly)"))
                })?;
                moves.push((p, offset, message, target));
            }
        }
        for (_, _, _, target) in &moves {
            if !self.topics.contains_key(target) {
                self.topic_partitions_or_auto(target)?;
            }
        }

        // Everything is checked: from here on nothing fails.
        let moved = moves.len() as u64;
        for (_, _, message, target) in &moves {
            let target = self.ensure_topic(target);
            let partitions = self.topics[&target].config.partitions;
            let original = message.header(DLQ_PARTITION).and_then(|p| p.parse::<u32>().ok()).filter(|p| *p < partitions);
            let to = original.unwrap_or_else(|| self.pick_partition(&target, message.key.as_deref()));
            let headers: Vec<(String, String)> = message.headers.iter().filter(|(k, _)| !k.starts_with(DLQ_HEADER_PREFIX)).cloned().collect();
            let append = Append { timestamp_ms: now_ms, delay_ms: 0, key: message.key.as_deref(), value: &message.value, headers: &headers, id: message.id.as_deref() };
            self.append(&target, to, &[append]);
        }
        // Chosen ones are marked moved; each partition's position then passes those
        // just above it, once.
        if !offsets.is_empty() {
            // Inserted one by one: collecting would sort, a sort instantiated for this alone.
            let mut touched = VecMap::new();
            for (p, offset, _, _) in &moves {
                self.put(Key::Pending(Name::from(REDRIVE_GROUP), source.clone(), *p, *offset), Some(Record::Pending(Pending::Acked)));
                touched.insert(*p, ());
            }
            positions.extend(touched.into_iter().map(|(p, ())| (p, self.redrive_position(from, p))));
        }
        for (p, end) in positions {
            self.move_committed(&Name::from(REDRIVE_GROUP), &source, p, end);
            self.trim_consumed(&source, p);
        }
        Ok(moved)
    }

    /// Checks what [`Engine::redrive`] is given without moving anything (where it is
    /// done elsewhere: the directory of a split bus); the limit to use.
    pub fn check_redrive(&self, from: &str, limit: Option<u64>, offsets: &[(u32, u64)]) -> Result<u64> {
        check_name("from", from)?;
        let limit = limit.unwrap_or(REDRIVE_LIMIT_MAX);
        check_range("limit", limit, 1, REDRIVE_LIMIT_MAX)?;
        if offsets.len() as u64 > REDRIVE_LIMIT_MAX {
            return Err(FerryError::invalid(format!("offsets holds {} messages, more than {REDRIVE_LIMIT_MAX}", offsets.len())));
        }
        if !self.config.auto_create_topics && !self.topics.contains_key(from) {
            return Err(FerryError::new(ErrorCode::UnknownTopic, format!("topic '{from}' does not exist")));
        }
        if let Some(config) = self.topics.get(from).map(|t| &t.config) {
            for (i, &(p, offset)) in offsets.iter().enumerate() {
                if p >= config.partitions {
                    return Err(FerryError::invalid(format!("offsets[{i}].partition: {from} has no partition {p} (it has {})", config.partitions)));
                }
                if offset > SAFE_INTEGER_MAX {
                    return Err(FerryError::invalid(format!("offsets[{i}].offset must be at most {SAFE_INTEGER_MAX}")));
                }
            }
        }
        Ok(limit)
    }

    /// Removes every retained message of the dead-letter topic `from` (an
    /// operator's purge, after reading them); returns how many. Groups reading it
    /// go on from its end. Refused for a topic that is not a dead-letter topic.
    pub fn purge(&mut self, from: &str, now_ms: u64) -> Result<u64> {
        check_name("topic", from)?;
        if !self.topics.contains_key(from) {
            return Err(FerryError::new(ErrorCode::UnknownTopic, format!("topic '{from}' does not exist")));
        }
        let Some(source) = self.dead_letter_topic(from)? else { return Ok(0) };
        let mut removed = 0;
        for p in 0..self.topics[from].config.partitions {
            let Some(head) = self.partition(from, p).map(|s| s.head) else { continue };
            if head.high > head.low {
                removed += head.high - head.low;
                self.remove_below(&source, p, head.high, 0, now_ms);
            }
        }
        Ok(removed)
    }

    /// `from` as the engine names it, when it is a dead-letter topic; refused when
    /// it is not. (A partition of a split bus may just hold no dead letters yet:
    /// `None`.)
    fn dead_letter_topic(&self, from: &str) -> Result<Option<Name>> {
        let Some(source) = self.topic_name(from) else { return Ok(None) };
        if self.is_dead_letter_topic(from) {
            return Ok(Some(source));
        }
        if self.home.is_some() {
            return Ok(None);
        }
        Err(FerryError::invalid(format!("'{from}' is not a dead-letter topic (none of its messages was dead-lettered)")))
    }

    /// Whether dead letters were written to `topic` (it has a redrive position).
    pub(super) fn is_dead_letter_topic(&self, topic: &str) -> bool {
        self.groups.get(REDRIVE_GROUP).is_some_and(|g| g.topics.contains_key(topic))
    }

    /// Where redriving partition `p` of `from` goes on from: below it, all moved.
    fn redrive_position(&self, from: &str, p: u32) -> u64 {
        let low = self.partition(from, p).map_or(0, |s| s.head.low);
        self.cursor(REDRIVE_GROUP, from, p).map_or(0, |c| c.cursor.committed).max(low)
    }

    /// Whether the message at `offset` of a dead-letter topic was moved back.
    pub(super) fn redriven(&self, from: &str, p: u32, offset: u64) -> bool {
        self.cursor(REDRIVE_GROUP, from, p).is_some_and(|c| offset < c.cursor.committed) || self.redriven_above(from, p, offset)
    }

    /// Whether the dead letter at `offset` (above the position) was moved on its own.
    fn redriven_above(&self, from: &str, p: u32, offset: u64) -> bool {
        self.cursor(REDRIVE_GROUP, from, p).is_some_and(|c| c.pending.get(&offset) == Some(&Pending::Acked))
    }
}

/// The topic a dead letter came from, if `message` is one.
fn dead_letter_target(message: &Message) -> Option<Name> {
    message.header(DLQ_TOPIC).filter(|t| check_name("ferry-dlq-topic", t).is_ok()).map(Name::from)
}

#[cfg(test)]
#[path = "dead_letters_tests.rs"]
mod tests;
