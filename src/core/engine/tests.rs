//! Unit tests of the engine's rules, one behaviour each.

use super::*;
use crate::core::config::{ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
use crate::core::limits::{GROUPS_MAX, HEADERS_MAX, REPLIES_STORED_MAX, REPLIES_STORED_MS};
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
    assert_eq!(d.len(), 2, "partition ordering hands out a run");
    assert_eq!(d[0].message.value, Value::string("a"));
    assert_eq!((d[0].attempt, d[1].attempt, d[1].message.offset), (1, 1, 1));
    assert!(e.poll("g", "m1", 10, T0).unwrap().is_empty());
    assert!(e.ack("g", "m1", &d[0].receipt(), T0));
    assert!(e.poll("g", "m1", 10, T0).unwrap().is_empty(), "the rest of the run is the member's");
    assert!(e.ack("g", "m1", &d[1].receipt(), T0));
    commit(&mut e);
    let stats = e.stats();
    let gp = &stats.groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.lag, gp.in_flight), (2, 0, 0));
    // Every group committed past: the log is trimmed with the commit.
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

fn join(e: &mut Engine, group: &str, member: &str, topic: &str, config: &ConsumerConfig) {
    e.join(group, member, &[Subscription::new(topic, true)], config, T0).unwrap();
}

fn settle_all(e: &mut Engine, group: &str, member: &str, now: u64) -> Vec<u64> {
    let mut offsets = Vec::new();
    loop {
        let d = e.poll(group, member, 100, now).unwrap();
        if d.is_empty() {
            return offsets;
        }
        for delivery in d {
            offsets.push(delivery.message.offset);
            assert!(e.ack(group, member, &delivery.receipt(), now));
        }
    }
}

#[test]
fn create_topic_conflicts_on_another_partition_count() {
    let mut e = engine();
    assert_eq!(e.create_topic("t", TopicConfig::with_partitions(3)), Ok(true));
    assert_eq!(e.create_topic("t", TopicConfig::with_partitions(3)), Ok(false));
    let err = e.create_topic("t", TopicConfig::with_partitions(4)).unwrap_err();
    assert_eq!(err.code, ErrorCode::TopicConflict);
    assert!(err.message.contains("3 partitions"), "{err}");
}

#[test]
fn unknown_topic_without_auto_creation() {
    let mut e = Engine::open(BusConfig { auto_create_topics: false, ..BusConfig::default() }, 1, Vec::new()).unwrap();
    assert_eq!(e.send("t", &[msg("a")], T0).unwrap_err().code, ErrorCode::UnknownTopic);
    let err = e.join("g", "m", &[Subscription::new("t", false)], &ConsumerConfig::default(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownTopic);
    assert!(e.topics().is_empty());
}

#[test]
fn keys_use_kafkas_partitioner_and_the_rest_go_round_robin() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::with_partitions(8)).unwrap();
    let keyed = e.send("t", &[msg("a").with_key("21"), msg("b").with_key("21")], T0).unwrap();
    // Kafka: (murmur2("21") & 0x7fffffff) % 8 = 1173551340 % 8.
    assert!(keyed.iter().all(|m| m.partition == 1173551340 % 8));
    assert_eq!(keyed[1].offset, keyed[0].offset + 1);
    let spread = e.send("t", &vec![msg("x"); 8], T0).unwrap();
    let mut partitions: Vec<u32> = spread.iter().map(|m| m.partition).collect();
    partitions.sort();
    assert_eq!(partitions, (0..8).collect::<Vec<_>>());
    let explicit = e.send("t", &[msg("y").with_partition(5)], T0).unwrap();
    assert_eq!(explicit[0].partition, 5);
    assert_eq!(e.send("t", &[msg("z").with_partition(8)], T0).unwrap_err().code, ErrorCode::UnknownTopic);
}

#[test]
fn a_send_is_atomic() {
    let mut e = Engine::open(BusConfig { max_message_bytes: 10, ..BusConfig::default() }, 1, Vec::new()).unwrap();
    e.send("t", &[msg("ok")], T0).unwrap();
    let err = e.send("t", &[msg("fits"), msg("far too large for ten bytes")], T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::MessageTooLarge);
    assert!(err.message.contains("messages[1]"), "{err}");
    assert_eq!(e.stats().topics[0].partitions[0].high_offset, 1);
}

#[test]
fn ids_deduplicate_within_the_window() {
    let mut e = engine();
    e.create_topic("t", TopicConfig { dedup_window_ms: 1000, ..TopicConfig::default() }).unwrap();
    let first = e.send("t", &[msg("a").with_id("order-1")], T0).unwrap();
    let again = e.send("t", &[msg("a2").with_id("order-1"), msg("b").with_id("order-2"), msg("b2").with_id("order-2")], T0 + 10).unwrap();
    assert!(!first[0].duplicate);
    assert!(again[0].duplicate && again[0].offset == first[0].offset && again[0].timestamp_ms == T0);
    assert!(!again[1].duplicate);
    assert!(again[2].duplicate && again[2].offset == again[1].offset, "a repeat inside one send");
    assert_eq!(e.stats().topics[0].partitions[0].high_offset, 2);
    e.tick(T0 + 1000);
    let later = e.send("t", &[msg("a3").with_id("order-1")], T0 + 1000).unwrap();
    assert!(!later[0].duplicate, "the window has passed");
}

#[test]
fn delays_hold_the_partition_in_partition_ordering() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("later").with_delay_ms(500), msg("now")], T0).unwrap();
    assert!(e.poll("g", "m", 10, T0).unwrap().is_empty());
    assert_eq!(e.next_due_ms(), Some(T0 + 500));
    assert_eq!(settle_all(&mut e, "g", "m", T0 + 500), vec![0, 1]);
}

#[test]
fn delays_let_others_pass_without_ordering() {
    let mut e = engine();
    let config = ConsumerConfig { ordering: Ordering::None, concurrency: 10, ..no_jitter() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("later").with_delay_ms(500), msg("now")], T0).unwrap();
    assert_eq!(settle_all(&mut e, "g", "m", T0), vec![1]);
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 0);
    assert_eq!(settle_all(&mut e, "g", "m", T0 + 500), vec![0]);
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 2);
}

#[test]
fn every_group_gets_every_message() {
    let mut e = engine();
    join(&mut e, "billing", "b", "t", &no_jitter());
    join(&mut e, "shipping", "s", "t", &no_jitter());
    e.send("t", &[msg("a"), msg("b")], T0).unwrap();
    assert_eq!(settle_all(&mut e, "billing", "b", T0), vec![0, 1]);
    commit(&mut e);
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 0, "shipping has not consumed yet");
    assert_eq!(settle_all(&mut e, "shipping", "s", T0), vec![0, 1]);
    commit(&mut e);
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 2);
}

#[test]
fn from_beginning_false_starts_at_the_end() {
    let mut e = engine();
    e.send("t", &[msg("old")], T0).unwrap();
    e.join("g", "m", &[Subscription::new("t", false)], &no_jitter(), T0).unwrap();
    e.send("t", &[msg("new")], T0).unwrap();
    assert_eq!(settle_all(&mut e, "g", "m", T0), vec![1]);
}

#[test]
fn failures_back_off_exponentially_then_dead_letter() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("poison").with_key("k").with_header("trace", "1"), msg("next")], T0).unwrap();
    let mut now = T0;
    let mut waits = Vec::new();
    for attempt in 1..=5 {
        assert!(e.heartbeat("g", "m", now));
        let d = e.poll("g", "m", 10, now).unwrap();
        assert_eq!(d.len(), 2, "attempt {attempt} at +{}: {:?}", now - T0, e.stats());
        assert_eq!((d[0].attempt, d[0].message.offset), (attempt, 0));
        assert_eq!((d[1].attempt, d[1].message.offset), (1, 1), "the rest of the run counts no attempt");
        assert!(e.poll("g", "m", 10, now).unwrap().is_empty());
        assert!(e.fail("g", "m", &d[0].receipt(), "boom", now));
        assert!(!e.ack("g", "m", &d[1].receipt(), now), "a failure gives the rest of the run back");
        if attempt < 5 {
            let due = e.next_due_ms().unwrap();
            waits.push(due - now);
            assert!(e.poll("g", "m", 10, due - 1).unwrap().is_empty());
            now = due;
        }
    }
    assert_eq!(waits, vec![1000, 2000, 4000, 8000]);
    let stats = e.stats();
    assert_eq!(stats.groups[0].dead_lettered, 1);
    let dead = e.read_log("t.dlq", 0, 0, 10).unwrap();
    assert_eq!(dead.len(), 1);
    let m = &dead[0];
    assert_eq!((m.key.as_deref(), m.value.text().as_ref()), (Some("k"), "poison"));
    for (name, value) in [
        ("trace", "1"),
        ("ferry-dlq-topic", "t"),
        ("ferry-dlq-partition", "0"),
        ("ferry-dlq-offset", "0"),
        ("ferry-dlq-group", "g"),
        ("ferry-dlq-attempts", "5"),
        ("ferry-dlq-error", "boom"),
    ] {
        assert_eq!(m.header(name), Some(value), "{name}");
    }
    assert_eq!(settle_all(&mut e, "g", "m", now), vec![1], "the partition moves on");
}

#[test]
fn a_permanent_failure_is_dead_lettered_at_once_and_the_partition_moves_on() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("refused").with_key("k"), msg("next")], T0).unwrap();
    let d = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.fail_with("g", "m", &d[0].receipt(), "HTTP 401: wrong token", Wait::Never, T0));
    assert!(!e.fail_with("g", "m", &d[0].receipt(), "again", Wait::Never, T0), "a settled receipt is stale");
    let dead = e.read_log("t.dlq", 0, 0, 10).unwrap();
    assert_eq!(dead.len(), 1, "on its first attempt of five");
    assert_eq!((dead[0].header("ferry-dlq-attempts"), dead[0].header("ferry-dlq-error")), (Some("1"), Some("HTTP 401: wrong token")));
    assert_eq!(e.stats().groups[0].dead_lettered, 1);
    assert_eq!(settle_all(&mut e, "g", "m", T0), vec![1], "the rest of the run is given back and handed out next");
}

#[test]
fn a_run_refused_as_a_whole_is_dead_lettered_at_once_in_order() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2"), msg("3")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.ack("g", "m", &run[0].receipt(), T0));
    let rest: Vec<Receipt> = run[1..].iter().map(Delivery::receipt).collect();
    assert_eq!(e.refuse_run("g", "m", &rest, "HTTP 413: too large", T0), 3);
    let dead = e.read_log("t.dlq", 0, 0, 10).unwrap();
    assert_eq!(dead.iter().map(|m| m.value.text().to_string()).collect::<Vec<_>>(), ["1", "2", "3"], "each once, in order");
    assert!(dead.iter().all(|m| m.header("ferry-dlq-error") == Some("HTTP 413: too large") && m.header("ferry-dlq-attempts") == Some("1")));
    let gp = &e.stats().groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.lag, gp.in_flight), (4, 0, 0), "the partition moves past the run");
    assert_eq!(e.refuse_run("g", "m", &rest, "again", T0), 0, "settled receipts are stale");
}

#[test]
fn a_refusal_of_a_run_stops_at_a_message_no_longer_held_and_gives_the_rest_back() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    let mut receipts: Vec<Receipt> = run.iter().map(Delivery::receipt).collect();
    receipts[1].attempt = 9; // not the lease it holds
    assert_eq!(e.refuse_run("g", "m", &receipts, "HTTP 400", T0), 1);
    assert_eq!(offsets_attempts(&e.poll("g", "m", 10, T0).unwrap()), vec![(1, 1), (2, 1)], "given back, no attempt counted");
}

#[test]
fn a_paused_partition_is_kept_by_its_member_and_handed_out_once_resumed() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0").with_partition(0), msg("1").with_partition(1), msg("2").with_partition(2)], T0).unwrap();
    let all_but_1 = [Pause { topic: "t".into(), all: true, partitions: vec![1] }];
    assert_eq!(e.poll_unpaused("g", "m", 10, &all_but_1, T0).unwrap().iter().map(|d| d.partition).collect::<Vec<_>>(), vec![1], "only 1 is not paused");
    let only_2 = [Pause { topic: "t".into(), all: false, partitions: vec![2] }];
    let mut got: Vec<u32> = e.poll_unpaused("g", "m", 10, &only_2, T0).unwrap().iter().map(|d| d.partition).collect();
    got.sort();
    assert_eq!(got, vec![0], "1 is in flight already, 2 paused");
    assert_eq!(e.poll("g", "m", 10, T0).unwrap().iter().map(|d| d.partition).collect::<Vec<_>>(), vec![2], "resumed");
}

#[test]
fn pauses_and_resumes_combine_per_partition() {
    let mut paused = Vec::new();
    Pause::add(&mut paused, "t", Some(&[1, 2]));
    Pause::add(&mut paused, "t", Some(&[2, 3]));
    assert_eq!(paused, [Pause { topic: "t".into(), all: false, partitions: vec![1, 2, 3] }]);
    Pause::remove(&mut paused, "t", Some(&[1, 2, 3]));
    assert!(paused.is_empty(), "nothing left paused");
    Pause::add(&mut paused, "t", None);
    Pause::remove(&mut paused, "t", Some(&[0]));
    assert!(!paused[0].holds("t", 0) && paused[0].holds("t", 7), "the whole topic but 0");
    Pause::add(&mut paused, "t", Some(&[0]));
    assert_eq!(paused, [Pause { topic: "t".into(), all: true, partitions: vec![] }]);
    Pause::add(&mut paused, "u", Some(&[4]));
    Pause::remove(&mut paused, "t", None);
    Pause::remove(&mut paused, "v", None);
    assert_eq!(paused, [Pause { topic: "u".into(), all: false, partitions: vec![4] }]);
}

#[test]
fn retry_now_makes_retries_due_at_once_and_leaves_delays_alone() {
    let mut e = engine();
    let config = ConsumerConfig { ordering: Ordering::None, ..no_jitter() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("failing"), msg("later").with_delay_ms(60_000)], T0).unwrap();
    let d = e.poll("g", "m", 10, T0).unwrap();
    assert_eq!(offsets_attempts(&d), vec![(0, 1)]);
    assert!(e.fail("g", "m", &d[0].receipt(), "offline", T0));
    assert!(e.poll("g", "m", 10, T0 + 10).unwrap().is_empty(), "backing off for a second");
    assert_eq!(e.retry_now("g", T0 + 10), 1, "the retry, not the delayed message");
    assert_eq!(e.retry_now("other", T0 + 10), 0);
    assert_eq!(offsets_attempts(&e.poll("g", "m", 10, T0 + 10).unwrap()), vec![(0, 2)], "due now, its attempt counted once");
}

/// `(offset, attempt)` of each delivery.
fn offsets_attempts(d: &[Delivery]) -> Vec<(u64, u32)> {
    d.iter().map(|d| (d.message.offset, d.attempt)).collect()
}

#[test]
fn a_failure_in_a_run_gives_back_the_rest_without_an_attempt() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2"), msg("3"), msg("4")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert_eq!(offsets_attempts(&run), vec![(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]);
    assert!(e.ack("g", "m", &run[0].receipt(), T0));
    assert!(e.ack("g", "m", &run[1].receipt(), T0));
    assert!(e.fail("g", "m", &run[2].receipt(), "boom", T0));
    assert!(!e.ack("g", "m", &run[3].receipt(), T0), "given back");
    let gp = &e.stats().groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.in_flight, gp.retrying), (2, 0, 1));
    assert!(e.poll("g", "m", 10, T0 + 999).unwrap().is_empty(), "3 and 4 wait for 2");
    let again = e.poll("g", "m", 10, T0 + 1000).unwrap();
    assert_eq!(offsets_attempts(&again), vec![(2, 2), (3, 1), (4, 1)]);
}

#[test]
fn a_member_lost_in_a_run_counts_an_attempt_for_its_message_in_flight_only() {
    let mut e = engine();
    join(&mut e, "g", "a", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2"), msg("3")], T0).unwrap();
    let run = e.poll("g", "a", 10, T0).unwrap();
    assert!(e.ack("g", "a", &run[0].receipt(), T0 + 5));
    join(&mut e, "g", "b", "t", &no_jitter());
    e.evict("g", "a", T0 + 6);
    let again = e.poll("g", "b", 10, T0 + 6).unwrap();
    assert_eq!(offsets_attempts(&again), vec![(1, 2), (2, 1), (3, 1)], "1 was in flight; 2 and 3 had not started");
}

#[test]
fn an_ack_timeout_in_a_run_runs_from_when_each_message_goes_in_flight() {
    let mut e = engine();
    let config = ConsumerConfig { ack_timeout_ms: 100, ..no_jitter() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("0"), msg("1"), msg("2")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.ack("g", "m", &run[0].receipt(), T0 + 90));
    e.tick(T0 + 150);
    assert!(e.ack("g", "m", &run[1].receipt(), T0 + 180), "in flight from T0 + 90");
    e.tick(T0 + 280);
    assert!(!e.ack("g", "m", &run[2].receipt(), T0 + 280), "in flight from T0 + 180: its lease ran out");
    let again = e.poll("g", "m", 10, T0 + 1280).unwrap();
    assert_eq!(offsets_attempts(&again), vec![(2, 2)]);
}

#[test]
fn acks_ahead_of_a_run_settle_in_order() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2"), msg("3")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.ack("g", "m", &run[2].receipt(), T0));
    assert!(e.ack("g", "m", &run[1].receipt(), T0));
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 0, "nothing passes offset 0");
    assert!(e.ack("g", "m", &run[0].receipt(), T0));
    let gp = &e.stats().groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.in_flight), (3, 1));
    assert!(e.ack("g", "m", &run[3].receipt(), T0));
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 4);
}

#[test]
fn a_run_stops_at_a_delay_and_at_its_length() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &ConsumerConfig { batch_size_max: 2, ..no_jitter() });
    e.send("t", &[msg("0"), msg("1"), msg("2"), msg("3").with_delay_ms(50), msg("4")], T0).unwrap();
    let first = e.poll("g", "m", 10, T0).unwrap();
    assert_eq!(offsets_attempts(&first), vec![(0, 1), (1, 1)], "maxBatchSize");
    settle(&mut e, "m", &first);
    let second = e.poll("g", "m", 10, T0).unwrap();
    assert_eq!(offsets_attempts(&second), vec![(2, 1)], "3 is delayed and holds the rest");
    settle(&mut e, "m", &second);
    assert!(e.poll("g", "m", 10, T0 + 49).unwrap().is_empty());
    assert_eq!(offsets_attempts(&e.poll("g", "m", 10, T0 + 50).unwrap()), vec![(3, 1), (4, 1)]);
}

#[test]
fn a_poll_limit_counts_runs_and_messages() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    let sends: Vec<OutgoingMessage> = (0..4).flat_map(|p| (0..3).map(move |i| at(&format!("{p}/{i}"), p))).collect();
    e.send("t", &sends, T0).unwrap();
    let two_runs = e.poll("g", "m", PollLimit::runs(2, 10), T0).unwrap();
    assert_eq!(two_runs.len(), 6);
    let partitions: BTreeSet<u32> = two_runs.iter().map(|d| d.partition).collect();
    assert_eq!(partitions.len(), 2);
    assert_eq!(e.poll("g", "m", 4, T0).unwrap().len(), 4, "a number is messages in all");
}

#[test]
fn a_released_run_comes_back_with_its_attempts() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("0"), msg("1"), msg("2")], T0).unwrap();
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.ack("g", "m", &run[0].receipt(), T0));
    assert!(e.release("g", "m", &run[1].receipt(), T0));
    assert_eq!(offsets_attempts(&e.poll("g", "m", 10, T0).unwrap()), vec![(1, 1), (2, 1)]);
}

#[test]
fn a_version_one_bus_is_migrated() {
    let mut e = engine();
    e.send("t", &[msg("a")], T0).unwrap();
    let mut records: Vec<(Key, Record)> = e.begin_commit().into_iter().filter_map(|(k, r)| Some((k, r?))).collect();
    e.end_commit(true);
    for (key, record) in &mut records {
        if *key == Key::Meta {
            *record = Record::Meta { schema_version: 1 };
        }
    }
    let mut reopened = Engine::open(BusConfig::default(), 1, records).unwrap();
    let writes = reopened.begin_commit();
    assert_eq!(writes, vec![(Key::Meta, Some(Record::Meta { schema_version: SCHEMA_VERSION }))]);
    assert_eq!(reopened.read_log("t", 0, 0, 10).unwrap().len(), 1);
}

fn settle(e: &mut Engine, member: &str, deliveries: &[Delivery]) {
    for d in deliveries {
        assert!(e.ack("g", member, &d.receipt(), T0));
    }
}

#[test]
fn redrive_moves_only_dead_letters_and_never_drops_what_it_did_not_move() {
    let mut e = engine();
    let forged = msg("forged").with_header("ferry-dlq-topic", "elsewhere");
    let refused = e.send("orders", &[msg("a"), forged], T0).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    assert!(refused.message.contains("messages[1].headers.ferry-dlq-topic"), "{refused}");
    e.send("orders", &[msg("a"), msg("b")], T0).unwrap();
    let not_dead = e.redrive("orders", None, &[], T0).unwrap_err();
    assert_eq!(not_dead.code, ErrorCode::InvalidArgument);
    assert!(not_dead.message.contains("not a dead-letter topic"), "{not_dead}");
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 0, "nothing was dropped");

    // A dead-letter topic holding a message sent to it directly: redrive stops there.
    join(&mut e, "g", "m", "orders", &ConsumerConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..no_jitter() });
    let run = e.poll("g", "m", 1, T0).unwrap();
    assert!(e.fail("g", "m", &run[0].receipt(), "boom", T0));
    e.send("orders.dlq", &[msg("sent here")], T0).unwrap();
    let run = e.poll("g", "m", 1, T0).unwrap();
    assert!(e.fail("g", "m", &run[0].receipt(), "boom", T0));
    assert_eq!(e.redrive("orders.dlq", None, &[], T0), Ok(1), "the first dead letter; the rest waits behind the plain message");
    assert_eq!(e.redrive("orders.dlq", None, &[], T0), Ok(0));
    let kept: Vec<String> = e.read_log("orders.dlq", 0, 0, 10).unwrap().iter().map(|m| m.value.text().to_string()).collect();
    assert_eq!(kept, vec!["sent here", "b"]);
}

#[test]
fn dead_letter_errors_are_cut_at_one_kib() {
    let mut e = engine();
    let config = ConsumerConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ConsumerConfig::default() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("x")], T0).unwrap();
    let d = e.poll("g", "m", 1, T0).unwrap();
    e.fail("g", "m", &d[0].receipt(), &"é".repeat(2000), T0);
    let dead = e.read_log("t.dlq", 0, 0, 1).unwrap();
    assert_eq!(dead[0].header("ferry-dlq-error").unwrap().len(), 1024);
}

#[test]
fn a_dead_letter_of_a_message_with_every_header_is_stored_and_read_back() {
    let mut e = engine();
    let config = ConsumerConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ConsumerConfig::default() };
    join(&mut e, "g", "m", "t", &config);
    join(&mut e, "d", "m", "t.dlq", &config);
    let mut full = msg("x");
    full.headers = (0..HEADERS_MAX).map(|i| (format!("h{i}"), String::new())).collect();
    e.send("t", &[full], T0).unwrap();
    let d = e.poll("g", "m", 1, T0).unwrap();
    e.fail("g", "m", &d[0].receipt(), "first", T0);
    // It fails again from the dead-letter topic: the new ferry-dlq-* headers replace the old.
    let d = e.poll("d", "m", 1, T0).unwrap();
    e.fail("d", "m", &d[0].receipt(), "second", T0);
    let dead = e.read_log("t.dlq.dlq", 0, 0, 1).unwrap();
    assert_eq!(dead[0].headers.len(), HEADERS_MAX + 6);
    assert_eq!((dead[0].header("ferry-dlq-topic"), dead[0].header("ferry-dlq-error")), (Some("t.dlq"), Some("second")));
    // The chunks holding them decode: the bus reopens.
    let writes = e.begin_commit();
    let stored: Vec<(Key, Record)> = writes.into_iter().filter_map(|(k, r)| r.map(|r| (k.clone(), Record::decode(&k, &r.encode()).unwrap()))).collect();
    let reopened = Engine::open(BusConfig::default(), 1, stored).unwrap();
    assert_eq!(reopened.read_log("t.dlq.dlq", 0, 0, 1).unwrap(), dead);
}

#[test]
fn an_ack_timeout_is_a_failed_attempt_and_the_late_ack_is_ignored() {
    let mut e = engine();
    let config = ConsumerConfig { ack_timeout_ms: 100, ..no_jitter() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("slow")], T0).unwrap();
    let first = e.poll("g", "m", 1, T0).unwrap();
    assert_eq!(e.next_due_ms(), Some(T0 + 100));
    e.heartbeat("g", "m", T0 + 100);
    e.tick(T0 + 100);
    assert!(!e.ack("g", "m", &first[0].receipt(), T0 + 100), "late result ignored");
    assert_eq!(e.stats().groups[0].partitions[0].retrying, 1);
    let second = e.poll("g", "m", 1, T0 + 1100).unwrap();
    assert_eq!(second[0].attempt, 2);
    assert!(e.ack("g", "m", &second[0].receipt(), T0 + 1100));
}

#[test]
fn a_result_after_the_deadline_is_ignored_before_any_tick() {
    let mut e = engine();
    let config = ConsumerConfig { ack_timeout_ms: 100, ..no_jitter() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("slow")], T0).unwrap();
    let d = e.poll("g", "m", 1, T0).unwrap();
    assert!(!e.ack("g", "m", &d[0].receipt(), T0 + 100));
    assert!(!e.fail("g", "m", &d[0].receipt(), "late", T0 + 100));
    assert!(e.ack("g", "m", &d[0].receipt(), T0 + 99));
}

#[test]
fn redrive_moves_each_dead_letter_back_once() {
    let mut e = engine();
    let config = ConsumerConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ConsumerConfig::default() };
    join(&mut e, "g", "m", "t", &config);
    e.send("t", &[msg("x").with_key("k").with_header("h", "v").with_id("id-1")], T0).unwrap();
    let d = e.poll("g", "m", 1, T0).unwrap();
    e.fail("g", "m", &d[0].receipt(), "bug", T0);
    assert_eq!(e.redrive("t.dlq", None, &[], T0), Ok(1));
    assert_eq!(e.redrive("t.dlq", None, &[], T0), Ok(0));
    let back = e.poll("g", "m", 1, T0).unwrap();
    let m = &back[0].message;
    assert_eq!((m.offset, m.key.as_deref(), m.header("h"), m.id.as_deref()), (1, Some("k"), Some("v"), Some("id-1")));
    assert!(m.headers.iter().all(|(k, _)| !k.starts_with("ferry-dlq-")));
    assert_eq!(back[0].attempt, 1);
}

#[test]
fn max_depth_refuses_the_whole_send() {
    let mut e = engine();
    e.create_topic("t", TopicConfig { max_depth: Some(2), ..TopicConfig::default() }).unwrap();
    e.send("t", &[msg("a")], T0).unwrap();
    let err = e.send("t", &[msg("b"), msg("c")], T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::QueueFull);
    assert_eq!(e.stats().topics[0].partitions[0].high_offset, 1);
    e.send("t", &[msg("b")], T0).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    settle_all(&mut e, "g", "m", T0);
    e.send("t", &[msg("c"), msg("d")], T0).unwrap();
}

#[test]
fn retention_expires_old_messages_consumed_or_not() {
    let mut e = engine();
    e.create_topic("t", TopicConfig { retention_ms: Some(1000), ..TopicConfig::default() }).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("a"), msg("b")], T0).unwrap();
    e.send("t", &[msg("c")], T0 + 500).unwrap();
    assert_eq!(e.next_due_ms(), Some(T0));
    e.tick(T0 + 1000);
    let p = &e.stats().topics[0].partitions[0];
    assert_eq!((p.low_offset, p.high_offset, p.depth, p.expired), (2, 3, 1, 2));
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 2);
    assert_eq!(settle_all(&mut e, "g", "m", T0 + 1000), vec![2]);
}

#[test]
fn members_split_partitions_and_take_over_when_one_dies() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
    let config = no_jitter();
    join(&mut e, "g", "a", "t", &config);
    join(&mut e, "g", "b", "t", &config);
    assert_eq!(e.owned_partitions("g", "a", "t").len(), 2);
    assert_eq!(e.owned_partitions("g", "b", "t").len(), 2);
    let p = e.owned_partitions("g", "a", "t")[0];
    e.send("t", &[msg("x").with_partition(p)], T0).unwrap();
    let held = e.poll("g", "a", 1, T0).unwrap();
    assert_eq!(held.len(), 1);
    // b heartbeats, a goes silent: its session runs out and its work moves.
    e.heartbeat("g", "b", T0 + 9000);
    e.tick(T0 + 10_000);
    assert_eq!(e.members("g").len(), 1);
    assert_eq!(e.owned_partitions("g", "b", "t").len(), 4);
    let again = e.poll("g", "b", 4, T0 + 10_000).unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2), "redelivered at once, as a new attempt");
    assert!(!e.ack("g", "a", &held[0].receipt(), T0 + 10_000));
}

#[test]
fn an_evicted_member_hands_over_at_once_and_its_message_comes_back() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let config = no_jitter();
    join(&mut e, "g", "a", "t", &config);
    join(&mut e, "g", "b", "t", &config);
    let p = e.owned_partitions("g", "a", "t")[0];
    e.send("t", &[msg("x").with_partition(p), msg("y").with_partition(p)], T0).unwrap();
    let held = e.poll("g", "a", 1, T0).unwrap();
    // No session has run out: b saw a's lock released and evicts it.
    e.evict("g", "a", T0 + 1);
    assert_eq!(e.members("g").len(), 1);
    assert_eq!(e.owned_partitions("g", "b", "t"), vec![0, 1]);
    let again = e.poll("g", "b", 1, T0 + 1).unwrap();
    assert_eq!((again[0].message.offset, again[0].attempt), (0, 2), "the same message first, as a new attempt");
    assert!(!e.ack("g", "a", &held[0].receipt(), T0 + 1), "the gone member's late ack is ignored");
    e.evict("g", "a", T0 + 2);
    assert_eq!(e.members("g").len(), 1, "evicting twice changes nothing");
}

#[test]
fn a_retry_with_its_own_delay_replaces_the_backoff() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::default()).unwrap();
    join(&mut e, "g", "a", "t", &no_jitter());
    e.send("t", &[msg("x")], T0).unwrap();
    let held = e.poll("g", "a", 1, T0).unwrap();
    assert!(e.fail_after("g", "a", &held[0].receipt(), "later", 5, T0));
    assert!(e.poll("g", "a", 1, T0 + 4).unwrap().is_empty(), "not before its delay");
    let again = e.poll("g", "a", 1, T0 + 5).unwrap();
    assert_eq!(again[0].attempt, 2, "after it: the next attempt, where the backoff would wait 1 s");
    assert!(!e.fail_after("g", "a", &held[0].receipt(), "stale", 5, T0 + 5), "a settled receipt changes nothing");
}

#[test]
fn housekeeping_is_due_for_leases_not_for_waiting_messages() {
    let mut e = engine();
    e.create_topic("t", TopicConfig::default()).unwrap();
    let config = ConsumerConfig { session_timeout_ms: 3_600_000, ..no_jitter() };
    join(&mut e, "g", "a", "t", &config);
    e.send("t", &[msg("x"), msg("y")], T0).unwrap();
    // A backlog is deliverable now, but tick has nothing to do before the session ends.
    assert_eq!(e.next_due_ms(), Some(T0));
    assert_eq!(e.next_tick_ms(), Some(T0 + 3_600_000));
    let held = e.poll("g", "a", 1, T0).unwrap();
    assert_eq!(e.next_tick_ms(), Some(T0 + config.ack_timeout_ms), "a lease runs out");
    e.fail("g", "a", &held[0].receipt(), "no", T0);
    assert_eq!(e.next_due_ms(), Some(T0 + 1000), "the retry after its backoff");
    assert_eq!(e.next_tick_ms(), Some(T0 + 3_600_000), "waiting for a retry is not housekeeping");
}

#[test]
fn reopening_from_records_rebuilds_the_same_bus() {
    let mut e = engine();
    let mut stored = std::collections::BTreeMap::new();
    let mut commit_into = |e: &mut Engine| {
        for (key, record) in e.begin_commit() {
            match record {
                Some(r) => stored.insert(key, r),
                None => stored.remove(&key),
            };
        }
        e.end_commit(true);
    };
    e.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &(0..50).map(|i| msg("v").with_key(format!("k{i}")).with_id(format!("i{i}"))).collect::<Vec<_>>(), T0).unwrap();
    commit_into(&mut e);
    let d = e.poll("g", "m", 3, T0).unwrap();
    e.fail("g", "m", &d[0].receipt(), "x", T0);
    e.ack("g", "m", &d[1].receipt(), T0);
    commit_into(&mut e);
    let encoded: Vec<(Key, Record)> = stored.iter().map(|(k, r)| (k.clone(), Record::decode(k, &r.encode()).unwrap())).collect();
    let reopened = Engine::open(BusConfig::default(), 1, encoded).unwrap();
    assert_eq!(reopened.stats(), e.stats());
    assert_eq!(reopened.next_due_ms(), e.next_due_ms());
    for p in 0..3 {
        assert_eq!(reopened.read_log("t", p, 0, 100), e.read_log("t", p, 0, 100));
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let records = vec![(Key::Meta, Record::Meta { schema_version: SCHEMA_VERSION + 1 })];
    let err = Engine::open(BusConfig::default(), 1, records).unwrap_err();
    assert_eq!(err.code, ErrorCode::IncompatibleStorage);
}

#[test]
fn clock_going_backwards_does_not_panic() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("a")], T0).unwrap();
    let d = e.poll("g", "m", 1, T0).unwrap();
    e.fail("g", "m", &d[0].receipt(), "x", 0);
    e.tick(0);
    e.send("t", &[msg("b")], 0).unwrap();
    let _ = e.next_due_ms();
    let _ = e.stats();
}

fn at(value: &str, partition: u32) -> OutgoingMessage {
    OutgoingMessage { partition: Some(partition), ..msg(value) }
}

/// One engine per partition of `t` (2 partitions, maxDepth 1): what a split bus runs.
fn split(home: u32) -> Engine {
    let mut e = engine();
    e.set_home("t", home);
    e.create_topic("t", TopicConfig { max_depth: Some(1), ..TopicConfig::with_partitions(2) }).unwrap();
    e
}

#[test]
fn a_split_engine_stages_other_partitions_and_serves_its_own() {
    let (mut home, mut other) = (split(0), split(1));
    let ids = |m: OutgoingMessage, id: &str| OutgoingMessage { id: Some(id.into()), ..m };
    // maxDepth 1 holds for the home partition only: the other's part is its engine's.
    let meta = home.send("t", &[ids(at("a", 0), "x"), ids(at("b", 1), "y"), at("c", 1)], T0).unwrap();
    assert_eq!(meta.iter().map(|m| (m.partition, m.offset)).collect::<Vec<_>>(), vec![(0, 0), (1, 0), (1, 1)]);
    assert_eq!(home.send("t", &[at("d", 0)], T0).unwrap_err().code, ErrorCode::QueueFull);
    commit(&mut home);

    let out = home.outbound().unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].send && out[0].partition == 1);
    let part = forward::forwarded_messages(&out[0].chunk, 1, T0).unwrap();
    let values: Vec<_> = part.iter().map(|m| m.value.clone()).collect();
    assert_eq!(values, vec![Value::string("b"), Value::string("c")]);
    // The serving engine takes the part even past maxDepth, and owns its ids.
    other.send("t", &[ids(at("z", 1), "y")], T0).unwrap();
    let (skipped, taken) = other.accept("t/0>t/1", &out[0].chunk, true, T0).unwrap();
    assert_eq!(skipped, 0);
    assert_eq!(taken.iter().map(|m| (m.offset, m.duplicate)).collect::<Vec<_>>(), vec![(0, true), (1, false)]);
    // A repeated forward (its source did not hear back) stores nothing twice.
    assert_eq!(other.accept("t/0>t/1", &out[0].chunk, true, T0).unwrap(), (2, Vec::new()));
    home.forwarded("t", 1, out[0].chunk.end_offset());
    commit(&mut home);
    assert!(home.outbound().unwrap().is_empty());
    // The home id is deduplicated here; the other's is not known here.
    assert!(home.send("t", &[ids(at("again", 0), "x")], T0).unwrap()[0].duplicate);

    // Consumers and stats see the home partition alone.
    home.join("g", "m", &[Subscription::new("t", true)], &no_jitter(), T0).unwrap();
    let d = home.poll("g", "m", 10, T0).unwrap();
    assert_eq!(d.iter().map(|d| (d.partition, d.message.offset)).collect::<Vec<_>>(), vec![(0, 0)]);
    let stats = home.stats();
    assert_eq!(stats.topics.len(), 1);
    assert_eq!(stats.topics[0].partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0]);
    assert_eq!(stats.groups[0].partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0]);
}

#[test]
fn a_split_engine_forwards_dead_letters_as_they_are() {
    let mut home = split(1);
    let config = ConsumerConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..no_jitter() };
    home.join("g", "m", &[Subscription::new("t", true)], &config, T0).unwrap();
    // As many headers as a send takes: the dead letter has six more.
    let mut full = at("a", 1);
    full.headers = (0..HEADERS_MAX).map(|i| (format!("h{i}"), String::new())).collect();
    home.send("t", &[full], T0).unwrap();
    let d = home.poll("g", "m", 10, T0).unwrap();
    assert!(home.fail("g", "m", &d[0].receipt(), "boom", T0));
    let out = home.outbound().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((&*out[0].topic, out[0].partition, out[0].send), ("t.dlq", 1, false));
    let dead = out[0].chunk.message(0).unwrap().unwrap();
    assert_eq!(dead.header("ferry-dlq-partition"), Some("1"));

    let mut dlq = engine();
    dlq.set_home("t.dlq", 1);
    dlq.create_topic("t.dlq", TopicConfig::with_partitions(2)).unwrap();
    // Dead letters are not deduplicated: the same message may be dead-lettered
    // twice (here from two sources), each kept until redriven.
    for (offset, source) in ["a/t/1>t.dlq/1", "b/t/1>t.dlq/1"].into_iter().enumerate() {
        let (_, taken) = dlq.accept(source, &out[0].chunk, false, T0).unwrap();
        assert_eq!(taken[0].offset, offset as u64);
    }
    dlq.join("g", "m", &[Subscription::new("t.dlq", true)], &no_jitter(), T0).unwrap();
    for d in dlq.poll("g", "m", 10, T0).unwrap() {
        dlq.ack("g", "m", &d.receipt(), T0);
    }
    commit(&mut dlq);
    assert_eq!(dlq.stats().topics[0].partitions[0].low_offset, 0, "kept for redrive");
    assert_eq!(dlq.redrive("t.dlq", None, &[], T0).unwrap(), 2);
}

fn retained(retention_ms: u64) -> TopicConfig {
    TopicConfig { retention_ms: Some(retention_ms), ..TopicConfig::with_partitions(1) }
}

#[test]
fn seek_back_replays_and_forward_skips() {
    let mut e = engine();
    e.create_topic("t", retained(3_600_000)).unwrap();
    e.send("t", &["a", "b", "c", "d"].map(msg), T0).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    assert_eq!(settle_all(&mut e, "g", "m", T0), vec![0, 1, 2, 3]);
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(1)), Ok(1));
    assert_eq!(settle_all(&mut e, "g", "m", T0), vec![1, 2, 3], "consumed messages come again, attempt 1");
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(3)), Ok(3));
    commit(&mut e);
    assert_eq!(e.stats().groups[0].partitions[0].committed_offset, 3, "a seek commits");
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(4)), Ok(4), "the end is a position");
    let past = e.seek("g", "t", 0, SeekTo::Offset(5)).unwrap_err();
    assert_eq!(past.code, ErrorCode::InvalidArgument);
    assert!(past.message.contains("offset 5") && past.message.contains("highOffset 4"), "{past}");
    assert_eq!(e.seek("g", "t", 3, SeekTo::Offset(0)).unwrap_err().code, ErrorCode::UnknownTopic);
    assert_eq!(e.seek("g", "new", 0, SeekTo::Offset(0)), Ok(0), "made as a subscription makes it");
    assert_eq!(e.seek("g", "other", 1, SeekTo::Offset(0)).unwrap_err().code, ErrorCode::UnknownTopic, "one partition by default");
    assert_eq!(e.seek("g", "other", 0, SeekTo::Offset(1)).unwrap_err().code, ErrorCode::InvalidArgument);
    assert!(!e.topics().iter().any(|t| &*t.topic == "other"), "a refused seek makes no topic");
    let mut strict = Engine::open(BusConfig { auto_create_topics: false, ..BusConfig::default() }, 1, Vec::new()).unwrap();
    commit(&mut strict);
    assert_eq!(strict.seek("g", "nope", 0, SeekTo::Offset(0)).unwrap_err().code, ErrorCode::UnknownTopic);
    assert!(!strict.has_writes(), "a refused seek changes nothing");
}

#[test]
fn seek_below_the_retained_goes_to_the_first_retained() {
    let mut e = engine();
    e.send("t", &["a", "b", "c"].map(msg), T0).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    settle_all(&mut e, "g", "m", T0);
    e.send("t", &[msg("d")], T0).unwrap();
    commit(&mut e);
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 3, "without retentionMs consumed messages go");
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(0)), Ok(3));
}

#[test]
fn seek_abandons_what_was_pending_without_counting_an_attempt() {
    let mut e = engine();
    e.create_topic("t", retained(3_600_000)).unwrap();
    e.send("t", &["a", "b", "c"].map(msg), T0).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    let run = e.poll("g", "m", 10, T0).unwrap();
    assert!(e.fail("g", "m", &run[0].receipt(), "boom", T0));
    let retry = e.poll("g", "m", 10, T0 + 1000).unwrap();
    assert_eq!((retry[0].message.offset, retry[0].attempt, retry.len()), (0, 2, 3));
    assert!(e.ack("g", "m", &retry[2].receipt(), T0 + 1000), "an ack held early");
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(0)), Ok(0));
    let again = e.poll("g", "m", 10, T0 + 1000).unwrap();
    assert_eq!(again.iter().map(|d| (d.message.offset, d.attempt)).collect::<Vec<_>>(), vec![(0, 1), (1, 1), (2, 1)]);
    // The same offsets, attempts and member as before the seek: the old receipts still settle nothing.
    let stale = Receipt { attempt: 1, ..retry[1].receipt() };
    assert!(!e.ack("g", "m", &stale, T0 + 1000));
    assert!(!e.holds("g", "m", &retry[0].receipt(), T0 + 1000));
    assert!(e.holds("g", "m", &again[0].receipt(), T0 + 1000));
    assert!(e.ack("g", "m", &again[0].receipt(), T0 + 1000));
    commit(&mut e);
    let gp = &e.stats().groups[0].partitions[0];
    assert_eq!((gp.committed_offset, gp.in_flight, gp.retrying), (1, 2, 0));
}

#[test]
fn seek_by_time_goes_to_the_first_message_sent_then_or_later() {
    let mut e = engine();
    e.create_topic("t", retained(3_600_000)).unwrap();
    for (i, value) in ["a", "b", "c"].into_iter().enumerate() {
        e.send("t", &[msg(value)], T0 + 100 * i as u64).unwrap();
    }
    assert_eq!(e.seek("g", "t", 0, SeekTo::Timestamp(T0 + 50)), Ok(1));
    assert_eq!(e.seek("g", "t", 0, SeekTo::Timestamp(T0 + 100)), Ok(1));
    assert_eq!(e.seek("g", "t", 0, SeekTo::Timestamp(0)), Ok(0));
    assert_eq!(e.seek("g", "t", 0, SeekTo::Timestamp(T0 + 201)), Ok(3), "none that late: the end");
}

#[test]
fn a_group_that_sought_before_joining_starts_its_other_partitions_as_subscribed() {
    let mut e = engine();
    e.create_topic("t", TopicConfig { retention_ms: Some(3_600_000), ..TopicConfig::with_partitions(2) }).unwrap();
    e.send("t", &[at("a", 0), at("b", 0), at("c", 1)], T0).unwrap();
    assert_eq!(e.seek("g", "t", 0, SeekTo::Offset(1)), Ok(1));
    join(&mut e, "g", "m", "t", &no_jitter());
    let mut got: Vec<(u32, u64)> = e.poll("g", "m", 10, T0).unwrap().iter().map(|d| (d.partition, d.message.offset)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 1), (1, 0)]);
}

#[test]
fn a_seek_survives_reopening() {
    let mut e = engine();
    e.create_topic("t", retained(3_600_000)).unwrap();
    e.send("t", &["a", "b"].map(msg), T0).unwrap();
    join(&mut e, "g", "m", "t", &no_jitter());
    let run = e.poll("g", "m", 10, T0).unwrap();
    e.seek("g", "t", 0, SeekTo::Offset(1)).unwrap();
    let writes = e.begin_commit();
    e.end_commit(true);
    let records = writes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)));
    let reopened = Engine::open(BusConfig::default(), 1, records).unwrap();
    assert!(!reopened.holds("g", "m", &run[1].receipt(), T0));
    assert_eq!(reopened.stats(), e.stats());
}

#[test]
fn a_seek_by_a_new_group_keeps_to_the_group_limit() {
    let mut e = engine();
    e.create_topic("t", retained(3_600_000)).unwrap();
    for g in 0..GROUPS_MAX {
        e.seek(&format!("g{g}"), "t", 0, SeekTo::Offset(0)).unwrap();
    }
    commit(&mut e);
    let refused = e.seek("one-more", "t", 0, SeekTo::Offset(0)).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    assert!(refused.message.contains("groups"), "{refused}");
    assert!(!e.has_writes(), "a refused seek changes nothing");
    assert_eq!(e.seek("g0", "t", 0, SeekTo::Offset(0)), Ok(0), "a group there already still seeks");
}

#[test]
fn stats_in_the_commit_of_the_last_ack_see_the_log_trimmed() {
    let mut e = engine();
    join(&mut e, "g", "m", "t", &no_jitter());
    e.send("t", &[msg("a"), msg("b")], T0).unwrap();
    settle_all(&mut e, "g", "m", T0);
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 0, "trimmed with the commit");
    e.trim_settled();
    assert_eq!(e.stats().topics[0].partitions[0].low_offset, 2, "as the commit will store it");
}

/// The records of `e`'s commit, encoded and decoded as storage would give them back.
fn stored_records(e: &mut Engine) -> Vec<(Key, Record)> {
    let writes = e.begin_commit();
    e.end_commit(true);
    writes.into_iter().filter_map(|(key, record)| record.map(|r| (key.clone(), Record::decode(&key, &r.encode()).unwrap()))).collect()
}

#[test]
fn a_stored_reply_outlives_the_engine_that_stored_it() {
    let mut e = engine();
    e.store_reply("ctx", 7, b"seven".to_vec(), 0, T0);
    e.store_reply("ctx", 5, b"five".to_vec(), 0, T0);
    let reopened = Engine::open(BusConfig::default(), 1, stored_records(&mut e)).unwrap();
    assert_eq!(reopened.stored_reply("ctx", 5), Some(&b"five"[..]));
    assert_eq!(reopened.stored_reply("ctx", 7), Some(&b"seven"[..]));
    assert_eq!(reopened.stored_reply("ctx", 6), None);
    assert_eq!(reopened.stored_reply("other", 7), None);
}

#[test]
fn replies_go_once_answered_or_when_their_context_is_quiet() {
    let mut e = engine();
    for id in 0..3 {
        e.store_reply("ctx", id, vec![id as u8], 0, T0);
    }
    // Call 3 says calls below 2 were all answered.
    e.store_reply("ctx", 3, vec![3], 2, T0);
    assert_eq!((0..4).map(|id| e.stored_reply("ctx", id).is_some()).collect::<Vec<_>>(), [false, false, true, true]);
    commit(&mut e);
    e.tick(T0 + REPLIES_STORED_MS - 1);
    assert!(e.stored_reply("ctx", 3).is_some());
    e.tick(T0 + REPLIES_STORED_MS);
    assert_eq!(e.stored_reply("ctx", 3), None);
    let writes = e.begin_commit();
    assert!(writes.contains(&(Key::Replies(Name::from("ctx")), None)), "{writes:?}");
}

#[test]
fn replies_of_a_failed_commit_are_not_kept() {
    let mut e = engine();
    e.store_reply("ctx", 1, vec![1], 0, T0);
    commit(&mut e);
    e.store_reply("ctx", 2, vec![2], 0, T0);
    e.end_commit(false);
    assert!(e.stored_reply("ctx", 1).is_some());
    assert_eq!(e.stored_reply("ctx", 2), None);
}

#[test]
fn a_context_keeps_at_most_the_newest_replies_stored_max() {
    let mut e = engine();
    for id in 0..REPLIES_STORED_MAX as u64 + 2 {
        e.store_reply("ctx", id, Vec::new(), 0, T0);
    }
    assert_eq!((e.stored_reply("ctx", 1), e.stored_reply("ctx", 2)), (None, Some(&[][..])));
}

/// The browser's `ferry` build has no job queues (`--no-default-features`): opened on
/// a store that holds theirs, and told of more by another context, its engine runs
/// topics as before and never writes a job queue's record.
#[cfg(not(feature = "jobs"))]
#[test]
fn a_build_without_job_queues_leaves_their_records_as_stored() {
    let n = |s: &str| Name::from(s);
    let unread = |key: &Key| Record::decode(key, b"a record written by a build with job queues").unwrap();
    let stored = [Key::Queue(n("mail")), Key::JobPage(n("mail"), 0), Key::Repeat(n("mail"), n("digest"))];
    let mut e = Engine::open(BusConfig::default(), 1, stored.iter().map(|k| (k.clone(), unread(k)))).unwrap();
    let job = Key::Job(n("mail"), n("7"));
    e.apply_stored(vec![(job.clone(), Some(unread(&job))), (Key::JobPage(n("mail"), 0), None)]).unwrap();
    e.join("g", "m1", &[Subscription::new("t", true)], &no_jitter(), T0).unwrap();
    e.send("t", &[msg("a")], T0).unwrap();
    let writes = e.begin_commit();
    e.end_commit(true);
    assert!(writes.iter().any(|(key, _)| matches!(key, Key::Chunk(..))), "the send is written");
    assert!(writes.iter().all(|(key, _)| !matches!(key, Key::Queue(_) | Key::Job(..) | Key::JobPage(..) | Key::Repeat(..))), "no job queue's record among {writes:?}");
    let d = e.poll("g", "m1", 10, T0).unwrap();
    assert_eq!(d.len(), 1);
    assert!(e.ack("g", "m1", &d[0].receipt(), T0));
}
