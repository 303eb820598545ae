// Benchmarks in the browser, each next to a baseline measured on the same page in
// the same run. `make bench` drives this page in headless Chromium and prints the
// results; opening it by hand shows them too. Figures only: nothing here fails.
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

async function consumeAndAck(Bus) {
  const bus = await Bus.open({ name: unique('consume') });
  const count = 5000;
  const producer = bus.producer();
  for (let i = 0; i < count / 100; i++) await producer.send({ topic: 'bench', messages: Array.from({ length: 100 }, () => ({ value: VALUE })) });
  const consumer = bus.consumer({ groupId: 'bench', ordering: 'none', concurrency: 100 });
  await consumer.subscribe({ topic: 'bench', fromBeginning: true });
  let handled = 0;
  const start = performance.now();
  await new Promise((resolve) =>
    consumer.run({
      eachMessage: async () => {
        if (++handled === count) resolve();
      },
    }),
  );
  const ms = performance.now() - start;
  await bus.close();
  return rate(count, ms);
}

async function main() {
  const importStart = performance.now();
  const { Bus } = await import('ferry');
  const bus = await Bus.open({ name: unique('open') });
  const importToOpenMs = performance.now() - importStart;
  await bus.close();
  const results = { importToOpenMs, runs: RUNS };
  for (const [label, f] of [
    ['rawIndexedDb', rawIndexedDb],
    ['sendBatches100', sendBatches],
    ['concurrentSends1000', concurrentSends],
    ['consumeAck', consumeAndAck],
  ]) {
    const samples = [];
    for (let i = 0; i < RUNS; i++) samples.push(await f(Bus));
    results[label] = median(samples);
  }
  document.querySelector('#out').textContent = JSON.stringify(results, null, 2);
  window.benchResults = results;
}

main().catch((e) => {
  document.querySelector('#out').textContent = String(e?.stack ?? e);
  window.benchResults = { error: String(e?.stack ?? e) };
});
