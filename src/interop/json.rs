//! Results as JSON text, parsed once on the JavaScript side: one crossing of the
//! boundary instead of one per field.

use std::fmt::Write;

use crate::core::engine::{RecordMetadata, Stats, TopicInfo};
use crate::core::json::{opt_number, string};

/// Appends `[item, item, ...]`, each written by `item`.
fn array<T>(out: &mut String, items: &[T], mut item: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

pub fn metadata(list: &[RecordMetadata]) -> String {
    let mut out = String::new();
    array(&mut out, list, |out, m| {
        out.push_str("{\"topic\":");
        string(out, &m.topic);
        let _ = write!(out, ",\"partition\":{},\"offset\":{},\"timestamp\":{},\"duplicate\":{}}}", m.partition, m.offset, m.timestamp_ms, m.duplicate);
    });
    out
}

pub fn topics(list: &[TopicInfo]) -> String {
    let mut out = String::new();
    array(&mut out, list, |out, t| {
        out.push_str("{\"topic\":");
        string(out, &t.topic);
        let _ = write!(out, ",\"partitions\":{},\"retentionMs\":", t.partitions);
        opt_number(out, t.retention_ms);
        out.push_str(",\"maxDepth\":");
        opt_number(out, t.max_depth);
        out.push('}');
    });
    out
}

pub fn stats(stats: &Stats) -> String {
    let mut out = String::from("{\"topics\":");
    array(&mut out, &stats.topics, |out, t| {
        out.push_str("{\"topic\":");
        string(out, &t.topic);
        let _ = write!(out, ",\"deadLetter\":{},\"partitions\":", t.dead_letter);
        array(out, &t.partitions, |out, p| {
            let _ = write!(
                out,
                "{{\"partition\":{},\"lowOffset\":{},\"highOffset\":{},\"depth\":{},\"expired\":{}}}",
                p.partition, p.low_offset, p.high_offset, p.depth, p.expired
            );
        });
        out.push('}');
    });
    out.push_str(",\"groups\":");
    array(&mut out, &stats.groups, |out, g| {
        out.push_str("{\"groupId\":");
        string(out, &g.group_id);
        out.push_str(",\"topic\":");
        string(out, &g.topic);
        let _ = write!(out, ",\"deadLettered\":{},\"partitions\":", g.dead_lettered);
        array(out, &g.partitions, |out, p| {
            let _ = write!(
                out,
                "{{\"partition\":{},\"committedOffset\":{},\"lag\":{},\"inFlight\":{},\"retrying\":{},\"owner\":",
                p.partition, p.committed_offset, p.lag, p.in_flight, p.retrying
            );
            match &p.owner {
                Some(owner) => string(out, owner),
                None => out.push_str("null"),
            }
            out.push('}');
        });
        out.push('}');
    });
    out.push_str(",\"members\":");
    array(&mut out, &stats.members, |out, m| {
        out.push_str("{\"groupId\":");
        string(out, &m.group_id);
        out.push_str(",\"memberId\":");
        string(out, &m.member_id);
        let _ = write!(out, ",\"context\":\"{}\",\"lastSeenMs\":{}}}", m.context(), m.last_seen_ms);
    });
    out.push('}');
    out
}
