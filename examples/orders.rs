//! The orders scenario from ferry's mission, natively on the memory store: an order
//! service sends orders keyed by order id; a fulfilment group and a billing group
//! each receive every order; the payment provider is flaky, so billing retries with
//! exponential backoff, and one order that fails all 5 attempts is dead-lettered
//! with its reason, then redriven once the "bug" is fixed.
//!
//! `make demo` runs it (`cargo run --release --example orders`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use ferry::core::{BusConfig, ConsumerConfig, OutgoingMessage, RetryPolicy, Stats, Subscription, TopicConfig, Value};
use ferry::runtime::{Bus, SystemClock};
use ferry::store::MemoryStore;

const ORDERS: u32 = 8;
/// Fails twice, then the provider recovers.
const FLAKY_ORDER: u32 = 3;
/// Fails every attempt until the bug is fixed: dead-lettered after 5.
const BROKEN_ORDER: u32 = 7;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let log = move |who: &str, what: String| println!("{:>7.3}s  {who:<11} {what}", started.elapsed().as_secs_f64());

    let mut bus = Bus::open(MemoryStore::new(), SystemClock, BusConfig::default(), 42)?;
    bus.create_topic("order.placed", TopicConfig::with_partitions(4))?;
    log("bus", "opened on the memory store; topic order.placed has 4 partitions".into());

    // Short backoffs so the demo takes seconds: 100, 200, 400, 800 ms, uniform in [d/2, d].
    let retry = RetryPolicy { max_attempts: 5, initial_backoff_ms: 100, multiplier: 2.0, max_backoff_ms: 2_000, jitter: true };
    let billing_config = ConsumerConfig { retry, ..ConsumerConfig::default() };

    let fulfilled = Rc::new(Cell::new(0u32));
    let fulfilled_count = fulfilled.clone();
    bus.subscribe("fulfilment", vec![Subscription::new("order.placed", false)], ConsumerConfig::default(), move |d| {
        fulfilled_count.set(fulfilled_count.get() + 1);
        log("fulfilment", format!("schedules {} (partition {}, offset {})", d.message.value.text(), d.partition, d.message.offset));
        Ok(())
    })?;

    let provider_fixed = Rc::new(Cell::new(false));
    let fixed = provider_fixed.clone();
    let last_attempt_at: Rc<RefCell<HashMap<u64, Instant>>> = Rc::default();
    let billed = Rc::new(Cell::new(0u32));
    let billed_count = billed.clone();
    bus.subscribe("billing", vec![Subscription::new("order.placed", false)], billing_config, move |d| {
        let order: u32 = d.message.key.as_deref().and_then(|k| k.strip_prefix("order-")).and_then(|n| n.parse().ok()).unwrap_or(0);
        let waited = last_attempt_at.borrow_mut().insert(d.message.offset * 16 + u64::from(d.partition), Instant::now());
        let waited = waited.map(|t| format!(" after waiting {} ms", t.elapsed().as_millis())).unwrap_or_default();
        let fails = (order == FLAKY_ORDER && d.attempt <= 2) || (order == BROKEN_ORDER && !fixed.get());
        if fails {
            log("billing", format!("order-{order} attempt {}{waited}: payment provider answered 503", d.attempt));
            return Err(format!("payment provider answered 503 for order-{order}"));
        }
        billed_count.set(billed_count.get() + 1);
        log("billing", format!("order-{order} attempt {}{waited}: charged", d.attempt));
        Ok(())
    })?;

    for n in 1..=ORDERS {
        let order = format!(r#"{{"id":"order-{n}","total":{}}}"#, 10 * n);
        let meta = bus.publish("order.placed", OutgoingMessage::new(Value::json(order)).with_key(format!("order-{n}")).with_id(format!("order-{n}")))?;
        log("shop", format!("order-{n} placed -> partition {} offset {}", meta.partition, meta.offset));
    }
    // A retried request from the shop: the same idempotency key is not stored twice.
    let again = bus.publish("order.placed", OutgoingMessage::new(Value::json(r#"{"id":"order-1","total":10}"#)).with_key("order-1").with_id("order-1"))?;
    log("shop", format!("order-1 placed again (a retried request): duplicate = {}", again.duplicate));

    let settled = |bus: &Bus<MemoryStore, SystemClock>| {
        bus.stats().map(|s| s.groups.iter().filter(|g| g.topic.as_ref() == "order.placed").all(|g| g.partitions.iter().all(|p| p.lag == 0))).unwrap_or(false)
    };
    bus.run_until(30_000, settled)?;
    print_stats(&bus.stats()?);

    log("ops", "the payment bug is fixed; redriving order.placed.dlq".into());
    provider_fixed.set(true);
    let moved = bus.redrive("order.placed.dlq", None)?;
    log("ops", format!("{moved} dead letter(s) moved back to order.placed (fulfilment sees them again: handlers are idempotent)"));
    bus.run_until(30_000, settled)?;

    print_stats(&bus.stats()?);
    log("bus", format!("fulfilment handled {} deliveries, billing charged {} orders", fulfilled.get(), billed.get()));
    bus.close()?;
    Ok(())
}

fn print_stats(stats: &Stats) {
    println!();
    println!("  topic                partition  low  high  depth  expired");
    for t in &stats.topics {
        for p in &t.partitions {
            println!("  {:<20} {:>9} {:>4} {:>5} {:>6} {:>8}", t.topic, p.partition, p.low_offset, p.high_offset, p.depth, p.expired);
        }
    }
    println!("  group       topic          dead-lettered  partition  committed  lag  in-flight  retrying  owner");
    for g in &stats.groups {
        for p in &g.partitions {
            let owner = p.owner.as_deref().unwrap_or("-");
            println!(
                "  {:<11} {:<14} {:>13} {:>10} {:>10} {:>4} {:>10} {:>9}  {owner}",
                g.group_id, g.topic, g.dead_lettered, p.partition, p.committed_offset, p.lag, p.in_flight, p.retrying
            );
        }
    }
    println!();
}
