//! Deterministic simulation of a bus split over engines, one per partition, as
//! `ferry/workers` runs it in Durable Objects: a send is stored whole by the engine
//! of its first message's partition and its other parts are forwarded from there;
//! dead letters are forwarded to the dead-letter topic's partitions the same way.
//!
//! One `u64` seed drives everything: the partition count, the sends (1 to 8 keyed
//! messages each), commits that fail, forwards lost on the way there (nothing
//! stored) or on the way back (stored, but the sender never heard and forwards
//! again), engines that restart from their stored records (losing what they had
//! not committed), a consumer group that acks or fails, and the clock. Once faults
//! stop and everything is forwarded and consumed, it checks:
//!
//! 1. every message of a stored send reached the partition its key names, once,
//!    and was handed to the group there; nothing of a refused send was;
//! 2. in each partition, a key's messages keep the order of the sends that stored
//!    them, for sends whose forwarding finished before the next send of the key
//!    (a client's send resolves only then);
//! 3. every message failed twice is in the dead-letter topic, at its partition,
//!    exactly once, with its `ferry-dlq-*` headers; no other message is.
//!
//! `FERRY_SIM_SEEDS` (default 300) seeds run from `FERRY_SIM_SEED` (default 0).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferry::core::config::{BusConfig, ConsumerConfig, RetryPolicy, TopicConfig};
use ferry::core::engine::{Engine, Subscription};
use ferry::core::limits::SESSION_TIMEOUT_MS_MAX;
use ferry::core::message::{OutgoingMessage, Value};
use ferry::core::murmur2::partition_for_key;
use ferry::core::records::{Key, Record};
use ferry::core::rng::Rng;

const START_MS: u64 = 1_700_000_000_000;
const STEPS: u64 = 300;
const KEYS: u64 = 12;
const TOPIC: &str = "t";
const DLQ: &str = "t.dlq";
const GROUP: &str = "g";
const MEMBER: &str = "pull";

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
    let mut failed_twice: HashSet<String> = HashSet::new();
    let mut handed: Handed = HashMap::new();
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
                consume(&mut bus, &config, &mut rng, &mut handed, &mut failed_twice, now, true)?;
            }
            8 => {
                let victim = rng.between(0, bus.objects.len() as u64 - 1) as usize;
                let (topic, p) = bus.home(victim);
                bus.objects[victim].restart(topic, p);
            }
            _ => now += rng.between(0, 2_000),
        }
    }

    // Faults stop: everything is forwarded, then consumed, until nothing moves.
    for round in 0.. {
        for from in 0..bus.objects.len() {
            bus.forward(from, &mut rng, false, now);
            bus.objects[from].commit(true);
        }
        now += 100;
        if consume(&mut bus, &config, &mut rng, &mut handed, &mut failed_twice, now, false)? == 0 {
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
    for (value, places) in &handed {
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
        for value in read_all(&object.engine, DLQ, p)? {
            if !failed_twice.contains(&value) {
                return Err(format!("{value} is a dead letter but did not fail twice"));
            }
            if sent[&value].1 != p {
                return Err(format!("dead letter {value} is in partition {p}, not its own"));
            }
            if !letters.insert(value.clone()) {
                return Err(format!("{value} was dead-lettered twice"));
            }
        }
    }
    if let Some(lost) = failed_twice.iter().find(|v| !letters.contains(*v)) {
        return Err(format!("{lost} failed twice but is no dead letter"));
    }
    Ok(())
}

/// Where the group was handed each value: `(partition, offset)`, one entry unless
/// it was stored twice.
type Handed = HashMap<String, BTreeSet<(u32, u64)>>;

/// One round of the group on a random partition (all of them, without faults):
/// each message handed out is acked, or failed now and then while `faults`.
/// Resolves to how many were handed out.
fn consume(bus: &mut Bus, config: &ConsumerConfig, rng: &mut Rng, handed: &mut Handed, failed_twice: &mut HashSet<String>, now: u64, faults: bool) -> Result<usize, String> {
    let mut count = 0;
    let partitions: Vec<u32> = if faults { vec![rng.between(0, u64::from(bus.partitions) - 1) as u32] } else { (0..bus.partitions).collect() };
    for p in partitions {
        let index = p as usize;
        let object = &mut bus.objects[index];
        object.engine.join(GROUP, MEMBER, &[Subscription::new(TOPIC, true)], config, now).map_err(|e| e.to_string())?;
        let deliveries = object.engine.poll(GROUP, MEMBER, 10, now).map_err(|e| e.to_string())?;
        count += deliveries.len();
        let mut outcome = Vec::new();
        for d in &deliveries {
            let value = d.message.value.text().into_owned();
            handed.entry(value.clone()).or_default().insert((d.partition, d.message.offset));
            let fail = faults && rng.chance(1, 4);
            if fail { object.engine.fail(GROUP, MEMBER, &d.receipt(), "boom", now) } else { object.engine.ack(GROUP, MEMBER, &d.receipt(), now) };
            outcome.push((value, fail, d.attempt));
        }
        let stored = !faults || rng.chance(7, 8);
        object.commit(stored);
        if stored {
            for (value, fail, attempt) in outcome {
                if fail && attempt == 2 {
                    failed_twice.insert(value);
                }
            }
        }
        bus.forward(index, rng, faults, now);
        bus.objects[index].commit(true);
    }
    Ok(count)
}

/// The values a partition retains, in offset order.
fn read_all(engine: &Engine, topic: &str, partition: u32) -> Result<Vec<String>, String> {
    let messages = engine.read_log(topic, partition, 0, usize::MAX).map_err(|e| e.to_string())?;
    Ok(messages.into_iter().map(|m| m.value.text().into_owned()).collect())
}
