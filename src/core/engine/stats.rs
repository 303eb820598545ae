//! `bus.stats()`: depth, lag, in-flight and dead-lettered counts, shaped as
//! pkg/README.md, with each group's members and when each was last seen; and `bus.browse()`: a partition's messages read without leasing
//! them. An engine holding one partition of a split bus reports that partition alone.

use super::*;
use crate::core::config::check_range;
use crate::core::limits::BROWSE_MAX;
use crate::core::message::Message;

/// Messages of one partition from an offset, read without leasing them.
#[derive(Clone, Debug, PartialEq)]
pub struct Browsed {
    pub low_offset: u64,
    pub high_offset: u64,
    /// Where the next page starts: after the last message read.
    pub next_offset: u64,
    pub messages: Vec<BrowsedMessage>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BrowsedMessage {
    pub message: Message,
    /// The deliveries the group asked about made of it so far, while it is
    /// unsettled there (`None`: no group asked, or none unsettled).
    pub attempt: Option<u32>,
    /// A dead letter already moved back by `redrive` (it stays in the log until
    /// those before it are moved too).
    pub redriven: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub topics: Vec<TopicStats>,
    pub groups: Vec<GroupStats>,
    pub members: Vec<MemberStats>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicStats {
    pub topic: Name,
    /// Dead letters were written to it: `redrive` and `purge` take it.
    pub dead_letter: bool,
    pub partitions: Vec<PartitionStats>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: u32,
    pub low_offset: u64,
    pub high_offset: u64,
    /// `high_offset - low_offset`.
    pub depth: u64,
    /// Messages removed by `retentionMs`.
    pub expired: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStats {
    pub group_id: Name,
    pub topic: Name,
    pub dead_lettered: u64,
    pub partitions: Vec<GroupPartitionStats>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPartitionStats {
    pub partition: u32,
    /// The next offset the group will consume.
    pub committed_offset: u64,
    /// `high_offset - committed_offset`.
    pub lag: u64,
    pub in_flight: u64,
    /// Messages waiting for a retry after a failed attempt.
    pub retrying: u64,
    /// The member holding the partition.
    pub owner: Option<Name>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStats {
    pub group_id: Name,
    pub member_id: Name,
    /// Its last heartbeat (or join).
    pub last_seen_ms: u64,
}

impl MemberStats {
    /// The kind of context the member runs in ([`member_context`]).
    pub fn context(&self) -> &'static str {
        member_context(&self.member_id)
    }
}

/// The kind of context a member runs in: "page", "worker", "shared-worker",
/// "service-worker" or "node", as the runtime wrote it into the id it made
/// (`{group}-{kind}-{tail}`); "edge-pull" for the edge's [`PULL_MEMBER`]; else
/// "unknown" (an id made elsewhere, or before ids said it).
pub fn member_context(member: &str) -> &'static str {
    if member == PULL_MEMBER {
        return "edge-pull";
    }
    match member.rsplit('-').nth(1) {
        Some("page") => "page",
        Some("worker") => "worker",
        Some("shared") => "shared-worker",
        Some("service") => "service-worker",
        Some("node") => "node",
        _ => "unknown",
    }
}

impl Engine {
    pub fn stats(&self) -> Stats {
        let topics = self
            .topics
            .iter()
            .filter(|(name, _)| self.serves_topic(name))
            .map(|(name, t)| TopicStats {
                topic: name.clone(),
                dead_letter: self.is_dead_letter_topic(name),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| self.serves(name, *p as u32))
                    .map(|(p, s)| PartitionStats {
                        partition: p as u32,
                        low_offset: s.head.low,
                        high_offset: s.head.high,
                        depth: s.head.high - s.head.low,
                        expired: s.head.expired,
                    })
                    .collect(),
            })
            .collect();
        let mut groups = Vec::new();
        let mut members = Vec::new();
        for (group, state) in self.groups.iter().filter(|(g, _)| &***g != REDRIVE_GROUP) {
            for (member, record) in &state.members {
                let last_seen_ms = record.session_expires_ms.saturating_sub(record.config.session_timeout_ms);
                members.push(MemberStats { group_id: group.clone(), member_id: member.clone(), last_seen_ms });
            }
            for (topic, gt) in state.topics.iter().filter(|(topic, _)| self.serves_topic(topic)) {
                let partitions = gt
                    .cursors
                    .iter()
                    .filter(|(p, _)| self.serves(topic, **p))
                    .map(|(p, cs)| {
                        let high = self.partition(topic, *p).map_or(0, |s| s.head.high);
                        let count = |f: fn(&Pending) -> bool| cs.pending.values().filter(|x| f(x)).count() as u64;
                        GroupPartitionStats {
                            partition: *p,
                            committed_offset: cs.cursor.committed,
                            lag: high.saturating_sub(cs.cursor.committed),
                            in_flight: count(|x| matches!(x, Pending::InFlight { .. } | Pending::Leased { .. })),
                            retrying: count(|x| matches!(x, Pending::Waiting { failed, .. } if *failed > 0)),
                            owner: gt.record.owners.get(*p as usize).cloned().flatten(),
                        }
                    })
                    .collect();
                groups.push(GroupStats { group_id: group.clone(), topic: topic.clone(), dead_lettered: gt.record.dead_lettered, partitions });
            }
        }
        Stats { topics, groups, members }
    }

    /// Up to `max` messages of partition `partition` of `topic` from `offset` (or
    /// the first retained, if later), each with the attempts `group` made of it.
    /// Reads only: no group's position or lease changes.
    pub fn browse(&self, topic: &str, partition: u32, offset: u64, max: u64, group: Option<&str>) -> Result<Browsed> {
        check_range("limit", max, 1, BROWSE_MAX)?;
        let Some(state) = self.partition(topic, partition) else {
            return Err(FerryError::unknown_partition(topic, partition));
        };
        let cursor = group.and_then(|g| self.cursor(g, topic, partition));
        let attempt = |o: u64| match cursor?.pending.get(&o)? {
            Pending::InFlight { attempt, .. } | Pending::Leased { attempt, .. } => Some(*attempt),
            Pending::Waiting { failed, .. } => Some(*failed),
            Pending::Acked => None,
        };
        let messages = self.read_log(topic, partition, offset, max as usize)?.into_iter().map(|message| BrowsedMessage {
            attempt: attempt(message.offset),
            redriven: self.redriven(topic, partition, message.offset),
            message,
        });
        let messages: Vec<BrowsedMessage> = messages.collect();
        let next_offset = messages.last().map_or(offset.clamp(state.head.low, state.head.high), |m| m.message.offset + 1);
        Ok(Browsed { low_offset: state.head.low, high_offset: state.head.high, next_offset, messages })
    }
}
