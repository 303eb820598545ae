//! The native driver: runs the engine against a [`Store`] and a [`Clock`], with
//! consumers whose handlers are Rust closures.
//!
//! Every public operation of [`Bus`] is one engine operation followed by one
//! commit, so it returns only once its writes are stored. [`Bus::run_once`] is
//! one round of the consumer loop: housekeeping and heartbeats, the handlers for
//! the deliveries polled last round (under partition ordering a run of up to
//! `maxBatchSize` messages per partition, handled in order), then one commit
//! holding both their acks and failures and the leases of the next round's
//! deliveries. A lease is therefore
//! always stored before its message is handled, with one commit per round.
//!
//! # Shutdown
//!
//! [`Bus::stop`] takes a consumer out of its group at once (its partitions move,
//! nothing of it is in flight between rounds). [`Bus::close`] stops every consumer;
//! any later call fails with `CLOSED`. Dropping a `Bus` without closing it is a
//! crash: its members keep their partitions until their session times out.
#![forbid(unsafe_code)]

mod block_on;
mod clock;

pub use block_on::block_on;
pub use clock::{Clock, ManualClock, SystemClock};

use crate::core::{
    BusConfig, ConsumerConfig, Delivery, Engine, ErrorCode, FerryError, Name, Ordering, OutgoingMessage, PollLimit, RecordMetadata, Result, SeekTo, Stats, Subscription,
    TopicConfig, TopicInfo,
};
use std::cell::{Ref, RefCell};

use crate::store::{self, Replica, Store};

/// Deliveries leased for a consumer (by index) and not handled yet.
type Batch = (usize, Vec<Delivery>);

/// What a handler made of a delivery, and when: settled with the engine in the
/// round's commit.
struct Handled {
    consumer: usize,
    delivery: Delivery,
    outcome: HandlerResult,
    now_ms: u64,
}

/// What a handler returns: `Err(reason)` is a failed attempt.
pub type HandlerResult = std::result::Result<(), String>;

type Handler = Box<dyn FnMut(&Delivery) -> HandlerResult>;

/// One consumer: a member of a group, with its handler.
struct Consumer {
    group: String,
    member: String,
    subscriptions: Vec<Subscription>,
    config: ConsumerConfig,
    handler: Handler,
    heartbeat_due_ms: u64,
}

/// Identifies a consumer of a [`Bus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerId(usize);

pub struct Bus<S: Store, C: Clock> {
    replica: RefCell<Replica>,
    store: S,
    clock: C,
    consumers: Vec<Option<Consumer>>,
    /// Distinguishes this bus's members from other contexts' in member ids.
    context_id: u64,
    /// Deliveries whose leases are stored, for the next round's handlers.
    leased: Vec<Batch>,
    closed: bool,
}

impl<S: Store, C: Clock> Bus<S, C> {
    /// Opens the bus stored in `store`. `seed` drives retry jitter and member ids.
    pub fn open(store: S, clock: C, config: BusConfig, seed: u64) -> Result<Self> {
        let replica = RefCell::new(block_on(Replica::open(&store, config, seed))?);
        let mut bus = Bus { replica, store, clock, consumers: Vec::new(), context_id: seed, leased: Vec::new(), closed: false };
        // A new bus stores its schema version before anything else.
        bus.operation(|_, _| Ok(()))?;
        Ok(bus)
    }

    /// The engine as of the last commit, for inspection.
    pub fn engine(&self) -> Ref<'_, Engine> {
        Ref::map(self.replica.borrow(), Replica::engine)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs one engine operation in one commit ([`store::commit`]); a refused
    /// operation changes nothing.
    fn operation<T>(&mut self, f: impl FnOnce(&mut Engine, u64) -> Result<T>) -> Result<T> {
        self.check_open()?;
        block_on(store::commit(&self.replica, &self.store, || self.clock.now_ms(), f))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(FerryError::new(ErrorCode::Closed, "the bus was closed"));
        }
        Ok(())
    }

    pub fn create_topic(&mut self, name: &str, config: TopicConfig) -> Result<bool> {
        self.operation(|e, _| e.create_topic(name, config))
    }

    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.check_open()?;
        Ok(self.engine().topics())
    }

    /// Sends `messages` to `topic`, atomically; returns once they are stored.
    pub fn send(&mut self, topic: &str, messages: &[OutgoingMessage]) -> Result<Vec<RecordMetadata>> {
        self.operation(|e, now| e.send(topic, messages, now))
    }

    /// Sends one message.
    pub fn publish(&mut self, topic: &str, message: OutgoingMessage) -> Result<RecordMetadata> {
        let mut results = self.send(topic, std::slice::from_ref(&message))?;
        results.pop().ok_or_else(|| FerryError::storage("send returned no metadata"))
    }

    pub fn stats(&self) -> Result<Stats> {
        self.check_open()?;
        Ok(self.engine().stats())
    }

    pub fn redrive(&mut self, from: &str, limit: Option<u64>) -> Result<u64> {
        self.operation(|e, now| e.redrive(from, limit, &[], now))
    }

    /// Adds a consumer to `group`: it joins at once, and its handler is called from
    /// [`Bus::run_once`] for every message its partitions hand out.
    pub fn subscribe(
        &mut self,
        group: &str,
        subscriptions: Vec<Subscription>,
        config: ConsumerConfig,
        handler: impl FnMut(&Delivery) -> HandlerResult + 'static,
    ) -> Result<ConsumerId> {
        let member = format!("{group}-{:x}-{}", self.context_id, self.consumers.len());
        self.operation(|e, now| e.join(group, &member, &subscriptions, &config, now))?;
        let heartbeat_due_ms = self.clock.now_ms().saturating_add(config.heartbeat_interval_ms);
        self.consumers.push(Some(Consumer { group: group.to_string(), member, subscriptions, config, handler: Box::new(handler), heartbeat_due_ms }));
        Ok(ConsumerId(self.consumers.len() - 1))
    }

    /// Moves the position of consumer `id`'s group in one partition (KafkaJS's
    /// `seek`, stored when it returns; see [`Engine::seek`]): the group next
    /// consumes the returned offset. The group's deliveries of that partition
    /// leased and not handled yet are abandoned, no attempt counted.
    ///
    /// ```
    /// use ferry::core::{BusConfig, ConsumerConfig, OutgoingMessage, SeekTo, Subscription, TopicConfig, Value};
    /// use ferry::runtime::{Bus, ManualClock};
    /// use ferry::store::MemoryStore;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let mut bus = Bus::open(MemoryStore::new(), ManualClock::new(1_000), BusConfig::default(), 1)?;
    /// bus.create_topic("events", TopicConfig { retention_ms: Some(3_600_000), ..TopicConfig::with_partitions(1) })?;
    /// bus.send("events", &["a", "b", "c"].map(|v| OutgoingMessage::new(Value::string(v))))?;
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let log = seen.clone();
    /// let id = bus.subscribe("replay", vec![Subscription::new("events", true)], ConsumerConfig::default(), move |d| {
    ///     log.borrow_mut().push(d.message.offset);
    ///     Ok(())
    /// })?;
    /// bus.run_until(1_000, |bus| bus.stats().unwrap().groups[0].partitions[0].committed_offset == 3)?;
    /// assert_eq!(bus.seek(id, "events", 0, SeekTo::Offset(1))?, 1);
    /// bus.run_until(1_000, |bus| bus.stats().unwrap().groups[0].partitions[0].committed_offset == 3)?;
    /// assert_eq!(*seen.borrow(), [0, 1, 2, 1, 2]);
    /// # Ok::<(), ferry::core::FerryError>(())
    /// ```
    pub fn seek(&mut self, id: ConsumerId, topic: &str, partition: u32, to: SeekTo) -> Result<u64> {
        let Some(group) = self.consumers.get(id.0).and_then(Option::as_ref).map(|c| c.group.clone()) else {
            return Err(FerryError::invalid("seek: the consumer was stopped"));
        };
        let offset = self.operation(|e, _| e.seek(&group, topic, partition, to))?;
        let consumers = &self.consumers;
        for (index, deliveries) in &mut self.leased {
            if consumers.get(*index).and_then(Option::as_ref).is_some_and(|c| c.group == group) {
                deliveries.retain(|d| !(*d.topic == *topic && d.partition == partition));
            }
        }
        Ok(offset)
    }

    /// Takes a consumer out of its group once the deliveries it holds are handled;
    /// its partitions move to the others.
    pub fn stop(&mut self, id: ConsumerId) -> Result<()> {
        let (held, others): (Vec<Batch>, Vec<Batch>) = std::mem::take(&mut self.leased).into_iter().partition(|(index, _)| *index == id.0);
        self.leased = others;
        let handled = self.handle(held);
        let Some(consumer) = self.consumers.get_mut(id.0).and_then(Option::take) else { return Ok(()) };
        self.operation(|e, now| {
            settle(e, &handled, |_| Some(&consumer));
            e.leave(&consumer.group, &consumer.member, now);
            Ok(())
        })
    }

    /// Stops every consumer; later calls fail with `CLOSED`.
    pub fn close(&mut self) -> Result<()> {
        for id in 0..self.consumers.len() {
            self.stop(ConsumerId(id))?;
        }
        self.closed = true;
        Ok(())
    }

    /// Calls the handlers for `batches`, in order. A run's messages are handled in
    /// order, and a failure ends its run: the engine gives the rest back when the
    /// failure is settled.
    fn handle(&mut self, batches: Vec<Batch>) -> Vec<Handled> {
        let mut handled = Vec::new();
        for (index, deliveries) in batches {
            let Some(consumer) = self.consumers.get_mut(index).and_then(Option::as_mut) else { continue };
            let runs = consumer.config.ordering == Ordering::Partition;
            let mut failed_run: Option<(Name, u32)> = None;
            for delivery in deliveries {
                if failed_run.as_ref().is_some_and(|(topic, p)| *topic == delivery.topic && *p == delivery.partition) {
                    continue;
                }
                let outcome = (consumer.handler)(&delivery);
                if runs && outcome.is_err() {
                    failed_run = Some((delivery.topic.clone(), delivery.partition));
                }
                handled.push(Handled { consumer: index, delivery, outcome, now_ms: self.clock.now_ms() });
            }
        }
        handled
    }

    /// One round of the consumer loop; returns how many messages handlers settled.
    pub fn run_once(&mut self) -> Result<usize> {
        self.check_open()?;
        let leased = std::mem::take(&mut self.leased);
        let handled = self.handle(leased);
        let Bus { replica, store, clock, consumers, .. } = self;
        // Settlements and the next leases are stored together, or neither is: a
        // lost ack means a redelivery after the lease runs out (at least once).
        let (settled, next) = block_on(store::commit(
            replica,
            store,
            || clock.now_ms(),
            |engine, now_ms| {
                let settled = settle(engine, &handled, |index| consumers.get(index).and_then(Option::as_ref));
                let mut next = Vec::new();
                for (index, consumer) in consumers.iter_mut().enumerate() {
                    let Some(c) = consumer else { continue };
                    let heartbeat = c.heartbeat_due_ms <= now_ms;
                    let limit = PollLimit::runs(c.config.concurrency as usize, c.config.batch_size_max as usize);
                    let deliveries = engine.consume_round(&c.group, &c.member, &c.subscriptions, &c.config, heartbeat, limit, &[], now_ms)?;
                    if heartbeat {
                        c.heartbeat_due_ms = now_ms.saturating_add(c.config.heartbeat_interval_ms);
                    }
                    if !deliveries.is_empty() {
                        next.push((index, deliveries));
                    }
                }
                Ok((settled, next))
            },
        ))?;
        self.leased = next;
        Ok(settled)
    }

    /// Runs the consumer loop until `done` says so or `timeout_ms` passes, sleeping
    /// (on this bus's clock) until the next thing is due whenever there is nothing
    /// to do. Returns whether `done` was reached.
    pub fn run_until(&mut self, timeout_ms: u64, mut done: impl FnMut(&Self) -> bool) -> Result<bool> {
        let deadline_ms = self.clock.now_ms().saturating_add(timeout_ms);
        loop {
            if done(self) {
                return Ok(true);
            }
            let now_ms = self.clock.now_ms();
            if now_ms >= deadline_ms {
                return Ok(false);
            }
            if self.run_once()? == 0 && self.leased.is_empty() {
                let heartbeat = self.consumers.iter().flatten().map(|c| c.heartbeat_due_ms).min();
                let wake_ms = [self.engine().next_due_ms(), heartbeat, Some(deadline_ms)].into_iter().flatten().min().unwrap_or(deadline_ms);
                // Something due now was not deliverable (a partition held by a
                // message in flight elsewhere): wait a little rather than spin.
                self.clock.sleep_until(wake_ms.max(now_ms + 1));
            }
        }
    }
}

/// Settles what handlers made of their deliveries with the engine; returns how
/// many the engine counted (a lease that ran out is not).
fn settle<'a>(engine: &mut Engine, handled: &[Handled], consumer: impl Fn(usize) -> Option<&'a Consumer>) -> usize {
    let mut settled = 0;
    for h in handled {
        let Some(consumer) = consumer(h.consumer) else { continue };
        let receipt = h.delivery.receipt();
        let counted = match &h.outcome {
            Ok(()) => engine.ack(&consumer.group, &consumer.member, &receipt, h.now_ms),
            Err(reason) => engine.fail(&consumer.group, &consumer.member, &receipt, reason, h.now_ms),
        };
        settled += usize::from(counted);
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{OutgoingMessage, Value};
    use crate::store::MemoryStore;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Two buses on clones of one memory store are two contexts of one bus: each
    /// commit first brings in what the other stored.
    #[test]
    fn two_buses_on_one_store_see_each_others_commits() -> Result<()> {
        let store = MemoryStore::new();
        let mut producer = Bus::open(store.clone(), ManualClock::new(1_000), BusConfig::default(), 1)?;
        let mut consumer = Bus::open(store, ManualClock::new(1_000), BusConfig::default(), 2)?;
        producer.create_topic("events", TopicConfig::with_partitions(2))?;
        // Made by the other bus: here it exists, with its partition count.
        assert!(!consumer.create_topic("events", TopicConfig::with_partitions(2))?);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        consumer.subscribe("readers", vec![Subscription::new("events", true)], ConsumerConfig::default(), move |d| {
            log.borrow_mut().push(d.message.value.text().into_owned());
            Ok(())
        })?;
        producer.send("events", &["a", "b", "c"].map(|v| OutgoingMessage::new(Value::string(v))))?;
        assert!(consumer.run_until(1_000, |_| seen.borrow().len() == 3)?);
        seen.borrow_mut().sort();
        assert_eq!(*seen.borrow(), ["a", "b", "c"]);
        // The consumer's acks reach the producer's view with its next commit.
        producer.send("events", &[OutgoingMessage::new(Value::string("d"))])?;
        let lag: u64 = producer.stats()?.groups[0].partitions.iter().map(|p| p.lag).sum();
        assert_eq!(lag, 1);
        Ok(())
    }
}
