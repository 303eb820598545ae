//! Consumer groups: members, sessions and heartbeats, and the balanced, sticky
//! assignment of partitions to live members.

use super::delivery::{Delivery, PollLimit, Wait};
use super::*;
use crate::core::assign::sticky_assign;
use crate::core::config::{check_name, check_range, ConsumerConfig};
use crate::core::limits::*;

/// One topic a consumer subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    /// Where a group with no committed position starts: the earliest retained
    /// offset when true, else the end of the partition.
    pub from_beginning: bool,
}

/// Where [`Engine::seek`] moves a group's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekTo {
    /// This offset.
    Offset(u64),
    /// The first offset whose message was sent at or after this time (ms since the
    /// Unix epoch), or the partition's end when none was.
    Timestamp(u64),
}

impl Subscription {
    pub fn new(topic: impl Into<String>, from_beginning: bool) -> Self {
        Subscription { topic: topic.into(), from_beginning }
    }
}

impl Engine {
    /// Adds `member` to `group` (or updates it when it is there already), subscribed
    /// to `subscriptions`, and rebalances the group's partitions over its members.
    /// Topics are created when missing and auto-creation is on.
    pub fn join(&mut self, group: &str, member: &str, subscriptions: &[Subscription], config: &ConsumerConfig, now_ms: u64) -> Result<()> {
        check_name("groupId", group)?;
        check_range("member id length", member.len() as u64, 1, MEMBER_ID_LEN_MAX as u64)?;
        check_range("number of subscribed topics", subscriptions.len() as u64, 1, SUBSCRIPTIONS_MAX as u64)?;
        config.check()?;
        let mut new_topics = 0;
        for s in subscriptions {
            check_name("topic", &s.topic)?;
            let dead_letter = config.dead_letter_topic_for(&s.topic);
            check_name("deadLetterTopic", &dead_letter)?;
            if dead_letter == s.topic {
                return Err(FerryError::invalid(format!("deadLetterTopic '{dead_letter}' is the subscribed topic itself")));
            }
            if !self.topics.contains_key(s.topic.as_str()) {
                self.topic_partitions_or_auto(&s.topic)?;
                new_topics += 1;
            }
        }
        if self.topics.len() + new_topics > TOPICS_MAX {
            return Err(FerryError::invalid(format!("the bus already holds {TOPICS_MAX} topics, its limit")));
        }
        self.check_group_room(group)?;
        if self.groups.get(group).is_some_and(|g| !g.members.contains_key(member) && g.members.len() >= MEMBERS_PER_GROUP_MAX) {
            return Err(FerryError::invalid(format!("group '{group}' already has {MEMBERS_PER_GROUP_MAX} members, its limit")));
        }

        // Everything is checked: from here on nothing fails.
        let group_name = self.groups.get_key_value(group).map_or_else(|| Name::from(group), |(n, _)| n.clone());
        let mut topics = Vec::with_capacity(subscriptions.len());
        for s in subscriptions {
            let topic = self.ensure_topic(&s.topic);
            self.ensure_cursors(&group_name, &topic, s.from_beginning);
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let record = MemberRecord { topics, config: config.clone(), session_expires_ms: now_ms.saturating_add(config.session_timeout_ms) };
        self.put(Key::Member(group_name.clone(), Name::from(member)), Some(Record::Member(Box::new(record))));
        self.rebalance(&group_name);
        Ok(())
    }

    /// `INVALID_ARGUMENT` when `group` is new and the bus holds [`GROUPS_MAX`] groups.
    fn check_group_room(&self, group: &str) -> Result<()> {
        if !self.groups.contains_key(group) && self.groups.len() >= GROUPS_MAX {
            return Err(FerryError::invalid(format!("the bus already holds {GROUPS_MAX} groups, its limit")));
        }
        Ok(())
    }

    /// Gives `group` a position in every partition of `topic` it has none in yet.
    pub(super) fn ensure_cursors(&mut self, group: &Name, topic: &Name, from_beginning: bool) {
        let Some(state) = self.topics.get(topic) else { return };
        let heads: Vec<PartitionHead> = state.partitions.iter().map(|p| p.head).collect();
        let group_topic = self.groups.get(group).and_then(|g| g.topics.get(topic));
        if group_topic.is_none() {
            let record = GroupTopicRecord { owners: vec![None; heads.len()], dead_lettered: 0 };
            self.put(Key::GroupTopic(group.clone(), topic.clone()), Some(Record::GroupTopic(record)));
        }
        for (p, head) in heads.iter().enumerate() {
            if self.cursor(group, topic, p as u32).is_none() {
                let start = if from_beginning { head.low } else { head.high };
                let cursor = Cursor::at(start);
                self.put(Key::Cursor(group.clone(), topic.clone(), p as u32), Some(Record::Cursor(cursor)));
            }
        }
    }

    /// One round of a consumer loop, as every driver runs it: the heartbeat when
    /// `heartbeat` says it is due (joining again when the member's session ran out,
    /// its context having stalled), then a poll within `limit`.
    #[allow(clippy::too_many_arguments)]
    pub fn consume_round(
        &mut self,
        group: &str,
        member: &str,
        subscriptions: &[Subscription],
        config: &ConsumerConfig,
        heartbeat: bool,
        limit: PollLimit,
        paused: &[Pause],
        now_ms: u64,
    ) -> Result<Vec<Delivery>> {
        if heartbeat && !self.heartbeat(group, member, now_ms) {
            self.join(group, member, subscriptions, config, now_ms)?;
        }
        self.poll_unpaused(group, member, limit, paused, now_ms)
    }

    /// Renews a member's session. `false` when the member is not in the group (its
    /// session ran out): it must join again.
    pub fn heartbeat(&mut self, group: &str, member: &str, now_ms: u64) -> bool {
        let Some((group_name, state)) = self.groups.get_key_value(group) else { return false };
        let Some((member_name, record)) = state.members.get_key_value(member) else { return false };
        let mut record = record.clone();
        record.session_expires_ms = now_ms.saturating_add(record.config.session_timeout_ms);
        let key = Key::Member(group_name.clone(), member_name.clone());
        self.put(key, Some(Record::Member(Box::new(record))));
        true
    }

    /// Removes a member at once; its partitions move to the others. Messages it
    /// still had in flight count as a failed attempt and are redelivered without
    /// waiting for a backoff.
    pub fn leave(&mut self, group: &str, member: &str, now_ms: u64) {
        let Some((g, m)) = self.member_names(group, member) else { return };
        self.remove_member(&g, &m, now_ms, "left the group");
    }

    /// Removes a member that another member saw gone without leaving (its context
    /// closed or crashed: the Web Lock it held for its life was released), as
    /// [`Engine::leave`] does, instead of waiting for its session to run out.
    pub fn evict(&mut self, group: &str, member: &str, now_ms: u64) {
        let Some((g, m)) = self.member_names(group, member) else { return };
        self.remove_member(&g, &m, now_ms, "was gone (its context closed)");
    }

    pub(super) fn member_names(&self, group: &str, member: &str) -> Option<(Name, Name)> {
        let (g, state) = self.groups.get_key_value(group)?;
        let (m, _) = state.members.get_key_value(member)?;
        Some((g.clone(), m.clone()))
    }

    pub(super) fn expire_members(&mut self, now_ms: u64) {
        let expired: Vec<(Name, Name)> = self
            .groups
            .iter()
            .flat_map(|(g, state)| state.members.iter().filter(|(_, m)| m.session_expires_ms <= now_ms).map(move |(m, _)| (g.clone(), m.clone())))
            .collect();
        for (g, m) in expired {
            self.remove_member(&g, &m, now_ms, "session timed out");
        }
    }

    fn remove_member(&mut self, group: &Name, member: &Name, now_ms: u64, why: &str) {
        let Some(record) = self.groups.get(group).and_then(|g| g.members.get(member)).cloned() else { return };
        let in_flight = self.in_flight_of(group, member);
        let error = format!("member {member} {why} before settling the message");
        for (topic, p, offset, attempt) in in_flight {
            self.failed_attempt(group, &topic, p, offset, attempt, &error, &record.config, now_ms, Wait::Ms(0));
        }
        self.put(Key::Member(group.clone(), member.clone()), None);
        self.rebalance(group);
    }

    /// `(topic, partition, offset, attempt)` of every message `member` has in flight.
    fn in_flight_of(&self, group: &str, member: &str) -> Vec<(Name, u32, u64, u32)> {
        let Some(state) = self.groups.get(group) else { return Vec::new() };
        let mut found = Vec::new();
        for (topic, gt) in &state.topics {
            for (p, cs) in &gt.cursors {
                for (offset, pending) in &cs.pending {
                    if let Pending::InFlight { member: holder, attempt, .. } = pending {
                        if &**holder == member {
                            found.push((topic.clone(), *p, *offset, *attempt));
                        }
                    }
                }
            }
        }
        found
    }

    /// Recomputes the owners of every partition the group reads.
    fn rebalance(&mut self, group: &Name) {
        let Some(state) = self.groups.get(group) else { return };
        let mut changes = Vec::new();
        for (topic, gt) in &state.topics {
            // Members come sorted from the BTreeMap.
            let members: Vec<Name> = state.members.iter().filter(|(_, m)| m.topics.contains(topic)).map(|(name, _)| name.clone()).collect();
            let owners = sticky_assign(&gt.record.owners, &members);
            if owners != gt.record.owners {
                changes.push((topic.clone(), GroupTopicRecord { owners, dead_lettered: gt.record.dead_lettered }));
            }
        }
        for (topic, record) in changes {
            self.put(Key::GroupTopic(group.clone(), topic), Some(Record::GroupTopic(record)));
        }
    }

    /// Moves `group`'s position in partition `partition` of `topic` (KafkaJS's
    /// `seek`, which commits it): the group next consumes the returned offset.
    /// An offset below the partition's first retained one goes to that one; one
    /// past its end is refused with `INVALID_ARGUMENT`. Whatever was pending there
    /// is abandoned with no attempt counted: the message in flight, the rest of its
    /// run, retries waiting and acks held early. Their receipts settle nothing from
    /// now on, even when the same offsets are handed out again (the position's
    /// [`Cursor::generation`] moves). A group that has no position in the topic
    /// yet gets this one; its other partitions start where its first subscription
    /// says. A missing topic is `UNKNOWN_TOPIC`, or made when `autoCreateTopics` is
    /// on, as a subscription would; a new group is made as a join makes it, within
    /// the bus's limit of groups.
    pub fn seek(&mut self, group: &str, topic: &str, partition: u32, to: SeekTo) -> Result<u64> {
        check_name("groupId", group)?;
        self.check_group_room(group)?;
        let (config, _) = self.topic_or_auto(topic)?;
        if partition >= config.partitions {
            return Err(FerryError::unknown_partition(topic, partition));
        }
        // A topic not made yet is empty.
        let state = self.partition(topic, partition);
        let (low, high) = state.map_or((0, 0), |s| (s.head.low, s.head.high));
        let offset = match to {
            SeekTo::Offset(offset) if offset > high => {
                return Err(FerryError::invalid(format!("offset {offset} is past the end of partition {partition} of topic '{topic}' (highOffset {high})")));
            }
            SeekTo::Offset(offset) => offset.max(low),
            SeekTo::Timestamp(timestamp_ms) => {
                (low..high).find(|o| state.and_then(|s| s.chunk_for(*o)).and_then(|c| c.times(*o)).is_some_and(|(sent_ms, _)| sent_ms >= timestamp_ms)).unwrap_or(high)
            }
        };
        // Everything is checked: a missing topic is made as a subscription makes it.
        self.topic_or_create(topic, None)?;
        let topic = self.ensure_topic(topic);
        let group = self.groups.get_key_value(group).map_or_else(|| Name::from(group), |(name, _)| name.clone());
        if self.groups.get(&group).and_then(|g| g.topics.get(&topic)).is_none() {
            let partitions = self.topics[&topic].partitions.len();
            let record = GroupTopicRecord { owners: vec![None; partitions], dead_lettered: 0 };
            self.put(Key::GroupTopic(group.clone(), topic.clone()), Some(Record::GroupTopic(record)));
        }
        let (generation, abandoned) = match self.cursor(&group, &topic, partition) {
            Some(cs) => (cs.cursor.generation.wrapping_add(1), cs.pending.keys().copied().collect()),
            None => (0, Vec::new()),
        };
        for o in abandoned {
            self.put(Key::Pending(group.clone(), topic.clone(), partition, o), None);
        }
        let cursor = Cursor { generation, ..Cursor::at(offset) };
        self.put(Key::Cursor(group, topic.clone(), partition), Some(Record::Cursor(cursor)));
        self.trim_due.insert((topic, partition));
        Ok(offset)
    }

    /// The partitions of `topic` that `member` of `group` owns.
    pub fn owned_partitions(&self, group: &str, member: &str, topic: &str) -> Vec<u32> {
        let Some(gt) = self.groups.get(group).and_then(|g| g.topics.get(topic)) else { return Vec::new() };
        gt.record.owners.iter().enumerate().filter(|(_, o)| o.as_deref() == Some(member)).map(|(p, _)| p as u32).collect()
    }

    /// The members of `group`, sorted.
    pub fn members(&self, group: &str) -> Vec<Name> {
        self.groups.get(group).map(|g| g.members.keys().cloned().collect()).unwrap_or_default()
    }
}
