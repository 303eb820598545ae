//! Deterministic simulation of the engine, in the manner of TigerBeetle's simulator.
//!
//! One `u64` seed drives everything: the topics and groups, the members and their
//! settings, every operation, the clock (small steps, big jumps past timeouts, and
//! small steps backwards), handler failures, member crashes and restarts, storage
//! commits that fail, and whole contexts that crash and reopen from storage. A plain
//! model (a `Vec` per partition, a map per group) follows every committed step, and
//! after every step the engine is checked against it:
//!
//! 1. nothing whose send was acknowledged is lost: it is readable at its offset,
//!    unless every group reading it committed past it (settled it, or sought past
//!    it) or retention removed it;
//! 2. acknowledged offsets of a partition are exactly `0..highOffset`;
//! 3. with `ordering: "partition"`, within one generation of a partition (a seek
//!    starts the next: a seek back hands settled offsets out again, so the order
//!    holds between two seeks, not across them), a group is handed a run:
//!    consecutive offsets from its first unsettled one, at most `maxBatchSize`,
//!    one run per partition and poll, within the poll's limit; it settles offset
//!    n+1 only after n (an ack ahead of its turn waits for it), and only its first
//!    unsettled offset is in flight;
//! 4. a partition has one owner per group, a member subscribed to it, owners are
//!    balanced, and only the owner is handed its messages;
//! 5. a handler settles successfully only a delivery it still holds, one handed
//!    out since the last seek of its partition (a seek abandons the rest without
//!    counting an attempt), and `holds` says whether it does;
//! 6. a delivery's attempt is one more than the times the message was its run's
//!    message in flight when it failed, its lease ran out or its member was lost
//!    (what was leased behind it counts none), and so are a dead letter's
//!    `ferry-dlq-attempts`;
//!
//! besides what follows from the model: duplicates by `id` within the window,
//! backoffs kept, dead letters exactly when attempts run out, members removed
//! exactly when their session ends, every pending delivery the engine stores (its
//! lease, deadline, early ack, failed attempts) being the model's, and the stored
//! records opening to the same bus. At the end of each seed, once faults stop and
//! every member stays live, every message ends acked or dead-lettered, at least
//! once since the group's last seek of its partition, in every group that
//! subscribed before it was sent and did not seek past it, with each dead letter
//! in `${topic}.dlq` carrying its `ferry-dlq-*` headers.
//!
//! Members handle runs as the drivers do: a run's messages in order, acked one by
//! one (a commit may hold several acks), the run stopping at its first failure or
//! at a message its member no longer holds (the run loop asks before each);
//! now and then a run's acks go out in another order, as a pull consumer's settled
//! together may. Members crash mid-run, contexts crash before their acks are
//! stored, and a stopping member gives back with `release` what it has not
//! started. Now and then a driver seeks its group's position in a partition: back,
//! forward, to the end, past it (refused), or to a time, with runs there in
//! flight, leased or waiting.
//!
//! `FERRY_SIM_SEEDS` (default 1000) seeds run from `FERRY_SIM_SEED` (default 0); a
//! failure prints its seed and the command that replays it. `FERRY_SIM_TRACE=1`
//! prints every step.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;

use ferry::core::config::{BusConfig, ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
use ferry::core::engine::{Delivery, Engine, PollLimit, Receipt, SeekTo, Stats, Subscription};
use ferry::core::limits::{CHUNK_MESSAGES_MAX, POLL_MAX};
use ferry::core::message::{Message, OutgoingMessage, Value};
use ferry::core::murmur2::partition_for_key;
use ferry::core::records::{Key, Pending, Record};
use ferry::core::rng::Rng;
use ferry::core::ErrorCode;
use ferry::runtime::block_on;
use ferry::store::{FaultyStore, MemoryStore, Store, Version};

/// Seeds that once failed; each is replayed by every test run.
///
/// - 11, 16, 23: retention moved a group's committed offset onto an offset already
///   acked, and nothing moved it further: the group lagged forever.
/// - 6, 7: a new bus whose first commit failed never stored its schema version.
/// - 53, 80: retention removed a run's message in flight and left the rest of the
///   run leased behind nothing: the partition handed out nothing until retention
///   removed those too.
const REGRESSION_SEEDS: &[u64] = &[11, 16, 23, 6, 7, 53, 80];

const START_MS: u64 = 1_700_000_000_000;
const STEPS_MIN: u64 = 200;
const STEPS_MAX: u64 = 400;
/// Members alive at once in one group.
const LIVE_MEMBERS_MAX: usize = 4;
/// Consumer rounds the final drain may take before the bus counts as stuck: sessions,
/// leases, backoffs and delays all end within a few simulated seconds.
const DRAIN_ROUNDS_MAX: u64 = 400;
const DRAIN_ROUND_MS: u64 = 100;
/// Receipts of voided polls kept for handlers that try to settle them anyway.
const VOID_RECEIPTS_MAX: usize = 16;
/// Logs are read back whole this often, and after every reopen; in between, only the
/// partitions a commit (or its undo) wrote to, as reading everything every step
/// would dominate the run. As often, the stored records are opened beside the engine
/// and must rebuild the same state.
const FULL_CHECK_STEPS: u64 = 32;

thread_local! {
    /// The step a seed is at, for the report of a panic raised inside the engine.
    static CURRENT_STEP: Cell<u64> = const { Cell::new(0) };
}

#[test]
fn random_seeds() {
    let first = env_u64("FERRY_SIM_SEED", 0);
    let count = env_u64("FERRY_SIM_SEEDS", 1000);
    run_seeds(&(first..first.saturating_add(count)).collect::<Vec<_>>());
}

#[test]
fn regression_seeds() {
    run_seeds(REGRESSION_SEEDS);
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{name} must be a whole number, got {text:?}")),
        Err(_) => default,
    }
}

/// Runs the seeds on every core; seeds are independent, so the outcome of each
/// does not depend on the threads.
fn run_seeds(seeds: &[u64]) {
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, AtomicOrdering::Relaxed) as usize;
                let Some(&seed) = seeds.get(index) else { break };
                if let Err(report) = run_seed(seed) {
                    failures.lock().unwrap_or_else(|e| e.into_inner()).push((seed, report));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort();
    if let Some((_, report)) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|(seed, _)| *seed).collect();
        panic!("{} seed(s) failed: {seeds:?}\nfirst failure: {report}", failures.len());
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| Simulation::new(seed).run())).map_err(|panic| {
        let message = panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("(panic without a message)");
        let step = CURRENT_STEP.with(Cell::get);
        format!("seed {seed}, step {step}: {message}\nreplay: FERRY_SIM_SEED={seed} FERRY_SIM_SEEDS=1 cargo test --release --test simulation random_seeds -- --nocapture")
    })
}

/// A message of an acknowledged send, as the producer gave it.
struct Sent {
    message: OutgoingMessage,
    timestamp_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DedupModel {
    partition: u32,
    offset: u64,
    timestamp_ms: u64,
    expires_ms: u64,
}

struct TopicModel {
    name: String,
    dead_letter_name: String,
    config: TopicConfig,
    /// Partitions of a dead-letter topic created before any dead letter, if one was.
    dead_letter_partitions: Option<u32>,
    /// Per partition, the acknowledged messages by offset.
    logs: Vec<Vec<Sent>>,
    /// Per partition, the first retained offset at the last check.
    lows: Vec<u64>,
    /// Per partition, how many messages retention removed.
    expired: Vec<u64>,
    dedup: HashMap<String, DedupModel>,
    /// Per partition of the dead-letter topic, how far it was read.
    dead_letters_read: Vec<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupOrdering {
    Partition,
    None,
    /// Members pick either; ordering is not checked.
    Mixed,
}

struct GroupModel {
    name: String,
    topics: Vec<usize>,
    from_beginning: bool,
    ordering: GroupOrdering,
    /// Per `(topic, partition)` the group reads.
    cursors: HashMap<(usize, u32), CursorModel>,
}

#[derive(Clone)]
struct CursorModel {
    /// The first offset the model does not know as settled; the group must settle
    /// every message from where it started, or last sought, on.
    prefix: u64,
    /// What the model knows of offsets from `prefix` on.
    offsets: BTreeMap<u64, OffsetState>,
    /// How many seeks moved the position: deliveries carry it, and one made
    /// before a seek settles nothing, even when its offset comes again.
    generation: u32,
}

#[derive(Clone, Debug, Default)]
struct OffsetState {
    /// Failed attempts: each time the message was its run's message in flight
    /// when it failed, its lease ran out or its member was lost.
    failures: u32,
    lease: Option<Lease>,
    /// A redelivery after a failed attempt or a give-back comes no earlier than
    /// this.
    not_before_ms: u64,
    settled: Option<Settled>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    member: String,
    attempt: u32,
    /// When the lease of the message in flight runs out; `None` while it waits
    /// leased behind its run's message in flight (its handler has not started).
    deadline_ms: Option<u64>,
    /// Acked ahead of its turn: it settles when the message before it does.
    acked_early: bool,
}

/// How a handler settles a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ack,
    Fail,
    /// Gives it back, with the rest of its run, before its handler starts.
    Release,
}

impl OffsetState {
    /// Back as if the delivery never happened: due at once, no attempt counted.
    fn give_back(&mut self, now_ms: u64) {
        self.lease = None;
        self.not_before_ms = now_ms;
    }
}

impl CursorModel {
    /// The position moves to `offset` in the next generation; everything pending
    /// is abandoned, no attempt counted.
    fn seek(&mut self, offset: u64) {
        *self = CursorModel { prefix: offset, offsets: BTreeMap::new(), generation: self.generation + 1 };
    }

    fn state(&mut self, offset: u64) -> &mut OffsetState {
        self.offsets.entry(offset).or_default()
    }

    /// Whether `member` holds `receipt`'s delivery: in flight with a lease that has
    /// not run out (even before a tick counts the timeout), or leased behind its
    /// run's message in flight; and handed out since the last seek.
    fn holds(&self, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        let lease = self.offsets.get(&receipt.offset).and_then(|s| s.lease.as_ref()).filter(|_| receipt.generation == self.generation);
        lease.is_some_and(|l| l.member == member && l.attempt == receipt.attempt && l.deadline_ms.map_or(true, |deadline_ms| now_ms < deadline_ms))
    }

    /// An ack the engine took. In flight, the message settles and its run moves on:
    /// what was acked ahead of its turn settles, then the next message goes in
    /// flight with a lease from now. Ahead of its turn, the ack waits for it.
    fn ack(&mut self, offset: u64, now_ms: u64, ack_timeout_ms: impl Fn(&str) -> u64) {
        let state = self.state(offset);
        let lease = state.lease.as_mut().expect("the engine took an ack of a delivery the model has leased");
        if lease.deadline_ms.is_none() {
            lease.acked_early = true;
            return;
        }
        state.lease = None;
        state.settled = Some(Settled::Acked);
        for next in offset + 1.. {
            let Some(state) = self.offsets.get_mut(&next) else { return };
            match state.lease.as_mut() {
                Some(lease) if lease.deadline_ms.is_none() && !lease.acked_early => {
                    lease.deadline_ms = Some(now_ms.saturating_add(ack_timeout_ms(&lease.member)));
                    return;
                }
                Some(lease) if lease.deadline_ms.is_none() => {
                    state.lease = None;
                    state.settled = Some(Settled::Acked);
                }
                _ => return,
            }
        }
    }

    /// Gives back the messages from `from` on that are leased behind their run's
    /// message in flight.
    fn give_back_run(&mut self, from: u64, now_ms: u64) {
        for offset in from.. {
            match self.offsets.get_mut(&offset) {
                Some(state) if state.lease.as_ref().is_some_and(|l| l.deadline_ms.is_none()) => state.give_back(now_ms),
                _ => return,
            }
        }
    }

    /// A failed attempt of the message in flight at `offset`, as the engine counts
    /// it: the rest of its run is given back; the message is dead-lettered after
    /// the last attempt allowed (true), else redelivered after the backoff (at once
    /// when `backoff` is false).
    fn failed_attempt(&mut self, offset: u64, attempt: u32, retry: &RetryPolicy, now_ms: u64, backoff: bool) -> bool {
        self.give_back_run(offset + 1, now_ms);
        let state = self.state(offset);
        state.failures = attempt;
        state.lease = None;
        if attempt >= retry.max_attempts {
            state.settled = Some(Settled::DeadLettered { confirmed: false });
            return true;
        }
        state.not_before_ms = if backoff { now_ms.saturating_add(shortest_backoff_ms(retry, attempt)) } else { now_ms };
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    Acked,
    /// Expected in the dead-letter topic; `confirmed` once read there.
    DeadLettered {
        confirmed: bool,
    },
}

struct SimMember {
    id: String,
    group: usize,
    topics: Vec<usize>,
    config: ConsumerConfig,
    /// The process runs: it heartbeats, polls and settles.
    alive: bool,
    /// The engine has it in its group (as the model knows from committed steps).
    in_engine: bool,
    session_expires_ms: u64,
    last_heartbeat_ms: u64,
    /// Runs its handlers are working on: each one partition's deliveries in
    /// offset order, the next to handle first (under `ordering: "none"`, one
    /// delivery each).
    held: Vec<Vec<Receipt>>,
}

/// What a step did, applied to the model only once its commit succeeded.
enum Effect {
    Sent {
        topic: usize,
        partition: u32,
        offset: u64,
        sent: Sent,
    },
    DedupRecorded {
        topic: usize,
        id: String,
        entry: DedupModel,
    },
    /// A whole send, for the producer to retry when its commit fails.
    SendDone {
        topic: usize,
        messages: Vec<OutgoingMessage>,
    },
    Joined(SimMember),
    Heartbeat {
        member: String,
        now_ms: u64,
    },
    /// A run: its first delivery in flight until `deadline_ms`, the rest leased
    /// behind it.
    Delivered {
        group: usize,
        member: String,
        run: Vec<Receipt>,
        deadline_ms: u64,
    },
    Settled {
        group: usize,
        member: String,
        receipt: Receipt,
        outcome: Outcome,
        now_ms: u64,
    },
    Left {
        member: String,
        now_ms: u64,
    },
    /// The group's position in the partition moved to `offset`.
    Sought {
        group: usize,
        topic: usize,
        partition: u32,
        offset: u64,
    },
    Ticked {
        now_ms: u64,
    },
}

/// A position's generation and its pending deliveries.
type StoredPosition = (u32, Vec<(u64, Pending)>);

struct Simulation {
    seed: u64,
    step: u64,
    trace: bool,
    rng: Rng,
    now_ms: u64,
    /// The latest time a committed tick ran at: retention may have removed what was
    /// older than its window then.
    latest_tick_ms: u64,
    store: FaultyStore,
    /// The store's version the engine reflects: only this engine writes it.
    stored_version: Version,
    engine: Engine,
    topics: Vec<TopicModel>,
    groups: Vec<GroupModel>,
    members: Vec<SimMember>,
    members_joined: u64,
    values_sent: u64,
    handler_failures_per_mille: u64,
    commit_failures_per_mille: u64,
    /// A send whose commit failed, for the producer to retry with the same ids.
    failed_send: Option<(usize, Vec<OutgoingMessage>)>,
    /// `(group, member, receipt)` of deliveries whose poll was voided.
    void_receipts: Vec<(usize, String, Receipt)>,
    /// Dead letters the model expects and has not read from a dead-letter topic yet.
    dead_letters_expected: u64,
    /// `(group, topic, partition, offset, attempts)` of expected dead letters whose
    /// offsets a seek in the same commit dropped from the model's cursor.
    dead_letters_sought_past: Vec<(usize, usize, u32, u64, u32)>,
    /// `(topic, partition)` whose log or head a commit wrote since the last check.
    logs_written: HashSet<(String, u32)>,
    reread_all_logs: bool,
    /// Per `(group, topic, partition)`, the position as the last commit that wrote
    /// it stored it.
    stored_pending: HashMap<(String, String, u32), StoredPosition>,
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        CURRENT_STEP.with(|s| s.set(0));
        let mut rng = Rng::new(seed);
        let store = FaultyStore::new(MemoryStore::new(), rng.next_u64());
        let (records, stored_version) = block_on(store.load()).expect("a fresh store loads");
        let engine = Engine::open(BusConfig::default(), rng.next_u64(), records).expect("a fresh store opens");
        let handler_failures_per_mille = [0, 100, 300, 600][rng.between(0, 3) as usize];
        let commit_failures_per_mille = [0, 20, 80, 200][rng.between(0, 3) as usize];
        let mut sim = Simulation {
            seed,
            step: 0,
            trace: std::env::var("FERRY_SIM_TRACE").is_ok_and(|v| v == "1"),
            rng,
            now_ms: START_MS,
            latest_tick_ms: 0,
            store,
            stored_version,
            engine,
            topics: Vec::new(),
            groups: Vec::new(),
            members: Vec::new(),
            members_joined: 0,
            values_sent: 0,
            handler_failures_per_mille,
            commit_failures_per_mille,
            failed_send: None,
            void_receipts: Vec::new(),
            dead_letters_expected: 0,
            dead_letters_sought_past: Vec::new(),
            logs_written: HashSet::new(),
            reread_all_logs: true,
            stored_pending: HashMap::new(),
        };
        sim.set_up();
        sim
    }

    fn violation(&self, what: impl std::fmt::Display) -> ! {
        panic!("invariant violated (seed {}, step {}, now {}): {what}", self.seed, self.step, self.now_ms)
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[seed {} step {} now {}] {}", self.seed, self.step, self.now_ms as i64 - START_MS as i64, what());
        }
    }

    /// Topics and groups, with a first member or two per group; stored without faults
    /// so every seed starts from a bus that exists.
    fn set_up(&mut self) {
        let topic_count = self.rng.between(1, 3);
        for index in 0..topic_count {
            let name = format!("t{index}");
            let config = TopicConfig {
                partitions: self.rng.between(1, 4) as u32,
                retention_ms: self.rng.chance(1, 4).then(|| self.rng.between(2_000, 20_000)),
                max_depth: (index == 0 && self.rng.chance(1, 3)).then(|| self.rng.between(20, 80)),
                dedup_window_ms: match self.rng.between(0, 9) {
                    0 => 0,
                    1..=4 => self.rng.between(500, 5_000),
                    _ => 86_400_000,
                },
            };
            let partitions = config.partitions as usize;
            // A dead-letter topic that exists already is used as it is, even with fewer
            // partitions than its source.
            let dead_letter_partitions = self.rng.chance(1, 5).then(|| self.rng.between(1, u64::from(config.partitions)) as u32);
            self.topics.push(TopicModel {
                dead_letter_name: format!("{name}.dlq"),
                name,
                config,
                dead_letter_partitions,
                logs: (0..partitions).map(|_| Vec::new()).collect(),
                lows: vec![0; partitions],
                expired: vec![0; partitions],
                dedup: HashMap::new(),
                dead_letters_read: Vec::new(),
            });
        }
        let group_count = self.rng.between(2, 3);
        for index in 0..group_count {
            let mut topics: Vec<usize> = (0..self.topics.len()).filter(|_| self.rng.chance(1, 2)).collect();
            if topics.is_empty() {
                topics.push(self.rng.between(0, self.topics.len() as u64 - 1) as usize);
            }
            let ordering = match self.rng.between(0, 9) {
                0..=3 => GroupOrdering::Partition,
                4..=7 => GroupOrdering::None,
                _ => GroupOrdering::Mixed,
            };
            self.groups.push(GroupModel { name: format!("g{index}"), topics, from_beginning: self.rng.chance(1, 2), ordering, cursors: HashMap::new() });
        }
        // Sometimes the very first commit of the bus fails.
        if self.rng.chance(1, 4) {
            self.store.fail_after(0);
        }
        loop {
            let mut effects = Vec::new();
            for topic in 0..self.topics.len() {
                let model = &self.topics[topic];
                let mut created = self.engine.create_topic(&model.name, model.config.clone());
                if let Some(partitions) = model.dead_letter_partitions {
                    created = created.and(self.engine.create_topic(&model.dead_letter_name, TopicConfig::with_partitions(partitions)));
                }
                if created != Ok(true) {
                    self.violation(format!("creating topic {} failed: {created:?}", model.name));
                }
            }
            for group in 0..self.groups.len() {
                for _ in 0..self.rng.between(1, 2) {
                    self.join(group, false, &mut effects);
                }
            }
            if self.commit(effects) {
                break;
            }
            let stats = self.engine.stats();
            if !stats.topics.is_empty() || !stats.groups.is_empty() {
                self.violation(format!("a failed first commit left {stats:?}"));
            }
        }
        self.check();
        if !self.store.inner().snapshot().contains_key(&Key::Meta) {
            self.violation("the bus was stored without its schema version");
        }
        self.store.fail_randomly(self.commit_failures_per_mille);
    }

    fn run(mut self) {
        let steps = self.rng.between(STEPS_MIN, STEPS_MAX);
        for _ in 0..steps {
            self.next_step();
            self.random_step();
        }
        self.drain();
    }

    fn next_step(&mut self) {
        self.step += 1;
        CURRENT_STEP.with(|s| s.set(self.step));
    }

    /// Members neither running nor in the engine are gone for good.
    fn forget_departed_members(&mut self) {
        self.members.retain(|m| m.alive || m.in_engine);
    }

    fn random_step(&mut self) {
        self.forget_departed_members();
        self.advance_clock();
        let mut effects = Vec::new();
        let mut crash_before_commit = false;
        let retry = if self.rng.chance(1, 2) { self.failed_send.take() } else { None };
        if let Some((topic, messages)) = retry {
            self.trace(|| format!("retry the failed send of {} message(s) to {}", messages.len(), self.topics[topic].name));
            self.send(topic, messages, &mut effects);
        } else {
            match self.rng.between(0, 999) {
                0..=149 => {
                    // Now and then several sends share one commit (group commit).
                    let sends = if self.rng.chance(1, 5) { self.rng.between(2, 3) } else { 1 };
                    for _ in 0..sends {
                        let topic = self.rng.between(0, self.topics.len() as u64 - 1) as usize;
                        let messages = self.random_messages(topic);
                        self.send(topic, messages, &mut effects);
                    }
                }
                150..=399 => {
                    if let Some(member) = self.pick_member(|m| m.alive) {
                        let room = (self.members[member].config.concurrency as usize).saturating_sub(self.members[member].held.len());
                        if room > 0 {
                            let runs = if self.rng.chance(1, 2) { room } else { self.rng.between(1, room as u64) as usize };
                            // A run loop's free slots, as the drivers ask; now and then a
                            // plain number, as a pull consumer's receive asks.
                            let limit =
                                if self.rng.chance(1, 4) { PollLimit::from(runs) } else { PollLimit::runs(runs, self.members[member].config.batch_size_max as usize) };
                            self.poll(member, limit, &mut effects);
                        }
                    }
                }
                400..=619 => {
                    // Handlers finishing together settle in one commit, as the runtime does.
                    if let Some(member) = self.pick_member(|m| m.alive && !m.held.is_empty()) {
                        let runs = self.rng.between(1, self.members[member].held.len() as u64);
                        // Now and then a seek of one of those runs' partitions comes while
                        // they finish, in the same commit: what is settled after it counts
                        // for nothing, and the run loops stop.
                        let seek = self.rng.chance(1, 8).then(|| {
                            let held = &self.members[member].held;
                            let receipt = &held[self.rng.between(0, held.len() as u64 - 1) as usize][0];
                            let topic = self.topic_index(&receipt.topic).expect("a held delivery's topic");
                            (self.rng.between(0, runs - 1), (self.members[member].group, topic, receipt.partition))
                        });
                        for i in 0..runs {
                            if let Some((_, target)) = seek.filter(|(at, _)| *at == i) {
                                self.seek(Some(target), &mut effects);
                            }
                            let index = self.rng.between(0, self.members[member].held.len() as u64 - 1) as usize;
                            let run = self.members[member].held.swap_remove(index);
                            self.handle_run(member, run, &mut effects);
                        }
                        // Now and then the context dies with those acks not yet stored.
                        crash_before_commit = self.rng.chance(1, 25);
                    }
                }
                620..=739 => self.heartbeats(&mut effects),
                740..=839 => self.tick(&mut effects),
                840..=869 => {
                    // Sleep until the engine says something is due, as a driver does.
                    if let Some(due_ms) = self.engine.next_due_ms() {
                        if due_ms > self.now_ms && due_ms - self.now_ms <= 10_000 {
                            self.now_ms = due_ms;
                        }
                    }
                    self.tick(&mut effects);
                }
                870..=919 => {
                    let group = self.rng.between(0, self.groups.len() as u64 - 1) as usize;
                    if self.members.iter().filter(|m| m.group == group && m.alive).count() < LIVE_MEMBERS_MAX {
                        self.join(group, true, &mut effects);
                    }
                }
                920..=934 => {
                    if let Some(member) = self.pick_member(|m| m.alive && m.in_engine) {
                        // Half the members stop between two messages of their runs.
                        if self.rng.chance(1, 2) {
                            self.stop_runs(member, &mut effects);
                        }
                        self.leave(member, &mut effects);
                    }
                }
                935..=954 => {
                    if let Some(member) = self.pick_member(|m| m.alive) {
                        self.trace(|| format!("member {} crashes holding {:?}", self.members[member].id, self.members[member].held));
                        self.members[member].alive = false;
                        self.members[member].held.clear();
                    }
                }
                955..=974 => self.settle_void_receipt(&mut effects),
                975..=979 => {
                    self.trace(|| "the whole context crashes".to_string());
                    self.reopen();
                }
                _ => self.seek(None, &mut effects),
            }
        }
        // Rarely the context dies after the operations, before their commit.
        if crash_before_commit || self.rng.chance(3, 1000) {
            self.trace(|| "the context crashes before committing".to_string());
            self.reopen();
        } else {
            self.commit(effects);
        }
        self.check();
    }

    fn advance_clock(&mut self) {
        match self.rng.between(0, 999) {
            0..=14 => self.now_ms = self.now_ms.saturating_sub(self.rng.between(1, 200)),
            15..=44 => self.now_ms += self.rng.between(500, 4_000),
            _ => self.now_ms += self.rng.between(0, 40),
        }
    }

    fn pick_member(&mut self, eligible: impl Fn(&SimMember) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.members.len()).filter(|&i| eligible(&self.members[i])).collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.between(0, candidates.len() as u64 - 1) as usize])
    }

    fn member_index(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    fn topic_index(&self, name: &str) -> Option<usize> {
        self.topics.iter().position(|t| t.name == name)
    }

    fn random_messages(&mut self, topic: usize) -> Vec<OutgoingMessage> {
        let partitions = self.topics[topic].config.partitions;
        let count = match self.rng.between(0, 999) {
            // Rarely, a send larger than one log chunk holds.
            0 => self.rng.between(CHUNK_MESSAGES_MAX as u64 + 1, CHUNK_MESSAGES_MAX as u64 + 100),
            1..=249 => self.rng.between(4, 20),
            _ => self.rng.between(1, 3),
        };
        (0..count)
            .map(|_| {
                self.values_sent += 1;
                let text = format!("s{}-v{}", self.seed, self.values_sent);
                let value = match self.rng.between(0, 9) {
                    0 => Value::json(format!("{{\"text\":\"{text}\"}}")),
                    1 | 2 => Value::bytes(text.into_bytes()),
                    _ => Value::string(text),
                };
                let mut message = OutgoingMessage::new(value);
                if self.rng.chance(2, 3) {
                    message = message.with_key(format!("k{}", self.rng.between(0, 5)));
                }
                if self.rng.chance(1, 10) {
                    message = message.with_partition(self.rng.between(0, u64::from(partitions) - 1) as u32);
                }
                if self.rng.chance(1, 3) {
                    message = message.with_id(format!("id{}", self.rng.between(0, 40)));
                }
                if self.rng.chance(1, 10) {
                    message = message.with_delay_ms(self.rng.between(1, 300));
                }
                if self.rng.chance(1, 5) {
                    message = message.with_header("trace", format!("h{}", self.values_sent));
                }
                message
            })
            .collect()
    }

    /// Unconsumed depth of each partition, as `maxDepth` counts it.
    fn unconsumed_depths(&self, topic: usize) -> Vec<u64> {
        let stats = self.engine.stats();
        let name = &self.topics[topic].name;
        let Some(topic_stats) = stats.topics.iter().find(|t| &*t.topic == name) else { self.violation(format!("topic {name} is missing")) };
        topic_stats
            .partitions
            .iter()
            .map(|ps| {
                let committed =
                    stats.groups.iter().filter(|g| &*g.topic == name).filter_map(|g| g.partitions.get(ps.partition as usize)).map(|gp| gp.committed_offset).min();
                ps.high_offset - committed.unwrap_or(0).max(ps.low_offset)
            })
            .collect()
    }

    fn send(&mut self, topic: usize, messages: Vec<OutgoingMessage>, effects: &mut Vec<Effect>) {
        let name = self.topics[topic].name.clone();
        let config = self.topics[topic].config.clone();
        let depths = config.max_depth.map(|_| self.unconsumed_depths(topic));
        let results = match self.engine.send(&name, &messages, self.now_ms) {
            Ok(results) => results,
            Err(e) if e.code == ErrorCode::QueueFull => {
                let (Some(max_depth), Some(depths)) = (config.max_depth, &depths) else {
                    self.violation(format!("QUEUE_FULL from {name}, which has no maxDepth: {e:?}"))
                };
                if !depths.iter().any(|d| d + messages.len() as u64 > max_depth) {
                    self.violation(format!("QUEUE_FULL from {name} with depths {depths:?}, {} message(s), maxDepth {max_depth}", messages.len()));
                }
                self.trace(|| format!("send of {} to {name} refused: QUEUE_FULL", messages.len()));
                return;
            }
            Err(e) => self.violation(format!("a valid send to {name} was refused: {e:?}")),
        };
        if results.len() != messages.len() {
            self.violation(format!("send of {} message(s) returned {} result(s)", messages.len(), results.len()));
        }
        let mut added = vec![0u64; config.partitions as usize];
        for (message, meta) in messages.iter().zip(&results) {
            if *meta.topic != *name {
                self.violation(format!("send to {name} reported topic {}", meta.topic));
            }
            let mut expected_duplicate = None;
            if let (Some(id), true) = (&message.id, config.dedup_window_ms > 0) {
                let in_step = effects.iter().rev().find_map(|e| match e {
                    Effect::DedupRecorded { topic: t, id: i, entry } if *t == topic && i == id => Some(*entry),
                    _ => None,
                });
                expected_duplicate = in_step.or_else(|| self.topics[topic].dedup.get(id).copied()).filter(|d| d.expires_ms > self.now_ms);
            }
            match expected_duplicate {
                Some(first) => {
                    if !meta.duplicate || (meta.partition, meta.offset, meta.timestamp_ms) != (first.partition, first.offset, first.timestamp_ms) {
                        self.violation(format!("id {:?} seen at {first:?} must be a duplicate of it, got {meta:?}", message.id));
                    }
                    continue;
                }
                None if meta.duplicate => self.violation(format!("{meta:?} is marked duplicate, but its id {:?} is new", message.id)),
                None => {}
            }
            let expected_partition = match (message.partition, &message.key) {
                (Some(p), _) => Some(p),
                (None, Some(key)) => Some(partition_for_key(key, config.partitions)),
                (None, None) => None,
            };
            if meta.partition >= config.partitions || expected_partition.is_some_and(|p| p != meta.partition) {
                self.violation(format!("message {message:?} went to partition {}, expected {expected_partition:?}", meta.partition));
            }
            let in_step = effects.iter().filter(|e| matches!(e, Effect::Sent { topic: t, partition, .. } if *t == topic && *partition == meta.partition)).count();
            let expected_offset = (self.topics[topic].logs[meta.partition as usize].len() + in_step) as u64;
            if meta.offset != expected_offset || meta.timestamp_ms != self.now_ms {
                self.violation(format!("{meta:?}: expected offset {expected_offset} at {} (gapless, no repeats)", self.now_ms));
            }
            added[meta.partition as usize] += 1;
            if let (Some(id), true) = (&message.id, config.dedup_window_ms > 0) {
                let entry = DedupModel { partition: meta.partition, offset: meta.offset, timestamp_ms: self.now_ms, expires_ms: self.now_ms + config.dedup_window_ms };
                effects.push(Effect::DedupRecorded { topic, id: id.clone(), entry });
            }
            effects.push(Effect::Sent { topic, partition: meta.partition, offset: meta.offset, sent: Sent { message: message.clone(), timestamp_ms: self.now_ms } });
        }
        if let (Some(max_depth), Some(depths)) = (config.max_depth, &depths) {
            if let Some(p) = (0..added.len()).find(|&p| added[p] > 0 && depths[p] + added[p] > max_depth) {
                self.violation(format!("send took partition {p} of {name} to depth {} past maxDepth {max_depth}", depths[p] + added[p]));
            }
        }
        self.trace(|| format!("send {} to {name}: {:?}", messages.len(), results.iter().map(|r| (r.partition, r.offset, r.duplicate)).collect::<Vec<_>>()));
        effects.push(Effect::SendDone { topic, messages });
    }

    fn random_consumer_config(&mut self, ordering: GroupOrdering) -> ConsumerConfig {
        let session_timeout_ms = self.rng.between(1_000, 3_000);
        let initial_backoff_ms = self.rng.between(10, 200);
        ConsumerConfig {
            retry: RetryPolicy {
                max_attempts: self.rng.between(1, 5) as u32,
                initial_backoff_ms,
                multiplier: [1.0, 1.5, 2.0, 3.0][self.rng.between(0, 3) as usize],
                max_backoff_ms: self.rng.between(initial_backoff_ms, 1_000),
                jitter: self.rng.chance(1, 2),
            },
            dead_letter_topic: None,
            ack_timeout_ms: self.rng.between(500, 2_000),
            session_timeout_ms,
            heartbeat_interval_ms: self.rng.between(session_timeout_ms / 5, session_timeout_ms / 2),
            ordering: match ordering {
                GroupOrdering::Partition => Ordering::Partition,
                GroupOrdering::None => Ordering::None,
                GroupOrdering::Mixed if self.rng.chance(1, 2) => Ordering::Partition,
                GroupOrdering::Mixed => Ordering::None,
            },
            concurrency: self.rng.between(1, 4) as u32,
            batch_size_max: [1, 2, 3, 5, 100][self.rng.between(0, 4) as usize],
        }
    }

    /// A new member of `group`, subscribed to every topic of the group or, when
    /// `some_topics`, now and then to only some of them.
    fn join(&mut self, group: usize, some_topics: bool, effects: &mut Vec<Effect>) {
        self.members_joined += 1;
        let id = format!("{}-m{}", self.groups[group].name, self.members_joined);
        let config = self.random_consumer_config(self.groups[group].ordering);
        let from_beginning = self.groups[group].from_beginning;
        let mut topics = self.groups[group].topics.clone();
        if some_topics && topics.len() > 1 && self.rng.chance(1, 3) {
            topics.remove(self.rng.between(0, topics.len() as u64 - 1) as usize);
        }
        let subscriptions: Vec<Subscription> = topics.iter().map(|&t| Subscription::new(self.topics[t].name.clone(), from_beginning)).collect();
        if let Err(e) = self.engine.join(&self.groups[group].name, &id, &subscriptions, &config, self.now_ms) {
            self.violation(format!("a valid join of {id} was refused: {e:?}"));
        }
        self.trace(|| format!("join {id} ({:?}, concurrency {}, attempts {})", config.ordering, config.concurrency, config.retry.max_attempts));
        let session_expires_ms = self.now_ms + config.session_timeout_ms;
        effects.push(Effect::Joined(SimMember {
            id,
            group,
            topics,
            config,
            alive: true,
            in_engine: true,
            session_expires_ms,
            last_heartbeat_ms: self.now_ms,
            held: Vec::new(),
        }));
    }

    /// Every live member whose heartbeat is due sends it; one the engine no longer
    /// knows restarts under a new member id.
    fn heartbeats(&mut self, effects: &mut Vec<Effect>) {
        for index in 0..self.members.len() {
            let member = &self.members[index];
            if !member.alive || self.now_ms.saturating_sub(member.last_heartbeat_ms) < member.config.heartbeat_interval_ms {
                continue;
            }
            let group = member.group;
            let known = self.engine.heartbeat(&self.groups[group].name, &member.id, self.now_ms);
            if known != member.in_engine {
                self.violation(format!("heartbeat of {} returned {known}; the model has it {}in the group", member.id, if member.in_engine { "" } else { "not " }));
            }
            if known {
                effects.push(Effect::Heartbeat { member: member.id.clone(), now_ms: self.now_ms });
            } else {
                self.trace(|| format!("{} learns it left the group; it restarts", self.members[index].id));
                self.members[index].alive = false;
                self.members[index].held.clear();
                self.join(group, true, effects);
            }
        }
    }

    fn tick(&mut self, effects: &mut Vec<Effect>) {
        self.trace(|| "tick".to_string());
        self.engine.tick(self.now_ms);
        effects.push(Effect::Ticked { now_ms: self.now_ms });
    }

    fn leave(&mut self, member: usize, effects: &mut Vec<Effect>) {
        let id = self.members[member].id.clone();
        self.trace(|| format!("{id} leaves holding {:?}", self.members[member].held));
        self.engine.leave(&self.groups[self.members[member].group].name, &id, self.now_ms);
        // The consumer has stopped whether or not its leave is stored.
        self.members[member].alive = false;
        self.members[member].held.clear();
        effects.push(Effect::Left { member: id, now_ms: self.now_ms });
    }

    fn poll(&mut self, member: usize, limit: PollLimit, effects: &mut Vec<Effect>) {
        let stats = self.engine.stats();
        let group = self.members[member].group;
        let id = self.members[member].id.clone();
        let group_name = self.groups[group].name.clone();
        let config = self.members[member].config.clone();
        let deliveries = match self.engine.poll(&group_name, &id, limit, self.now_ms) {
            Ok(deliveries) => deliveries,
            Err(e) => self.violation(format!("poll by {id} failed: {e:?}")),
        };
        self.trace(|| {
            let handed: Vec<_> = deliveries.iter().map(|d| (d.topic.to_string(), d.partition, d.message.offset, d.attempt)).collect();
            format!("poll {id} {limit:?}: {handed:?}")
        });
        if deliveries.len() > limit.messages.min(POLL_MAX) {
            self.violation(format!("poll of at most {} message(s) handed out {}", limit.messages, deliveries.len()));
        }
        if !self.members[member].in_engine && !deliveries.is_empty() {
            self.violation(format!("{id} is not in its group, yet was handed {} message(s)", deliveries.len()));
        }
        // Under partition ordering a partition's deliveries are one run; else each
        // delivery is a run of its own.
        let mut runs: Vec<Vec<&Delivery>> = Vec::new();
        for delivery in &deliveries {
            match runs.last_mut() {
                Some(run) if config.ordering == Ordering::Partition && (&run[0].topic, run[0].partition) == (&delivery.topic, delivery.partition) => run.push(delivery),
                _ => runs.push(vec![delivery]),
            }
        }
        if runs.len() > limit.runs {
            self.violation(format!("poll of at most {} run(s) handed out {}", limit.runs, runs.len()));
        }
        let mut partitions_handed: HashSet<(usize, u32)> = HashSet::new();
        let mut offsets_handed: HashSet<(usize, u32, u64)> = HashSet::new();
        for run in &runs {
            if run.len() > config.batch_size_max as usize {
                self.violation(format!("a run of {} message(s) is longer than maxBatchSize {}", run.len(), config.batch_size_max));
            }
            for (place, delivery) in run.iter().enumerate() {
                self.check_delivery(member, &stats, delivery, &mut offsets_handed);
                let (topic, p, offset) = (self.topic_index(&delivery.topic).expect("checked above"), delivery.partition, delivery.message.offset);
                if place > 0 && offset != run[place - 1].message.offset + 1 {
                    self.violation(format!("a run of {}/{p} goes from offset {} to {offset}", delivery.topic, run[place - 1].message.offset));
                }
                if place == 0 && config.ordering == Ordering::Partition && !partitions_handed.insert((topic, p)) {
                    self.violation(format!("ordering: one poll handed {id} two runs of {}/{p}", delivery.topic));
                }
                let prefix = self.groups[group].cursors[&(topic, p)].prefix;
                if place == 0 && self.groups[group].ordering == GroupOrdering::Partition && offset != prefix {
                    self.violation(format!("ordering: {group_name} was handed {}/{p}@{offset} while offset {prefix} is unsettled", delivery.topic));
                }
            }
        }
        let deadline_ms = self.now_ms.saturating_add(config.ack_timeout_ms);
        for run in runs {
            effects.push(Effect::Delivered { group, member: id.clone(), run: run.iter().map(|d| d.receipt()).collect(), deadline_ms });
        }
    }

    /// What holds for every delivery: to the owner of a partition its member
    /// subscribes to, as sent, past its delay, unsettled and not held by anyone,
    /// after its backoff, its attempt one more than its failed attempts.
    fn check_delivery(&self, member: usize, stats: &Stats, delivery: &Delivery, offsets_handed: &mut HashSet<(usize, u32, u64)>) {
        let id = &self.members[member].id;
        let group_name = &self.groups[self.members[member].group].name;
        let (p, offset) = (delivery.partition, delivery.message.offset);
        let Some(topic) = self.topic_index(&delivery.topic).filter(|t| self.members[member].topics.contains(t)) else {
            self.violation(format!("{id} was handed a message of {}, which it does not subscribe to", delivery.topic))
        };
        let owner = stats
            .groups
            .iter()
            .find(|g| *g.group_id == **group_name && *g.topic == *delivery.topic)
            .and_then(|g| g.partitions.get(p as usize))
            .and_then(|gp| gp.owner.clone());
        if owner.as_deref() != Some(id.as_str()) {
            self.violation(format!("{id} was handed {}/{p}@{offset}, a partition owned by {owner:?}", delivery.topic));
        }
        let Some(sent) = self.topics[topic].logs.get(p as usize).and_then(|log| log.get(offset as usize)) else {
            self.violation(format!("{id} was handed {}/{p}@{offset}, which no acknowledged send wrote", delivery.topic))
        };
        if let Some(difference) = difference(sent, &delivery.message) {
            self.violation(format!("{id} was handed {}/{p}@{offset} with {difference}", delivery.topic));
        }
        if !offsets_handed.insert((topic, p, offset)) {
            self.violation(format!("one poll handed {}/{p}@{offset} twice", delivery.topic));
        }
        let Some(cursor) = self.groups[self.members[member].group].cursors.get(&(topic, p)) else {
            self.violation(format!("group {group_name} reads {}/{p} without a position", delivery.topic))
        };
        if offset < cursor.prefix {
            self.violation(format!("{}/{p}@{offset} handed to {group_name} again, though settled (committed {})", delivery.topic, cursor.prefix));
        }
        if delivery.generation != cursor.generation {
            self.violation(format!("{}/{p}@{offset} handed out in generation {}; the model has {}", delivery.topic, delivery.generation, cursor.generation));
        }
        let state = cursor.offsets.get(&offset);
        // Only a first delivery: a clock that went back may make a retry's backoff,
        // or the give-back of a run, end before the delay does, by its reading.
        if state.is_none() && delivery.message.deliver_at_ms > self.now_ms {
            self.violation(format!("{}/{p}@{offset} handed out before its delay ended at {}", delivery.topic, delivery.message.deliver_at_ms));
        }
        if let Some(settled) = state.and_then(|s| s.settled) {
            self.violation(format!("{}/{p}@{offset} handed to {group_name} again, though {settled:?}", delivery.topic));
        }
        if let Some(lease) = state.and_then(|s| s.lease.as_ref()) {
            self.violation(format!("{}/{p}@{offset} handed to {id} while {lease:?} still holds it", delivery.topic));
        }
        let failures = state.map_or(0, |s| s.failures);
        if delivery.attempt != failures + 1 {
            self.violation(format!("{}/{p}@{offset} handed out as attempt {} after {failures} failed attempt(s)", delivery.topic, delivery.attempt));
        }
        let not_before_ms = state.map_or(0, |s| s.not_before_ms);
        if self.now_ms < not_before_ms {
            self.violation(format!("{}/{p}@{offset} redelivered before its backoff ended at {not_before_ms}", delivery.topic));
        }
    }

    /// Whether the model has `receipt` as `member`'s delivery once the settles the
    /// step made so far are applied: the engine takes them one after another (a
    /// step settles or polls, never both).
    fn holds(&self, group: usize, member: &str, receipt: &Receipt, effects: &[Effect]) -> bool {
        let Some(topic) = self.topic_index(&receipt.topic) else { return false };
        let Some(cursor) = self.groups[group].cursors.get(&(topic, receipt.partition)) else { return false };
        let mut cursor = cursor.clone();
        for effect in effects {
            match effect {
                Effect::Settled { group: g, member, receipt: settled, outcome, now_ms }
                    if *g == group && (&settled.topic, settled.partition) == (&receipt.topic, receipt.partition) =>
                {
                    settle_in(&mut cursor, &self.members, member, settled, *outcome, *now_ms);
                }
                Effect::Sought { group: g, topic: t, partition, offset } if (*g, *t, *partition) == (group, topic, receipt.partition) => cursor.seek(*offset),
                _ => {}
            }
        }
        cursor.holds(member, receipt, self.now_ms)
    }

    /// A handler works through the start of a run in order, acking each message
    /// (one commit then holds several acks) and stopping the run at its first
    /// failure: the engine gave the rest back. Before each message after the first
    /// (whose handler was running already) the run loop asks whether its member
    /// still holds it, and drops the run when not (a seek abandoned it, or its
    /// lease ran out). What it has not reached stays held. Now and then the run is
    /// a pull consumer's: its acks go out together in another order, no question
    /// asked.
    fn handle_run(&mut self, member: usize, mut run: Vec<Receipt>, effects: &mut Vec<Effect>) {
        let rest = run.split_off(self.rng.between(1, run.len() as u64) as usize);
        let pulled = self.rng.chance(1, 8);
        let mut outcomes = Vec::new();
        let mut abandoned = false;
        for receipt in run {
            if !pulled && !outcomes.is_empty() && !self.still_holds(member, &receipt, effects) {
                abandoned = true;
                break;
            }
            let fails = self.rng.chance(self.handler_failures_per_mille, 1000);
            outcomes.push((receipt, if fails { Outcome::Fail } else { Outcome::Ack }));
            if fails {
                break;
            }
        }
        let failed = outcomes.last().is_some_and(|(_, outcome)| *outcome == Outcome::Fail);
        if pulled {
            for i in (1..outcomes.len()).rev() {
                outcomes.swap(i, self.rng.between(0, i as u64) as usize);
            }
        }
        for (receipt, outcome) in outcomes {
            self.settle(member, receipt, outcome, effects);
        }
        if !failed && !abandoned && !rest.is_empty() && (pulled || self.still_holds(member, &rest[0], effects)) {
            self.members[member].held.push(rest);
        }
    }

    /// What a run loop asks before it starts a message: the engine's answer must
    /// be the model's.
    fn still_holds(&self, member: usize, receipt: &Receipt, effects: &[Effect]) -> bool {
        let (group, id) = (self.members[member].group, &self.members[member].id);
        let held = self.engine.holds(&self.groups[group].name, id, receipt, self.now_ms);
        if held != self.holds(group, id, receipt, effects) {
            self.violation(format!("holds of {receipt:?} by {id} says {held}; the model says otherwise"));
        }
        held
    }

    /// A driver moves its group's position in a partition (`target`'s, else one
    /// of a random group's): back over what it settled (below the first retained
    /// offset too), forward over what it has not, to the end, past it (refused,
    /// nothing changes), or to a time, while runs there may be in flight, leased
    /// or waiting.
    fn seek(&mut self, target: Option<(usize, usize, u32)>, effects: &mut Vec<Effect>) {
        let (group, topic, partition) = target.unwrap_or_else(|| {
            let group = self.rng.between(0, self.groups.len() as u64 - 1) as usize;
            let topics = &self.groups[group].topics;
            let topic = topics[self.rng.between(0, topics.len() as u64 - 1) as usize];
            (group, topic, self.rng.between(0, u64::from(self.topics[topic].config.partitions) - 1) as u32)
        });
        let (group_name, topic_name) = (self.groups[group].name.clone(), self.topics[topic].name.clone());
        let log = &self.topics[topic].logs[partition as usize];
        let (low, high) = (self.topics[topic].lows[partition as usize], log.len() as u64);
        let committed = self.groups[group].cursors[&(topic, partition)].prefix;
        let to = match self.rng.between(0, 9) {
            0..=2 => SeekTo::Offset(committed.saturating_sub(self.rng.between(1, 30))),
            3..=5 => SeekTo::Offset((committed + self.rng.between(1, 10)).min(high)),
            6 => SeekTo::Offset(high),
            7 => SeekTo::Offset(high + self.rng.between(1, 3)),
            _ if low < high => SeekTo::Timestamp((log[self.rng.between(low, high - 1) as usize].timestamp_ms + 1).saturating_sub(self.rng.between(0, 2))),
            _ => SeekTo::Timestamp(self.now_ms),
        };
        // The clock goes back now and then, so the first message sent at or after a
        // time is not always the last of those sent before it.
        let expected = match to {
            SeekTo::Offset(offset) if offset > high => Err(ErrorCode::InvalidArgument),
            SeekTo::Offset(offset) => Ok(offset.max(low)),
            SeekTo::Timestamp(ms) => Ok((low..high).find(|&o| log[o as usize].timestamp_ms >= ms).unwrap_or(high)),
        };
        let wrote_before = self.engine.has_writes();
        let got = self.engine.seek(&group_name, &topic_name, partition, to).map_err(|e| e.code);
        self.trace(|| format!("{group_name} seeks {topic_name}/{partition} (committed {committed}, {low}..{high}) to {to:?}: {got:?}"));
        if got != expected {
            self.violation(format!("seek of {group_name} in {topic_name}/{partition} ({low}..{high}) to {to:?} returned {got:?}, expected {expected:?}"));
        }
        match got {
            Ok(offset) => effects.push(Effect::Sought { group, topic, partition, offset }),
            Err(_) if self.engine.has_writes() != wrote_before => self.violation(format!("a refused seek of {topic_name}/{partition} wrote something")),
            Err(_) => {}
        }
    }

    /// A member stopping: each handler finishes the message it is on, or a few,
    /// and gives back the next one and the rest of its run.
    fn stop_runs(&mut self, member: usize, effects: &mut Vec<Effect>) {
        for mut run in std::mem::take(&mut self.members[member].held) {
            let rest = run.split_off(self.rng.between(0, run.len() as u64 - 1) as usize);
            for receipt in run {
                self.settle(member, receipt, Outcome::Ack, effects);
            }
            self.settle(member, rest[0].clone(), Outcome::Release, effects);
        }
    }

    fn settle(&mut self, member: usize, receipt: Receipt, outcome: Outcome, effects: &mut Vec<Effect>) {
        let group = self.members[member].group;
        let id = self.members[member].id.clone();
        let expected = self.holds(group, &id, &receipt, effects);
        let group_name = &self.groups[group].name;
        let done = match outcome {
            Outcome::Ack => self.engine.ack(group_name, &id, &receipt, self.now_ms),
            Outcome::Fail => self.engine.fail(group_name, &id, &receipt, &format!("handler of {id} failed"), self.now_ms),
            Outcome::Release => self.engine.release(group_name, &id, &receipt, self.now_ms),
        };
        self.trace(|| format!("{outcome:?} {id} {receipt:?}: {done}"));
        if done != expected {
            self.violation(format!(
                "{outcome:?} by {id} of {receipt:?} returned {done}, but the model says the member {} the delivery",
                if expected { "holds" } else { "does not hold" }
            ));
        }
        if done {
            effects.push(Effect::Settled { group, member: id, receipt, outcome, now_ms: self.now_ms });
        }
    }

    /// A handler settles a delivery whose poll was never stored: it must not count,
    /// unless the same delivery was handed out again since.
    fn settle_void_receipt(&mut self, effects: &mut Vec<Effect>) {
        if self.void_receipts.is_empty() {
            return;
        }
        let index = self.rng.between(0, self.void_receipts.len() as u64 - 1) as usize;
        let (group, id, receipt) = self.void_receipts.swap_remove(index);
        let expected = self.holds(group, &id, &receipt, effects);
        let done = self.engine.ack(&self.groups[group].name, &id, &receipt, self.now_ms);
        self.trace(|| format!("ack of voided {receipt:?} by {id}: {done}"));
        if done != expected {
            self.violation(format!("ack by {id} of voided {receipt:?} returned {done}; the model says it {} hold it", if expected { "does" } else { "does not" }));
        }
        if done {
            effects.push(Effect::Settled { group, member: id, receipt, outcome: Outcome::Ack, now_ms: self.now_ms });
        }
    }

    fn reopen(&mut self) {
        let records = loop {
            if let Ok((records, version)) = block_on(self.store.load()) {
                self.stored_version = version;
                break records;
            }
        };
        self.engine = match Engine::open(BusConfig::default(), self.rng.next_u64(), records) {
            Ok(engine) => engine,
            Err(e) => self.violation(format!("the stored bus does not open: {e:?}")),
        };
        // Every member lived in the context that died; the store still has them.
        for member in &mut self.members {
            member.alive = false;
            member.held.clear();
        }
        self.void_receipts.clear();
        self.failed_send = None;
        self.reread_all_logs = true;
    }

    /// Stores the step's writes; the model takes its effects only when they were stored.
    fn commit(&mut self, effects: Vec<Effect>) -> bool {
        let writes = self.engine.begin_commit();
        let attempt = writes.clone();
        let mut behind = false;
        let committed = block_on(self.store.transact(Some(self.stored_version), |fresh| {
            behind = fresh.is_some();
            Ok(attempt)
        }));
        if behind {
            self.violation("only this engine writes the store, and a commit found it behind".to_string());
        }
        let stored = committed.is_ok();
        if let Ok(version) = committed {
            self.stored_version = version;
        }
        self.engine.end_commit(stored);
        for (key, record) in &writes {
            match (key, record) {
                (Key::Chunk(topic, p, _) | Key::Partition(topic, p), _) => {
                    self.logs_written.insert((topic.to_string(), *p));
                }
                (Key::Cursor(group, topic, p), Some(Record::GroupPartition { cursor, pending })) if stored => {
                    self.stored_pending.insert((group.to_string(), topic.to_string(), *p), (cursor.generation, pending.clone()));
                }
                _ => {}
            }
        }
        if !stored {
            self.trace(|| format!("commit of {} write(s) failed", writes.len()));
        }
        for effect in effects {
            if stored {
                self.apply(effect);
            } else {
                self.void(effect);
            }
        }
        stored
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Sent { topic, partition, offset, sent } => {
                let next = self.topics[topic].logs[partition as usize].len() as u64;
                if offset != next {
                    self.violation(format!("offset {offset} acknowledged on {}/{partition}, whose next offset is {next}", self.topics[topic].name));
                }
                self.topics[topic].logs[partition as usize].push(sent);
            }
            Effect::DedupRecorded { topic, id, entry } => {
                self.topics[topic].dedup.insert(id, entry);
            }
            Effect::Joined(member) => self.members.push(member),
            Effect::Heartbeat { member, now_ms } => {
                if let Some(index) = self.member_index(&member) {
                    let m = &mut self.members[index];
                    m.session_expires_ms = now_ms + m.config.session_timeout_ms;
                    m.last_heartbeat_ms = now_ms;
                }
            }
            Effect::Delivered { group, member, run, deadline_ms } => {
                let topic = self.topic_index(&run[0].topic).expect("checked at poll");
                let cursor = self.groups[group].cursors.get_mut(&(topic, run[0].partition)).expect("a delivered partition has a cursor");
                for (place, receipt) in run.iter().enumerate() {
                    let deadline_ms = (place == 0).then_some(deadline_ms);
                    cursor.state(receipt.offset).lease = Some(Lease { member: member.clone(), attempt: receipt.attempt, deadline_ms, acked_early: false });
                }
                if let Some(index) = self.member_index(&member).filter(|&i| self.members[i].alive) {
                    self.members[index].held.push(run);
                }
            }
            Effect::Settled { group, member, receipt, outcome, now_ms } => {
                let topic = self.topic_index(&receipt.topic).expect("checked at settle");
                let cursor = self.groups[group].cursors.get_mut(&(topic, receipt.partition)).expect("a settled partition has a cursor");
                if settle_in(cursor, &self.members, &member, &receipt, outcome, now_ms) {
                    self.dead_letters_expected += 1;
                }
            }
            Effect::Left { member, now_ms } => self.remove_member(&member, now_ms),
            Effect::Sought { group, topic, partition, offset } => {
                let cursor = self.groups[group].cursors.get_mut(&(topic, partition)).expect("a sought partition has a cursor");
                for (&dead, state) in &cursor.offsets {
                    if state.settled == Some(Settled::DeadLettered { confirmed: false }) {
                        self.dead_letters_sought_past.push((group, topic, partition, dead, state.failures));
                    }
                }
                cursor.seek(offset);
            }
            Effect::Ticked { now_ms } => self.apply_tick(now_ms),
            Effect::SendDone { .. } => {}
        }
    }

    /// The results of a step whose commit failed never happened.
    fn void(&mut self, effect: Effect) {
        match effect {
            Effect::SendDone { topic, messages } => self.failed_send = Some((topic, messages)),
            Effect::Delivered { group, member, run, .. } => {
                for receipt in run {
                    if self.void_receipts.len() < VOID_RECEIPTS_MAX {
                        self.void_receipts.push((group, member.clone(), receipt));
                    }
                }
            }
            Effect::Settled { member, receipt, .. } => {
                // Half the handlers settle again once storage recovers, each message
                // on its own: the rest of its run may be handled first.
                if let Some(index) = self.member_index(&member).filter(|&i| self.members[i].alive) {
                    if self.rng.chance(1, 2) && !self.members[index].held.iter().flatten().any(|held| *held == receipt) {
                        self.members[index].held.push(vec![receipt]);
                    }
                }
            }
            Effect::Sent { .. }
            | Effect::DedupRecorded { .. }
            | Effect::Joined(_)
            | Effect::Heartbeat { .. }
            | Effect::Left { .. }
            | Effect::Sought { .. }
            | Effect::Ticked { .. } => {}
        }
    }

    /// A failed attempt of a message in flight, as the engine counts it.
    #[allow(clippy::too_many_arguments)]
    fn failed_attempt(&mut self, group: usize, topic: usize, partition: u32, offset: u64, attempt: u32, config: &ConsumerConfig, now_ms: u64, backoff: bool) {
        let cursor = self.groups[group].cursors.get_mut(&(topic, partition)).expect("a delivered partition has a cursor");
        if cursor.failed_attempt(offset, attempt, &config.retry, now_ms, backoff) {
            self.dead_letters_expected += 1;
        }
    }

    /// A member leaves its group: what it had in flight counts as a failed attempt,
    /// and the rest of its runs comes back.
    fn remove_member(&mut self, id: &str, now_ms: u64) {
        let Some(index) = self.member_index(id) else { return };
        if !self.members[index].in_engine {
            return;
        }
        let group = self.members[index].group;
        let config = self.members[index].config.clone();
        for (topic, partition, offset, attempt) in self.leases_of(group, |lease| lease.member == id && lease.deadline_ms.is_some()) {
            self.failed_attempt(group, topic, partition, offset, attempt, &config, now_ms, false);
        }
        let member = &mut self.members[index];
        member.in_engine = false;
    }

    /// `(topic, partition, offset, attempt)` of the group's leases that match.
    fn leases_of(&self, group: usize, matches: impl Fn(&Lease) -> bool) -> Vec<(usize, u32, u64, u32)> {
        let mut found = Vec::new();
        for (&(topic, partition), cursor) in &self.groups[group].cursors {
            for (&offset, state) in &cursor.offsets {
                if let Some(lease) = state.lease.as_ref().filter(|l| matches(l)) {
                    found.push((topic, partition, offset, lease.attempt));
                }
            }
        }
        found
    }

    fn apply_tick(&mut self, now_ms: u64) {
        let expired: Vec<String> = self.members.iter().filter(|m| m.in_engine && m.session_expires_ms <= now_ms).map(|m| m.id.clone()).collect();
        for id in expired {
            self.remove_member(&id, now_ms);
        }
        for group in 0..self.groups.len() {
            let mut leases: Vec<(usize, u32, u64, u32, String)> = Vec::new();
            for (&(topic, partition), cursor) in &self.groups[group].cursors {
                for (&offset, state) in &cursor.offsets {
                    if let Some(lease) = state.lease.as_ref().filter(|l| l.deadline_ms.is_some_and(|deadline_ms| deadline_ms <= now_ms)) {
                        leases.push((topic, partition, offset, lease.attempt, lease.member.clone()));
                    }
                }
            }
            for (topic, partition, offset, attempt, holder) in leases {
                let Some(config) = self.member_index(&holder).filter(|&i| self.members[i].in_engine).map(|i| self.members[i].config.clone()) else {
                    self.violation(format!("the model has a lease of {holder}, who is not in the group"))
                };
                self.failed_attempt(group, topic, partition, offset, attempt, &config, now_ms, true);
            }
        }
        for (index, topic) in self.topics.iter_mut().enumerate() {
            topic.dedup.retain(|_, d| d.expires_ms > now_ms);
            // Retention removes from the low end up to the first message still young
            // enough, consumed or not; logs are trimmed only at commits, so the low is
            // the last check's. Expired counts what some group had not consumed.
            if let Some(retention_ms) = topic.config.retention_ms {
                for (p, log) in topic.logs.iter().enumerate() {
                    let low = topic.lows[p] as usize;
                    let removed = log[low.min(log.len())..].iter().take_while(|sent| sent.timestamp_ms + retention_ms <= now_ms).count();
                    let new_low = (low + removed) as u64;
                    let committed = self.groups.iter().filter_map(|g| g.cursors.get(&(index, p as u32))).map(committed_offset).min();
                    let consumed = committed.unwrap_or(low as u64).clamp(low as u64, new_low);
                    topic.expired[p] += new_low - consumed;
                }
            }
        }
        self.latest_tick_ms = self.latest_tick_ms.max(now_ms);
    }

    /// Every invariant, against the engine as it is after the step.
    fn check(&mut self) {
        let stats = self.engine.stats();
        if self.step % FULL_CHECK_STEPS == 0 {
            self.check_stored_state(&stats);
        }
        self.check_logs(&stats);
        self.read_dead_letters(&stats);
        self.check_groups(&stats);
        self.check_stored_pending();
        self.check_members();
    }

    /// Every pending delivery the engine stored is the model's: in flight with its
    /// member, attempt and deadline; leased behind its run's message in flight,
    /// acked early or not; waiting after the failed attempts the model counted,
    /// due no sooner than it allows; or settled above an unsettled offset. A
    /// leased message sits right behind a message of its run, of the same member.
    /// Under partition ordering nothing is settled above an unsettled offset and
    /// only the first unsettled offset is in flight.
    fn check_stored_pending(&self) {
        for ((group_name, topic_name, p), (generation, pending)) in &self.stored_pending {
            // The redrive position of a dead-letter topic is no group's.
            let (Some(group), Some(topic)) = (self.groups.iter().position(|g| g.name == *group_name), self.topic_index(topic_name)) else { continue };
            let Some(cursor) = self.groups[group].cursors.get(&(topic, *p)) else {
                self.violation(format!("{group_name} stored deliveries of {topic_name}/{p}, which it reads without a position"))
            };
            if *generation != cursor.generation {
                self.violation(format!("{group_name} stored its position in {topic_name}/{p} at generation {generation}; the model has {}", cursor.generation));
            }
            let ordered = self.groups[group].ordering == GroupOrdering::Partition;
            let mut ahead: Option<(u64, &Pending)> = None;
            for (place, (offset, stored)) in pending.iter().enumerate() {
                let state = cursor.offsets.get(offset);
                let lease = state.and_then(|s| s.lease.as_ref());
                let leased = |member: &str, attempt: u32, deadline_ms: Option<u64>, acked_early: bool| {
                    lease.is_some_and(|l| l.member == member && l.attempt == attempt && l.deadline_ms == deadline_ms && l.acked_early == acked_early)
                };
                let agrees = match stored {
                    Pending::InFlight { member, attempt, deadline_ms } => leased(member, *attempt, Some(*deadline_ms), false),
                    Pending::Leased { member, attempt, acked } => leased(member, *attempt, None, *acked),
                    Pending::Waiting { failed, due_ms, .. } => {
                        let state = state.cloned().unwrap_or_default();
                        state.lease.is_none() && state.settled.is_none() && state.failures == *failed && *due_ms >= state.not_before_ms
                    }
                    Pending::Acked => state.is_some_and(|s| s.settled.is_some()),
                };
                let where_ = || format!("{group_name} on {topic_name}/{p}@{offset}");
                if !agrees {
                    self.violation(format!("{}: stored {stored:?}; the model has {state:?}", where_()));
                }
                if let Pending::Leased { member, .. } = stored {
                    let behind_its_run =
                        matches!(ahead, Some((o, Pending::InFlight { member: m, .. } | Pending::Leased { member: m, .. })) if o + 1 == *offset && m == member);
                    if !behind_its_run {
                        self.violation(format!("{} is leased to {member} behind {ahead:?}: nothing of its run is in flight before it", where_()));
                    }
                }
                match stored {
                    Pending::Acked if ordered => self.violation(format!("ordering: {} is acked ahead of an unsettled offset", where_())),
                    Pending::InFlight { .. } if ordered && place > 0 => self.violation(format!("ordering: {} is in flight behind an unsettled offset", where_())),
                    _ => {}
                }
                ahead = Some((*offset, stored));
            }
        }
    }

    /// The engine's state must be the fold of what it stored: another context opening
    /// the bus now would see the same bus.
    fn check_stored_state(&self, stats: &Stats) {
        let records = block_on(self.store.inner().load()).expect("the memory store loads").0;
        let stored = match Engine::open(BusConfig::default(), 0, records) {
            Ok(engine) => engine,
            Err(e) => self.violation(format!("the stored bus does not open: {e:?}")),
        };
        if stored.stats() != *stats {
            self.violation(format!("the stored bus differs from the engine's:\nstored {:?}\nengine {stats:?}", stored.stats()));
        }
        for group in &self.groups {
            if stored.members(&group.name) != self.engine.members(&group.name) {
                self.violation(format!(
                    "group {} has members {:?} in storage, {:?} in the engine",
                    group.name,
                    stored.members(&group.name),
                    self.engine.members(&group.name)
                ));
            }
        }
        if stored.next_due_ms() != self.engine.next_due_ms() {
            self.violation(format!("the stored bus is due at {:?}, the engine at {:?}", stored.next_due_ms(), self.engine.next_due_ms()));
        }
    }

    /// Invariants 1 and 2 on every partition of every topic the simulation writes to.
    fn check_logs(&mut self, stats: &Stats) {
        let reread_all = std::mem::take(&mut self.reread_all_logs) || self.step % FULL_CHECK_STEPS == 0;
        let written = std::mem::take(&mut self.logs_written);
        for topic in &self.topics {
            let Some(topic_stats) = stats.topics.iter().find(|t| *t.topic == topic.name) else { self.violation(format!("topic {} vanished", topic.name)) };
            if topic_stats.partitions.len() != topic.logs.len() {
                self.violation(format!("{} has {} partitions, created with {}", topic.name, topic_stats.partitions.len(), topic.logs.len()));
            }
            for (p, log) in topic.logs.iter().enumerate() {
                let ps = &topic_stats.partitions[p];
                if ps.high_offset != log.len() as u64 {
                    self.violation(format!("{}/{p} has highOffset {}, but its acknowledged offsets are 0..{}", topic.name, ps.high_offset, log.len()));
                }
                if ps.expired != topic.expired[p] {
                    self.violation(format!("{}/{p} counts {} messages expired by retention; the model {}", topic.name, ps.expired, topic.expired[p]));
                }
                if ps.low_offset > ps.high_offset || ps.depth != ps.high_offset - ps.low_offset {
                    self.violation(format!("{}/{p}: {ps:?}", topic.name));
                }
                if !reread_all && !written.contains(&(topic.name.clone(), p as u32)) {
                    continue;
                }
                let retained = match self.engine.read_log(&topic.name, p as u32, ps.low_offset, log.len()) {
                    Ok(messages) => messages,
                    Err(e) => self.violation(format!("reading {}/{p} failed: {e:?}", topic.name)),
                };
                if retained.len() as u64 != ps.depth {
                    self.violation(format!("{}/{p} returned {} of its {} retained messages", topic.name, retained.len(), ps.depth));
                }
                for (message, offset) in retained.iter().zip(ps.low_offset..) {
                    if message.offset != offset {
                        self.violation(format!("{}/{p}: offset {offset} read back as offset {}", topic.name, message.offset));
                    }
                    if let Some(difference) = difference(&log[offset as usize], message) {
                        self.violation(format!("acknowledged message {}/{p}@{offset} changed: {difference}", topic.name));
                    }
                }
            }
        }
    }

    /// Reads what the engine appended to the dead-letter topics since the last step:
    /// each must be a dead letter the model expects, and every one it expects must be
    /// there.
    fn read_dead_letters(&mut self, stats: &Stats) {
        for topic in 0..self.topics.len() {
            let name = self.topics[topic].dead_letter_name.clone();
            let Some(dlq_stats) = stats.topics.iter().find(|t| *t.topic == name) else { continue };
            let total: u64 = dlq_stats.partitions.iter().map(|ps| ps.high_offset).sum();
            let counted: u64 = stats.groups.iter().filter(|g| *g.topic == self.topics[topic].name).map(|g| g.dead_lettered).sum();
            if total != counted {
                self.violation(format!("{name} holds {total} dead letters; the groups of {} count {counted}", self.topics[topic].name));
            }
            if self.topics[topic].dead_letters_read.len() < dlq_stats.partitions.len() {
                self.topics[topic].dead_letters_read.resize(dlq_stats.partitions.len(), 0);
            }
            for ps in &dlq_stats.partitions {
                let q = ps.partition as usize;
                let read = self.topics[topic].dead_letters_read[q];
                if ps.low_offset > read || ps.high_offset < read {
                    self.violation(format!("dead letters of {name}/{q} vanished: {ps:?}, {read} read"));
                }
                let letters = match self.engine.read_log(&name, q as u32, read, (ps.high_offset - read) as usize) {
                    Ok(letters) => letters,
                    Err(e) => self.violation(format!("reading {name}/{q} failed: {e:?}")),
                };
                for letter in &letters {
                    self.match_dead_letter(topic, q as u32, dlq_stats.partitions.len() as u32, letter);
                }
                self.topics[topic].dead_letters_read[q] = ps.high_offset;
            }
        }
        if self.dead_letters_expected > 0 {
            let mut missing: Vec<String> = self
                .dead_letters_sought_past
                .iter()
                .map(|&(group, topic, p, offset, _)| format!("{}/{p}@{offset} of {}", self.topics[topic].name, self.groups[group].name))
                .collect();
            for group in &self.groups {
                for (&(topic, p), cursor) in &group.cursors {
                    for (offset, state) in &cursor.offsets {
                        if state.settled == Some(Settled::DeadLettered { confirmed: false }) {
                            missing.push(format!("{}/{p}@{offset} of {}", self.topics[topic].name, group.name));
                        }
                    }
                }
            }
            self.violation(format!("dead letters missing from the dead-letter topics: {missing:?}"));
        }
    }

    fn match_dead_letter(&mut self, topic: usize, dlq_partition: u32, dlq_partitions: u32, letter: &Message) {
        let header = |name: &str| -> String {
            match letter.header(name) {
                Some(value) => value.to_string(),
                None => self.violation(format!("dead letter {letter:?} lacks header {name}")),
            }
        };
        let number = |name: &str| -> u64 {
            let text = header(name);
            text.parse().unwrap_or_else(|_| self.violation(format!("dead letter header {name} is {text:?}, not a number")))
        };
        let source = header("ferry-dlq-topic");
        let group_name = header("ferry-dlq-group");
        let p = number("ferry-dlq-partition") as u32;
        let offset = number("ferry-dlq-offset");
        let attempts = number("ferry-dlq-attempts") as u32;
        if header("ferry-dlq-error").is_empty() {
            self.violation(format!("dead letter {letter:?} has an empty ferry-dlq-error"));
        }
        // The source's partition when the dead-letter topic has it, else the key's.
        let expected_partition = if p < dlq_partitions { Some(p) } else { letter.key.as_deref().map(|key| partition_for_key(key, dlq_partitions)) };
        if source != self.topics[topic].name || expected_partition.is_some_and(|q| q != dlq_partition) {
            self.violation(format!("dead letter in {}/{dlq_partition} says it came from {source}/{p}", self.topics[topic].dead_letter_name));
        }
        let Some(sent) = self.topics[topic].logs.get(p as usize).and_then(|log| log.get(offset as usize)) else {
            self.violation(format!("dead letter of {source}/{p}@{offset}, which no acknowledged send wrote"))
        };
        let original = &sent.message;
        let user_headers = &letter.headers[..original.headers.len().min(letter.headers.len())];
        if letter.key != original.key || letter.value != original.value || letter.id != original.id || user_headers != original.headers.as_slice() {
            self.violation(format!("dead letter {letter:?} does not carry {source}/{p}@{offset} as sent: {original:?}"));
        }
        self.trace(|| format!("dead letter of {source}/{p}@{offset} from {group_name} after {attempts} attempt(s): {}", header("ferry-dlq-error")));
        let Some(group) = self.groups.iter().position(|g| g.name == group_name) else { self.violation(format!("dead letter names unknown group {group_name}")) };
        if let Some(index) = self.dead_letters_sought_past.iter().position(|d| *d == (group, topic, p, offset, attempts)) {
            self.dead_letters_sought_past.swap_remove(index);
            self.dead_letters_expected -= 1;
            return;
        }
        let state = self.groups[group].cursors.get_mut(&(topic, p)).and_then(|c| c.offsets.get_mut(&offset));
        match state {
            Some(state) if state.settled == Some(Settled::DeadLettered { confirmed: false }) && state.failures == attempts => {
                state.settled = Some(Settled::DeadLettered { confirmed: true });
                self.dead_letters_expected -= 1;
            }
            Some(state) => {
                let (settled, failures) = (state.settled, state.failures);
                self.violation(format!("{group_name} dead-lettered {source}/{p}@{offset} after {attempts} attempt(s); the model has it {settled:?} after {failures}"))
            }
            None => self.violation(format!("{group_name} dead-lettered {source}/{p}@{offset}, which it never failed")),
        }
    }

    /// Positions (invariant 1's "committed past", invariant 3's "settled"), counts,
    /// and owners (invariant 4) of every group.
    fn check_groups(&mut self, stats: &Stats) {
        for group_stats in &stats.groups {
            let Some(group) = self.groups.iter().position(|g| *g.name == *group_stats.group_id) else {
                self.violation(format!("unknown group {}", group_stats.group_id))
            };
            let Some(topic) = self.topic_index(&group_stats.topic).filter(|t| self.groups[group].topics.contains(t)) else {
                self.violation(format!("group {} reads {}, which it never subscribed to", group_stats.group_id, group_stats.topic))
            };
            let topic_stats = stats.topics.iter().find(|t| *t.topic == *group_stats.topic).expect("checked in check_logs");
            if group_stats.partitions.len() != topic_stats.partitions.len() {
                self.violation(format!("group {} has {} positions in {}", group_stats.group_id, group_stats.partitions.len(), group_stats.topic));
            }
            for (gp, ps) in group_stats.partitions.iter().zip(&topic_stats.partitions) {
                let key = (topic, gp.partition);
                if !self.groups[group].cursors.contains_key(&key) {
                    // A group's first position: the earliest retained offset or the end.
                    let start = if self.groups[group].from_beginning { ps.low_offset } else { ps.high_offset };
                    if gp.committed_offset != start {
                        self.violation(format!(
                            "group {} starts {}/{} at {}, expected {start}",
                            group_stats.group_id, group_stats.topic, gp.partition, gp.committed_offset
                        ));
                    }
                    self.groups[group].cursors.insert(key, CursorModel { prefix: start, offsets: BTreeMap::new(), generation: 0 });
                }
                advance_over_settled(self.groups[group].cursors.get_mut(&key).expect("inserted above"));
            }
        }
        for topic in 0..self.topics.len() {
            let Some(topic_stats) = stats.topics.iter().find(|t| *t.topic == self.topics[topic].name) else { continue };
            for ps in &topic_stats.partitions {
                let p = ps.partition;
                let previous_low = self.topics[topic].lows[p as usize];
                if ps.low_offset < previous_low {
                    self.violation(format!("{}/{p}: lowOffset went back from {previous_low} to {}", self.topics[topic].name, ps.low_offset));
                }
                for offset in previous_low..ps.low_offset {
                    self.check_removal(topic, p, offset);
                }
                self.topics[topic].lows[p as usize] = ps.low_offset;
                if self.topics[topic].config.retention_ms.is_some() {
                    for group in &mut self.groups {
                        if let Some(cursor) = group.cursors.get_mut(&(topic, p)) {
                            if cursor.prefix < ps.low_offset {
                                cursor.offsets = cursor.offsets.split_off(&ps.low_offset);
                                cursor.prefix = ps.low_offset;
                                // A run whose message in flight expired gives the rest
                                // back, as when that message's lease runs out (this
                                // step's tick removed it).
                                cursor.give_back_run(ps.low_offset, self.now_ms);
                                advance_over_settled(cursor);
                            }
                        }
                    }
                }
            }
        }
        for group_stats in &stats.groups {
            let group = self.groups.iter().position(|g| *g.name == *group_stats.group_id).expect("checked above");
            let topic = self.topic_index(&group_stats.topic).expect("checked above");
            let in_group: Vec<&str> = self.members.iter().filter(|m| m.group == group && m.in_engine && m.topics.contains(&topic)).map(|m| m.id.as_str()).collect();
            let mut owned: HashMap<&str, usize> = in_group.iter().map(|&id| (id, 0)).collect();
            for gp in &group_stats.partitions {
                let cursor = &self.groups[group].cursors[&(topic, gp.partition)];
                let where_ = format!("group {} on {}/{}", group_stats.group_id, group_stats.topic, gp.partition);
                if gp.committed_offset != cursor.prefix {
                    self.violation(format!(
                        "{where_}: committedOffset {}, but the model has every offset settled up to {} ({:?})",
                        gp.committed_offset,
                        cursor.prefix,
                        cursor.offsets.first_key_value().map(|(o, s)| (o, s.failures, s.settled, s.lease.clone()))
                    ));
                }
                let in_flight = cursor.offsets.values().filter(|s| s.lease.is_some()).count() as u64;
                let retrying = cursor.offsets.values().filter(|s| s.lease.is_none() && s.settled.is_none() && s.failures > 0).count() as u64;
                if (gp.in_flight, gp.retrying) != (in_flight, retrying) {
                    self.violation(format!("{where_}: inFlight {} and retrying {}, the model has {in_flight} and {retrying}", gp.in_flight, gp.retrying));
                }
                match &gp.owner {
                    Some(owner) => match owned.get_mut(&**owner) {
                        Some(count) => *count += 1,
                        None => self.violation(format!("{where_} is owned by {owner}, who is not in the group or not subscribed ({in_group:?})")),
                    },
                    None if !in_group.is_empty() => self.violation(format!("{where_} has no owner though {in_group:?} subscribe to it")),
                    None => {}
                }
            }
            let (fewest, most) = (owned.values().min(), owned.values().max());
            if let (Some(fewest), Some(most)) = (fewest, most) {
                if most - fewest > 1 {
                    self.violation(format!("group {} splits {} unevenly: {owned:?}", group_stats.group_id, group_stats.topic));
                }
            }
        }
    }

    /// An acknowledged message left the log: every group reading it must have
    /// committed past it (settled it, or sought past it), or retention must have
    /// removed it.
    fn check_removal(&self, topic: usize, p: u32, offset: u64) {
        let model = &self.topics[topic];
        let sent = &model.logs[p as usize][offset as usize];
        let expired = model.config.retention_ms.is_some_and(|r| sent.timestamp_ms + r <= self.latest_tick_ms);
        if expired {
            return;
        }
        for group in &self.groups {
            if let Some(cursor) = group.cursors.get(&(topic, p)) {
                let settled = offset < cursor.prefix || cursor.offsets.get(&offset).is_some_and(|s| s.settled.is_some());
                if !settled {
                    self.violation(format!(
                        "acknowledged message {}/{p}@{offset} was removed before group {} settled it (it has settled up to {}; {:?})",
                        model.name,
                        group.name,
                        cursor.prefix,
                        self.engine
                            .stats()
                            .groups
                            .iter()
                            .filter(|g| *g.topic == model.name)
                            .map(|g| (g.group_id.clone(), g.partitions[p as usize].clone()))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }

    fn check_members(&self) {
        for (index, group) in self.groups.iter().enumerate() {
            let mut expected: Vec<&str> = self.members.iter().filter(|m| m.group == index && m.in_engine).map(|m| m.id.as_str()).collect();
            expected.sort_unstable();
            let actual = self.engine.members(&group.name);
            if actual.iter().map(|m| &**m).ne(expected.iter().copied()) {
                self.violation(format!("group {} has members {actual:?}; the model has {expected:?}", group.name));
            }
        }
    }

    /// Faults stop, every group keeps a live member, and consumers run (handlers now
    /// always ack) until nothing is left to deliver; then every message must be
    /// settled in every group responsible for it: from where the group started, or
    /// last sought, on.
    fn drain(&mut self) {
        self.store.fail_randomly(0);
        for _ in 0..DRAIN_ROUNDS_MAX {
            if self.quiescent() {
                self.check_everything_settled();
                // What the engine holds must be what it stored.
                self.reopen();
                self.check();
                return;
            }
            self.forget_departed_members();
            self.next_step();
            self.now_ms += DRAIN_ROUND_MS;
            let mut effects = Vec::new();
            self.heartbeats(&mut effects);
            for group in 0..self.groups.len() {
                let unread = self.groups[group].topics.iter().any(|t| !self.members.iter().any(|m| m.group == group && m.alive && m.topics.contains(t)));
                if unread {
                    self.join(group, false, &mut effects);
                }
            }
            self.tick(&mut effects);
            self.commit(effects);
            self.check();
            // Every group has a member now, so whatever is left must be due some time.
            if !self.quiescent() && self.engine.next_due_ms().is_none() {
                self.violation("work is left, yet the engine says nothing is due: a driver would sleep forever");
            }
            for member in 0..self.members.len() {
                loop {
                    if !self.members[member].alive {
                        break;
                    }
                    self.next_step();
                    let mut effects = Vec::new();
                    let held_before = self.members[member].held.len();
                    let room = (self.members[member].config.concurrency as usize).saturating_sub(held_before);
                    if room > 0 {
                        self.poll(member, PollLimit::runs(room, self.members[member].config.batch_size_max as usize), &mut effects);
                    }
                    self.commit(effects);
                    self.check();
                    let held = std::mem::take(&mut self.members[member].held);
                    if held.is_empty() {
                        break;
                    }
                    self.next_step();
                    let mut effects = Vec::new();
                    for receipt in held.into_iter().flatten() {
                        self.settle(member, receipt, Outcome::Ack, &mut effects);
                    }
                    self.commit(effects);
                    self.check();
                }
            }
        }
        self.violation(format!("the bus did not drain within {DRAIN_ROUNDS_MAX} rounds: {:#?}", self.engine.stats().groups));
    }

    fn quiescent(&self) -> bool {
        self.engine.stats().groups.iter().flat_map(|g| &g.partitions).all(|gp| gp.lag == 0 && gp.in_flight == 0 && gp.retrying == 0)
    }

    fn check_everything_settled(&self) {
        for group in &self.groups {
            for (&(topic, p), cursor) in &group.cursors {
                let high = self.topics[topic].logs[p as usize].len() as u64;
                if cursor.prefix != high {
                    self.violation(format!("drained, yet group {} has {}/{p} settled only up to {} of {high}", group.name, self.topics[topic].name, cursor.prefix));
                }
            }
        }
    }
}

/// What differs between an acknowledged message and what the engine returned.
fn difference(sent: &Sent, message: &Message) -> Option<String> {
    let m = &sent.message;
    let deliver_at_ms = sent.timestamp_ms + m.delay_ms;
    if message.key != m.key || message.value != m.value || message.headers != m.headers || message.id != m.id {
        return Some(format!("{message:?} instead of {m:?}"));
    }
    if (message.timestamp_ms, message.deliver_at_ms) != (sent.timestamp_ms, deliver_at_ms) {
        return Some(format!("times {:?} instead of {:?}", (message.timestamp_ms, message.deliver_at_ms), (sent.timestamp_ms, deliver_at_ms)));
    }
    None
}

/// Applies a settle the engine took to the cursor of its partition; true when it
/// dead-lettered the message.
fn settle_in(cursor: &mut CursorModel, members: &[SimMember], member: &str, receipt: &Receipt, outcome: Outcome, now_ms: u64) -> bool {
    let config = |id: &str| &members.iter().find(|m| m.id == id).expect("a member holding a delivery is in the model").config;
    let offset = receipt.offset;
    let in_flight = cursor.offsets.get(&offset).and_then(|s| s.lease.as_ref()).is_some_and(|l| l.deadline_ms.is_some());
    match outcome {
        Outcome::Ack => cursor.ack(offset, now_ms, |id| config(id).ack_timeout_ms),
        Outcome::Fail if in_flight => return cursor.failed_attempt(offset, receipt.attempt, &config(member).retry, now_ms, true),
        // Before its turn a message cannot fail: it and the rest of its run come back.
        Outcome::Fail => cursor.give_back_run(offset, now_ms),
        Outcome::Release => {
            cursor.state(offset).give_back(now_ms);
            cursor.give_back_run(offset + 1, now_ms);
        }
    }
    false
}

/// Where the group's committed offset is: the model's position, past the offsets
/// it knows are settled.
fn committed_offset(cursor: &CursorModel) -> u64 {
    let mut offset = cursor.prefix;
    while cursor.offsets.get(&offset).is_some_and(|s| s.settled.is_some()) {
        offset += 1;
    }
    offset
}

/// Moves the model's position over offsets it knows are settled.
fn advance_over_settled(cursor: &mut CursorModel) {
    while cursor.offsets.get(&cursor.prefix).is_some_and(|s| s.settled.is_some()) {
        cursor.offsets.remove(&cursor.prefix);
        cursor.prefix += 1;
    }
}

/// The least wait the engine may pick before the attempt after `failed` failures.
fn shortest_backoff_ms(retry: &RetryPolicy, failed: u32) -> u64 {
    let exact = RetryPolicy { jitter: false, ..retry.clone() }.backoff_ms(failed, &mut Rng::new(0));
    if retry.jitter {
        exact.div_ceil(2)
    } else {
        exact
    }
}
