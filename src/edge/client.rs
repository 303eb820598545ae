//! What a Worker's client of a split bus (`connect()`) decides, as a sans-IO state
//! machine: where each message goes, which objects an operation asks and in what
//! order, the shares of a `receive` over the partitions, the merge of the
//! partitions' stats, the redrive over a dead-letter topic's partitions, and which
//! acks and retries go together.
//!
//! # Order of calls
//!
//! 1. [`EdgeClient::new`] once per client.
//! 2. For each operation a user starts, one of the `start` methods; it answers at
//!    once with the operation's id (a refusal of bad input comes as its result).
//!    Acks and retries ([`EdgeClient::settle`]) wait until
//!    [`EdgeClient::flush_settles`], so those made together (in one JavaScript
//!    turn) go to each partition in one call.
//! 3. Then, until both give nothing:
//!    - [`EdgeClient::poll_transmit`]: a call to make to an object of the bus;
//!      hand its outcome to [`EdgeClient::handle_reply`] whenever it comes;
//!    - [`EdgeClient::poll_done`]: an operation that is finished.

use std::collections::{HashMap, VecDeque};

use super::object::{object_name, Transmit, TransmitId};
use crate::core::config::{check_name, ConsumerConfig};
use crate::core::engine::{GroupStats, MemberStats, Stats, TopicStats};
use crate::core::limits::{SESSION_TIMEOUT_MS_MAX, SUBSCRIPTIONS_MAX};
use crate::core::murmur2::partition_for_key;
use crate::core::sort::sort_by;
use crate::core::vec_map::VecMap;
use crate::core::{BusConfig, ErrorCode, FerryError, Name, OutgoingMessage, Result, SeekTo, Subscription, TopicConfig};
use crate::protocol::{Call, Context, Reply, SettleItem};

/// Names an operation a client runs.
pub type OpId = u64;
/// Names a pull consumer of a client (`bus.consumer()`).
pub type ConsumerId = usize;

struct PullConsumer {
    group: String,
    config: ConsumerConfig,
    subscriptions: Vec<Subscription>,
    /// Where the next receive starts among the partitions, so none is always last.
    rotation: usize,
}

/// One partition a receive asks.
#[derive(Clone)]
struct Target {
    topic: String,
    settings: TopicConfig,
    partition: u32,
    subscription: Subscription,
}

/// Where an operation is.
enum Step {
    /// One call; its reply is the operation's.
    Call,
    /// Waits for the settings of `topics[0]`, then of the rest, then goes on as `then`.
    Settings { topics: Vec<String>, create: bool, found: Vec<(String, TopicConfig)>, then: Then },
    /// A send stored by its first partition's object: its topic is made now if it was missing.
    Sent { missing: Option<String> },
    /// A send to a topic made after it was stored: answers with the send's metadata.
    Made { reply: Reply },
    /// Stats of every partition of `topics`, by the order asked.
    Stats { topics: Vec<(String, TopicConfig)>, parts: Vec<Option<Stats>>, left: usize },
    /// The directory checked a redrive: its settings come next.
    RedriveChecked { from: String, limit: Option<u64>, offsets: Vec<(u32, u64)> },
    /// A purge of `topic`'s partitions, one at a time.
    Purge { topic: (String, TopicConfig), partition: u32, removed: u64 },
    /// A redrive over `from`'s partitions, one at a time.
    Redrive { from: (String, TopicConfig), limit: Option<u64>, offsets: Vec<(u32, u64)>, partition: u32, moved: u64 },
    /// A subscribe's joins, one per partition.
    Joins { consumer: ConsumerId, subscriptions: Vec<Subscription>, left: usize },
    /// A receive's round.
    Receive {
        consumer: ConsumerId,
        max: usize,
        asking: Vec<Target>,
        shares: Vec<usize>,
        got: Vec<Option<Vec<crate::core::Delivery>>>,
        left: usize,
        received: Vec<crate::core::Delivery>,
    },
    /// A batch of acks and retries of one partition, for the operations named.
    Settle { ops: Vec<OpId> },
    /// The same, waiting for its topic's settings.
    SettleTopic { ops: Vec<OpId>, partition: u32, items: Vec<SettleItem> },
}

/// What an operation does once the settings it waited for are known.
enum Then {
    Send { messages: Vec<OutgoingMessage> },
    Stats,
    Subscribe { consumer: ConsumerId, subscriptions: Vec<Subscription> },
    Receive { consumer: ConsumerId, max: usize },
    Seek { consumer: ConsumerId, partition: u32, to: SeekTo },
    Redrive { from: String, limit: Option<u64>, offsets: Vec<(u32, u64)> },
    Purge,
    Browse { partition: u32, offset: u64, max: u64, group: Option<String> },
}

pub struct EdgeClient {
    bus: String,
    config: BusConfig,
    /// Settings of topics that exist. A topic's partition count and settings never
    /// change once it exists, so they are asked of the directory once.
    known: HashMap<String, TopicConfig>,
    /// Where each topic's round-robin goes next; a client starts anywhere, so
    /// short-lived clients still spread.
    round_robin: HashMap<String, u32>,
    seed: u64,
    /// The pull consumers made and not released: a client lives as long as its
    /// isolate, and a Worker makes consumers per request.
    consumers: HashMap<ConsumerId, PullConsumer>,
    next_consumer: ConsumerId,
    /// Consumers made for one operation (a receive over HTTP), released when it ends.
    transient: HashMap<OpId, ConsumerId>,
    next_op: OpId,
    next_transmit: TransmitId,
    transmits: VecDeque<Transmit>,
    /// What each transmit out is for: the operation, and for a part of a fan-out its index.
    waiting: HashMap<TransmitId, (OpId, usize)>,
    steps: HashMap<OpId, Step>,
    done: VecDeque<(OpId, Result<Reply>)>,
    /// Acks and retries not sent yet, by partition.
    settling: VecMap<(String, u32), Vec<(OpId, SettleItem)>>,
}

impl EdgeClient {
    /// A client of the bus `bus` with `connect()`'s options; `seed` picks where
    /// round-robin starts.
    pub fn new(bus: String, config: BusConfig, seed: u64) -> Result<EdgeClient> {
        check_name("name", &bus)?;
        Ok(EdgeClient {
            bus,
            config,
            known: HashMap::new(),
            round_robin: HashMap::new(),
            seed,
            consumers: HashMap::new(),
            next_consumer: 0,
            transient: HashMap::new(),
            next_op: 0,
            next_transmit: 0,
            transmits: VecDeque::new(),
            waiting: HashMap::new(),
            steps: HashMap::new(),
            done: VecDeque::new(),
            settling: VecMap::new(),
        })
    }

    fn op(&mut self) -> OpId {
        self.next_op += 1;
        self.next_op
    }

    fn finish(&mut self, op: OpId, result: Result<Reply>) {
        self.steps.remove(&op);
        if let Some(consumer) = self.transient.remove(&op) {
            self.consumers.remove(&consumer);
        }
        self.done.push_back((op, result));
    }

    fn context(&self, topics: Vec<(String, TopicConfig)>) -> Context {
        Context { config: self.config.clone(), topics }
    }

    fn send_to(&mut self, op: OpId, part: usize, to: String, context: Context, call: Call) {
        let id = self.next_transmit;
        self.next_transmit += 1;
        self.waiting.insert(id, (op, part));
        self.transmits.push_back(Transmit { id, to, context, call });
    }

    fn directory(&mut self, op: OpId, call: Call) {
        let context = self.context(Vec::new());
        self.send_to(op, 0, self.bus.clone(), context, call);
    }

    fn partition(&mut self, op: OpId, part: usize, (topic, settings): (&str, &TopicConfig), partition: u32, call: Call) {
        let context = self.context(vec![(topic.to_string(), settings.clone())]);
        self.send_to(op, part, object_name(&self.bus, topic, partition), context, call);
    }

    /// Starts `then` once the settings of `topics` are known (asked of the
    /// directory when not; made there when `create` and auto-creation allow).
    fn with_settings(&mut self, op: OpId, topics: Vec<String>, create: bool, then: Then) {
        self.steps.insert(op, Step::Settings { topics, create, found: Vec::new(), then });
        self.next_settings(op);
    }

    fn next_settings(&mut self, op: OpId) {
        let Some(Step::Settings { topics, found, create, .. }) = self.steps.get_mut(&op) else { return };
        while let Some(topic) = topics.first() {
            match self.known.get(topic) {
                Some(settings) => {
                    found.push((topic.clone(), settings.clone()));
                    topics.remove(0);
                }
                None => {
                    let call = Call::Topic { name: topic.clone(), partitions: None, create: *create };
                    return self.directory(op, call);
                }
            }
        }
        let Some(Step::Settings { found, then, .. }) = self.steps.remove(&op) else { return };
        if let Err(error) = self.proceed(op, found, then) {
            self.finish(op, Err(error));
        }
    }

    fn proceed(&mut self, op: OpId, found: Vec<(String, TopicConfig)>, then: Then) -> Result<()> {
        match then {
            Then::Send { mut messages } => {
                let (topic, settings) = found.into_iter().next().ok_or_else(|| FerryError::storage("no settings for the send"))?;
                let missing = (!self.known.contains_key(&topic)).then(|| topic.clone());
                let start = self.round_robin.get(&topic).copied().unwrap_or((self.seed % u64::from(settings.partitions)) as u32);
                let mut next = start;
                for (i, m) in messages.iter_mut().enumerate() {
                    m.partition = Some(route(m, i, settings.partitions, &mut next)?);
                }
                self.round_robin.insert(topic.clone(), next);
                let first = messages.first().and_then(|m| m.partition).ok_or_else(|| FerryError::invalid("messages must hold 1 message at least"))?;
                self.steps.insert(op, Step::Sent { missing });
                self.partition(op, 0, (&topic, &settings), first, Call::Send { topic: topic.clone(), messages });
            }
            Then::Stats => {
                let parts: Vec<(String, TopicConfig, u32)> = found.iter().flat_map(|(t, s)| (0..s.partitions).map(move |p| (t.clone(), s.clone(), p))).collect();
                if parts.is_empty() {
                    self.finish(op, Ok(Reply::Stats(Box::new(Stats { topics: Vec::new(), groups: Vec::new(), members: Vec::new() }))));
                    return Ok(());
                }
                self.steps.insert(op, Step::Stats { topics: found, parts: vec![None; parts.len()], left: parts.len() });
                for (i, (topic, settings, p)) in parts.iter().enumerate() {
                    self.partition(op, i, (topic, settings), *p, Call::Stats);
                }
            }
            Then::Subscribe { consumer, subscriptions } => {
                let targets = self.targets(&found, &subscriptions);
                let calls = targets.iter().map(|t| self.receive_call(consumer, &t.subscription, 0)).collect::<Result<Vec<_>>>()?;
                self.steps.insert(op, Step::Joins { consumer, subscriptions, left: targets.len() });
                for (i, (t, call)) in targets.iter().zip(calls).enumerate() {
                    self.partition(op, i, (&t.topic, &t.settings), t.partition, call);
                }
            }
            Then::Receive { consumer, max } => {
                let pull = self.pull_mut(consumer)?;
                let (subscriptions, rotation) = (pull.subscriptions.clone(), pull.rotation);
                pull.rotation = rotation.wrapping_add(1);
                let mut asking = self.targets(&found, &subscriptions);
                if !asking.is_empty() {
                    let at = rotation % asking.len();
                    asking.rotate_left(at);
                }
                self.receive_round(op, consumer, max, asking, Vec::new(), true)?;
            }
            Then::Seek { consumer, partition, to } => {
                // Seeking makes the topic: its settings are there.
                let found = found.into_iter().next().ok_or_else(|| FerryError::storage("no settings for the seek"))?;
                let (topic, settings) = check_partition(found, partition)?;
                let group = self.pull(consumer)?.group.clone();
                self.steps.insert(op, Step::Call);
                self.partition(op, 0, (&topic, &settings), partition, Call::Seek { group, topic: topic.clone(), partition, to });
            }
            Then::Redrive { from, limit, offsets } => {
                // A topic the directory does not list holds nothing to move.
                match found.into_iter().find(|(t, _)| *t == from) {
                    Some(from) => self.redrive_next(op, from, limit, offsets, 0, 0),
                    None => self.finish(op, Ok(Reply::Count(0))),
                }
            }
            Then::Purge => {
                let topic = self.held_topic(found)?;
                self.purge_next(op, topic, 0, 0);
            }
            Then::Browse { partition, offset, max, group } => {
                let (topic, settings) = check_partition(self.held_topic(found)?, partition)?;
                self.steps.insert(op, Step::Call);
                self.partition(op, 0, (&topic, &settings), partition, Call::Browse { topic: topic.clone(), partition, offset, max, group });
            }
        }
        Ok(())
    }

    /// Every partition of each subscribed topic.
    fn targets(&self, found: &[(String, TopicConfig)], subscriptions: &[Subscription]) -> Vec<Target> {
        let mut targets = Vec::new();
        for s in subscriptions {
            let Some((_, settings)) = found.iter().find(|(t, _)| *t == s.topic) else { continue };
            for p in 0..settings.partitions {
                targets.push(Target { topic: s.topic.clone(), settings: settings.clone(), partition: p, subscription: s.clone() });
            }
        }
        targets
    }

    fn receive_call(&self, consumer: ConsumerId, subscription: &Subscription, max: usize) -> Result<Call> {
        let c = self.pull(consumer)?;
        let mut config = c.config.clone();
        // Leases bound each message's time; the pull member itself never times out
        // between the invocations that pull.
        config.session_timeout_ms = SESSION_TIMEOUT_MS_MAX;
        Ok(Call::Receive { group: c.group.clone(), config, subscriptions: vec![subscription.clone()], max })
    }

    /// Asks every partition of `asking` for a share of what is left of `max` (in
    /// the first round every one, which also joins the group there); then, while
    /// fewer came, those not asked and those that filled their share. Each round
    /// either fills `max` or drops a partition that had less than its share, so
    /// the rounds end.
    fn receive_round(&mut self, op: OpId, consumer: ConsumerId, max: usize, asking: Vec<Target>, received: Vec<crate::core::Delivery>, first: bool) -> Result<()> {
        let left = max - received.len();
        if asking.is_empty() || left == 0 {
            self.finish(op, Ok(Reply::Deliveries(received)));
            return Ok(());
        }
        let n = asking.len();
        let shares: Vec<usize> = (0..n).map(|i| left / n + usize::from(i < left % n)).collect();
        let asked: Vec<usize> = (0..n).filter(|i| first || shares[*i] > 0).collect();
        let got = (0..n).map(|i| if asked.contains(&i) { None } else { Some(Vec::new()) }).collect();
        let calls = asked.iter().map(|i| Ok((*i, self.receive_call(consumer, &asking[*i].subscription, shares[*i])?))).collect::<Result<Vec<_>>>()?;
        self.steps.insert(op, Step::Receive { consumer, max, asking: asking.clone(), shares: shares.clone(), got, left: asked.len(), received });
        for (i, call) in calls {
            self.partition(op, i, (&asking[i].topic, &asking[i].settings), asking[i].partition, call);
        }
        Ok(())
    }

    fn receive_answered(&mut self, op: OpId) -> Result<()> {
        let Some(Step::Receive { consumer, max, asking, shares, got, mut received, .. }) = self.steps.remove(&op) else { return Ok(()) };
        let got: Vec<Vec<crate::core::Delivery>> = got.into_iter().map(Option::unwrap_or_default).collect();
        let counts: Vec<usize> = got.iter().map(Vec::len).collect();
        received.extend(got.into_iter().flatten());
        let unasked = (0..asking.len()).filter(|i| shares[*i] == 0);
        let filled = (0..asking.len()).filter(|i| shares[*i] > 0 && counts[*i] == shares[*i]);
        let next: Vec<Target> = unasked.chain(filled).map(|i| asking[i].clone()).collect();
        self.receive_round(op, consumer, max, next, received, false)
    }

    /// The one topic an operation waited for the settings of, refused when the
    /// directory does not hold it: its answer for such a topic is the default
    /// settings, which only a topic it holds is known by.
    fn held_topic(&self, found: Vec<(String, TopicConfig)>) -> Result<(String, TopicConfig)> {
        let held = found.into_iter().next().filter(|(topic, _)| self.known.contains_key(topic));
        held.ok_or_else(|| FerryError::new(ErrorCode::UnknownTopic, "the topic does not exist"))
    }

    /// Asks the next partition from `partition` on to move its dead letters: with
    /// `offsets` chosen, only those holding some, each given its own.
    fn redrive_next(&mut self, op: OpId, from: (String, TopicConfig), limit: Option<u64>, offsets: Vec<(u32, u64)>, mut partition: u32, moved: u64) {
        while !offsets.is_empty() && partition < from.1.partitions && !offsets.iter().any(|(p, _)| *p == partition) {
            partition += 1;
        }
        if partition >= from.1.partitions || limit == Some(0) {
            return self.finish(op, Ok(Reply::Count(moved)));
        }
        let mine = offsets.iter().filter(|(p, _)| *p == partition).copied().collect();
        let call = Call::Redrive { from: from.0.clone(), limit, offsets: mine };
        self.partition(op, 0, (&from.0, &from.1), partition, call);
        self.steps.insert(op, Step::Redrive { from, limit, offsets, partition, moved });
    }

    /// Asks partition `partition` of `topic` and the next ones, in turn, to purge theirs.
    fn purge_next(&mut self, op: OpId, topic: (String, TopicConfig), partition: u32, removed: u64) {
        if partition >= topic.1.partitions {
            return self.finish(op, Ok(Reply::Count(removed)));
        }
        let call = Call::Purge { topic: topic.0.clone() };
        self.partition(op, 0, (&topic.0, &topic.1), partition, call);
        self.steps.insert(op, Step::Purge { topic, partition, removed });
    }

    /// `createTopic(name, options)`.
    pub fn create_topic(&mut self, name: String, config: TopicConfig) -> OpId {
        let op = self.op();
        self.steps.insert(op, Step::Call);
        self.directory(op, Call::CreateTopic { name, config });
        op
    }

    /// A `ferry/bullmq` job queue operation: the directory keeps the job queues.
    #[cfg(feature = "jobs")]
    pub fn jobs(&mut self, queue: String, job: crate::core::engine::JobOp) -> OpId {
        let op = self.op();
        self.steps.insert(op, Step::Call);
        self.directory(op, Call::Jobs { queue, op: job });
        op
    }

    /// `topics()`.
    pub fn topics(&mut self) -> OpId {
        let op = self.op();
        self.steps.insert(op, Step::Call);
        self.directory(op, Call::Topics);
        op
    }

    /// `producer().send({ topic, messages })` (and `publish`): stored whole by the
    /// object of its first message's partition. A topic auto-creation would make
    /// is only described until the send is stored (a refused send makes nothing).
    pub fn send(&mut self, topic: String, messages: Vec<OutgoingMessage>) -> OpId {
        let op = self.op();
        self.with_settings(op, vec![topic], false, Then::Send { messages });
        op
    }

    /// `stats()`: every partition's, merged.
    pub fn stats(&mut self) -> OpId {
        let op = self.op();
        self.steps.insert(op, Step::Settings { topics: Vec::new(), create: false, found: Vec::new(), then: Then::Stats });
        self.directory(op, Call::Settings);
        op
    }

    /// `redrive({ from, limit, offsets })`: the directory checks it, then `from`'s
    /// partitions move their dead letters in turn until `limit`.
    pub fn redrive(&mut self, from: String, limit: Option<u64>, offsets: Vec<(u32, u64)>) -> OpId {
        let op = self.op();
        self.steps.insert(op, Step::RedriveChecked { from: from.clone(), limit, offsets: offsets.clone() });
        self.directory(op, Call::Redrive { from, limit, offsets });
        op
    }

    /// `purge({ topic })`: each partition's object removes its dead letters.
    pub fn purge(&mut self, topic: String) -> OpId {
        let op = self.op();
        self.with_settings(op, vec![topic], false, Then::Purge);
        op
    }

    /// `browse({ topic, partition, offset, limit, groupId })`: the partition's object reads them.
    pub fn browse(&mut self, topic: String, partition: u32, offset: u64, max: u64, group: Option<String>) -> OpId {
        let op = self.op();
        self.with_settings(op, vec![topic], false, Then::Browse { partition, offset, max, group });
        op
    }

    /// Whether `consumer` is one of this client's; if not, `op` fails saying so
    /// (the number came from JavaScript).
    fn pull(&self, consumer: ConsumerId) -> Result<&PullConsumer> {
        self.consumers.get(&consumer).ok_or_else(|| not_ours(consumer))
    }

    fn pull_mut(&mut self, consumer: ConsumerId) -> Result<&mut PullConsumer> {
        self.consumers.get_mut(&consumer).ok_or_else(|| not_ours(consumer))
    }

    fn knows(&mut self, op: OpId, consumer: ConsumerId) -> bool {
        let known = self.consumers.contains_key(&consumer);
        if !known {
            self.finish(op, Err(not_ours(consumer)));
        }
        known
    }

    /// `consumer(options)`, checked where it is made.
    pub fn consumer(&mut self, group: String, config: ConsumerConfig) -> Result<ConsumerId> {
        check_name("groupId", &group)?;
        config.check()?;
        let id = self.next_consumer;
        self.next_consumer += 1;
        self.consumers.insert(id, PullConsumer { group, config, subscriptions: Vec::new(), rotation: 0 });
        Ok(id)
    }

    /// Forgets a consumer no one holds any more (its JavaScript object was
    /// collected); an operation of it still under way fails.
    pub fn release(&mut self, consumer: ConsumerId) {
        self.consumers.remove(&consumer);
    }

    /// One receive of `max` from `subscription` for `group`, by a consumer made
    /// for it and released when it ends: `POST /v1/topics/{topic}/receive`, where
    /// no consumer lives between requests. Its first call to each partition joins
    /// the group there, from the start when `subscription.from_beginning`.
    pub fn receive_once(&mut self, group: String, config: ConsumerConfig, subscription: Subscription, max: usize) -> Result<OpId> {
        let consumer = self.consumer(group, config)?;
        self.pull_mut(consumer)?.subscriptions.push(subscription);
        let op = self.receive(consumer, max);
        if self.steps.contains_key(&op) {
            self.transient.insert(op, consumer);
        } else {
            self.consumers.remove(&consumer);
        }
        Ok(op)
    }

    /// `subscribe(...)`: joins the group in every partition of the topics at once,
    /// so the group's start is fixed now (with `fromBeginning: false` too).
    pub fn subscribe(&mut self, consumer: ConsumerId, subscriptions: Vec<Subscription>) -> OpId {
        let op = self.op();
        if !self.knows(op, consumer) {
            return op;
        }
        if self.consumers[&consumer].subscriptions.len() + subscriptions.len() > SUBSCRIPTIONS_MAX {
            self.finish(op, Err(FerryError::invalid(format!("a consumer subscribes to at most {SUBSCRIPTIONS_MAX} topics"))));
            return op;
        }
        let topics = subscriptions.iter().map(|s| s.topic.clone()).collect();
        self.with_settings(op, topics, true, Then::Subscribe { consumer, subscriptions });
        op
    }

    /// `receive({ max })`.
    pub fn receive(&mut self, consumer: ConsumerId, max: usize) -> OpId {
        let op = self.op();
        if !self.knows(op, consumer) {
            return op;
        }
        let subscriptions = &self.consumers[&consumer].subscriptions;
        if subscriptions.is_empty() {
            self.finish(op, Err(FerryError::invalid("subscribe to a topic before receive")));
            return op;
        }
        let topics = subscriptions.iter().map(|s| s.topic.clone()).collect();
        self.with_settings(op, topics, true, Then::Receive { consumer, max });
        op
    }

    /// `seek({ topic, partition, offset | timestamp })`, in that partition's object.
    pub fn seek(&mut self, consumer: ConsumerId, topic: String, partition: u32, to: SeekTo) -> OpId {
        let op = self.op();
        if !self.knows(op, consumer) {
            return op;
        }
        self.with_settings(op, vec![topic], true, Then::Seek { consumer, partition, to });
        op
    }

    /// An ack (`retry: None`) or retry of a received message, queued until
    /// [`EdgeClient::flush_settles`].
    pub fn settle(&mut self, consumer: ConsumerId, receipt: crate::core::Receipt, retry: Option<(String, Option<u64>)>) -> OpId {
        let op = self.op();
        if !self.knows(op, consumer) {
            return op;
        }
        let group = self.consumers[&consumer].group.clone();
        self.queue_settle(op, SettleItem { group, receipt, retry });
        op
    }

    /// An ack or retry for `group` by receipt alone (`POST /v1/acks`: the message
    /// may have been received through another isolate's client).
    pub fn settle_receipt(&mut self, item: SettleItem) -> OpId {
        let op = self.op();
        self.queue_settle(op, item);
        op
    }

    fn queue_settle(&mut self, op: OpId, item: SettleItem) {
        let key = (item.receipt.topic.to_string(), item.receipt.partition);
        self.settling.get_or_default(key).push((op, item));
    }

    /// Sends the queued acks and retries: one call per partition, after asking
    /// the directory for a topic this client has not met.
    pub fn flush_settles(&mut self) {
        for ((topic, partition), batch) in std::mem::take(&mut self.settling) {
            let (ops, items): (Vec<OpId>, Vec<SettleItem>) = batch.into_iter().unzip();
            let lead = ops[0];
            match self.known.get(&topic).cloned() {
                Some(settings) => self.settle_in(lead, ops, (&topic, &settings), partition, items),
                None => {
                    self.steps.insert(lead, Step::SettleTopic { ops, partition, items });
                    self.directory(lead, Call::Topic { name: topic, partitions: None, create: false });
                }
            }
        }
    }

    fn settle_in(&mut self, lead: OpId, ops: Vec<OpId>, topic: (&str, &TopicConfig), partition: u32, items: Vec<SettleItem>) {
        self.steps.insert(lead, Step::Settle { ops });
        self.partition(lead, 0, topic, partition, Call::Settle { items: items.into_iter().map(Ok).collect() });
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_done(&mut self) -> Option<(OpId, Result<Reply>)> {
        self.done.pop_front()
    }

    /// A transmit's outcome, whenever it comes.
    pub fn handle_reply(&mut self, id: TransmitId, result: Result<Reply>) {
        let Some((op, part)) = self.waiting.remove(&id) else { return };
        // An operation that already failed ignores the rest of its fan-out.
        let Some(step) = self.steps.remove(&op) else { return };
        if let Err(error) = self.step(op, part, step, result) {
            self.finish(op, Err(error));
        }
    }

    fn step(&mut self, op: OpId, part: usize, step: Step, result: Result<Reply>) -> Result<()> {
        match step {
            Step::SettleTopic { ops, partition, items } => match result {
                Ok(Reply::Topic { name, config, missing }) => {
                    if missing || partition >= config.partitions {
                        // No such partition holds a lease: each receipt settles nothing.
                        for each in ops {
                            self.finish(each, Ok(Reply::Bool(false)));
                        }
                    } else {
                        self.known.insert(name.clone(), config.clone());
                        self.settle_in(op, ops, (&name, &config), partition, items);
                    }
                }
                other => {
                    let error = other.err().unwrap_or_else(unexpected);
                    for each in ops {
                        self.finish(each, Err(error.clone()));
                    }
                }
            },
            Step::Settle { ops } => match result {
                Ok(Reply::Settled(list)) if list.len() == ops.len() => {
                    for (each, outcome) in ops.into_iter().zip(list) {
                        self.finish(each, outcome.map(Reply::Bool));
                    }
                }
                // The call failed: each of its acks and retries does.
                other => {
                    let error = other.err().unwrap_or_else(unexpected);
                    for each in ops {
                        self.finish(each, Err(error.clone()));
                    }
                }
            },
            Step::Call => self.finish(op, result),
            Step::Settings { topics, create, mut found, then } => {
                let (name, config, missing) = match result? {
                    Reply::Topic { name, config, missing } => (name, config, missing),
                    // Every topic's settings, for stats.
                    Reply::Settings(list) => {
                        for (name, config) in &list {
                            self.known.insert(name.clone(), config.clone());
                        }
                        return self.proceed(op, list, then);
                    }
                    _ => return Err(unexpected()),
                };
                if !missing {
                    self.known.insert(name.clone(), config.clone());
                }
                found.push((name, config));
                let rest = topics.into_iter().skip(1).collect();
                self.steps.insert(op, Step::Settings { topics: rest, create, found, then });
                self.next_settings(op);
            }
            Step::Sent { missing } => {
                let reply = result?;
                match missing {
                    // Stored: the topic is made now (as the object already did for
                    // its own partition), so the directory lists it.
                    Some(topic) => {
                        self.steps.insert(op, Step::Made { reply });
                        self.directory(op, Call::Topic { name: topic, partitions: None, create: true });
                    }
                    None => self.finish(op, Ok(reply)),
                }
            }
            Step::Made { reply } => {
                if let Reply::Topic { name, config, missing: false } = result? {
                    self.known.insert(name, config);
                }
                self.finish(op, Ok(reply));
            }
            Step::Stats { topics, mut parts, left } => {
                let Reply::Stats(stats) = result? else { return Err(unexpected()) };
                parts[part] = Some(*stats);
                if left > 1 {
                    self.steps.insert(op, Step::Stats { topics, parts, left: left - 1 });
                } else {
                    self.finish(op, Ok(Reply::Stats(Box::new(merge_stats(&topics, parts.into_iter().flatten().collect())))));
                }
            }
            Step::RedriveChecked { from, limit, offsets } => {
                result?;
                self.steps.insert(op, Step::Settings { topics: Vec::new(), create: false, found: Vec::new(), then: Then::Redrive { from, limit, offsets } });
                self.directory(op, Call::Settings);
            }
            Step::Purge { topic, partition, removed } => {
                let Reply::Count(n) = result? else { return Err(unexpected()) };
                self.purge_next(op, topic, partition + 1, removed + n);
            }
            Step::Redrive { from, limit, offsets, partition, moved } => {
                let Reply::Count(n) = result? else { return Err(unexpected()) };
                self.redrive_next(op, from, limit.map(|l| l.saturating_sub(n)), offsets, partition + 1, moved + n);
            }
            Step::Joins { consumer, subscriptions, left } => {
                result?;
                if left > 1 {
                    self.steps.insert(op, Step::Joins { consumer, subscriptions, left: left - 1 });
                } else {
                    self.pull_mut(consumer)?.subscriptions.extend(subscriptions);
                    self.finish(op, Ok(Reply::Done));
                }
            }
            Step::Receive { consumer, max, asking, shares, mut got, left, received } => {
                let Reply::Deliveries(list) = result? else { return Err(unexpected()) };
                got[part] = Some(list);
                self.steps.insert(op, Step::Receive { consumer, max, asking, shares, got, left: left - 1, received });
                if left == 1 {
                    self.receive_answered(op)?;
                }
            }
        }
        Ok(())
    }
}

/// `topic`'s settings, refused when it has no partition `partition`.
fn check_partition(topic: (String, TopicConfig), partition: u32) -> Result<(String, TopicConfig)> {
    if partition >= topic.1.partitions {
        return Err(FerryError::new(
            ErrorCode::UnknownTopic,
            format!("partition {partition} of topic '{}' does not exist: the topic has {} partition(s)", topic.0, topic.1.partitions),
        ));
    }
    Ok(topic)
}

fn not_ours(consumer: ConsumerId) -> FerryError {
    FerryError::invalid(format!("consumer {consumer} is not one of this client's"))
}

fn unexpected() -> FerryError {
    FerryError::storage("an object of the bus answered with something else")
}

/// The partition of message `index` of a send to a topic of `partitions`: its
/// `partition`, else Kafka's for its key, else (at the edge, so that a repeated
/// id meets the first in the object that keeps ids) the same for its id, else
/// round-robin from `round_robin`.
pub fn route(message: &OutgoingMessage, index: usize, partitions: u32, round_robin: &mut u32) -> Result<u32> {
    if let Some(p) = message.partition {
        if p >= partitions {
            return Err(FerryError::new(ErrorCode::UnknownTopic, format!("messages[{index}].partition {p} does not exist: the topic has {partitions} partition(s)")));
        }
        return Ok(p);
    }
    match message.key.as_deref().or(message.id.as_deref()) {
        Some(key) => Ok(partition_for_key(key, partitions)),
        None => {
            let p = *round_robin % partitions;
            *round_robin = round_robin.wrapping_add(1);
            Ok(p)
        }
    }
}

/// One `stats()` from the partitions' own, each asked of its object: each topic
/// once with its partitions in order, one entry per group and topic, and each
/// member once, last seen when any object last saw it.
pub fn merge_stats(topics: &[(String, TopicConfig)], parts: Vec<Stats>) -> Stats {
    let mut merged: Vec<TopicStats> = topics.iter().map(|(t, _)| TopicStats { topic: t.as_str().into(), dead_letter: false, partitions: Vec::new() }).collect();
    let mut groups: VecMap<(String, String), GroupStats> = VecMap::new();
    let mut members: VecMap<(Name, Name), u64> = VecMap::new();
    for stats in parts {
        for t in stats.topics {
            if let Some(m) = merged.iter_mut().find(|m| m.topic == t.topic) {
                m.dead_letter |= t.dead_letter;
                m.partitions.extend(t.partitions);
            }
        }
        for m in stats.members {
            let seen = members.get_or_default((m.group_id, m.member_id));
            *seen = (*seen).max(m.last_seen_ms);
        }
        for g in stats.groups {
            let entry = groups.get_or_insert_with((g.group_id.to_string(), g.topic.to_string()), || GroupStats {
                group_id: g.group_id.clone(),
                topic: g.topic.clone(),
                dead_lettered: 0,
                partitions: Vec::new(),
            });
            entry.dead_lettered += g.dead_lettered;
            entry.partitions.extend(g.partitions);
        }
    }
    for t in &mut merged {
        sort_by(&mut t.partitions, |a, b| a.partition.cmp(&b.partition));
    }
    let mut groups: Vec<GroupStats> = groups.into_iter().map(|(_, g)| g).collect();
    for g in &mut groups {
        sort_by(&mut g.partitions, |a, b| a.partition.cmp(&b.partition));
    }
    let members = members.into_iter().map(|((group_id, member_id), last_seen_ms)| MemberStats { group_id, member_id, last_seen_ms }).collect();
    Stats { topics: merged, groups, members }
}
