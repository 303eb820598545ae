//! Unit tests of the engine's rules, one behaviour each.

use super::*;
use crate::core::config::{ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
use crate::core::message::{OutgoingMessage, Value};

const T0: u64 = 1_700_000_000_000;

fn engine() -> Engine {
    Engine::open(BusConfig::default(), 1, Vec::new()).unwrap()
}

fn msg(value: &str) -> OutgoingMessage {
    OutgoingMessage::new(Value::string(value))
}

fn no_jitter() -> ConsumerConfig {
    ConsumerConfig { retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..ConsumerConfig::default() }
}

fn commit(e: &mut Engine) {
    let _ = e.begin_commit();
    e.end_commit(true);
}

#[test]
fn send_poll_ack_moves_the_committed_offset() {
    let mut e = engine();
    e.join("g", "m1", &[Subscription::new("t", true)], &no_jitter(), T0).unwrap();
    let meta = e.send("t", &[msg("a"), msg("b")], T0).unwrap();
    assert_eq!(meta.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![0, 1]);
    let d = e.poll("g", "m1", 10, T0).unwrap();
    assert_eq!(d.len(), 1, "partition ordering hands out one at a time");
    assert_eq!(d[0].message.value, Value::string("a"));
    assert_eq!(d[0].attempt, 1);
    assert!(e.poll("g", "m1", 10, T0).unwrap().is_empty());
    assert!(e.ack("g", "m1", &d[0].receipt()));
    let d = e.poll("g", "m1", 10, T0).unwrap();
    assert_eq!(d[0].message.offset, 1);
    assert!(e.ack("g", "m1", &d[0].receipt()));
    let stats = e.stats();
    let gp = &stats.groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.lag, gp.in_flight), (2, 0, 0));
    // Every group committed past: the log is trimmed.
    assert_eq!(stats.topics[0].partitions[0].low_offset, 2);
}

#[test]
fn failed_commit_changes_nothing() {
    let mut e = engine();
    e.send("t", &[msg("a")], T0).unwrap();
    commit(&mut e);
    let before = e.stats();
    e.send("t", &[msg("b")], T0).unwrap();
    e.create_topic("other", TopicConfig::with_partitions(3)).unwrap();
    e.join("g", "m", &[Subscription::new("t", true)], &ConsumerConfig::default(), T0).unwrap();
    assert!(e.has_writes());
    e.end_commit(false);
    assert_eq!(e.stats(), before);
    assert!(!e.has_writes());
}
