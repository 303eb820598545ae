//! Results as JSON text, parsed once on the JavaScript side: one crossing of the
//! boundary instead of one per field.

use std::fmt::Write;

use crate::core::engine::{RecordMetadata, Stats, TopicInfo};

/// Appends `text` as a JSON string literal.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn opt_number(out: &mut String, value: Option<u64>) {
    match value {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

pub fn metadata(list: &[RecordMetadata]) -> String {
    let mut out = String::from("[");
    for (i, m) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"topic\":");
        string(&mut out, &m.topic);
        let _ = write!(out, ",\"partition\":{},\"offset\":{},\"timestamp\":{},\"duplicate\":{}}}", m.partition, m.offset, m.timestamp_ms, m.duplicate);
    }
    out.push(']');
    out
}

pub fn topics(list: &[TopicInfo]) -> String {
    let mut out = String::from("[");
    for (i, t) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"topic\":");
        string(&mut out, &t.topic);
        let _ = write!(out, ",\"partitions\":{},\"retentionMs\":", t.partitions);
        opt_number(&mut out, t.retention_ms);
        out.push_str(",\"maxDepth\":");
        opt_number(&mut out, t.max_depth);
        out.push('}');
    }
    out.push(']');
    out
}

pub fn stats(stats: &Stats) -> String {
    let mut out = String::from("{\"topics\":[");
    for (i, t) in stats.topics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"topic\":");
        string(&mut out, &t.topic);
        out.push_str(",\"partitions\":[");
        for (j, p) in t.partitions.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"partition\":{},\"lowOffset\":{},\"highOffset\":{},\"depth\":{},\"expired\":{}}}",
                p.partition, p.low_offset, p.high_offset, p.depth, p.expired
            );
        }
        out.push_str("]}");
    }
    out.push_str("],\"groups\":[");
    for (i, g) in stats.groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"groupId\":");
        string(&mut out, &g.group_id);
        out.push_str(",\"topic\":");
        string(&mut out, &g.topic);
        let _ = write!(out, ",\"deadLettered\":{},\"partitions\":[", g.dead_lettered);
        for (j, p) in g.partitions.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"partition\":{},\"committedOffset\":{},\"lag\":{},\"inFlight\":{},\"retrying\":{},\"owner\":",
                p.partition, p.committed_offset, p.lag, p.in_flight, p.retrying
            );
            match &p.owner {
                Some(owner) => string(&mut out, owner),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}
