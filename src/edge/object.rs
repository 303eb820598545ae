//! One Durable Object of a split bus as a sans-IO state machine: the directory
//! (`{bus}`) or one topic partition (`{bus}/{topic}/{partition}`). It holds the
//! engine and its storage, and decides everything the objects do between them:
//! which calls wait for forwards, what is forwarded where, the backoff after a
//! failed forward, what a coordinated send resolves to, and when the alarm rings.
//! The transport (`pkg/entry/workers.js`) only carries what it is handed.
//!
//! # Order of calls
//!
//! 1. [`EdgeObject::open`] once, with the object's storage and name.
//! 2. For each RPC that arrives, [`EdgeObject::handle_call`]; for the alarm,
//!    [`EdgeObject::handle_alarm`]. Both take the time; neither waits.
//! 3. Then, until both give nothing:
//!    - [`EdgeObject::poll_transmit`]: a call to make to another object of the
//!      bus. Make it, and hand its outcome to
//!      [`EdgeObject::handle_transmit_result`] whenever it comes (other calls
//!      may arrive meanwhile: back to 2).
//!    - [`EdgeObject::poll_result`]: a call that is answered.
//! 4. [`EdgeObject::poll_alarm`]: when the alarm must ring now, if that changed.
//!
//! Every call's writes are committed (synchronously: the object's storage is)
//! before its answer is given, and what the object forwards stays in its storage
//! until the receiving object has stored it.

use std::cell::{Ref, RefCell};
use std::collections::{HashMap, VecDeque};

use crate::core::engine::PULL_MEMBER;
use crate::core::limits::{FORWARD_RETRY_MS, FORWARD_RETRY_MS_MAX};
use crate::core::message::Chunk;
use crate::core::vec_map::VecMap;
use crate::core::{BusConfig, Engine, FerryError, Name, RecordMetadata, Result, TopicConfig};
use crate::protocol::{serve, Call, Context, Reply, SettleItem};
use crate::store::{commit, ready, Replica, Store};

/// An operation on the engine at a time, its result kept by the caller.
type Operation<'a> = Box<dyn FnOnce(&mut Engine, u64) -> Result<()> + 'a>;

/// Names a call an object answers, as its transport numbers them.
pub type CallId = u64;
/// Names a call an object makes to another.
pub type TransmitId = u64;

/// A call to make to another object of the bus.
#[derive(Debug)]
pub struct Transmit {
    pub id: TransmitId,
    /// The object's name: `{bus}` or `{bus}/{topic}/{partition}`.
    pub to: String,
    pub context: Context,
    pub call: Call,
}

/// What the alarm must do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Alarm {
    /// Ring at this time (ms since the Unix epoch).
    At(u64),
    Cancel,
}

/// What a transmit was for.
enum Purpose {
    /// A coordinated send asks another partition whether its part fits.
    CheckRoom(CallId),
    /// A redrive asks the directory for every topic's settings.
    Settings(CallId),
    /// A forward of one outbound entry asks the directory for its topic (a
    /// dead-letter topic is made on demand).
    Target(Entry),
    /// A forward of one outbound entry.
    Accept(Entry),
}

/// One outbound entry of a forward wave: `chunk`'s messages, for `partition` of
/// `topic` (counted here, with `partitions` partitions).
#[derive(Clone, Debug)]
struct Entry {
    topic: Name,
    partition: u32,
    partitions: u32,
    send: bool,
    chunk: Chunk,
}

/// A call that waits for something.
enum Waiting {
    /// A send whose other partitions are asked about `maxDepth` first.
    Room { context: Context, call: Call, asked: usize, refused: Option<FerryError> },
    /// A redrive waiting for the directory's settings.
    Settings { context: Context, call: Call },
    /// A call answered once the forward round ends; a coordinated send fills in
    /// its other partitions' metadata from where they landed.
    Forward { reply: Reply },
}

/// The forwarding of what waits here for other partitions: one round at a time,
/// each round waves of outbound entries until none is left or one fails.
#[derive(Default)]
struct Forwarding {
    /// Transmits of the current wave still out; `None`: no round under way.
    outstanding: Option<usize>,
    /// A forward of this wave failed.
    failed: Option<FerryError>,
    /// Calls answered when the round ends.
    waiters: Vec<CallId>,
    /// When the alarm looks at forwarding again; `None`: no need.
    due_ms: Option<u64>,
    /// The wait after the last failure (0: the last round succeeded).
    retry_ms: u64,
    /// Why the last round failed, for the sends it leaves unresolved.
    error: Option<FerryError>,
}

pub struct EdgeObject<S: Store> {
    replica: RefCell<Replica>,
    store: S,
    name: String,
    bus: String,
    home: Option<(String, u32)>,
    /// Topics the call being run says exist: made here, if missing, with its first commit.
    known: Vec<(String, TopicConfig)>,
    next_transmit: TransmitId,
    transmits: VecDeque<Transmit>,
    purposes: HashMap<TransmitId, Purpose>,
    /// Calls waiting on other objects, by id: ids only grow, so a sorted `Vec`.
    waiting: VecMap<CallId, Waiting>,
    results: VecDeque<(CallId, Result<Reply>)>,
    forwarding: Forwarding,
    /// Directory settings of the topics forwarded to.
    targets: HashMap<Name, TopicConfig>,
    /// What coordinated sends wait for: by `(topic, partition, offset here)`, the
    /// metadata where that message landed.
    awaited: HashMap<(Name, u32, u64), Option<RecordMetadata>>,
    /// The alarm as last set; `None`: unknown (it must be set).
    alarm: Option<Option<u64>>,
}

/// The topic and partition the object named `name` serves; `None` for a directory.
pub fn home_of(name: &str) -> Result<Option<(String, u32)>> {
    use crate::core::config::check_name;
    use crate::core::limits::PARTITIONS_MAX;
    let parts: Vec<&str> = name.split('/').collect();
    match parts[..] {
        [bus] => check_name("name", bus).map(|()| None),
        [bus, topic, partition] => {
            check_name("name", bus)?;
            check_name("topic", topic)?;
            let partition = partition
                .parse::<u32>()
                .ok()
                .filter(|p| *p < PARTITIONS_MAX)
                .ok_or_else(|| FerryError::invalid(format!("object name '{name}' has no partition number")))?;
            Ok(Some((topic.to_string(), partition)))
        }
        _ => Err(FerryError::invalid(format!("object name '{name}' is neither 'bus' nor 'bus/topic/partition'"))),
    }
}

/// The name of the object serving `partition` of `topic` in `bus`.
pub fn object_name(bus: &str, topic: &str, partition: u32) -> String {
    format!("{bus}/{topic}/{partition}")
}

impl<S: Store> EdgeObject<S> {
    /// Opens the object named `name` from what `store` holds; `seed` drives retry jitter.
    pub fn open(store: S, name: String, seed: u64) -> Result<Self> {
        let home = home_of(&name)?;
        let mut replica = ready(Replica::open(&store, BusConfig::default(), seed))?;
        if let Some((topic, partition)) = &home {
            replica.engine_mut().set_home(topic, *partition);
        }
        let bus = name.split('/').next().unwrap_or_default().to_string();
        let mut object = EdgeObject {
            replica: RefCell::new(replica),
            store,
            name,
            bus,
            home,
            known: Vec::new(),
            next_transmit: 0,
            transmits: VecDeque::new(),
            purposes: HashMap::new(),
            waiting: VecMap::new(),
            results: VecDeque::new(),
            forwarding: Forwarding::default(),
            targets: HashMap::new(),
            awaited: HashMap::new(),
            alarm: None,
        };
        // A new bus stores its schema version before anything else.
        object.operate(0, |_, _| Ok(()))?;
        // When what waits here for forwarding was due is not stored, and the first
        // alarm this object sets replaces the one it had: it goes at once.
        if object.engine().outbound().map_or(true, |entries| !entries.is_empty()) {
            object.forwarding.due_ms = Some(0);
        }
        Ok(object)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(topic, partition)` this object serves; `None` for the directory.
    pub fn home(&self) -> Option<(&str, u32)> {
        self.home.as_ref().map(|(t, p)| (t.as_str(), *p))
    }

    /// The engine as of the last commit, for inspection.
    pub fn engine(&self) -> Ref<'_, Engine> {
        Ref::map(self.replica.borrow(), Replica::engine)
    }

    fn engine_mut(&mut self) -> &mut Engine {
        self.replica.get_mut().engine_mut()
    }

    /// Runs `op` and commits its writes; a refused `op` or a failed commit changes nothing.
    fn operate<T>(&mut self, now_ms: u64, op: impl FnOnce(&mut Engine, u64) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.commit(
            now_ms,
            Box::new(|engine, now_ms| {
                out = Some(op(engine, now_ms)?);
                Ok(())
            }),
        )?;
        out.ok_or_else(|| FerryError::storage("the operation never ran"))
    }

    /// [`EdgeObject::operate`] without its type: the commit driver is compiled once
    /// for every operation, not once for each.
    fn commit(&mut self, now_ms: u64, op: Operation<'_>) -> Result<()> {
        let known = std::mem::take(&mut self.known);
        ready(commit(
            &self.replica,
            &self.store,
            || now_ms,
            |engine, now_ms| {
                for (name, settings) in known {
                    engine.topic_or_create(&name, Some(settings))?;
                }
                op(engine, now_ms)
            },
        ))
    }

    /// Takes a call's client options and the topics it says exist.
    fn configure(&mut self, context: &Context) -> Result<()> {
        self.engine_mut().set_config(context.config.clone())?;
        self.known = context.topics.clone();
        Ok(())
    }

    fn finish(&mut self, id: CallId, result: Result<Reply>) {
        self.results.push_back((id, result));
    }

    fn transmit(&mut self, to: String, context: Context, call: Call, purpose: Purpose) {
        let id = self.next_transmit;
        self.next_transmit += 1;
        self.purposes.insert(id, purpose);
        self.transmits.push_back(Transmit { id, to, context, call });
    }

    /// Answers `id` with `error` (a call that could not be read).
    pub fn refuse(&mut self, id: CallId, error: FerryError) {
        self.finish(id, Err(error));
    }

    /// One call from a client or another object of the bus.
    pub fn handle_call(&mut self, id: CallId, context: Context, call: Call, now_ms: u64) {
        if let Err(refused) = self.start(id, context, call, now_ms) {
            self.finish(id, Err(refused));
        }
    }

    fn start(&mut self, id: CallId, context: Context, call: Call, now_ms: u64) -> Result<()> {
        if call.for_directory() != self.home.is_none() && !matches!(call, Call::Redrive { .. }) {
            let role = if self.home.is_some() { "a partition" } else { "the directory" };
            return Err(FerryError::invalid(format!("{role} of the bus does not take '{}'", call.method())));
        }
        self.configure(&context)?;
        match call {
            Call::Send { ref topic, ref messages } if self.home.is_some() => {
                let home = self.home_partition();
                let mut others: VecMap<u32, u64> = VecMap::new();
                for m in messages.iter().filter(|m| m.partition != Some(home)) {
                    *others.get_or_default(m.partition.unwrap_or(home)) += 1;
                }
                let limited = context.topics.first().is_some_and(|(_, config)| config.max_depth.is_some());
                if others.is_empty() || !limited {
                    return self.send(id, call, now_ms);
                }
                for (p, added) in &others {
                    let to = object_name(&self.bus, topic, *p);
                    self.transmit(
                        to,
                        Context { config: BusConfig::default(), topics: context.topics.clone() },
                        Call::CheckRoom { added: *added },
                        Purpose::CheckRoom(id),
                    );
                }
                self.waiting.insert(id, Waiting::Room { context, call, asked: others.len(), refused: None });
                Ok(())
            }
            Call::Redrive { ref from, limit, ref offsets } if self.home.is_none() => {
                // The directory only checks the call: the partitions' objects move
                // the dead letters, each knowing whether it holds any.
                self.engine_mut().check_redrive(from, limit, offsets)?;
                self.finish(id, Ok(Reply::Count(0)));
                Ok(())
            }
            Call::Redrive { .. } => {
                self.transmit(self.bus.clone(), Context::default(), Call::Settings, Purpose::Settings(id));
                self.waiting.insert(id, Waiting::Settings { context, call });
                Ok(())
            }
            call => {
                let forwards = call.forwards();
                let reply = self.run(call, now_ms)?;
                if forwards {
                    self.wait_for_forwards(id, reply, now_ms);
                } else {
                    self.finish(id, Ok(reply));
                    if self.home.is_some() {
                        self.forward(now_ms);
                    }
                }
                Ok(())
            }
        }
    }

    fn home_partition(&self) -> u32 {
        self.home.as_ref().map_or(0, |(_, p)| *p)
    }

    /// Stores a send coordinated here, then forwards its other parts.
    fn send(&mut self, id: CallId, call: Call, now_ms: u64) -> Result<()> {
        let home = self.home_partition();
        let reply = self.run(call, now_ms)?;
        if let Reply::Metadata(results) = &reply {
            for r in results.iter().filter(|r| r.partition != home) {
                self.awaited.insert((r.topic.clone(), r.partition, r.offset), None);
            }
        }
        self.wait_for_forwards(id, reply, now_ms);
        Ok(())
    }

    /// Runs a call that needs nothing from another object.
    fn run(&mut self, call: Call, now_ms: u64) -> Result<Reply> {
        Ok(match call {
            call @ (Call::CreateTopic { .. }
            | Call::Topics
            | Call::Send { .. }
            | Call::Stats
            | Call::Redrive { .. }
            | Call::Purge { .. }
            | Call::Browse { .. }
            | Call::Seek { .. }) => self.operate(now_ms, |e, now| serve(e, call, now))?,
            #[cfg(feature = "jobs")]
            call @ Call::Jobs { .. } => self.operate(now_ms, |e, now| serve(e, call, now))?,
            #[cfg(not(feature = "jobs"))]
            Call::Unserved => Reply::Unserved,
            Call::Topic { name, partitions, create } => {
                let missing = partitions.map(TopicConfig::with_partitions);
                let (config, exists) = if create || missing.is_some() {
                    (self.operate(now_ms, |e, _| e.topic_or_create(&name, missing))?, true)
                } else {
                    self.engine_mut().topic_or_auto(&name)?
                };
                Reply::Topic { name, config, missing: !exists }
            }
            Call::Settings => {
                let engine = self.engine();
                Reply::Settings(engine.topics().iter().map(|t| (t.topic.to_string(), engine.topic_config(&t.topic).unwrap_or_default())).collect())
            }
            Call::Receive { group, config, subscriptions, max } => Reply::Deliveries(self.operate(now_ms, |e, now| {
                e.join(&group, PULL_MEMBER, &subscriptions, &config, now)?;
                e.poll(&group, PULL_MEMBER, max, now)
            })?),
            Call::Settle { items } => Reply::Settled(self.operate(now_ms, |e, now| Ok(items.into_iter().map(|item| item.map(|item| settle(e, &item, now))).collect()))?),
            Call::Accept { source, send, chunk } => {
                let (skipped, results) = self.operate(now_ms, |e, now| e.accept(&source, &chunk, send, now))?;
                Reply::Accepted { skipped, results }
            }
            Call::CheckRoom { added } => {
                // Through operate, so that the call's topic is known here even before
                // this partition stored anything of it: its maxDepth still counts.
                if let Some((topic, partition)) = self.home.clone() {
                    self.operate(now_ms, |e, _| e.check_room(&topic, partition, added))?;
                }
                Reply::Done
            }
            // A browser consumer's: the edge's consumers are the pull member and connect's.
            other @ (Call::Join { .. } | Call::Round { .. } | Call::SettleRun { .. } | Call::Heartbeat { .. } | Call::Leave { .. } | Call::RetryNow { .. }) => {
                return Err(FerryError::invalid(format!("{} is not served at the edge", other.method())))
            }
        })
    }

    /// Answers `id` with `reply` once the forward round under way (or one started
    /// now) ends.
    fn wait_for_forwards(&mut self, id: CallId, reply: Reply, now_ms: u64) {
        self.waiting.insert(id, Waiting::Forward { reply });
        self.forwarding.waiters.push(id);
        self.forward(now_ms);
    }

    /// The alarm: expired leases and sessions, dedup windows, retention, and
    /// forwards left over.
    pub fn handle_alarm(&mut self, now_ms: u64) -> Result<()> {
        self.configure(&Context::default())?;
        self.operate(now_ms, |e, now| {
            e.tick(now);
            Ok(())
        })?;
        // This alarm is spent: the next one must be set whatever it is. A round
        // under way keeps one, to be resumed should the object stop before it ends.
        self.alarm = None;
        self.forwarding.due_ms = self.forwarding.outstanding.map(|_| now_ms + FORWARD_RETRY_MS);
        self.forward(now_ms);
        Ok(())
    }

    /// Starts a forward round unless one is under way.
    fn forward(&mut self, now_ms: u64) {
        if self.forwarding.outstanding.is_none() {
            self.next_wave(now_ms);
        }
    }

    /// Forwards the oldest of what waits here for each other partition; ends the
    /// round when nothing is left.
    fn next_wave(&mut self, now_ms: u64) {
        let entries = match self.engine_mut().outbound() {
            Ok(entries) => entries,
            Err(error) => return self.end_round(Some(error), now_ms),
        };
        if entries.is_empty() {
            return self.end_round(None, now_ms);
        }
        // Should the object stop before the round ends (a restart), its alarm
        // resumes it. The alarm is left set when the round succeeds (it then finds
        // nothing to do), so a stream of sends sets it about once per
        // FORWARD_RETRY_MS, not twice per send.
        self.forwarding.due_ms.get_or_insert(now_ms + FORWARD_RETRY_MS);
        self.forwarding.outstanding = Some(entries.len());
        for out in entries {
            let entry = Entry { topic: out.topic, partition: out.partition, partitions: out.partitions, send: out.send, chunk: out.chunk };
            self.forward_entry(entry);
        }
    }

    /// Hands one entry to the partition that serves it, asking the directory for
    /// its topic first when it is not known here.
    fn forward_entry(&mut self, entry: Entry) {
        let Some(target) = self.targets.get(&entry.topic).cloned() else {
            let call = Call::Topic { name: entry.topic.to_string(), partitions: Some(entry.partitions), create: true };
            return self.transmit(self.bus.clone(), Context::default(), call, Purpose::Target(entry));
        };
        // A dead-letter topic that existed with fewer partitions takes the rest modulo its count.
        let to = entry.partition % target.partitions;
        let source = format!("{}>{}/{}", self.name, entry.topic, entry.partition);
        let context = Context { config: BusConfig::default(), topics: vec![(entry.topic.to_string(), target)] };
        let call = Call::Accept { source, send: entry.send, chunk: entry.chunk.clone() };
        self.transmit(object_name(&self.bus, &entry.topic, to), context, call, Purpose::Accept(entry));
    }

    /// One forward of the wave is done.
    fn forward_done(&mut self, failed: Option<FerryError>, now_ms: u64) {
        if let Some(error) = failed {
            self.forwarding.failed.get_or_insert(error);
        }
        let Some(outstanding) = self.forwarding.outstanding.as_mut() else { return };
        *outstanding -= 1;
        if *outstanding > 0 {
            return;
        }
        match self.forwarding.failed.take() {
            Some(error) => self.end_round(Some(error), now_ms),
            None => self.next_wave(now_ms),
        }
    }

    fn end_round(&mut self, failed: Option<FerryError>, now_ms: u64) {
        let forwarding = &mut self.forwarding;
        forwarding.outstanding = None;
        match failed {
            Some(error) => {
                forwarding.retry_ms = (forwarding.retry_ms * 2).clamp(FORWARD_RETRY_MS, FORWARD_RETRY_MS_MAX);
                forwarding.due_ms = Some(now_ms + forwarding.retry_ms);
                forwarding.error = Some(error);
            }
            None => {
                forwarding.retry_ms = 0;
                forwarding.error = None;
            }
        }
        for id in std::mem::take(&mut self.forwarding.waiters) {
            let Some(Waiting::Forward { reply }) = self.waiting.remove(&id) else { continue };
            let result = self.landed(reply);
            self.finish(id, result);
        }
    }

    /// A coordinated send's metadata, its other partitions' taken from where they
    /// landed; `STORAGE` when one has not landed yet (it will, without its metadata).
    fn landed(&mut self, reply: Reply) -> Result<Reply> {
        let Reply::Metadata(results) = reply else { return Ok(reply) };
        let home = self.home_partition();
        let mut out = Vec::with_capacity(results.len());
        let mut missing = None;
        for r in results {
            if r.partition == home {
                out.push(r);
                continue;
            }
            match self.awaited.remove(&(r.topic.clone(), r.partition, r.offset)).flatten() {
                Some(landed) => out.push(landed),
                None => missing = missing.or(Some(r.partition)),
            }
        }
        match missing {
            None => Ok(Reply::Metadata(out)),
            Some(partition) => {
                let why = self.forwarding.error.as_ref().map_or_else(|| "no answer".to_string(), |e| e.message.clone());
                Err(FerryError::storage(format!(
                    "the send is stored, but its part for partition {partition} is not forwarded yet ({why}); it will be, without its metadata"
                )))
            }
        }
    }

    /// The outcome of a transmit, whenever it comes.
    pub fn handle_transmit_result(&mut self, id: TransmitId, result: Result<Reply>, now_ms: u64) {
        let Some(purpose) = self.purposes.remove(&id) else { return };
        match purpose {
            Purpose::CheckRoom(call) => self.room_checked(call, result.err(), now_ms),
            Purpose::Settings(call) => self.settings_known(call, result, now_ms),
            Purpose::Target(entry) => match result {
                Ok(Reply::Topic { name, config, .. }) => {
                    self.targets.insert(Name::from(name.as_str()), config);
                    self.forward_entry(entry);
                }
                Ok(_) => self.forward_done(Some(FerryError::storage("the directory did not describe a topic")), now_ms),
                Err(error) => self.forward_done(Some(error), now_ms),
            },
            Purpose::Accept(entry) => match result {
                Ok(Reply::Accepted { skipped, results }) => {
                    for (i, landed) in results.into_iter().enumerate() {
                        if let Some(slot) = self.awaited.get_mut(&(entry.topic.clone(), entry.partition, entry.chunk.base_offset + skipped + i as u64)) {
                            *slot = Some(landed);
                        }
                    }
                    // Dropped here with the next commit: until then a restart forwards
                    // them again, and the receiver skips them.
                    self.engine_mut().forwarded(&entry.topic, entry.partition, entry.chunk.end_offset());
                    self.forward_done(None, now_ms);
                }
                Ok(_) => self.forward_done(Some(FerryError::storage("a forward was answered with something else")), now_ms),
                Err(error) => self.forward_done(Some(error), now_ms),
            },
        }
    }

    fn room_checked(&mut self, id: CallId, refused: Option<FerryError>, now_ms: u64) {
        let Some(Waiting::Room { asked, refused: first, .. }) = self.waiting.get_mut(&id) else { return };
        *asked -= 1;
        if first.is_none() {
            *first = refused;
        }
        if *asked > 0 {
            return;
        }
        let Some(Waiting::Room { context, call, refused, .. }) = self.waiting.remove(&id) else { return };
        if let Some(error) = refused {
            return self.finish(id, Err(error));
        }
        // Other calls may have come in between: this one's options again.
        if let Err(error) = self.configure(&context).and_then(|()| self.send(id, call, now_ms)) {
            self.finish(id, Err(error));
        }
    }

    fn settings_known(&mut self, id: CallId, settings: Result<Reply>, now_ms: u64) {
        let Some(Waiting::Settings { mut context, call }) = self.waiting.remove(&id) else { return };
        let ran = match settings {
            Ok(Reply::Settings(topics)) => {
                context.topics = topics;
                self.configure(&context).and_then(|()| self.run(call, now_ms))
            }
            Ok(_) => Err(FerryError::storage("the directory did not list the topics")),
            Err(error) => Err(error),
        };
        match ran {
            Ok(reply) => self.wait_for_forwards(id, reply, now_ms),
            Err(error) => self.finish(id, Err(error)),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_result(&mut self) -> Option<(CallId, Result<Reply>)> {
        self.results.pop_front()
    }

    /// When the alarm must ring, if that changed since it was last set: the
    /// earliest of the engine's housekeeping and the next forward try.
    pub fn poll_alarm(&mut self) -> Option<Alarm> {
        let tick = self.engine().next_tick_ms();
        let due = match (tick, self.forwarding.due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.alarm == Some(due) {
            return None;
        }
        self.alarm = Some(due);
        Some(due.map_or(Alarm::Cancel, Alarm::At))
    }
}

fn settle(engine: &mut Engine, item: &SettleItem, now_ms: u64) -> bool {
    match &item.retry {
        None => engine.ack(&item.group, PULL_MEMBER, &item.receipt, now_ms),
        Some((error, Some(delay_ms))) => engine.fail_after(&item.group, PULL_MEMBER, &item.receipt, error, *delay_ms, now_ms),
        Some((error, None)) => engine.fail(&item.group, PULL_MEMBER, &item.receipt, error, now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{OutgoingMessage, Value};
    use crate::store::MemoryStore;

    const NOW: u64 = 1_700_000_000_000;

    /// Object `b/t/0` of a topic with two partitions, holding a message for
    /// partition 1 whose forward (the directory's description of `t` first) is
    /// under way.
    fn forwarding(store: &MemoryStore) -> EdgeObject<MemoryStore> {
        let mut object = EdgeObject::open(store.clone(), "b/t/0".into(), 0).unwrap();
        let context = Context { config: BusConfig::default(), topics: vec![("t".into(), TopicConfig::with_partitions(2))] };
        let messages = vec![OutgoingMessage { partition: Some(1), ..OutgoingMessage::new(Value::string("a")) }];
        object.handle_call(0, context, Call::Send { topic: "t".into(), messages }, NOW);
        let asked = object.poll_transmit().unwrap();
        assert!(matches!(asked.call, Call::Topic { .. }), "{asked:?}");
        assert!(!object.engine().outbound().unwrap().is_empty());
        object
    }

    #[test]
    fn a_partition_that_stored_nothing_yet_still_checks_room_against_the_maxdepth_it_is_told() {
        let mut object = EdgeObject::open(MemoryStore::new(), "b/t/1".into(), 0).unwrap();
        let context = || Context { config: BusConfig::default(), topics: vec![("t".into(), TopicConfig { max_depth: Some(2), ..TopicConfig::with_partitions(2) })] };
        object.handle_call(0, context(), Call::CheckRoom { added: 3 }, NOW);
        object.handle_call(1, context(), Call::CheckRoom { added: 2 }, NOW);
        let (_, refused) = object.poll_result().unwrap();
        assert_eq!(refused.unwrap_err().code, crate::core::ErrorCode::QueueFull);
        assert!(matches!(object.poll_result(), Some((1, Ok(Reply::Done)))));
    }

    #[test]
    fn a_reopened_object_rings_at_once_for_what_waits_to_be_forwarded() {
        let store = MemoryStore::new();
        drop(forwarding(&store));
        // Its first alarm replaces the one it had; nothing says when that was.
        let mut reopened = EdgeObject::open(store, "b/t/0".into(), 0).unwrap();
        assert_eq!(reopened.poll_alarm(), Some(Alarm::At(0)));
    }

    #[test]
    fn an_alarm_during_a_forward_round_keeps_the_next_one() {
        let store = MemoryStore::new();
        let mut object = forwarding(&store);
        assert_eq!(object.poll_alarm(), Some(Alarm::At(NOW + FORWARD_RETRY_MS)));
        // The directory has not answered when the alarm rings: should the object
        // stop now, the next alarm resumes the round.
        let rang = NOW + 2 * FORWARD_RETRY_MS;
        object.handle_alarm(rang).unwrap();
        assert!(object.poll_transmit().is_none());
        assert_eq!(object.poll_alarm(), Some(Alarm::At(rang + FORWARD_RETRY_MS)));
    }
}
