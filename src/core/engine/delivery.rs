//! Deliveries: handing messages to members, acks, failed attempts with backoff,
//! ack timeouts, and dead-lettering.

use super::log::{Append, DLQ_HEADER_PREFIX, DLQ_PARTITION, DLQ_TOPIC};
use super::*;
use crate::core::config::{ConsumerConfig, Ordering, TopicConfig};
use crate::core::limits::*;
use crate::core::message::{Message, Value};

/// A message handed to a member: its handler must settle it with
/// [`Engine::ack`] or [`Engine::fail`] before `ackTimeoutMs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub topic: Name,
    pub partition: u32,
    /// Counts from 1.
    pub attempt: u32,
    pub message: Message,
}

impl Delivery {
    pub fn receipt(&self) -> Receipt {
        Receipt { topic: self.topic.clone(), partition: self.partition, offset: self.message.offset, attempt: self.attempt }
    }
}

/// When a failed message is handed out again.
pub(super) enum Wait {
    /// After the member's backoff: the handler failed.
    Backoff,
    /// After this long: asked for, or 0 when the member was lost and the handler
    /// never failed.
    Ms(u64),
}

/// Identifies one delivery of one message, to settle it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub topic: Name,
    pub partition: u32,
    pub offset: u64,
    pub attempt: u32,
}

impl Engine {
    /// Hands `member` of `group` up to `max` messages it may handle now, from the
    /// partitions it owns, and leases each for the member's `ackTimeoutMs`.
    ///
    /// With `ordering: Partition` a partition hands out nothing while an earlier
    /// offset is unsettled (in flight, waiting for a retry, or delayed); with
    /// `Ordering::None` messages pass each other, within
    /// [`UNSETTLED_WINDOW_MAX`] of the committed offset. Empty when the member is not
    /// in the group (see [`Engine::heartbeat`]).
    pub fn poll(&mut self, group: &str, member: &str, max: usize, now_ms: u64) -> Result<Vec<Delivery>> {
        let max = max.min(POLL_MAX);
        let Some((group_name, member_name)) = self.member_names(group, member) else { return Ok(Vec::new()) };
        let config = self.groups[group].members[member].config.clone();
        let mut owned: Vec<(Name, u32)> = Vec::new();
        for topic in &self.groups[group].members[member].topics {
            owned.extend(self.owned_partitions(group, member, topic).into_iter().filter(|p| self.serves(topic, *p)).map(|p| (topic.clone(), p)));
        }
        if owned.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        self.poll_rotation = self.poll_rotation.wrapping_add(1);
        let start = self.poll_rotation % owned.len();
        owned.rotate_left(start);

        // Pick and decode first, so a corrupt log refuses the poll with nothing changed.
        let mut picks: Vec<(Name, u32, Message, u32, bool)> = Vec::new();
        for (topic, p) in owned {
            let remaining = max - picks.len();
            if remaining == 0 {
                break;
            }
            for (offset, failed, is_new) in self.deliverable(group, &topic, p, config.ordering, remaining, now_ms) {
                let message = self.message_at(&topic, p, offset)?;
                picks.push((topic.clone(), p, message, failed + 1, is_new));
            }
        }

        let deadline_ms = now_ms.saturating_add(config.ack_timeout_ms);
        let mut deliveries = Vec::with_capacity(picks.len());
        for (topic, p, message, attempt, is_new) in picks {
            let offset = message.offset;
            if is_new {
                self.record_fetch(&group_name, &topic, p, offset, now_ms);
            }
            let lease = Pending::InFlight { member: member_name.clone(), attempt, deadline_ms };
            self.put(Key::Pending(group_name.clone(), topic.clone(), p, offset), Some(Record::Pending(lease)));
            deliveries.push(Delivery { topic, partition: p, attempt, message });
        }
        Ok(deliveries)
    }

    /// Offsets of one partition that may be handed out now, as
    /// `(offset, failed attempts so far, never handed out before)`.
    fn deliverable(&self, group: &str, topic: &str, p: u32, ordering: Ordering, max: usize, now_ms: u64) -> Vec<(u64, u32, bool)> {
        let (Some(cs), Some(state)) = (self.cursor(group, topic, p), self.partition(topic, p)) else { return Vec::new() };
        let mut out = Vec::new();
        let due = |pending: &Pending| matches!(pending, Pending::Waiting { due_ms, .. } if *due_ms <= now_ms);
        let failed_of = |pending: &Pending| if let Pending::Waiting { failed, .. } = pending { *failed } else { 0 };
        match ordering {
            Ordering::Partition => {
                match cs.pending.iter().find(|(_, pending)| !matches!(pending, Pending::Acked)) {
                    Some((offset, pending)) => {
                        if due(pending) {
                            out.push((*offset, failed_of(pending), false));
                        }
                    }
                    None => {
                        let next = cs.cursor.next;
                        if next < state.head.high && state.chunk_for(next).and_then(|c| c.times(next)).is_some_and(|(_, at)| at <= now_ms) {
                            out.push((next, 0, true));
                        }
                    }
                }
            }
            Ordering::None => {
                for (offset, pending) in &cs.pending {
                    if out.len() >= max {
                        return out;
                    }
                    if due(pending) {
                        out.push((*offset, failed_of(pending), false));
                    }
                }
                let window_end = cs.cursor.committed.saturating_add(UNSETTLED_WINDOW_MAX).min(state.head.high);
                let mut next = cs.cursor.next;
                while next < window_end && out.len() < max {
                    if state.chunk_for(next).and_then(|c| c.times(next)).is_some_and(|(_, at)| at <= now_ms) {
                        out.push((next, 0, true));
                    }
                    next += 1;
                }
            }
        }
        out
    }

    /// Moves the fetch position past a newly handed-out `offset`; delayed messages
    /// skipped on the way (ordering "none") wait in a record of their own.
    fn record_fetch(&mut self, group: &Name, topic: &Name, p: u32, offset: u64, now_ms: u64) {
        let Some(cs) = self.cursor(group, topic, p) else { return };
        let mut cursor = cs.cursor;
        let skipped: Vec<(u64, u64)> = (cursor.next..offset)
            .filter(|o| !cs.pending.contains_key(o))
            .filter_map(|o| self.partition(topic, p)?.chunk_for(o)?.times(o).map(|(_, at)| (o, at)))
            .collect();
        for (o, deliver_at_ms) in skipped {
            let waiting = Pending::Waiting { failed: 0, due_ms: deliver_at_ms.max(now_ms), error: None };
            self.put(Key::Pending(group.clone(), topic.clone(), p, o), Some(Record::Pending(waiting)));
        }
        cursor.next = cursor.next.max(offset + 1);
        self.put(Key::Cursor(group.clone(), topic.clone(), p), Some(Record::Cursor(cursor)));
    }

    /// The in-flight lease `receipt` names, if it is still the member's.
    /// `(group, topic)` names when the lease is still the member's and has not run
    /// out: a result that comes after `ackTimeoutMs` is ignored even before a tick
    /// has counted the timeout.
    fn lease(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> Option<(Name, Name)> {
        let (g, state) = self.groups.get_key_value(group)?;
        let (topic, gt) = state.topics.get_key_value(&*receipt.topic)?;
        match gt.cursors.get(&receipt.partition)?.pending.get(&receipt.offset)? {
            Pending::InFlight { member: holder, attempt, deadline_ms } if **holder == *member && *attempt == receipt.attempt && now_ms < *deadline_ms => {
                Some((g.clone(), topic.clone()))
            }
            _ => None,
        }
    }

    /// Settles a delivery as handled: the group's committed offset moves past it
    /// once every earlier offset is settled too. `false` (and nothing changes) when
    /// the lease is no longer the member's: it ran out (`now_ms` is at or past its
    /// deadline) or the member was removed, and the message was or will be
    /// delivered again.
    pub fn ack(&mut self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        let Some((g, topic)) = self.lease(group, member, receipt, now_ms) else { return false };
        self.settle(&g, &topic, receipt.partition, receipt.offset);
        true
    }

    /// Settles a delivery as failed: retried after the member's backoff, or
    /// dead-lettered once it has failed `maxAttempts` times. `false` as for
    /// [`Engine::ack`].
    pub fn fail(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, now_ms: u64) -> bool {
        let Some((g, topic)) = self.lease(group, member, receipt, now_ms) else { return false };
        let config = self.groups[group].members.get(member).map(|m| m.config.clone()).unwrap_or_default();
        self.failed_attempt(&g, &topic, receipt.partition, receipt.offset, receipt.attempt, error, &config, now_ms, Wait::Backoff);
        true
    }

    /// [`Engine::fail`], with the next attempt due after `delay_ms` instead of the
    /// member's backoff (a pull consumer's `retry({ delayMs })`).
    pub fn fail_after(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, delay_ms: u64, now_ms: u64) -> bool {
        let Some((g, topic)) = self.lease(group, member, receipt, now_ms) else { return false };
        let config = self.groups[group].members.get(member).map(|m| m.config.clone()).unwrap_or_default();
        self.failed_attempt(&g, &topic, receipt.partition, receipt.offset, receipt.attempt, error, &config, now_ms, Wait::Ms(delay_ms));
        true
    }

    /// Marks an offset settled and moves the committed offset over every settled
    /// offset that follows it.
    fn settle(&mut self, group: &Name, topic: &Name, p: u32, offset: u64) {
        let Some(cs) = self.cursor(group, topic, p) else { return };
        let mut cursor = cs.cursor;
        if offset != cursor.committed {
            self.put(Key::Pending(group.clone(), topic.clone(), p, offset), Some(Record::Pending(Pending::Acked)));
            return;
        }
        let mut cleared = vec![offset];
        cursor.committed = offset + 1;
        while cs.pending.get(&cursor.committed) == Some(&Pending::Acked) {
            cleared.push(cursor.committed);
            cursor.committed += 1;
        }
        cursor.next = cursor.next.max(cursor.committed);
        for o in cleared {
            self.put(Key::Pending(group.clone(), topic.clone(), p, o), None);
        }
        self.put(Key::Cursor(group.clone(), topic.clone(), p), Some(Record::Cursor(cursor)));
        self.trim_due.insert((topic.clone(), p));
    }

    /// One failed attempt of an in-flight message: dead-lettered when it was the
    /// last one allowed, else waiting as `wait` says.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn failed_attempt(&mut self, group: &Name, topic: &Name, p: u32, offset: u64, attempt: u32, error: &str, config: &ConsumerConfig, now_ms: u64, wait: Wait) {
        if attempt >= config.retry.max_attempts {
            self.dead_letter(group, topic, p, offset, attempt, error, config, now_ms);
            self.settle(group, topic, p, offset);
            return;
        }
        let wait_ms = match wait {
            Wait::Backoff => config.retry.backoff_ms(attempt, &mut self.rng),
            Wait::Ms(ms) => ms,
        };
        let waiting = Pending::Waiting { failed: attempt, due_ms: now_ms.saturating_add(wait_ms), error: Some(truncate(error, DLQ_ERROR_BYTES_MAX)) };
        self.put(Key::Pending(group.clone(), topic.clone(), p, offset), Some(Record::Pending(waiting)));
    }

    /// Appends a message that failed every attempt to the dead-letter topic (created
    /// with the source's partition count when missing), with the `ferry-dlq-*`
    /// headers saying where it came from and why it failed.
    #[allow(clippy::too_many_arguments)]
    fn dead_letter(&mut self, group: &Name, topic: &Name, p: u32, offset: u64, attempts: u32, error: &str, config: &ConsumerConfig, now_ms: u64) {
        let message = self.message_at(topic, p, offset).unwrap_or_else(|e| Message {
            offset,
            timestamp_ms: now_ms,
            deliver_at_ms: now_ms,
            key: None,
            value: Value::string(""),
            headers: vec![("ferry-dlq-unreadable".into(), e.to_string())],
            id: None,
        });
        let dead_letter_topic = config.dead_letter_topic_for(topic);
        let dlq = match self.topic_name(&dead_letter_topic) {
            Some(name) => name,
            None => {
                let name = Name::from(dead_letter_topic.as_str());
                let partitions = self.topics.get(&**topic).map_or(1, |t| t.config.partitions);
                self.insert_topic(name.clone(), TopicConfig::with_partitions(partitions));
                // Dead letters are kept until redriven (or consumed by every group).
                self.ensure_cursors(&Name::from(REDRIVE_GROUP), &name, true);
                name
            }
        };
        let dlq_partitions = self.topics[&dlq].config.partitions;
        let target = if p < dlq_partitions { p } else { self.pick_partition(&dlq, message.key.as_deref()) };
        // A dead letter's own ferry-dlq-* headers (it failed again, from a
        // dead-letter topic) give way to the new ones.
        let mut headers: Vec<(String, String)> = message.headers.iter().filter(|(k, _)| !k.starts_with(DLQ_HEADER_PREFIX)).cloned().collect();
        headers.extend([
            (DLQ_TOPIC.to_string(), topic.to_string()),
            (DLQ_PARTITION.to_string(), p.to_string()),
            ("ferry-dlq-offset".to_string(), offset.to_string()),
            ("ferry-dlq-group".to_string(), group.to_string()),
            ("ferry-dlq-attempts".to_string(), attempts.to_string()),
            ("ferry-dlq-error".to_string(), truncate(error, DLQ_ERROR_BYTES_MAX)),
        ]);
        let append = Append { timestamp_ms: now_ms, delay_ms: 0, key: message.key.as_deref(), value: &message.value, headers: &headers, id: message.id.as_deref() };
        self.append(&dlq, target, &[append]);
        if let Some(gt) = self.groups.get(&**group).and_then(|g| g.topics.get(&**topic)) {
            let mut record = gt.record.clone();
            record.dead_lettered += 1;
            self.put(Key::GroupTopic(group.clone(), topic.clone()), Some(Record::GroupTopic(record)));
        }
    }

    /// In-flight leases past their deadline: a failed attempt (`ACK_TIMEOUT`).
    pub(super) fn expire_leases(&mut self, now_ms: u64) {
        let mut expired = Vec::new();
        for (g, state) in &self.groups {
            for (topic, gt) in &state.topics {
                for (p, cs) in &gt.cursors {
                    for (offset, pending) in &cs.pending {
                        if let Pending::InFlight { member, attempt, deadline_ms } = pending {
                            if *deadline_ms <= now_ms {
                                let config = state.members.get(member).map(|m| m.config.clone()).unwrap_or_default();
                                expired.push((g.clone(), topic.clone(), *p, *offset, *attempt, config));
                            }
                        }
                    }
                }
            }
        }
        for (g, topic, p, offset, attempt, config) in expired {
            let error = format!("ACK_TIMEOUT: the handler did not settle the message within ackTimeoutMs ({} ms)", config.ack_timeout_ms);
            self.failed_attempt(&g, &topic, p, offset, attempt, &error, &config, now_ms, Wait::Backoff);
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
