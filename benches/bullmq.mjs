// What the BullMQ face costs: jobs added and processed per second through
// `ferry/bullmq`, beside the same work through ferry's own API in the same run,
// in Node (memory store) and in a headless Chromium page (IndexedDB).
//
// The work, on a fresh queue (topic) each run: JOBS jobs of about 256 bytes of JSON data
//   - added: `queue.addBulk` of BATCH jobs at a time, one call after another, beside
//     `bus.producer().send` of BATCH messages at a time;
//   - then processed: one `Worker` with `concurrency: 8`, beside one consumer with
//     `concurrency: 8` and `ordering: 'none'` (jobs are independent of each other,
//     as a queue's are), whose `eachMessage` resolving is the ack.
// The add figure is timed from the first call to the last one resolved; the
// process figure from creating the worker (consumer) to the last of the JOBS
// handler calls, with a handler that does nothing but note the job. Opening the
// bus is untimed on both sides. In Node each run opens a bus of its own; in the
// page each side keeps one bus, and so one writer (its SharedWorker), for all its
// runs, as an app does: a writer started for each run would time the compiling
// of the engine in a new worker, not the work. Runs alternate (which side goes
// first swaps every run) after an untimed warm-up run of each, which leaves the
// engine compiled to its fast tier; medians of RUNS runs are printed, and their
// ratio bullmq/ferry (the floor aimed for is 0.80x), with the median of each
// run's own pair beside it. Figures only: nothing here fails on timing; it fails
// when a job is lost (a stall of GIVE_UP_MS), or is left unacked or uncompleted.
//
// `node benches/bullmq.mjs [node] [chromium]` after `make pkg` (both by default).
import { readFile } from 'node:fs/promises';
import { serve } from '../www/serve.mjs';
import { launch, openTestPage } from '../tests/js/browsers.mjs';

const JOBS = 2000;
const BATCH = 100;
const CONCURRENCY = 8;
const RUNS = 5;
const WARM_UP_JOBS = JOBS;
const GIVE_UP_MS = 60_000;

/**
 * One run of one side, in Node or (passed to page.evaluate, so it uses nothing
 * from outside itself) in the page: `{ addMs, processMs, dataBytes }`.
 */
async function measure({ side, ferryModule, bullmqModule, name, queueName, storage, jobs, batch, concurrency, giveUpMs }) {
  const busOptions = storage ? { name, storage } : { name };
  const data = (n) => ({ userId: n, email: `user-${n}@example.com`, template: 'welcome', note: 'x'.repeat(178) });
  const batches = [];
  for (let i = 0; i < jobs; i += batch) batches.push(Array.from({ length: Math.min(batch, jobs - i) }, (_, j) => data(i + j)));
  // Distinct jobs seen: a repeated delivery (at least once) is not counted twice.
  const seen = new Set();
  let timer;
  let allSeen;
  const processed = new Promise((resolve, reject) => {
    allSeen = resolve;
    timer = setTimeout(() => reject(new Error(`${side}: ${seen.size} of ${jobs} jobs processed after ${giveUpMs / 1000} s`)), giveUpMs);
  });
  const handle = (d) => {
    seen.add(d.userId);
    if (seen.size === jobs) allSeen();
  };
  const dataBytes = JSON.stringify(data(jobs - 1)).length;
  try {
    if (side === 'ferry') {
      const { Bus } = await import(ferryModule);
      const bus = await Bus.open(busOptions);
      await bus.createTopic(queueName);
      const producer = bus.producer();
      const t0 = performance.now();
      for (const values of batches) await producer.send({ topic: queueName, messages: values.map((value) => ({ value })) });
      const t1 = performance.now();
      const consumer = bus.consumer({ groupId: queueName, ordering: 'none', concurrency });
      await consumer.subscribe({ topic: queueName, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => handle(message.value) });
      await processed;
      const t2 = performance.now();
      await consumer.stop();
      const group = (await bus.stats()).groups.find((g) => g.groupId === queueName);
      const lag = group.partitions.reduce((n, p) => n + p.lag, 0);
      await bus.close();
      if (lag !== 0) throw new Error(`ferry: every message handled, but the group's lag is ${lag} after stop()`);
      return { addMs: t1 - t0, processMs: t2 - t1, dataBytes };
    }
    const { Queue, Worker } = await import(bullmqModule);
    const queue = new Queue(queueName, { ferry: busOptions });
    await queue.waitUntilReady(); // opens the bus, untimed
    const t0 = performance.now();
    for (const values of batches) await queue.addBulk(values.map((d) => ({ name: 'welcome-email', data: d })));
    const t1 = performance.now();
    const worker = new Worker(queueName, async (job) => handle(job.data), { ferry: busOptions, concurrency });
    await processed;
    const t2 = performance.now();
    await worker.close();
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    await queue.close();
    if (counts.completed !== jobs) throw new Error(`bullmq: every job handled, but the counts after worker.close() are ${JSON.stringify(counts)}`);
    return { addMs: t1 - t0, processMs: t2 - t1, dataBytes };
  } finally {
    clearTimeout(timer);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
let fresh = 0;
const unique = (what) => `bench-bullmq-${what}-${process.pid}-${fresh++}`;

/** Warm-up, then RUNS alternating runs of both sides through `run(options)`: { ferry: [...], bullmq: [...] }. */
async function alternate(run, common) {
  const buses = { ferry: unique('ferry'), bullmq: unique('bullmq') };
  const options = (side, jobs) => ({ ...common, side, name: common.busPerRun ? unique(side) : buses[side], queueName: unique('mailers'), jobs, batch: BATCH, concurrency: CONCURRENCY, giveUpMs: GIVE_UP_MS });
  for (const side of ['ferry', 'bullmq']) await run(options(side, WARM_UP_JOBS));
  const samples = { ferry: [], bullmq: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const side of r % 2 ? ['ferry', 'bullmq'] : ['bullmq', 'ferry']) samples[side].push(await run(options(side, JOBS)));
  }
  return samples;
}

const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(9);
function print(where, samples) {
  console.log(`  ${where}`);
  for (const [label, field] of [
    [`add (addBulk / send, batches of ${BATCH})`, 'addMs'],
    [`process (concurrency ${CONCURRENCY})`, 'processMs'],
  ]) {
    const rates = (side) => samples[side].map((s) => (JOBS * 1000) / s[field]);
    const [ferry, bullmq] = [median(rates('ferry')), median(rates('bullmq'))];
    const paired = median(samples.bullmq.map((s, r) => samples.ferry[r][field] / s[field]));
    console.log(
      `    ${label.padEnd(38)}${fmt(ferry)} jobs/s  ${fmt(bullmq)} jobs/s  ${(bullmq / ferry).toFixed(2)}x  (floor >= 0.80x; each run's pair ${paired.toFixed(2)}x)`,
    );
  }
}

/** The module of `ferry/bullmq` that pages load, as pkg/package.json's exports name it. */
async function bullmqBrowserEntry() {
  const { exports } = JSON.parse(await readFile(new URL('../pkg/package.json', import.meta.url), 'utf8'));
  const entry = exports['./bullmq'];
  const path = typeof entry === 'string' ? entry : (entry?.browser ?? entry?.worker ?? entry?.default);
  if (!path) throw new Error("pkg/package.json exports no './bullmq' for pages");
  return `/pkg/${path.replace(/^\.\//, '')}`;
}

const sections = process.argv.slice(2).length ? process.argv.slice(2) : ['node', 'chromium'];
const unknown = sections.filter((s) => s !== 'node' && s !== 'chromium');
if (unknown.length) throw new Error(`unknown section(s) ${unknown.join(', ')}: node, chromium`);

const started = performance.now();
const results = [];
if (sections.includes('node')) {
  const samples = await alternate(measure, { ferryModule: 'ferry', bullmqModule: 'ferry/bullmq', storage: 'memory', busPerRun: true });
  results.push(['Node.js, memory store', samples]);
}
if (sections.includes('chromium')) {
  const bullmqModule = await bullmqBrowserEntry();
  const server = await serve();
  const browser = await launch();
  try {
    const page = await openTestPage(await browser.newContext(), server.url);
    const samples = await alternate((options) => page.evaluate(measure, options), { ferryModule: '/pkg/entry/browser.js', bullmqModule, storage: null, busPerRun: false });
    results.push(['headless Chromium, IndexedDB', samples]);
  } finally {
    await browser.close();
    await server.close();
  }
}

const { dataBytes } = results[0][1].ferry[0];
console.log(
  `ferry/bullmq beside ferry's own API: ${JOBS.toLocaleString('en-US')} jobs of ${dataBytes} bytes of JSON, added in batches of ${BATCH}, then processed by one ` +
    `Worker of concurrency ${CONCURRENCY} (beside one consumer of concurrency ${CONCURRENCY}, ordering "none"); median of ${RUNS} runs each, alternating`,
);
console.log(`    ${''.padEnd(38)}${'ferry API'.padStart(16)}  ${'ferry/bullmq'.padStart(16)}  bullmq/ferry`);
for (const [where, samples] of results) print(where, samples);
console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
