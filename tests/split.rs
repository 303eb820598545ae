//! Deterministic simulation of a bus split over engines, one per partition, as
//! `ferry/workers` runs it in Durable Objects: a send is stored whole by the engine
//! of its first message's partition and its other parts are forwarded from there;
//! dead letters are forwarded to the dead-letter topic's partitions the same way.
//!
//! One `u64` seed drives everything: the partition count, the sends (1 to 8 keyed
//! messages each), commits that fail, forwards lost on the way there (nothing
//! stored) or on the way back (stored, but the sender never heard and forwards
//! again), engines that restart from their stored records (losing what they had
//! not committed), a pull consumer group, and the clock. The group receives runs
//! at a partition's engine (up to `max` consecutive messages, the first in flight
//! and the rest leased behind it) and settles each run in one call: acks in order
//! or now and then in another order, retries (failed attempts, some with a delay)
//! among them; a settle whose commit fails is sent again later, by when leases
//! may have run out on the partition's alarm. A model of the group's position in
//! each partition must match what every partition's engine stores after each of
//! its commits: the committed offset (which moves over offset n+1 only after n),
//! each pending delivery's attempt, lease and early ack; every run received is
//! the one the model computes, each message's attempt one more than the times it
//! failed or its lease ran out while it was its run's message in flight. Once
//! faults stop and everything is forwarded and consumed, it checks:
//!
//! 1. every message of a stored send reached the partition its key names, once,
//!    and was handed to the group there; nothing of a refused send was;
//! 2. in each partition, a key's messages keep the order of the sends that stored
//!    them, for sends whose forwarding finished before the next send of the key
//!    (a client's send resolves only then);
//! 3. every message that failed `maxAttempts` times is in the dead-letter topic,
//!    at its partition, exactly once, with its `ferry-dlq-*` headers; no other
//!    message is;
//! 4. the group settled every message, acked or dead-lettered.
//!
//! `FERRY_SIM_SEEDS` (default 300) seeds run from `FERRY_SIM_SEED` (default 0).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferry::core::config::{BusConfig, ConsumerConfig, RetryPolicy, TopicConfig};
use ferry::core::engine::{Delivery, Engine, GroupPartitionStats, Receipt, Stats, Subscription};
use ferry::core::limits::SESSION_TIMEOUT_MS_MAX;
use ferry::core::message::{OutgoingMessage, Value};
use ferry::core::murmur2::partition_for_key;
use ferry::core::records::{Key, Pending, Record};
use ferry::core::rng::Rng;

const START_MS: u64 = 1_700_000_000_000;
const STEPS: u64 = 300;
const KEYS: u64 = 12;
const TOPIC: &str = "t";
const DLQ: &str = "t.dlq";
const GROUP: &str = "g";
const MEMBER: &str = "pull";
/// A receive's largest `max`, as at the edge.
const RECEIVE_MAX: usize = 100;

#[test]
fn random_seeds() {
    let from = env_u64("FERRY_SIM_SEED", 0);
    let count = env_u64("FERRY_SIM_SEEDS", 300);
    for seed in from..from + count {
        if let Err(failure) = run_seed(seed) {
            panic!("seed {seed}: {failure}\nreplay: FERRY_SIM_SEED={seed} FERRY_SIM_SEEDS=1 cargo test --test split");
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One engine serving one partition, and what its storage holds.
struct Object {
    name: String,
    engine: Engine,
    stored: BTreeMap<Key, Record>,
    seed: u64,
}

impl Object {
    fn open(name: String, topic: &str, partition: u32, stored: BTreeMap<Key, Record>, seed: u64) -> Object {
        let mut engine = Engine::open(BusConfig::default(), seed, stored.clone()).expect("stored records open");
        engine.set_home(topic, partition);
        Object { name, engine, stored, seed }
    }

    /// Commits what the engine wrote since the last commit, or fails to.
    fn commit(&mut self, stored: bool) {
        let writes = self.engine.begin_commit();
        if stored {
            for (key, record) in writes {
                match record {
                    Some(record) => self.stored.insert(key, record),
                    None => self.stored.remove(&key),
                };
            }
        }
        self.engine.end_commit(stored);
    }

    /// Reopens from storage: what was not committed is gone.
    fn restart(&mut self, topic: &str, partition: u32) {
        let _ = self.engine.begin_commit();
        self.engine.end_commit(false);
        *self = Object::open(self.name.clone(), topic, partition, std::mem::take(&mut self.stored), self.seed + 1);
    }
}

struct Bus {
    partitions: u32,
    /// `[topic t's partitions..., t.dlq's partitions...]`.
    objects: Vec<Object>,
}

impl Bus {
    fn index(&self, topic: &str, partition: u32) -> usize {
        partition as usize + if topic == DLQ { self.partitions as usize } else { 0 }
    }

    fn home(&self, index: usize) -> (&'static str, u32) {
        let p = self.partitions as usize;
        if index < p {
            (TOPIC, index as u32)
        } else {
            (DLQ, (index - p) as u32)
        }
    }

    /// Forwards what object `from` holds for others. `faults` may lose a forward
    /// before or after its receiver stored it; false when something was lost.
    fn forward(&mut self, from: usize, rng: &mut Rng, faults: bool, now: u64) -> bool {
        let mut delivered = true;
        let outbound = self.objects[from].engine.outbound().expect("outbound reads");
        for out in outbound {
            let to = self.index(&out.topic, out.partition);
            let source = format!("{}>{}/{}", self.objects[from].name, out.topic, out.partition);
            if faults && rng.chance(1, 6) {
                delivered = false; // lost on the way there
                continue;
            }
            let target = &mut self.objects[to];
            let taken = target.engine.accept(&source, &out.chunk, out.send, now);
            let stored = !(faults && rng.chance(1, 8));
            target.commit(stored && taken.is_ok());
            taken.expect("a forwarded chunk is accepted");
            if !stored || (faults && rng.chance(1, 6)) {
                delivered = false; // stored or not, the sender never heard
                continue;
            }
            // As the Durable Object does: dropped with the sender's next commit.
            self.objects[from].engine.forwarded(&out.topic, out.partition, out.chunk.end_offset());
        }
        delivered
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let partitions = rng.between(2, 6) as u32;
    let mut bus = Bus { partitions, objects: Vec::new() };
    for topic in [TOPIC, DLQ] {
        for p in 0..partitions {
            let mut object = Object::open(format!("bus/{topic}/{p}"), topic, p, BTreeMap::new(), seed * 100 + u64::from(p));
            for name in [TOPIC, DLQ] {
                object.engine.create_topic(name, TopicConfig::with_partitions(partitions)).map_err(|e| e.to_string())?;
            }
            object.commit(true);
            bus.objects.push(object);
        }
    }
    let config = ConsumerConfig {
        retry: RetryPolicy { max_attempts: 2, initial_backoff_ms: 10, jitter: false, ..RetryPolicy::default() },
        session_timeout_ms: SESSION_TIMEOUT_MS_MAX,
        // Short enough to run out between a settle whose commit failed and its retry.
        ack_timeout_ms: rng.between(500, 5_000),
        batch_size_max: [1, 3, 100][rng.between(0, 2) as usize],
        ..ConsumerConfig::default()
    };
    // The group joins every partition first, so it reads all that is sent.
    let mut now = START_MS;
    for p in 0..partitions {
        let object = &mut bus.objects[p as usize];
        object.engine.join(GROUP, MEMBER, &[Subscription::new(TOPIC, true)], &config, now).map_err(|e| e.to_string())?;
        object.commit(true);
    }

    // Value -> (key, partition) of every message of a stored send; values of refused sends.
    let mut sent: HashMap<String, (String, u32)> = HashMap::new();
    let mut refused: HashSet<String> = HashSet::new();
    // Per key, the values in the order their sends resolved (forwarding finished).
    let mut key_order: HashMap<String, Vec<String>> = HashMap::new();
    // Keys whose latest send did not resolve: their order is not checked past it.
    let mut unresolved: HashSet<String> = HashSet::new();
    let mut consumer = Consumer::new(config.clone(), partitions);
    let mut next_value = 0u64;

    for step in 0..STEPS {
        now += rng.between(0, 30);
        match rng.between(0, 9) {
            0..=3 => {
                let count = rng.between(1, 8);
                let messages: Vec<OutgoingMessage> = (0..count)
                    .map(|_| {
                        let key = format!("k{}", rng.between(0, KEYS - 1));
                        next_value += 1;
                        let p = partition_for_key(&key, partitions);
                        OutgoingMessage { partition: Some(p), ..OutgoingMessage::new(Value::string(format!("v{next_value}"))).with_key(key) }
                    })
                    .collect();
                let coordinator = messages[0].partition.unwrap() as usize;
                let object = &mut bus.objects[coordinator];
                let result = object.engine.send(TOPIC, &messages, now);
                let stored = rng.chance(7, 8);
                object.commit(stored && result.is_ok());
                result.map_err(|e| format!("step {step}: send refused: {e}"))?;
                let values = messages.iter().map(|m| (m.value.text().into_owned(), m.key.clone().unwrap(), m.partition.unwrap()));
                if !stored {
                    refused.extend(values.map(|(v, _, _)| v));
                    continue;
                }
                // The client forwards at once; its send resolves if that got through.
                let resolved = bus.forward(coordinator, &mut rng, true, now);
                for (value, key, p) in values {
                    sent.insert(value.clone(), (key.clone(), p));
                    if resolved && !unresolved.contains(&key) {
                        key_order.entry(key).or_default().push(value);
                    } else {
                        unresolved.insert(key);
                    }
                }
            }
            4..=5 => {
                let from = rng.between(0, bus.objects.len() as u64 - 1) as usize;
                bus.forward(from, &mut rng, true, now);
                bus.objects[from].commit(rng.chance(5, 6));
            }
            6..=7 => {
                let p = rng.between(0, u64::from(partitions) - 1) as u32;
                consumer.consume(&mut bus, p, &mut rng, now, true).map_err(|e| format!("step {step}: {e}"))?;
            }
            8 => {
                let victim = rng.between(0, bus.objects.len() as u64 - 1) as usize;
                let (topic, p) = bus.home(victim);
                bus.objects[victim].restart(topic, p);
            }
            _ => now += rng.between(0, 2_000),
        }
    }

    // Faults stop: everything is forwarded, then consumed, until nothing moves
    // and nothing waits for a retry.
    for round in 0.. {
        for from in 0..bus.objects.len() {
            bus.forward(from, &mut rng, false, now);
            bus.objects[from].commit(true);
        }
        now += 100;
        let mut moved = 0;
        for p in 0..partitions {
            moved += consumer.consume(&mut bus, p, &mut rng, now, false).map_err(|e| format!("draining: {e}"))?;
        }
        if moved == 0 && consumer.positions.iter().all(|position| position.pending.is_empty()) {
            break;
        }
        if round == 10_000 {
            return Err("the group still receives after 10,000 rounds".into());
        }
    }
    for object in &bus.objects {
        if !object.engine.outbound().map_err(|e| e.to_string())?.is_empty() {
            return Err(format!("{} still holds messages for others", object.name));
        }
    }

    // 1 and 2: where the group was handed each value (the log itself is trimmed
    // as the group commits past it).
    let handed = &consumer.handed;
    for (value, places) in handed {
        if refused.contains(value) {
            return Err(format!("{value} of a refused send was handed out at {places:?}"));
        }
        let Some((_, expected)) = sent.get(value) else { return Err(format!("{value} was handed out but never sent")) };
        if places.len() > 1 {
            return Err(format!("{value} is stored twice: {places:?}"));
        }
        let (p, _) = places.first().unwrap();
        if p != expected {
            return Err(format!("{value} is in partition {p}, its key names {expected}"));
        }
    }
    if let Some(missing) = sent.keys().find(|v| !handed.contains_key(*v)) {
        return Err(format!("{missing} of a stored send never reached the group"));
    }
    for (key, values) in &key_order {
        let offsets: Vec<u64> = values.iter().map(|v| handed[v].first().unwrap().1).collect();
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("key {key} lost its order: {values:?} at offsets {offsets:?}"));
        }
    }

    // 3: the dead letters.
    let mut letters: HashSet<String> = HashSet::new();
    for p in 0..partitions {
        let object = &bus.objects[bus.index(DLQ, p)];
        for letter in object.engine.read_log(DLQ, p, 0, usize::MAX).map_err(|e| e.to_string())? {
            let value = letter.value.text().into_owned();
            if !consumer.dead_lettered.contains(&value) {
                return Err(format!("{value} is a dead letter but did not fail {} times", config.retry.max_attempts));
            }
            if sent[&value].1 != p {
                return Err(format!("dead letter {value} is in partition {p}, not its own"));
            }
            if letter.header("ferry-dlq-attempts") != Some(config.retry.max_attempts.to_string().as_str()) {
                return Err(format!("dead letter {value} says {:?} attempts", letter.header("ferry-dlq-attempts")));
            }
            if !letters.insert(value.clone()) {
                return Err(format!("{value} was dead-lettered twice"));
            }
        }
    }
    if let Some(lost) = consumer.dead_lettered.iter().find(|v| !letters.contains(*v)) {
        return Err(format!("{lost} failed {} times but is no dead letter", config.retry.max_attempts));
    }

    // 4: settled to the end of every partition.
    for p in 0..partitions {
        let stats = bus.objects[p as usize].engine.stats();
        let gp = group_partition(&stats, p).ok_or_else(|| format!("the group has no position in partition {p}"))?;
        if gp.lag != 0 || gp.in_flight != 0 {
            return Err(format!("drained, yet the group has {gp:?}"));
        }
    }
    Ok(())
}

/// Where the group was handed each value: `(partition, offset)`, one entry unless
/// it was stored twice.
type Handed = HashMap<String, BTreeSet<(u32, u64)>>;

/// What the model knows of one pending delivery of the group.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    InFlight {
        attempt: u32,
        deadline_ms: u64,
    },
    /// Behind its run's message in flight; `acked` ahead of its turn.
    Leased {
        attempt: u32,
        acked: bool,
    },
    /// After `failed` failed attempts (none when given back).
    Waiting {
        failed: u32,
        due_ms: u64,
    },
}

impl Slot {
    fn matches(&self, pending: &Pending) -> bool {
        match (self, pending) {
            (Slot::InFlight { attempt, deadline_ms }, Pending::InFlight { attempt: a, deadline_ms: d, .. }) => (attempt, deadline_ms) == (a, d),
            (Slot::Leased { attempt, acked }, Pending::Leased { attempt: a, acked: k, .. }) => (attempt, acked) == (a, k),
            (Slot::Waiting { failed, due_ms }, Pending::Waiting { failed: f, due_ms: d, .. }) => (failed, due_ms) == (f, d),
            _ => false,
        }
    }
}

/// How the consumer settles a message it received.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Ack,
    /// A failed attempt, retried after the backoff or, with a delay, after it.
    Retry(Option<u64>),
}

/// The group's position in one partition, as the model knows it from the commits
/// that partition's engine stored. Under partition ordering nothing is acked
/// ahead of an unsettled offset, so `pending` holds unsettled offsets only.
#[derive(Clone, Debug, Default)]
struct Position {
    /// Every offset below is settled: acked or dead-lettered.
    committed: u64,
    pending: BTreeMap<u64, Slot>,
}

impl Position {
    /// The run a receive of `max` hands out now, as `(offset, attempt)`:
    /// consecutive offsets from the first unsettled one, each a retry that is due
    /// or a message never handed out, at most `maxBatchSize`.
    fn run(&self, high: u64, max: usize, batch_size_max: u32, now_ms: u64) -> Vec<(u64, u32)> {
        let mut run = Vec::new();
        for offset in self.committed..high {
            if run.len() == max.min(batch_size_max as usize) {
                break;
            }
            match self.pending.get(&offset) {
                None => run.push((offset, 1)),
                Some(Slot::Waiting { failed, due_ms }) if *due_ms <= now_ms => run.push((offset, failed + 1)),
                Some(_) => break,
            }
        }
        run
    }

    fn hand_out(&mut self, run: &[(u64, u32)], deadline_ms: u64) {
        for (place, (offset, attempt)) in run.iter().enumerate() {
            let slot = if place == 0 { Slot::InFlight { attempt: *attempt, deadline_ms } } else { Slot::Leased { attempt: *attempt, acked: false } };
            self.pending.insert(*offset, slot);
        }
    }

    /// The attempt a receipt must name to be settled: in flight with its lease
    /// not run out, or leased behind the run's message in flight.
    fn held(&self, offset: u64, now_ms: u64) -> Option<u32> {
        match self.pending.get(&offset)? {
            Slot::InFlight { attempt, deadline_ms } if now_ms < *deadline_ms => Some(*attempt),
            Slot::Leased { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }

    /// Settles an offset: only ever the committed one.
    fn settle(&mut self, offset: u64) -> Result<(), String> {
        if offset != self.committed {
            return Err(format!("the model would settle offset {offset} before {}", self.committed));
        }
        self.pending.remove(&offset);
        self.committed += 1;
        Ok(())
    }

    /// An ack of the message in flight settles it, then what was acked ahead of
    /// its turn, then puts the next in flight with a lease from now; an ack ahead
    /// of its turn waits for it. False when not held.
    fn ack(&mut self, offset: u64, attempt: u32, ack_timeout_ms: u64, now_ms: u64) -> Result<bool, String> {
        if self.held(offset, now_ms) != Some(attempt) {
            return Ok(false);
        }
        if let Some(Slot::Leased { acked, .. }) = self.pending.get_mut(&offset) {
            *acked = true;
            return Ok(true);
        }
        self.settle(offset)?;
        while let Some(Slot::Leased { attempt, acked }) = self.pending.get(&self.committed).cloned() {
            if !acked {
                self.pending.insert(self.committed, Slot::InFlight { attempt, deadline_ms: now_ms + ack_timeout_ms });
                break;
            }
            self.settle(self.committed)?;
        }
        Ok(true)
    }

    /// A retry of the message in flight is a failed attempt; one ahead of its turn
    /// gives it and the rest of its run back, no attempt counted. `None` when not
    /// held, else whether the message was dead-lettered.
    fn retry(&mut self, offset: u64, attempt: u32, delay_ms: Option<u64>, config: &ConsumerConfig, now_ms: u64) -> Result<Option<bool>, String> {
        if self.held(offset, now_ms) != Some(attempt) {
            return Ok(None);
        }
        if let Some(Slot::Leased { .. }) = self.pending.get(&offset) {
            self.give_back_run(offset, now_ms);
            return Ok(Some(false));
        }
        let wait_ms = delay_ms.unwrap_or_else(|| config.retry.backoff_ms(attempt, &mut Rng::new(0)));
        self.failed_attempt(offset, attempt, wait_ms, config, now_ms).map(Some)
    }

    /// The alarm: a lease that ran out is a failed attempt after the backoff.
    /// Whether it dead-lettered the message, and which.
    fn expire(&mut self, config: &ConsumerConfig, now_ms: u64) -> Result<Option<u64>, String> {
        let expired = self.pending.iter().find_map(|(offset, slot)| match slot {
            Slot::InFlight { attempt, deadline_ms } if *deadline_ms <= now_ms => Some((*offset, *attempt)),
            _ => None,
        });
        let Some((offset, attempt)) = expired else { return Ok(None) };
        let dead = self.failed_attempt(offset, attempt, config.retry.backoff_ms(attempt, &mut Rng::new(0)), config, now_ms)?;
        Ok(dead.then_some(offset))
    }

    /// A failed attempt of the message in flight: the rest of its run comes back,
    /// and the message is dead-lettered (true) after `maxAttempts`, else waits.
    fn failed_attempt(&mut self, offset: u64, attempt: u32, wait_ms: u64, config: &ConsumerConfig, now_ms: u64) -> Result<bool, String> {
        self.give_back_run(offset + 1, now_ms);
        if attempt >= config.retry.max_attempts {
            self.settle(offset)?;
            return Ok(true);
        }
        self.pending.insert(offset, Slot::Waiting { failed: attempt, due_ms: now_ms + wait_ms });
        Ok(false)
    }

    /// Gives back, due at once with its attempts unchanged, what is leased from
    /// `from` on.
    fn give_back_run(&mut self, from: u64, now_ms: u64) {
        for offset in from.. {
            let Some(&Slot::Leased { attempt, .. }) = self.pending.get(&offset) else { return };
            self.pending.insert(offset, Slot::Waiting { failed: attempt - 1, due_ms: now_ms });
        }
    }

    /// The group's cursor as `stored` holds it must be this position.
    fn check_stored(&self, stored: &BTreeMap<Key, Record>, p: u32) -> Result<(), String> {
        let key = Key::Cursor(GROUP.into(), TOPIC.into(), p);
        let Some(Record::GroupPartition { cursor, pending }) = stored.get(&key) else { return Err(format!("partition {p} stores no position of the group")) };
        let same =
            pending.len() == self.pending.len() && pending.iter().zip(&self.pending).all(|((o, stored), (offset, slot))| o == offset && slot.matches(stored));
        if cursor.committed != self.committed || !same {
            return Err(format!(
                "partition {p} stores committed {} with {pending:?}; the model has {} with {:?}",
                cursor.committed, self.committed, self.pending
            ));
        }
        Ok(())
    }
}

/// The group's pull consumer, with the model of its position in every partition.
struct Consumer {
    config: ConsumerConfig,
    /// Per partition, what it received in a stored commit and has not settled in
    /// one yet.
    received: Vec<Vec<Delivery>>,
    positions: Vec<Position>,
    handed: Handed,
    /// Values that failed `maxAttempts` times: dead letters.
    dead_lettered: HashSet<String>,
    /// Per partition, the value at each offset the group was handed.
    values: Vec<HashMap<u64, String>>,
}

impl Consumer {
    fn new(config: ConsumerConfig, partitions: u32) -> Consumer {
        let partitions = partitions as usize;
        Consumer {
            config,
            received: vec![Vec::new(); partitions],
            positions: vec![Position::default(); partitions],
            handed: HashMap::new(),
            dead_lettered: HashSet::new(),
            values: vec![HashMap::new(); partitions],
        }
    }

    /// One round of the group at partition `p`'s engine: its alarm, a receive when
    /// nothing received is left to settle, then one settle of all that was
    /// received. Each call commits, and may fail to while `faults`. Resolves to how
    /// many messages it received or settled.
    fn consume(&mut self, bus: &mut Bus, p: u32, rng: &mut Rng, now: u64, faults: bool) -> Result<usize, String> {
        let object = &mut bus.objects[p as usize];
        self.alarm(object, p, stored(rng, faults), now)?;
        let mut moved = 0;
        if self.received[p as usize].is_empty() {
            let max = if faults { [1, 2, 5, 10, RECEIVE_MAX][rng.between(0, 4) as usize] } else { RECEIVE_MAX };
            moved += self.receive(object, p, max, stored(rng, faults), now)?;
        }
        moved += self.settle(object, p, rng, faults, now)?;
        bus.forward(p as usize, rng, faults, now);
        bus.objects[p as usize].commit(true);
        Ok(moved)
    }

    /// The partition's alarm: leases that ran out are failed attempts.
    fn alarm(&mut self, object: &mut Object, p: u32, stored: bool, now: u64) -> Result<(), String> {
        object.engine.tick(now);
        object.commit(stored);
        if stored {
            if let Some(offset) = self.positions[p as usize].expire(&self.config, now)? {
                self.dead_lettered.insert(self.values[p as usize][&offset].clone());
            }
            self.positions[p as usize].check_stored(&object.stored, p).map_err(|e| format!("after the alarm: {e}"))?;
        }
        Ok(())
    }

    /// A receive of up to `max`: the run the model computes. Resolves to how many
    /// messages it received, none unless `stored`.
    fn receive(&mut self, object: &mut Object, p: u32, max: usize, stored: bool, now: u64) -> Result<usize, String> {
        let position = &mut self.positions[p as usize];
        object.engine.join(GROUP, MEMBER, &[Subscription::new(TOPIC, true)], &self.config, now).map_err(|e| e.to_string())?;
        let deliveries = object.engine.poll(GROUP, MEMBER, max, now).map_err(|e| e.to_string())?;
        let high = group_partition(&object.engine.stats(), p).map_or(0, |gp| gp.committed_offset + gp.lag);
        let got: Vec<(u64, u32)> = deliveries.iter().map(|d| (d.message.offset, d.attempt)).collect();
        let expected = position.run(high, max, self.config.batch_size_max, now);
        if got != expected {
            return Err(format!("a receive of {max} at partition {p} handed out {got:?}; the model has {expected:?} ({position:?})"));
        }
        object.commit(stored);
        if !stored {
            return Ok(0);
        }
        position.hand_out(&got, now + self.config.ack_timeout_ms);
        position.check_stored(&object.stored, p).map_err(|e| format!("after a receive: {e}"))?;
        for d in &deliveries {
            let value = d.message.value.text().into_owned();
            self.handed.entry(value.clone()).or_default().insert((d.partition, d.message.offset));
            self.values[p as usize].insert(d.message.offset, value);
        }
        self.received[p as usize] = deliveries;
        Ok(got.len())
    }

    /// Settles all that was received in one call: each message acked or, now and
    /// then while `faults`, retried, in order or now and then in another order.
    /// Resolves to how many it settled, none unless the commit was stored.
    fn settle(&mut self, object: &mut Object, p: u32, rng: &mut Rng, faults: bool, now: u64) -> Result<usize, String> {
        let mut items: Vec<(Receipt, Outcome)> = self.received[p as usize]
            .iter()
            .map(|d| {
                let outcome = match faults && rng.chance(1, 4) {
                    false => Outcome::Ack,
                    true => Outcome::Retry(rng.chance(1, 2).then(|| rng.between(0, 300))),
                };
                (d.receipt(), outcome)
            })
            .collect();
        if faults && rng.chance(1, 4) {
            for i in (1..items.len()).rev() {
                items.swap(i, rng.between(0, i as u64) as usize);
            }
        }
        // The engine settles the items one after another; so does the model, on a
        // copy kept only if the commit is stored.
        let mut position = self.positions[p as usize].clone();
        let mut dead_lettered = Vec::new();
        for (receipt, outcome) in &items {
            let (offset, attempt) = (receipt.offset, receipt.attempt);
            let (done, expected) = match outcome {
                Outcome::Ack => (object.engine.ack(GROUP, MEMBER, receipt, now), position.ack(offset, attempt, self.config.ack_timeout_ms, now)?),
                Outcome::Retry(delay_ms) => {
                    let done = match delay_ms {
                        Some(delay_ms) => object.engine.fail_after(GROUP, MEMBER, receipt, "boom", *delay_ms, now),
                        None => object.engine.fail(GROUP, MEMBER, receipt, "boom", now),
                    };
                    let expected = position.retry(offset, attempt, *delay_ms, &self.config, now)?;
                    if expected == Some(true) {
                        dead_lettered.push(offset);
                    }
                    (done, expected.is_some())
                }
            };
            if done != expected {
                return Err(format!("{outcome:?} of {receipt:?} returned {done}; the model has {position:?}"));
            }
        }
        let stored = stored(rng, faults);
        object.commit(stored);
        if !stored || items.is_empty() {
            return Ok(0);
        }
        position.check_stored(&object.stored, p).map_err(|e| format!("after a settle: {e}"))?;
        self.dead_lettered.extend(dead_lettered.iter().map(|offset| self.values[p as usize][offset].clone()));
        self.positions[p as usize] = position;
        self.received[p as usize].clear();
        Ok(items.len())
    }
}

/// Whether a commit is stored: always once faults stop.
fn stored(rng: &mut Rng, faults: bool) -> bool {
    !faults || rng.chance(7, 8)
}

/// The group's stats in partition `p`, as that partition's engine has them.
fn group_partition(stats: &Stats, p: u32) -> Option<GroupPartitionStats> {
    stats.groups.iter().find(|g| *g.group_id == *GROUP && *g.topic == *TOPIC)?.partitions.iter().find(|gp| gp.partition == p).cloned()
}
