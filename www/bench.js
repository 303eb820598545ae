// Benchmarks in the browser, each next to a baseline measured on the same page in
// the same run. `make bench` drives this page in headless Chromium and prints the
// results; opening it by hand shows them too. Figures only: nothing here fails on
// timing, but a consume case throws when a message is lost, misplaced or, under
// partition ordering, handled out of order.
const VALUE = 'v'.repeat(256);
const MESSAGES = 10_000;
const RUNS = 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const unique = (label) => `bench-${label}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
const rate = (count, ms) => (count / ms) * 1000;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Raw IndexedDB: one record per message, all in one transaction. */
async function rawIndexedDb() {
  const name = unique('raw');
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore('messages', { autoIncrement: true });
  const db = await request(open);
  const start = performance.now();
  const tx = db.transaction('messages', 'readwrite');
  const store = tx.objectStore('messages');
  for (let i = 0; i < MESSAGES; i++) store.put({ value: VALUE, key: `k${i % 16}`, timestamp: Date.now() });
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  const ms = performance.now() - start;
  db.close();
  indexedDB.deleteDatabase(name);
  return rate(MESSAGES, ms);
}

async function sendBatches(Bus) {
  const bus = await Bus.open({ name: unique('batches') });
  const producer = bus.producer();
  const batch = Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 16}`, value: VALUE }));
  const start = performance.now();
  for (let i = 0; i < MESSAGES / 100; i++) await producer.send({ topic: 'bench', messages: batch });
  const ms = performance.now() - start;
  await bus.close();
  return rate(MESSAGES, ms);
}

async function concurrentSends(Bus) {
  const bus = await Bus.open({ name: unique('concurrent') });
  const count = 1000;
  const start = performance.now();
  await Promise.all(Array.from({ length: count }, (_, i) => bus.publish('bench', VALUE, { key: `k${i % 16}` })));
  const ms = performance.now() - start;
  await bus.close();
  return rate(count, ms);
}

// The consume cases: CONSUME_MESSAGES preloaded messages, pinned round-robin to the
// topic's partitions. Each value names its partition and its sequence number there,
// which is also its offset, so every delivery is checked for where it came from.
const CONSUME_MESSAGES = 5000;
const CONSUME_PARTITIONS = 8;
const labelled = (partition, seq) => `p${partition}-${seq}-`.padEnd(VALUE.length, 'v');
// Waiting this long for the last message means one is lost or stuck, not slow.
const GIVE_UP_MS = 60_000;

/** A new bus holding a `partitions`-partition topic 'bench' of `count` labelled messages, sent 100 at a time. */
async function preloaded(Bus, label, partitions, count) {
  const bus = await Bus.open({ name: unique(label) });
  await bus.createTopic('bench', { partitions });
  const producer = bus.producer();
  for (let i = 0; i < count; i += 100) {
    const messages = [];
    for (let j = i; j < Math.min(count, i + 100); j++) {
      const partition = j % partitions;
      messages.push({ partition, value: labelled(partition, Math.floor(j / partitions)) });
    }
    await producer.send({ topic: 'bench', messages });
  }
  return bus;
}

/**
 * What one consumer saw: checks each delivery's place and, when `ordered`, that each
 * partition's messages came in offset order with none skipped. Throws on a wrong
 * result; a repeat (at least once) is only counted.
 */
function deliveryCheck(count, ordered) {
  const seen = new Set();
  const next = new Map(); // partition -> the offset it must deliver next, under ordering
  const check = {
    handled: 0,
    repeats: 0,
    see(partition, message) {
      if (message.value !== labelled(partition, message.offset)) {
        throw new Error(`partition ${partition} offset ${message.offset} delivered ${String(message.value).slice(0, 16)}`);
      }
      const key = `${partition}:${message.offset}`;
      if (seen.has(key)) {
        check.repeats++;
        return;
      }
      const expected = next.get(partition) ?? 0;
      if (ordered && message.offset !== expected) throw new Error(`partition ${partition}: offset ${message.offset} handled before offset ${expected}`);
      next.set(partition, message.offset + 1);
      seen.add(key);
      check.handled++;
    },
    done: () => seen.size === count,
  };
  return check;
}

/**
 * Consume + ack of CONSUME_MESSAGES preloaded messages by one consumer with
 * `options`, through eachMessage or (`batches`) eachBatch: msg/s from run() to the
 * last message handled, and for eachBatch the mean messages per batch.
 */
async function consume(Bus, { partitions, options, batches = false }) {
  const count = CONSUME_MESSAGES;
  const bus = await preloaded(Bus, 'consume', partitions, count);
  const consumer = bus.consumer({ groupId: 'bench', ...options });
  await consumer.subscribe({ topic: 'bench', fromBeginning: true });
  const check = deliveryCheck(count, options.ordering !== 'none');
  let calls = 0;
  const start = performance.now();
  await new Promise((resolve, reject) => {
    const giveUp = setTimeout(() => reject(new Error(`consume ${JSON.stringify(options)}: ${check.handled} of ${count} handled after ${GIVE_UP_MS / 1000} s`)), GIVE_UP_MS);
    const see = (partition, message) => {
      try {
        check.see(partition, message);
      } catch (e) {
        reject(e);
      }
      if (!check.done()) return;
      clearTimeout(giveUp);
      resolve();
    };
    consumer.run(
      batches
        ? {
            eachBatch: async ({ batch }) => {
              calls++;
              for (const message of batch.messages) see(batch.partition, message);
            },
          }
        : { eachMessage: async ({ partition, message }) => see(partition, message) },
    );
  });
  const ms = performance.now() - start;
  await bus.close();
  if (check.repeats) console.warn(`consume ${JSON.stringify(options)}: ${check.repeats} repeated deliveries`);
  return { rate: rate(count, ms), perBatch: batches ? count / calls : null, repeats: check.repeats };
}

const consumeCases = {
  // The original case: one partition, unordered, 100 handlers at once.
  consumeAck: (Bus) => consume(Bus, { partitions: 1, options: { ordering: 'none', concurrency: 100 } }),
  consumeNone8: (Bus) => consume(Bus, { partitions: CONSUME_PARTITIONS, options: { ordering: 'none', concurrency: 100 } }),
  consumePartition8: (Bus) => consume(Bus, { partitions: CONSUME_PARTITIONS, options: { ordering: 'partition', concurrency: 8 } }),
  consumeBatch8: (Bus) => consume(Bus, { partitions: CONSUME_PARTITIONS, options: { ordering: 'partition', concurrency: 8 }, batches: true }),
};

async function main() {
  const importStart = performance.now();
  const { Bus } = await import('ferry');
  const bus = await Bus.open({ name: unique('open') });
  const importToOpenMs = performance.now() - importStart;
  await bus.close();
  const results = { importToOpenMs, runs: RUNS, consumeMessages: CONSUME_MESSAGES, consumePartitions: CONSUME_PARTITIONS };
  const cases = {
    rawIndexedDb,
    sendBatches100: sendBatches,
    concurrentSends1000: concurrentSends,
    ...consumeCases,
  };
  // Cases interleaved run by run, so that drift over the page's life hits them alike.
  const samples = Object.fromEntries(Object.keys(cases).map((label) => [label, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [label, f] of Object.entries(cases)) samples[label].push(await f(Bus));
  }
  for (const [label, xs] of Object.entries(samples)) {
    if (typeof xs[0] === 'number') {
      results[label] = median(xs);
      continue;
    }
    results[label] = median(xs.map((x) => x.rate));
    results[`${label}Repeats`] = xs.reduce((n, x) => n + x.repeats, 0);
    if (xs[0].perBatch !== null) results[`${label}PerBatch`] = median(xs.map((x) => x.perBatch));
  }
  document.querySelector('#out').textContent = JSON.stringify(results, null, 2);
  window.benchResults = results;
}

main().catch((e) => {
  document.querySelector('#out').textContent = String(e?.stack ?? e);
  window.benchResults = { error: String(e?.stack ?? e) };
});
