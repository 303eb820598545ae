//! Unit tests of the job queue rules (`engine/jobs.rs`), one behaviour each.

use super::*;
use crate::core::jobs::{Backoff, JobOpts, JobSpec, Keep, RepeatSpec, Schedule};

const T0: u64 = 1_700_000_000_000;

fn engine() -> Engine {
    Engine::open(BusConfig::default(), 1, Vec::new()).unwrap()
}

fn spec(name: &str) -> JobSpec {
    JobSpec { name: name.into(), data: "{}".into(), id: None, opts: JobOpts::default(), priority: 0, delay_ms: 0, timestamp_ms: None, repeat: None }
}

fn add(e: &mut Engine, jobs: Vec<JobSpec>, now: u64) -> String {
    e.jobs("q", JobOp::Add { jobs }, now).unwrap()
}

fn work(e: &mut Engine, settle: Vec<Settlement>, take: u32, now: u64) -> String {
    e.jobs("q", JobOp::Work { token: "w".into(), settle, take, lease_ms: 30_000, limiter: None }, now).unwrap()
}

fn take(e: &mut Engine, max: u32, now: u64) -> String {
    work(e, Vec::new(), max, now)
}

/// The values of every `"field":"..."` in a JSON reply, in order.
fn strings_of(json: &str, field: &str) -> Vec<String> {
    let needle = format!("\"{field}\":\"");
    json.match_indices(&needle).map(|(i, _)| json[i + needle.len()..].split('"').next().unwrap_or("").to_string()).collect()
}

/// The ids of the jobs a reply holds: each job's object starts with it, as does
/// each new job's `[id, state, timestamp]` in an add's reply.
fn ids(json: &str) -> Vec<String> {
    let mut starts: Vec<usize> = json.match_indices("{\"id\":\"").map(|(i, _)| i + 7).collect();
    if json.starts_with("{\"jobs\":") {
        starts.extend(json.match_indices("[\"").map(|(i, _)| i + 2));
        starts.sort_unstable();
    }
    starts.into_iter().map(|i| json[i..].split('"').next().unwrap_or("").to_string()).collect()
}

fn names(json: &str) -> Vec<String> {
    strings_of(json, "name")
}

fn counts(e: &mut Engine) -> String {
    e.jobs("q", JobOp::Counts { states: Vec::new() }, T0).unwrap()
}

fn commit(e: &mut Engine) -> Vec<Write> {
    let writes = e.begin_commit();
    e.end_commit(true);
    writes
}

fn fail(e: &mut Engine, id: &str, now: u64) -> String {
    work(e, vec![Settlement::Fail { id: id.into(), error: "boom".into(), stacktrace: vec!["at x".into()], delay_ms: None, unrecoverable: false }], 0, now)
}

fn complete(e: &mut Engine, id: &str, now: u64) -> String {
    work(e, vec![Settlement::Complete { id: id.into(), returnvalue: "\"ok\"".into() }], 0, now)
}

#[test]
fn jobs_without_priority_go_first_then_lower_priority_lifo_before_fifo() {
    let mut e = engine();
    let jobs = vec![
        JobSpec { priority: 5, ..spec("p5") },
        spec("a"),
        JobSpec { priority: 1, ..spec("p1") },
        spec("b"),
        JobSpec { opts: JobOpts { lifo: true, ..JobOpts::default() }, ..spec("lifo") },
        JobSpec { priority: 1, ..spec("p1-later") },
    ];
    assert_eq!(ids(&add(&mut e, jobs, T0)), ["1", "2", "3", "4", "5", "6"]);
    assert!(counts(&mut e).contains("\"prioritized\":3,\"waiting\":3"), "{}", counts(&mut e));
    assert_eq!(names(&take(&mut e, 10, T0)), ["lifo", "a", "b", "p1", "p1-later", "p5"]);
}

#[test]
fn a_job_id_given_twice_is_one_job() {
    let mut e = engine();
    let once = JobSpec { id: Some("order-7".into()), ..spec("charge") };
    add(&mut e, vec![once.clone()], T0);
    let again = add(&mut e, vec![JobSpec { data: "{\"changed\":1}".into(), ..once }], T0);
    assert!(again.contains("\"data\":{}"), "the first is kept as it was: {again}");
    assert!(counts(&mut e).contains("\"waiting\":1"));
    for (bad, field) in [("12", "integer"), ("a:b", "':'"), ("", "empty")] {
        let refused = e.jobs("q", JobOp::Add { jobs: vec![spec("ok"), JobSpec { id: Some(bad.into()), ..spec("x") }] }, T0).unwrap_err();
        assert!(refused.message.contains(field), "{refused}");
    }
    assert!(counts(&mut e).contains("\"waiting\":1"), "a refused addBulk adds none of its jobs");
}

#[test]
fn failures_back_off_exponentially_then_fail_for_good_and_retry_redrives() {
    let mut e = engine();
    let opts = JobOpts { attempts: 3, backoff: Some(Backoff::Exponential(1000)), ..JobOpts::default() };
    add(&mut e, vec![JobSpec { opts, ..spec("flaky") }], T0);
    take(&mut e, 1, T0);
    let failed = fail(&mut e, "1", T0 + 10);
    assert!(failed.contains("\"state\":\"delayed\"") && failed.contains("\"attemptsMade\":1"), "{failed}");
    assert!(ids(&take(&mut e, 1, T0 + 1009)).is_empty(), "still in its backoff");
    assert_eq!(ids(&take(&mut e, 1, T0 + 1010)), ["1"]);
    assert!(fail(&mut e, "1", T0 + 2000).contains("\"state\":\"delayed\""));
    assert!(ids(&take(&mut e, 1, T0 + 3999)).is_empty(), "the second backoff is 2 s");
    assert_eq!(ids(&take(&mut e, 1, T0 + 4000)), ["1"]);
    let last = fail(&mut e, "1", T0 + 4100);
    assert!(last.contains("\"state\":\"failed\"") && last.contains("\"failedReason\":\"boom\"") && last.contains("\"attemptsMade\":3"), "{last}");
    let refused = e.jobs("q", JobOp::Retry { id: "1".into(), state: "completed".into() }, T0).unwrap_err();
    assert!(refused.message.contains("not completed"), "{refused}");
    let retried = e.jobs("q", JobOp::Retry { id: "1".into(), state: "failed".into() }, T0 + 5000).unwrap();
    assert!(retried.contains("\"state\":\"waiting\"") && retried.contains("\"attemptsMade\":3"), "its attempts stay counted: {retried}");
    take(&mut e, 1, T0 + 5000);
    assert!(fail(&mut e, "1", T0 + 5001).contains("\"state\":\"failed\""), "a retried job that fails again fails for good");
}

#[test]
fn finishing_needs_the_lease_and_remove_on_complete_keeps_the_newest() {
    let mut e = engine();
    let opts = JobOpts { remove_on_complete: Keep::Count(2), ..JobOpts::default() };
    add(&mut e, (0..5).map(|_| JobSpec { opts: opts.clone(), ..spec("j") }).collect(), T0);
    take(&mut e, 5, T0);
    let other =
        JobOp::Work { token: "other".into(), settle: vec![Settlement::Complete { id: "1".into(), returnvalue: "1".into() }], take: 0, lease_ms: 30_000, limiter: None };
    assert!(e.jobs("q", other, T0).unwrap().contains("\"done\":false"));
    for (i, id) in ["1", "2", "3", "4", "5"].into_iter().enumerate() {
        assert!(complete(&mut e, id, T0 + i as u64).contains("\"done\":true"));
    }
    let done = e.jobs("q", JobOp::List { states: vec!["completed".into()], start: 0, end: None, asc: false }, T0).unwrap();
    assert_eq!(ids(&done), ["5", "4"], "newest first");
    assert!(done.contains("\"returnvalue\":\"ok\""));
}

#[test]
fn a_repeatable_job_makes_one_job_per_slot_up_to_its_limit() {
    let mut e = engine();
    let repeat = RepeatSpec { schedule: Schedule::Every(1000), limit: Some(3), start_ms: None, end_ms: None, key: None };
    let t = 1_700_000_000_500;
    let first = add(&mut e, vec![JobSpec { repeat: Some(repeat.clone()), ..spec("tick") }], t);
    assert_eq!(ids(&first), ["repeat:tick::::1000:1700000001000"]);
    // The same repeatable job added again (another tab starting) is the same one.
    add(&mut e, vec![JobSpec { repeat: Some(repeat), ..spec("tick") }], t + 1);
    let mut fired = Vec::new();
    for now in (t..t + 6000).step_by(100) {
        fired.extend(ids(&take(&mut e, 10, now)));
        for id in fired.clone() {
            complete(&mut e, &id, now);
        }
    }
    fired.dedup();
    assert_eq!(fired, ["repeat:tick::::1000:1700000001000", "repeat:tick::::1000:1700000002000", "repeat:tick::::1000:1700000003000"]);
    let listed = e.jobs("q", JobOp::Repeatables, t).unwrap();
    assert!(listed.contains("\"count\":3") && listed.contains("\"next\":null"), "{listed}");
    assert!(e.jobs("q", JobOp::RemoveRepeatable { key: "tick::::1000".into() }, t).unwrap().contains("true"));
}

#[test]
fn a_cron_pattern_fires_on_its_minutes() {
    let mut e = engine();
    let repeat = RepeatSpec { schedule: Schedule::Cron("*/15 * * * *".into()), limit: None, start_ms: None, end_ms: None, key: Some("quarterly".into()) };
    // 2023-11-14T22:13:20Z: the next quarter hour is 22:15.
    let added = add(&mut e, vec![JobSpec { repeat: Some(repeat), ..spec("report") }], T0);
    assert_eq!(ids(&added), [format!("repeat:quarterly:{}", T0 + 100_000)]);
    let bad = RepeatSpec { schedule: Schedule::Cron("61 * * * *".into()), limit: None, start_ms: None, end_ms: None, key: None };
    let refused = e.jobs("q", JobOp::Add { jobs: vec![JobSpec { repeat: Some(bad), ..spec("x") }] }, T0).unwrap_err();
    assert!(refused.message.contains("repeat.pattern") && refused.message.contains("minute"), "{refused}");
}

#[test]
fn a_job_whose_lease_runs_out_stalls_once_then_fails() {
    let mut e = engine();
    add(&mut e, vec![spec("stuck")], T0);
    take(&mut e, 1, T0);
    e.tick(T0 + 30_000);
    assert!(counts(&mut e).contains("\"waiting\":1"), "given back: {}", counts(&mut e));
    take(&mut e, 1, T0 + 30_000);
    e.tick(T0 + 60_000);
    let job = e.jobs("q", JobOp::Get { id: "1".into() }, T0).unwrap();
    assert!(job.contains("\"state\":\"failed\"") && job.contains("stalled more than allowable limit"), "{job}");
}

#[test]
fn the_rate_limiter_lets_max_jobs_start_per_window() {
    let mut e = engine();
    add(&mut e, (0..10).map(|_| spec("j")).collect(), T0);
    let limiter = Some(Limiter { max: 3, duration_ms: 1000 });
    let take_limited = |e: &mut Engine, now| e.jobs("q", JobOp::Work { token: "w".into(), settle: Vec::new(), take: 10, lease_ms: 30_000, limiter }, now).unwrap();
    assert_eq!(ids(&take_limited(&mut e, T0)).len(), 3);
    let limited = take_limited(&mut e, T0 + 999);
    assert!(ids(&limited).is_empty() && limited.contains(&format!("\"nextMs\":{}", T0 + 1000)) && limited.contains("\"limited\":true"), "{limited}");
    assert_eq!(ids(&take_limited(&mut e, T0 + 1000)).len(), 3);
}

#[test]
fn a_parent_waits_for_its_children_and_gets_their_values() {
    let mut e = engine();
    let nodes = vec![
        FlowNode { queue: "q".into(), spec: spec("parent"), parent: None },
        FlowNode { queue: "q".into(), spec: spec("child-a"), parent: Some(0) },
        FlowNode { queue: "q".into(), spec: spec("child-b"), parent: Some(0) },
    ];
    let flow = e.jobs("q", JobOp::Flow { nodes }, T0).unwrap();
    assert!(flow.contains("\"state\":\"waiting-children\""), "{flow}");
    let children = ids(&take(&mut e, 10, T0));
    assert_eq!(children.len(), 2, "only the children wait");
    for id in &children {
        complete(&mut e, id, T0);
    }
    let parent = take(&mut e, 10, T0);
    assert_eq!(names(&parent), ["parent"]);
}

#[test]
fn a_round_settles_then_takes_in_one_operation() {
    let mut e = engine();
    add(&mut e, (0..3).map(|_| spec("j")).collect(), T0);
    assert_eq!(ids(&take(&mut e, 1, T0)), ["1"]);
    let round = work(&mut e, vec![Settlement::Complete { id: "1".into(), returnvalue: "7".into() }], 2, T0 + 1);
    assert!(round.starts_with("{\"settled\":[{\"done\":true,\"job\":{\"attemptsMade\":1,\"state\":\"completed\""), "{round}");
    assert_eq!(ids(&round), ["2", "3"]);
}

#[test]
fn job_state_is_its_records_a_failed_commit_undoes_it_and_a_reopened_engine_takes_in_the_same_order() {
    let mut e = engine();
    add(&mut e, vec![JobSpec { priority: 2, ..spec("late") }, spec("first"), JobSpec { delay_ms: 500, ..spec("delayed") }], T0);
    let mut stored: BTreeMap<Key, Record> = BTreeMap::new();
    for (key, record) in commit(&mut e) {
        match record {
            Some(r) => stored.insert(key, r),
            None => stored.remove(&key),
        };
    }
    let before = counts(&mut e);
    take(&mut e, 10, T0);
    e.end_commit(false);
    assert_eq!(counts(&mut e), before);
    let mut reopened = Engine::open(BusConfig::default(), 1, stored).unwrap();
    assert_eq!(names(&take(&mut reopened, 10, T0 + 500)), names(&take(&mut e, 10, T0 + 500)));
}

#[test]
fn events_are_kept_until_taken_and_dropped_with_a_failed_commit() {
    let mut e = engine();
    add(&mut e, vec![spec("a")], T0);
    e.end_commit(false);
    assert_eq!(e.take_job_events(), None);
    add(&mut e, vec![spec("a")], T0);
    commit(&mut e);
    let events = e.take_job_events().expect("the commit's events");
    assert!(events.starts_with("[{\"queue\":\"q\",\"event\":\"added\"") && events.contains("},{\"queue\":\"q\",\"event\":\"waiting\""), "{events}");
    assert_eq!(e.take_job_events(), None);
}

#[test]
fn jobs_are_stored_by_page_and_another_contexts_pages_replace_the_jobs_they_hold() {
    let mut e = engine();
    add(&mut e, (0..100).map(|_| spec("j")).collect(), T0);
    let writes = commit(&mut e);
    let pages: Vec<&Write> = writes.iter().filter(|(key, _)| matches!(key, Key::JobPage(..))).collect();
    // Ids 1..=100: pages 0 (1..=63) and 1 (64..=100).
    assert_eq!(pages.len(), 2, "{:?}", writes.iter().map(|(k, _)| k).collect::<Vec<_>>());
    for (key, record) in &pages {
        let record = record.as_ref().unwrap();
        assert_eq!(Record::decode(key, &record.encode()).as_ref(), Ok(record));
    }
    // Another context took and completed job 1, and removed the whole second page.
    let mut other = Engine::open(BusConfig::default(), 2, writes.into_iter().filter_map(|(k, r)| Some((k, r?)))).unwrap();
    take(&mut other, 1, T0);
    complete(&mut other, "1", T0);
    let mut theirs = commit(&mut other);
    theirs.push((Key::JobPage(Name::from("q"), 1), None));
    e.apply_stored(theirs).unwrap();
    let counts = counts(&mut e);
    assert!(counts.contains("\"completed\":1") && counts.contains("\"waiting\":62"), "{counts}");
}
