//! In-memory throughput: publish -> deliver -> ack through the native driver on the
//! memory store, next to a baseline measured in the same run (a plain `VecDeque`
//! push/pop of the same values), and the memory each retained message costs.
//!
//! `make bench` (or `cargo bench --bench throughput`). Figures only; nothing here
//! fails on timing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

use ferry::core::{BusConfig, ConsumerConfig, Ordering, OutgoingMessage, Subscription, TopicConfig, Value};
use ferry::runtime::{block_on, Bus, ManualClock};
use ferry::store::{commit, MemoryStore, Replica};

/// Counts live heap bytes, to measure what a retained message costs.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), AtomicOrdering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), AtomicOrdering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const VALUE_BYTES: usize = 100;
const MESSAGES: usize = 200_000;
const SEND_BATCH: usize = 100;
const RUNS: usize = 5;
const T0: u64 = 1_700_000_000_000;

fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| (i % 251) as u8).collect()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Messages per second through `VecDeque::push_back` + `pop_front` of owned values.
fn baseline_run() -> f64 {
    let value = value();
    let start = Instant::now();
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    for _ in 0..MESSAGES / SEND_BATCH {
        for _ in 0..SEND_BATCH {
            queue.push_back(value.clone());
        }
        while let Some(v) = queue.pop_front() {
            black_box(v);
        }
    }
    MESSAGES as f64 / start.elapsed().as_secs_f64()
}

/// Messages per second sent in batches of 100, delivered and acked through `Bus`.
fn ferry_run(partitions: u32, ordering: Ordering, concurrency: u32) -> f64 {
    let mut bus = Bus::open(MemoryStore::new(), ManualClock::new(T0), BusConfig::default(), 7).expect("open");
    bus.create_topic("bench", TopicConfig::with_partitions(partitions)).expect("topic");
    let config = ConsumerConfig { ordering, concurrency, ..ConsumerConfig::default() };
    let handled = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let counter = handled.clone();
    bus.subscribe("bench-group", vec![Subscription::new("bench", true)], config, move |d| {
        black_box(&d.message.value);
        counter.set(counter.get() + 1);
        Ok(())
    })
    .expect("subscribe");
    let batch: Vec<OutgoingMessage> = (0..SEND_BATCH).map(|i| OutgoingMessage::new(Value::bytes(value())).with_key(format!("k{i}"))).collect();
    let start = Instant::now();
    for round in 0..MESSAGES / SEND_BATCH {
        bus.send("bench", &batch).expect("send");
        while handled.get() < (round + 1) * SEND_BATCH {
            bus.run_once().expect("run");
        }
    }
    MESSAGES as f64 / start.elapsed().as_secs_f64()
}

/// Heap bytes per retained message beyond its payload (engine + memory store).
fn bytes_per_retained_message() -> (f64, usize) {
    const RETAINED: usize = 100_000;
    let store = MemoryStore::new();
    let replica = RefCell::new(block_on(Replica::open(&store, BusConfig::default(), 1)).expect("open"));
    block_on(commit(&replica, &store, || T0, |e, _| e.create_topic("kept", TopicConfig::default()))).expect("topic");
    let batch: Vec<OutgoingMessage> = (0..SEND_BATCH).map(|_| OutgoingMessage::new(Value::bytes(value()))).collect();
    let before = LIVE_BYTES.load(AtomicOrdering::Relaxed);
    for _ in 0..RETAINED / SEND_BATCH {
        block_on(commit(&replica, &store, || T0, |e, now| e.send("kept", &batch, now))).expect("send");
    }
    let after = LIVE_BYTES.load(AtomicOrdering::Relaxed);
    let per_message = (after - before) as f64 / RETAINED as f64;
    black_box((&replica, &store));
    (per_message - VALUE_BYTES as f64, RETAINED)
}

fn main() {
    println!("ferry native throughput: publish -> deliver -> ack, {MESSAGES} messages of {VALUE_BYTES} bytes, sends of {SEND_BATCH}, median of {RUNS} runs");
    let baseline = median((0..RUNS).map(|_| baseline_run()).collect());
    println!("{:<52} {:>14.0} msg/s", "baseline: VecDeque push_back + pop_front", baseline);
    let cases: [(&str, u32, Ordering, u32); 4] = [
        ("ferry: 1 partition, ordering partition", 1, Ordering::Partition, 1),
        ("ferry: 8 partitions, ordering partition, concurrency 8", 8, Ordering::Partition, 8),
        ("ferry: 1 partition, ordering none, concurrency 100", 1, Ordering::None, 100),
        ("ferry: 8 partitions, ordering none, concurrency 100", 8, Ordering::None, 100),
    ];
    for (label, partitions, ordering, concurrency) in cases {
        let rate = median((0..RUNS).map(|_| ferry_run(partitions, ordering, concurrency)).collect());
        println!("{label:<52} {rate:>14.0} msg/s  ({:.3}x baseline)", rate / baseline);
    }
    let (overhead, retained) = bytes_per_retained_message();
    println!("memory per retained message: payload {VALUE_BYTES} B + {overhead:.1} B overhead (over {retained} retained messages, engine + memory store)");
}
