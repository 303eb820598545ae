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
    /// The group position's [`Cursor::generation`] when it was handed out.
    pub generation: u32,
    pub message: Message,
}

impl Delivery {
    pub fn receipt(&self) -> Receipt {
        Receipt { topic: self.topic.clone(), partition: self.partition, offset: self.message.offset, attempt: self.attempt, generation: self.generation }
    }
}

/// When a failed message is handed out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// After the member's backoff: the handler failed.
    Backoff,
    /// After this long: asked for, or 0 when the member was lost and the handler
    /// never failed.
    Ms(u64),
    /// Never: the failure is permanent (a bridge's far end refused the message),
    /// so it is dead-lettered at once, whatever attempts are left.
    Never,
}

/// How a member holds a message it was handed.
enum Held {
    InFlight,
    /// Leased behind its run's message in flight, to this member (its stored name).
    Leased(Name),
}

/// Identifies one delivery of one message, to settle it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub topic: Name,
    pub partition: u32,
    pub offset: u64,
    pub attempt: u32,
    /// The delivery's [`Delivery::generation`]: after a [`Engine::seek`] of its
    /// partition the receipt settles nothing.
    pub generation: u32,
}

/// Partitions of one topic a member does not take for now: every one but
/// `partitions` when `all`, else those.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub topic: String,
    pub all: bool,
    pub partitions: Vec<u32>,
}

impl Pause {
    pub fn holds(&self, topic: &str, partition: u32) -> bool {
        self.topic == topic && self.all != self.partitions.contains(&partition)
    }

    /// Pauses `partitions` of `topic` in `paused` (every one when `None`).
    pub fn add(paused: &mut Vec<Pause>, topic: &str, partitions: Option<&[u32]>) {
        let i = paused.iter().position(|p| p.topic == topic).unwrap_or_else(|| {
            paused.push(Pause { topic: topic.to_string(), all: false, partitions: Vec::new() });
            paused.len() - 1
        });
        let entry = &mut paused[i];
        match partitions {
            None => (entry.all, entry.partitions) = (true, Vec::new()),
            Some(list) if entry.all => entry.partitions.retain(|p| !list.contains(p)),
            Some(list) => entry.partitions.extend(list.iter().filter(|p| !entry.partitions.contains(p)).collect::<Vec<_>>()),
        }
    }

    /// Resumes `partitions` of `topic` in `paused` (every one when `None`).
    pub fn remove(paused: &mut Vec<Pause>, topic: &str, partitions: Option<&[u32]>) {
        let Some(i) = paused.iter().position(|p| p.topic == topic) else { return };
        let entry = &mut paused[i];
        match partitions {
            None => entry.partitions.clear(),
            Some(list) if entry.all => entry.partitions.extend(list.iter().filter(|p| !entry.partitions.contains(p)).collect::<Vec<_>>()),
            Some(list) => entry.partitions.retain(|p| !list.contains(p)),
        }
        // Resumed whole, or nothing of it left paused.
        if partitions.is_none() || (!entry.all && entry.partitions.is_empty()) {
            paused.remove(i);
        }
    }
}

/// How much one [`Engine::poll`] may hand out. A plain number `n` is `n` messages
/// in at most `n` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollLimit {
    /// Messages in all (at most [`POLL_MAX`]).
    pub messages: usize,
    /// Runs: under partition ordering, partitions that hand out a run each; under
    /// `Ordering::None`, messages (each is a run of its own).
    pub runs: usize,
}

impl PollLimit {
    /// `runs` runs and `runs × run_messages` messages in all: a run loop with `runs`
    /// free slots passes its `maxBatchSize` (a run is never longer than that).
    pub fn runs(runs: usize, run_messages: usize) -> PollLimit {
        PollLimit { messages: runs.saturating_mul(run_messages), runs }
    }
}

impl From<usize> for PollLimit {
    fn from(messages: usize) -> PollLimit {
        PollLimit { messages, runs: messages }
    }
}

impl Engine {
    /// Hands `member` of `group` what it may handle now from the partitions it
    /// owns, within `limit`. Deliveries come grouped by partition, each
    /// partition's in offset order.
    ///
    /// With `ordering: Partition` a partition hands out a *run*: up to the member's
    /// `maxBatchSize` consecutive offsets from its first unsettled one, stopping at
    /// one that is not deliverable yet (a retry waiting for its backoff, a delayed
    /// message); nothing while an earlier offset is in flight. The run's first
    /// message is in flight at once, leased for `ackTimeoutMs`; each later one is
    /// [`Pending::Leased`] and goes in flight, with a lease of its own, when the one
    /// before it is acked (see [`Engine::ack`]). With `Ordering::None` messages pass
    /// each other, each in flight at once, within [`UNSETTLED_WINDOW_MAX`] of the
    /// committed offset. Empty when the member is not in the group (see
    /// [`Engine::heartbeat`]).
    pub fn poll(&mut self, group: &str, member: &str, limit: impl Into<PollLimit>, now_ms: u64) -> Result<Vec<Delivery>> {
        self.poll_unpaused(group, member, limit, &[], now_ms)
    }

    /// [`Engine::poll`], leaving out the partitions `paused` names: the member
    /// keeps them, and their messages wait (KafkaJS's `pause`).
    pub fn poll_unpaused(&mut self, group: &str, member: &str, limit: impl Into<PollLimit>, paused: &[Pause], now_ms: u64) -> Result<Vec<Delivery>> {
        let limit = limit.into();
        let max = limit.messages.min(POLL_MAX);
        let Some((group_name, member_name)) = self.member_names(group, member) else { return Ok(Vec::new()) };
        let config = self.groups[group].members[member].config.clone();
        let mut owned: Vec<(Name, u32)> = Vec::new();
        for topic in &self.groups[group].members[member].topics {
            owned.extend(self.owned_partitions(group, member, topic).into_iter().filter(|p| self.serves(topic, *p)).map(|p| (topic.clone(), p)));
        }
        owned.retain(|(topic, p)| !paused.iter().any(|pause| pause.holds(topic, *p)));
        if owned.is_empty() || max == 0 || limit.runs == 0 {
            return Ok(Vec::new());
        }
        self.poll_rotation = self.poll_rotation.wrapping_add(1);
        let start = self.poll_rotation % owned.len();
        owned.rotate_left(start);

        // Pick and decode first, so a corrupt log refuses the poll with nothing
        // changed. A pick is `(topic, partition, message, attempt, is_new, in_flight)`.
        let mut picks: Vec<(Name, u32, Message, u32, bool, bool)> = Vec::new();
        let mut runs = 0;
        for (topic, p) in owned {
            let remaining = max - picks.len();
            if remaining == 0 || runs == limit.runs {
                break;
            }
            let found = match config.ordering {
                Ordering::Partition => {
                    let run = self.deliverable_run(group, &topic, p, remaining.min(config.batch_size_max as usize), now_ms);
                    runs += usize::from(!run.is_empty());
                    run
                }
                Ordering::None => {
                    let each = self.deliverable_any(group, &topic, p, remaining.min(limit.runs - runs), now_ms);
                    runs += each.len();
                    each
                }
            };
            for (i, (offset, failed, is_new)) in found.into_iter().enumerate() {
                let message = self.message_at(&topic, p, offset)?;
                let in_flight = i == 0 || config.ordering == Ordering::None;
                picks.push((topic.clone(), p, message, failed + 1, is_new, in_flight));
            }
        }

        let deadline_ms = now_ms.saturating_add(config.ack_timeout_ms);
        let mut deliveries = Vec::with_capacity(picks.len());
        // The last new offset handed out of each partition: its fetch position moves
        // once, past all of them.
        let mut fetched: Vec<(Name, u32, u64)> = Vec::new();
        for (topic, p, message, attempt, is_new, in_flight) in picks {
            let offset = message.offset;
            if is_new {
                match fetched.last_mut() {
                    Some((t, q, last)) if *t == topic && *q == p => *last = offset,
                    _ => fetched.push((topic.clone(), p, offset)),
                }
            }
            let lease = if in_flight {
                Pending::InFlight { member: member_name.clone(), attempt, deadline_ms }
            } else {
                Pending::Leased { member: member_name.clone(), attempt, acked: false }
            };
            self.put(Key::Pending(group_name.clone(), topic.clone(), p, offset), Some(Record::Pending(lease)));
            let generation = self.cursor(&group_name, &topic, p).map_or(0, |cs| cs.cursor.generation);
            deliveries.push(Delivery { topic, partition: p, attempt, generation, message });
        }
        for (topic, p, last) in fetched {
            self.record_fetch(&group_name, &topic, p, last, now_ms);
        }
        Ok(deliveries)
    }

    /// Under partition ordering, the run one partition may hand out now, at most
    /// `max` long, as `(offset, failed attempts so far, never handed out before)`:
    /// consecutive offsets from the first unsettled one, each a retry that is due
    /// or a new message whose delay has passed.
    fn deliverable_run(&self, group: &str, topic: &str, p: u32, max: usize, now_ms: u64) -> Vec<(u64, u32, bool)> {
        let (Some(cs), Some(state)) = (self.cursor(group, topic, p), self.partition(topic, p)) else { return Vec::new() };
        let mut out = Vec::new();
        let mut offset = cs.pending.iter().find(|(_, pending)| !matches!(pending, Pending::Acked)).map_or(cs.cursor.next, |(offset, _)| *offset);
        while out.len() < max {
            match cs.pending.get(&offset) {
                Some(Pending::Waiting { failed, due_ms, .. }) if *due_ms <= now_ms => out.push((offset, *failed, false)),
                Some(_) => break,
                None if offset >= cs.cursor.next && offset < state.head.high && deliverable_at(state, offset, now_ms) => out.push((offset, 0, true)),
                None => break,
            }
            offset += 1;
        }
        out
    }

    /// Under `Ordering::None`, up to `max` offsets of one partition that may be
    /// handed out now, as [`Engine::deliverable_run`] gives them: retries that are
    /// due, then new messages whose delay has passed.
    fn deliverable_any(&self, group: &str, topic: &str, p: u32, max: usize, now_ms: u64) -> Vec<(u64, u32, bool)> {
        let (Some(cs), Some(state)) = (self.cursor(group, topic, p), self.partition(topic, p)) else { return Vec::new() };
        let mut out = Vec::new();
        for (offset, pending) in &cs.pending {
            if out.len() >= max {
                return out;
            }
            if let Pending::Waiting { failed, due_ms, .. } = pending {
                if *due_ms <= now_ms {
                    out.push((*offset, *failed, false));
                }
            }
        }
        let window_end = cs.cursor.committed.saturating_add(UNSETTLED_WINDOW_MAX).min(state.head.high);
        let mut next = cs.cursor.next;
        while next < window_end && out.len() < max {
            if deliverable_at(state, next, now_ms) {
                out.push((next, 0, true));
            }
            next += 1;
        }
        out
    }

    /// Moves the fetch position past the newly handed-out offsets up to `offset`
    /// (each already has its lease); delayed messages skipped on the way (ordering
    /// "none") wait in a record of their own.
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

    /// How `receipt`'s message is held by `member`, with the `(group, topic)`
    /// names, when it still is: in flight with a lease that has not run out (a
    /// result that comes after `ackTimeoutMs` is ignored even before a tick has
    /// counted the timeout), or leased behind the message in flight of its run;
    /// and no [`Engine::seek`] of its partition came since it was handed out.
    fn lease(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> Option<(Name, Name, Held)> {
        let (g, state) = self.groups.get_key_value(group)?;
        let (topic, gt) = state.topics.get_key_value(&*receipt.topic)?;
        let cs = gt.cursors.get(&receipt.partition).filter(|cs| cs.cursor.generation == receipt.generation)?;
        let held = match cs.pending.get(&receipt.offset)? {
            Pending::InFlight { member: holder, attempt, deadline_ms } if **holder == *member && *attempt == receipt.attempt && now_ms < *deadline_ms => Held::InFlight,
            Pending::Leased { member: holder, attempt, .. } if **holder == *member && *attempt == receipt.attempt => Held::Leased(holder.clone()),
            _ => return None,
        };
        Some((g.clone(), topic.clone(), held))
    }

    /// Whether `member` still holds `receipt`'s delivery, so that its handler's
    /// result will count: a run loop asks before it starts each message of a run.
    pub fn holds(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        self.lease(group, member, receipt, now_ms).is_some()
    }

    /// Settles a delivery as handled: the group's committed offset moves past it
    /// once every earlier offset is settled too, and the next message of its run
    /// goes in flight, leased for `ackTimeoutMs` from `now_ms`. A message acked
    /// before the earlier ones of its run settle is held as acked and settles when
    /// its turn comes (if the run is given up first, it is delivered again).
    /// `false` (and nothing changes) when the lease is no longer the member's: it
    /// ran out (`now_ms` is at or past its deadline) or the member was removed, and
    /// the message was or will be delivered again.
    pub fn ack(&mut self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        let Some((g, topic, held)) = self.lease(group, member, receipt, now_ms) else { return false };
        let (p, offset) = (receipt.partition, receipt.offset);
        match held {
            Held::InFlight => {
                self.settle(&g, &topic, p, offset);
                self.advance_run(&g, &topic, p, offset + 1, now_ms);
            }
            Held::Leased(holder) => {
                let early = Pending::Leased { member: holder, attempt: receipt.attempt, acked: true };
                self.put(Key::Pending(g, topic, p, offset), Some(Record::Pending(early)));
            }
        }
        true
    }

    /// Settles a delivery as failed: retried after the member's backoff, or
    /// dead-lettered once it has failed `maxAttempts` times; the rest of its run
    /// comes back, no attempt counted, after it settles. A message of a run that
    /// is not in flight yet cannot fail before its turn: failing it gives it and
    /// the rest of the run back, no attempt counted. `false` as for
    /// [`Engine::ack`].
    pub fn fail(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, now_ms: u64) -> bool {
        self.fail_with(group, member, receipt, error, Wait::Backoff, now_ms)
    }

    /// [`Engine::fail`], with the next attempt due after `delay_ms` instead of the
    /// member's backoff (a pull consumer's `retry({ delayMs })`).
    pub fn fail_after(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, delay_ms: u64, now_ms: u64) -> bool {
        self.fail_with(group, member, receipt, error, Wait::Ms(delay_ms), now_ms)
    }

    /// Makes every message of `group` waiting for a retry due now, its attempts
    /// as they were: a bridge whose network came back tries at once, not at the
    /// end of its backoff. Messages waiting out their `delayMs` stay as they are.
    /// Returns how many it moved.
    pub fn retry_now(&mut self, group: &str, now_ms: u64) -> u64 {
        let mut moved = Vec::new();
        if let Some(g) = self.groups.get(group) {
            for (topic, gt) in &g.topics {
                for (p, cs) in &gt.cursors {
                    for (offset, pending) in &cs.pending {
                        if let Pending::Waiting { failed, due_ms, error } = pending {
                            if *failed > 0 && *due_ms > now_ms {
                                moved.push((topic.clone(), *p, *offset, Pending::Waiting { failed: *failed, due_ms: now_ms, error: error.clone() }));
                            }
                        }
                    }
                }
            }
        }
        let (group, count) = (Name::from(group), moved.len() as u64);
        for (topic, p, offset, waiting) in moved {
            self.put(Key::Pending(group.clone(), topic, p, offset), Some(Record::Pending(waiting)));
        }
        count
    }

    /// [`Engine::fail`] with the next attempt due after `wait`, or none
    /// ([`Wait::Never`]: dead-lettered now).
    pub fn fail_with(&mut self, group: &str, member: &str, receipt: &Receipt, error: &str, wait: Wait, now_ms: u64) -> bool {
        let Some((g, topic, held)) = self.lease(group, member, receipt, now_ms) else { return false };
        match held {
            Held::InFlight => {
                let config = self.groups[group].members.get(member).map(|m| m.config.clone()).unwrap_or_default();
                self.failed_attempt(&g, &topic, receipt.partition, receipt.offset, receipt.attempt, error, &config, now_ms, wait);
            }
            Held::Leased(_) => self.release_run(&g, &topic, receipt.partition, receipt.offset, now_ms),
        }
        true
    }

    /// A run refused as a whole by the far end (a bridge's batch that will never be
    /// taken): each of its messages `member` still holds, in order from the first,
    /// is dead-lettered at once with `error`, as its attempt. One that is no longer
    /// held stops it there, and the rest of the run is given back. How many were
    /// dead-lettered.
    pub fn refuse_run(&mut self, group: &str, member: &str, receipts: &[Receipt], error: &str, now_ms: u64) -> usize {
        let mut refused = 0;
        for receipt in receipts {
            let Some((g, topic, _)) = self.lease(group, member, receipt, now_ms) else { break };
            let config = self.groups[group].members.get(member).map(|m| m.config.clone()).unwrap_or_default();
            self.dead_letter(&g, &topic, receipt.partition, receipt.offset, receipt.attempt, error, &config, now_ms);
            self.settle(&g, &topic, receipt.partition, receipt.offset);
            refused += 1;
        }
        // What is left of the run behind the last refused message waits no more.
        let Some(last) = receipts.last() else { return 0 };
        let from = receipts.get(refused).map_or(last.offset + 1, |next| next.offset);
        let names = self.groups.get_key_value(group).and_then(|(g, state)| state.topics.get_key_value(&*last.topic).map(|(t, _)| (g.clone(), t.clone())));
        if let Some((g, topic)) = names {
            self.release_run(&g, &topic, last.partition, from, now_ms);
        }
        refused
    }

    /// Gives back a delivery whose handler never started, with the rest of its
    /// run, no attempt counted: they are handed out again at once (a consumer
    /// stopping between two messages of a run). `false` as for [`Engine::ack`].
    pub fn release(&mut self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        let Some((g, topic, _)) = self.lease(group, member, receipt, now_ms) else { return false };
        self.give_back(&g, &topic, receipt.partition, receipt.offset, receipt.attempt, now_ms);
        self.release_run(&g, &topic, receipt.partition, receipt.offset + 1, now_ms);
        true
    }

    /// After the message before `offset` settled: settles the run's messages acked
    /// early, then puts its next message in flight, leased from `now_ms`.
    fn advance_run(&mut self, group: &Name, topic: &Name, p: u32, mut offset: u64, now_ms: u64) {
        loop {
            let Some(Pending::Leased { member, attempt, acked }) = self.cursor(group, topic, p).and_then(|cs| cs.pending.get(&offset)).cloned() else { return };
            if acked {
                self.settle(group, topic, p, offset);
                offset += 1;
                continue;
            }
            let ack_timeout_ms =
                self.groups.get(group).and_then(|g| g.members.get(&member)).map_or(ConsumerConfig::default().ack_timeout_ms, |m| m.config.ack_timeout_ms);
            let lease = Pending::InFlight { member, attempt, deadline_ms: now_ms.saturating_add(ack_timeout_ms) };
            self.put(Key::Pending(group.clone(), topic.clone(), p, offset), Some(Record::Pending(lease)));
            return;
        }
    }

    /// Gives back the messages of a run from `from` on that are leased and not in
    /// flight: each waits, due at once, with its attempts unchanged. Under
    /// partition ordering they are handed out again once every earlier offset
    /// settles.
    pub(super) fn release_run(&mut self, group: &Name, topic: &Name, p: u32, from: u64, now_ms: u64) {
        let Some(cs) = self.cursor(group, topic, p) else { return };
        let mut released = Vec::new();
        for (offset, pending) in cs.pending.range(from..) {
            match pending {
                Pending::Leased { attempt, .. } if *offset == from + released.len() as u64 => released.push((*offset, *attempt)),
                _ => break,
            }
        }
        for (offset, attempt) in released {
            self.give_back(group, topic, p, offset, attempt, now_ms);
        }
    }

    /// Puts a message handed out for its `attempt`-th delivery back, due at once,
    /// as if that delivery never happened.
    fn give_back(&mut self, group: &Name, topic: &Name, p: u32, offset: u64, attempt: u32, now_ms: u64) {
        let waiting = Pending::Waiting { failed: attempt.saturating_sub(1), due_ms: now_ms, error: None };
        self.put(Key::Pending(group.clone(), topic.clone(), p, offset), Some(Record::Pending(waiting)));
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
    pub(super) fn failed_attempt(
        &mut self,
        group: &Name,
        topic: &Name,
        p: u32,
        offset: u64,
        attempt: u32,
        error: &str,
        config: &ConsumerConfig,
        now_ms: u64,
        wait: Wait,
    ) {
        self.release_run(group, topic, p, offset + 1, now_ms);
        if attempt >= config.retry.max_attempts || matches!(wait, Wait::Never) {
            self.dead_letter(group, topic, p, offset, attempt, error, config, now_ms);
            self.settle(group, topic, p, offset);
            return;
        }
        let wait_ms = match wait {
            Wait::Backoff | Wait::Never => config.retry.backoff_ms(attempt, &mut self.rng),
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
                name
            }
        };
        // Dead letters are kept until redriven (or consumed by every group): a topic
        // used as it is gets a redrive position from its end, before its first.
        self.ensure_cursors(&Name::from(REDRIVE_GROUP), &dlq, false);
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

/// Whether the message at `offset` (which the partition holds) is past its delay.
fn deliverable_at(state: &PartitionState, offset: u64, now_ms: u64) -> bool {
    state.chunk_for(offset).and_then(|c| c.times(offset)).is_some_and(|(_, at)| at <= now_ms)
}
