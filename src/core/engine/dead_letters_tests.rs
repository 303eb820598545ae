//! Browsing a partition, redriving chosen dead letters, and purging a
//! dead-letter topic.

use super::*;
use crate::core::config::{ConsumerConfig, Ordering, RetryPolicy};
use crate::core::message::{OutgoingMessage, Value};

const T0: u64 = 1_700_000_000_000;

fn msg(value: &str) -> OutgoingMessage {
    OutgoingMessage::new(Value::string(value))
}

/// The records of a bus as a store keeps them, commit after commit.
type Stored = std::collections::BTreeMap<Key, Record>;

fn commit(e: &mut Engine, stored: &mut Stored) {
    for (key, record) in e.begin_commit() {
        match record {
            Some(r) => stored.insert(key, r),
            None => stored.remove(&key),
        };
    }
    e.end_commit(true);
}

/// A bus whose topic `t` dead-lettered `values` (in order) into `t.dlq`, after
/// one attempt each, and its records.
fn dead_lettered(values: &[&str]) -> (Engine, Stored) {
    let mut e = Engine::open(BusConfig::default(), 1, Vec::new()).unwrap();
    let config =
        ConsumerConfig { ordering: Ordering::None, retry: RetryPolicy { max_attempts: 1, jitter: false, ..RetryPolicy::default() }, ..ConsumerConfig::default() };
    e.join("g", "m", &[Subscription::new("t", true)], &config, T0).unwrap();
    e.send("t", &values.iter().map(|v| msg(v)).collect::<Vec<_>>(), T0).unwrap();
    for d in e.poll("g", "m", 100, T0).unwrap() {
        assert!(e.fail("g", "m", &d.receipt(), "boom", T0));
    }
    let mut stored = Stored::new();
    commit(&mut e, &mut stored);
    (e, stored)
}

fn values(e: &Engine, topic: &str) -> Vec<String> {
    e.read_log(topic, 0, 0, 100).unwrap().iter().map(|m| m.value.text().to_string()).collect()
}

#[test]
fn browsing_reads_messages_with_their_attempts_and_changes_nothing() {
    let mut e = Engine::open(BusConfig::default(), 1, Vec::new()).unwrap();
    let config = ConsumerConfig { ordering: Ordering::None, retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..ConsumerConfig::default() };
    e.join("g", "m", &[Subscription::new("t", true)], &config, T0).unwrap();
    e.send("t", &["a", "b", "c", "d", "e"].map(|v| msg(v).with_key("k")), T0).unwrap();
    let taken = e.poll("g", "m", 2, T0).unwrap();
    assert!(e.fail("g", "m", &taken[1].receipt(), "boom", T0));
    commit(&mut e, &mut Stored::new());
    let before = e.stats();

    let page = e.browse("t", 0, 0, 3, Some("g")).unwrap();
    assert_eq!((page.low_offset, page.high_offset, page.next_offset), (0, 5, 3));
    let seen: Vec<(u64, String, Option<u32>)> = page.messages.iter().map(|m| (m.message.offset, m.message.value.text().to_string(), m.attempt)).collect();
    assert_eq!(seen, vec![(0, "a".into(), Some(1)), (1, "b".into(), Some(1)), (2, "c".into(), None)], "in flight: 1 attempt; retrying after 1 failed; not handed out");
    let rest = e.browse("t", 0, page.next_offset, 10, None).unwrap();
    assert_eq!(rest.messages.iter().map(|m| (m.message.offset, m.attempt)).collect::<Vec<_>>(), vec![(3, None), (4, None)]);
    assert_eq!(rest.next_offset, 5);
    assert!(e.browse("t", 0, 5, 10, None).unwrap().messages.is_empty());
    assert_eq!(e.browse("t", 0, 99, 10, None).unwrap().next_offset, 5, "past the end: the next page starts at the end");

    assert!(!e.has_writes(), "browsing wrote nothing");
    assert_eq!(e.stats(), before, "no group moved");
    assert_eq!(e.browse("t", 0, 0, 0, None).unwrap_err().code, ErrorCode::InvalidArgument);
    assert!(e.browse("t", 0, 0, 1001, None).unwrap_err().message.contains("limit"));
    assert_eq!(e.browse("t", 1, 0, 10, None).unwrap_err().code, ErrorCode::UnknownTopic);
    assert_eq!(e.browse("nope", 0, 0, 10, None).unwrap_err().code, ErrorCode::UnknownTopic);
}

#[test]
fn chosen_dead_letters_are_moved_once_and_all_of_them_moves_the_others() {
    let (mut e, mut stored) = dead_lettered(&["a", "b", "c", "d"]);
    assert_eq!(e.redrive("t.dlq", None, &[(0, 2)], T0), Ok(1));
    assert_eq!(e.redrive("t.dlq", None, &[(0, 2), (0, 2)], T0), Ok(0), "moved once");
    assert_eq!(values(&e, "t").last().map(String::as_str), Some("c"));
    let flags: Vec<bool> = e.browse("t.dlq", 0, 0, 10, None).unwrap().messages.iter().map(|m| m.redriven).collect();
    assert_eq!(flags, vec![false, false, true, false]);

    // The position is stored: a reopened bus does not move `c` again.
    commit(&mut e, &mut stored);
    let mut reopened = Engine::open(BusConfig::default(), 1, stored.clone()).unwrap();
    assert_eq!(reopened.browse("t.dlq", 0, 0, 10, None).unwrap().messages.iter().map(|m| m.redriven).collect::<Vec<_>>(), vec![false, false, true, false]);
    assert_eq!(reopened.redrive("t.dlq", None, &[(0, 0)], T0), Ok(1));
    assert_eq!(reopened.redrive("t.dlq", None, &[], T0), Ok(2), "b and d; not c again");
    assert_eq!(values(&reopened, "t"), ["c", "a", "b", "d"], "each moved back once, c first");
    assert_eq!(reopened.redrive("t.dlq", None, &[], T0), Ok(0));
    commit(&mut reopened, &mut stored);
    assert_eq!(reopened.stats().topics.iter().find(|t| &*t.topic == "t.dlq").unwrap().partitions[0].depth, 0, "all moved: the dead-letter log is trimmed");
}

#[test]
fn a_wrong_choice_refuses_the_redrive_whole() {
    let (mut e, mut stored) = dead_lettered(&["a", "b"]);
    e.send("t.dlq", &[msg("sent here")], T0).unwrap();
    commit(&mut e, &mut stored);
    for (offsets, field) in [
        (vec![(0, 0), (0, 2)], "offsets[1]: offset 2 of t.dlq/0 is not a dead letter"),
        (vec![(0, 0), (1, 0)], "offsets[1].partition"),
        (vec![(0, 3)], "offsets[0].offset"),
    ] {
        let refused = e.redrive("t.dlq", None, &offsets, T0).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidArgument);
        assert!(refused.message.contains(field), "{refused}");
        assert!(!e.has_writes(), "nothing moved");
    }
    assert_eq!(e.redrive("t", None, &[(0, 0)], T0).unwrap_err().code, ErrorCode::InvalidArgument, "t is no dead-letter topic");
}

#[test]
fn purging_removes_every_dead_letter_and_nothing_is_redriven_after() {
    let (mut e, mut stored) = dead_lettered(&["a", "b", "c"]);
    assert_eq!(e.redrive("t.dlq", None, &[(0, 1)], T0), Ok(1));
    assert_eq!(e.purge("t.dlq", T0), Ok(3));
    commit(&mut e, &mut stored);
    let dlq = e.stats().topics.into_iter().find(|t| &*t.topic == "t.dlq").unwrap();
    assert_eq!((dlq.partitions[0].low_offset, dlq.partitions[0].depth), (3, 0));
    assert_eq!(e.redrive("t.dlq", None, &[], T0), Ok(0));
    assert_eq!(e.purge("t.dlq", T0), Ok(0));
    assert_eq!(values(&e, "t"), ["b"], "the one moved back (the group had committed past the rest)");

    let not_dead = e.purge("t", T0).unwrap_err();
    assert!(not_dead.message.contains("not a dead-letter topic"), "{not_dead}");
    assert_eq!(e.purge("nope", T0).unwrap_err().code, ErrorCode::UnknownTopic);
    assert!(e.purge("", T0).unwrap_err().message.contains("topic"));
}

#[test]
fn stats_mark_dead_letter_topics_and_list_members_with_their_context_and_last_heartbeat() {
    let (mut e, _) = dead_lettered(&["a"]);
    let dead_letter = |e: &Engine, topic: &str| e.stats().topics.iter().find(|t| &*t.topic == topic).map(|t| t.dead_letter);
    assert_eq!((dead_letter(&e, "t"), dead_letter(&e, "t.dlq")), (Some(false), Some(true)));
    e.join("g", "g-page-w0123456789a", &[Subscription::new("t", true)], &ConsumerConfig::default(), T0 + 500).unwrap();
    assert!(e.heartbeat("g", "g-page-w0123456789a", T0 + 2_000));
    let members: Vec<(String, &str, u64)> = e.stats().members.iter().map(|m| (m.member_id.to_string(), m.context(), m.last_seen_ms)).collect();
    assert_eq!(members, vec![("g-page-w0123456789a".into(), "page", T0 + 2_000), ("m".into(), "unknown", T0)]);
}

#[test]
fn a_member_id_says_which_context_made_it() {
    for (id, context) in [
        ("fulfil-ment-page-w0123456789a", "page"),
        ("g-worker-0123456789ab", "worker"),
        ("g-shared-w0123456789a", "shared-worker"),
        ("g-service-w0123456789a", "service-worker"),
        ("g-node-0123456789ab", "node"),
        (PULL_MEMBER, "edge-pull"),
        ("g-w0123456789a", "unknown"),
        ("m", "unknown"),
    ] {
        assert_eq!(member_context(id), context, "{id}");
    }
}
