// `bus.bridge` from one headless Chromium page into `handleHttp` in local workerd
// (Miniflare, SQLite Durable Objects on disk), on another origin (CORS), and
// prints two figures:
//
// 1. Forwarding throughput: a page queues FORWARD_MESSAGES messages in a local
//    topic, then starts a bridge (batches of 100) and is timed until every message
//    is stored at the edge. The baseline, measured in the same run on the same
//    page, is a plain `fetch` loop posting the same batches (the same messages,
//    grouped by local partition as the bridge groups them, the same body and
//    headers) one after another to the same route. Runs alternate between the two,
//    the first of each pair swapping every run; medians are printed.
// 2. Drain: DRAIN_MESSAGES messages queued while the edge is down (its Miniflare
//    disposed, so the port refuses), the bridge started and failing, then Miniflare
//    started again on the same port with the same storage; timed from the moment it
//    is ready until every message is stored there.
//
// "Stored at the edge" is what handleHttp answered stored there (the Worker counts
// it and answers Node's one waiting request at that moment, for both sides alike);
// after the timed part each run checks it against the sum of highOffset in
// `connect(env.BUS, { name }).stats()`. Figures only: nothing here fails on
// timing; it fails when a message is lost, stored twice, or stored out of its
// key's order (checked once per run, after the timed part, by reading the edge
// topic back with a pull consumer), or when forwarding stalls for GIVE_UP_MS.
// `node benches/bridge.mjs` after `make pkg` (which builds pkg/dist and pkg/dist/edge).
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../www/serve.mjs';
import { launch, openTestPage } from '../tests/js/browsers.mjs';
import { bundleWorker, startModules } from '../tests/js/workerd.mjs';

const TOKEN = 'bench-secret';
const FORWARD_MESSAGES = 5000;
const FORWARD_RUNS = 7;
const WARM_UP_MESSAGES = 500;
const DRAIN_MESSAGES = 10_000;
const DRAIN_RUNS = 5;
const BATCH = 100;
const KEYS = 16;
// As tests/js/bridge.test.mjs: keyed messages spread over 4 local partitions. The
// bridge posts with its default concurrency (a batch of each of 4 partitions in
// flight at once); the baseline's loop posts one batch at a time, as a
// hand-written outbox would.
const LOCAL_PARTITIONS = 4;
// One object at the edge stores each batch: the figure is the bridge's, not a
// keyed send spread over objects (benches/workers.mjs measures that).
const EDGE_PARTITIONS = 1;
// In a drain, a gap this long between an answer and the next post is the bridge
// idle (a partition waiting out its backoff), not the work between two posts.
const IDLE_GAP_MS = 50;
// Waiting this long for the edge to fill up means forwarding is stuck, not slow.
const GIVE_UP_MS = 60_000;

/**
 * The edge: `/{bus}/v1/...` is handleHttp of the bus named `{bus}` (each run its
 * own, on objects of its own), open to pages of any origin. The wrapper counts,
 * per bus, the posts handleHttp answered 200 and the messages those stored (its
 * results, less those the dedup window answered as repeats: a re-posted batch,
 * which the stored log alone would hide), and the posts it refused, with the last
 * reason. `/wait` answers once a bus has stored `count` messages, so Node learns
 * the moment without polling: polling stats every 10 ms took so much of workerd's
 * one thread that the baseline ran at less than half its rate, while this wait
 * is a 2 ms timer reading a number. Untimed: `/create` makes the topic, `/count`
 * sums its highOffsets in stats (checked against the wrapper's count), `/read`
 * reads the whole topic back with a pull consumer.
 */
const worker = `
import { FerryObject, connect, handleHttp } from 'ferry/workers';

export class Bus extends FerryObject {}

// Per bus, since this instance started.
const counts = new Map();
const countsOf = (name) => {
  if (!counts.has(name)) counts.set(name, { posts: 0, messages: 0, repeats: 0, stored: 0, failed: 0, lastFailure: null });
  return counts.get(name);
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const http = /^\\/([^/]+)(\\/v1\\/.*)$/.exec(url.pathname);
    if (http) {
      const [, name, path] = http;
      const response = await handleHttp(new Request(new URL(path, url), request), env.BUS, { token: env.FERRY_TOKEN, name, allowOrigins: '*' });
      if (request.method === 'POST') {
        const c = countsOf(name);
        if (response.status === 200) {
          const { results } = await response.clone().json();
          const repeats = results.filter((r) => r.duplicate).length;
          c.posts += 1;
          c.messages += results.length;
          c.repeats += repeats;
          c.stored += results.length - repeats;
        } else {
          c.failed += 1;
          c.lastFailure = response.status + ' ' + (await response.clone().text());
        }
      }
      return response;
    }
    const name = url.searchParams.get('bus');
    const topic = url.searchParams.get('topic');
    const bus = connect(env.BUS, { name });
    switch (url.pathname) {
      case '/create':
        await bus.createTopic(topic, { partitions: Number(url.searchParams.get('partitions')) });
        return Response.json(null);
      case '/wait': {
        // workerd moves Date.now() on across each timer, so the clock bounds the wait.
        const count = Number(url.searchParams.get('count'));
        const giveUpAt = Date.now() + Number(url.searchParams.get('giveUpMs'));
        while (countsOf(name).stored < count && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 2));
        return Response.json(countsOf(name));
      }
      case '/count': {
        const found = (await bus.stats()).topics.find((t) => t.topic === topic);
        return Response.json(found ? found.partitions.reduce((n, p) => n + p.highOffset, 0) : 0);
      }
      case '/read': {
        const consumer = bus.consumer({ groupId: 'bench-read' });
        await consumer.subscribe({ topic, fromBeginning: true });
        const out = [];
        for (;;) {
          const messages = await consumer.receive({ max: 100 });
          if (messages.length === 0) break;
          for (const m of messages) out.push([m.partition, m.offset, m.key, m.value?.n, m.id]);
          await Promise.all(messages.map((m) => m.ack()));
        }
        return Response.json(out);
      }
    }
    return new Response('no such path', { status: 404 });
  },
};
`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
let fresh = 0;
const unique = (label) => `bench-${label}-${process.pid}-${fresh++}`;

/** A port free now on 127.0.0.1, for Miniflare to keep across restarts. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The edge on a fixed `port`: the bridge's URL stays the same when the edge comes back. */
function startEdge(modules, port, persistTo) {
  return startModules(modules, { bindings: { FERRY_TOKEN: TOKEN }, persistTo, port });
}

/**
 * The page's side, evaluated once in the page: `window.bench`. `queue` opens a
 * fresh bus and sends `count` messages to its topic 'orders' in sends of 100,
 * keeping what each partition holds in order for the baseline; `bridge` starts
 * the bridge, `settle` waits until its group has acked everything and closes the
 * bus, and `baseline` posts the queued messages as the bridge would, with fetch.
 * `posts` reads the Resource Timing entries of the posts since the last start:
 * how long each request took, and the gaps between an answer and the next post.
 */
function pageSide({ token, batch, keys, partitions }) {
  const value = (n) => ({ customer: `customer-${n % keys}`, n, note: 'x'.repeat(56) });
  let bus;
  let bridge;
  let queued;
  // Room for every post of a run (the default buffer holds 250 entries).
  performance.setResourceTimingBufferSize(10_000);
  window.bench = {
    posts() {
      // Those answered: a refused connection leaves an entry with status 0.
      const posts = performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/topics/') && e.responseStatus === 200);
      return { requests: posts.map((e) => e.duration), gaps: posts.slice(1).map((e, i) => e.startTime - posts[i].responseEnd) };
    },
    async queue(name, count) {
      bus = await window.ferry.Bus.open({ name });
      await bus.createTopic('orders', { partitions });
      queued = Array.from({ length: partitions }, () => []);
      for (let i = 0; i < count; i += batch) {
        const messages = [];
        for (let n = i; n < Math.min(count, i + batch); n++) messages.push({ key: `customer-${n % keys}`, value: value(n) });
        const results = await bus.producer().send({ topic: 'orders', messages });
        results.forEach((r, j) => queued[r.partition].push({ offset: r.offset, ...messages[j] }));
      }
      return { valueBytes: JSON.stringify(value(count - 1)).length, perPartition: queued.map((q) => q.length) };
    },
    async bridge(url, topic) {
      performance.clearResourceTimings();
      bridge = await bus.bridge({ url, token, topics: { orders: topic }, batchSize: batch });
    },
    /** Messages of the bridge's group not yet acked, and those waiting for a retry. */
    async progress() {
      const group = (await bus.stats()).groups.find((g) => g.groupId === 'ferry-bridge');
      const sum = (field) => (group ? group.partitions.reduce((n, p) => n + p[field], 0) : -1);
      return { lag: sum('lag'), retrying: sum('retrying'), partitions: group?.partitions ?? [] };
    },
    async settle() {
      const giveUpAt = Date.now() + 30_000;
      while ((await this.progress()).lag !== 0) {
        if (Date.now() > giveUpAt) throw new Error(`the bridge's group still has lag 30 s after the edge had every message: ${JSON.stringify(await this.progress())}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await bridge.stop();
      await bus.close();
    },
    async close() {
      await bus.close();
    },
    async baseline(url, topic) {
      // The bridge's body for the same messages: each partition's run of up to
      // `batch` in offset order, with the id the bridge derives for a message
      // without one; built in the loop, as the bridge builds each body.
      performance.clearResourceTimings();
      const endpoint = `${url}/v1/topics/${topic}/messages`;
      const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
      for (let p = 0; p < queued.length; p++) {
        for (let i = 0; i < queued[p].length; i += batch) {
          const messages = queued[p].slice(i, i + batch).map((m) => ({ key: m.key, value: m.value, headers: {}, id: `ferry/orders/${p}/${m.offset}` }));
          const response = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ messages }) });
          if (!response.ok) throw new Error(`baseline post: HTTP ${response.status}: ${await response.text()}`);
          await response.arrayBuffer();
        }
      }
    },
  };
}

const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-bridge-'));
const port = await freePort();
const { modules } = await bundleWorker(worker);
let edge = startEdge(modules, port, dir);
const edgeUrl = String(await edge.ready).replace(/\/$/, '');
const server = await serve();
const browser = await launch();
// For a stall's report: what the bridge's fetches last met (during a drain, the refusals are expected).
let lastFailedRequest;

async function edgeGet(path, params) {
  const response = await fetch(`${edgeUrl}/${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(120_000) });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${path}?${new URLSearchParams(params)}: HTTP ${response.status}\n${body}`);
  return JSON.parse(body);
}

/** The time (performance.now()) `bus` had stored `count` messages at the edge; a stall throws, with what the page and the edge saw. */
async function stored(bus, count, page) {
  const counts = await edgeGet('wait', { bus, count, giveUpMs: GIVE_UP_MS });
  const at = performance.now();
  if (counts.stored < count) {
    const progress = page ? JSON.stringify(await page.evaluate(() => window.bench.progress())) : 'n/a';
    throw new Error(
      `forwarding stalled: ${counts.stored} of ${count} stored at the edge after ${GIVE_UP_MS / 1000} s; the edge's counts ${JSON.stringify(counts)}; ` +
        `the bridge's group ${progress}; the page's last failed request: ${lastFailedRequest ?? 'none'}`,
    );
  }
  return at;
}

/**
 * Reads `bus`'s topic back and throws unless it holds each of the `count`
 * messages once, under an id used once, each key's messages in the order they
 * were sent; returns what the edge counted of the posts.
 */
async function verify(what, bus, topic, count) {
  const highOffsets = await edgeGet('count', { bus, topic });
  if (highOffsets !== count) throw new Error(`${what}: the edge topic's highOffsets sum to ${highOffsets}, not ${count}`);
  const stored = await edgeGet('read', { bus, topic });
  stored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const fail = (message) => {
    throw new Error(`${what}: ${message}`);
  };
  const ns = new Set();
  const ids = new Set();
  const lastOfKey = new Map();
  for (const [partition, offset, key, n, id] of stored) {
    if (!Number.isInteger(n) || n < 0 || n >= count) fail(`partition ${partition} offset ${offset} holds n ${n}`);
    if (ns.has(n)) fail(`message ${n} stored twice (again at partition ${partition} offset ${offset}, id ${id})`);
    if (ids.has(id)) fail(`id ${id} stored twice`);
    if (key !== `customer-${n % KEYS}`) fail(`message ${n} stored under key ${key}`);
    if ((lastOfKey.get(key) ?? -1) > n) fail(`${key}: message ${n} stored after message ${lastOfKey.get(key)}`);
    ns.add(n);
    ids.add(id);
    lastOfKey.set(key, n);
  }
  if (ns.size !== count) fail(`${count - ns.size} of ${count} messages missing at the edge (stored: ${stored.length})`);
  // Answers at once: every message is stored.
  return edgeGet('wait', { bus, count, giveUpMs: 0 });
}

/** A fresh edge bus with its topic, before anything is posted to it. */
async function edgeBus(label) {
  const bus = unique(label);
  await edgeGet('create', { bus, topic: 'orders', partitions: EDGE_PARTITIONS });
  return bus;
}

/** One timed bridge run of `count` messages: { ms, posts }. */
async function ferryRun(page, count) {
  const [local, bus] = [unique('local'), await edgeBus('ferry')];
  const queued = await page.evaluate(([name, count]) => window.bench.queue(name, count), [local, count]);
  const t0 = performance.now();
  await page.evaluate(([url]) => window.bench.bridge(url, 'orders'), [`${edgeUrl}/${bus}`]);
  const ms = (await stored(bus, count, page)) - t0;
  const posts = await page.evaluate(() => window.bench.posts());
  await page.evaluate(() => window.bench.settle());
  return { ms, queued, ...posts, ...(await verify(`bus.bridge run on ${bus}`, bus, 'orders', count)) };
}

/** One timed baseline run of `count` messages (queued as the bridge's are, untimed): { ms, posts }. */
async function baselineRun(page, count) {
  const [local, bus] = [unique('local'), await edgeBus('baseline')];
  await page.evaluate(([name, count]) => window.bench.queue(name, count), [local, count]);
  await page.evaluate(() => window.bench.close());
  const t0 = performance.now();
  // The loop's end and the edge's answer race; the edge decides, as for the bridge.
  const posting = page.evaluate(([url]) => window.bench.baseline(url, 'orders'), [`${edgeUrl}/${bus}`]);
  const [at] = await Promise.all([stored(bus, count), posting]);
  const ms = at - t0;
  return { ms, ...(await page.evaluate(() => window.bench.posts())), ...(await verify(`baseline run on ${bus}`, bus, 'orders', count)) };
}

/**
 * One drain: the edge goes down, DRAIN_MESSAGES are queued, the bridge starts
 * and fails against the closed port, then the edge is started again on the same
 * port and storage. Times from its `ready` to the first and the last message
 * stored; `downMs` is how long before it was ready the bridge started.
 */
async function drainRun(page) {
  const [local, bus] = [unique('drain-local'), await edgeBus('drain')];
  await edge.dispose();
  await page.evaluate(([name, count]) => window.bench.queue(name, count), [local, DRAIN_MESSAGES]);
  const bridgeStarted = performance.now();
  await page.evaluate(([url]) => window.bench.bridge(url, 'orders'), [`${edgeUrl}/${bus}`]);
  // Every partition's first run refused a connection and waits for its retry.
  const giveUpAt = Date.now() + 10_000;
  while ((await page.evaluate(() => window.bench.progress())).retrying < LOCAL_PARTITIONS) {
    if (Date.now() > giveUpAt) throw new Error(`the bridge never failed on every partition while the edge was down: ${JSON.stringify(await page.evaluate(() => window.bench.progress()))}`);
    await sleep(20);
  }
  edge = startEdge(modules, port, dir);
  const url = String(await edge.ready).replace(/\/$/, '');
  if (url !== edgeUrl) throw new Error(`the edge came back on ${url}, not ${edgeUrl}`);
  const reachable = performance.now();
  const first = await stored(bus, 1, page);
  const all = await stored(bus, DRAIN_MESSAGES, page);
  await page.evaluate(() => window.bench.settle());
  const { gaps } = await page.evaluate(() => window.bench.posts());
  const posts = await verify(`drain on ${bus}`, bus, 'orders', DRAIN_MESSAGES);
  const idle = gaps.filter((gap) => gap > IDLE_GAP_MS);
  return { idleMs: idle.reduce((a, b) => a + b, 0), idleGaps: idle.length, downMs: reachable - bridgeStarted, waitMs: first - reachable, drainMs: all - first, ms: all - reachable, ...posts };
}

const started = performance.now();
try {
  const context = await browser.newContext();
  const page = await openTestPage(context, server.url);
  page.on('requestfailed', (request) => (lastFailedRequest = `${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  await page.evaluate(pageSide, { token: TOKEN, batch: BATCH, keys: KEYS, partitions: LOCAL_PARTITIONS });

  // One small untimed round of each first: compiles the engine on both sides and
  // starts the connections.
  await ferryRun(page, WARM_UP_MESSAGES);
  await baselineRun(page, WARM_UP_MESSAGES);
  const samples = { ferry: [], baseline: [] };
  for (let r = 0; r < FORWARD_RUNS; r++) {
    // Which goes first swaps every run, so drift over the whole run hits both alike.
    const order = r % 2 ? ['baseline', 'ferry'] : ['ferry', 'baseline'];
    for (const side of order) samples[side].push(await (side === 'ferry' ? ferryRun : baselineRun)(page, FORWARD_MESSAGES));
  }
  const drains = [];
  for (let r = 0; r < DRAIN_RUNS; r++) drains.push(await drainRun(page));

  const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(8);
  const ms = (n) => `${fmt(n)} ms`;
  const rate = (side) => median(samples[side].map((s) => (FORWARD_MESSAGES * 1000) / s.ms));
  const spread = (xs) => `(min ${Math.round(Math.min(...xs)).toLocaleString('en-US')}, max ${Math.round(Math.max(...xs)).toLocaleString('en-US')})`;
  const posts = (runs) => {
    const total = (field) => runs.reduce((n, s) => n + s[field], 0);
    return `${(total('posts') / runs.length).toFixed(1)} posts per run, ${(total('messages') / total('posts')).toFixed(1)} messages per post, ${total('repeats')} repeated ids`;
  };
  const { valueBytes, perPartition } = samples.ferry[0].queued;
  const column = 70;
  console.log(
    `ferry bus.bridge: one headless Chromium page -> handleHttp in local workerd (Miniflare, SQLite Durable Objects on disk, another origin: CORS), ` +
      `${valueBytes}-byte JSON values, ${KEYS} keys over ${LOCAL_PARTITIONS} local partitions, a ${EDGE_PARTITIONS}-partition edge topic`,
  );
  console.log(
    `  forwarding ${FORWARD_MESSAGES.toLocaleString('en-US')} queued messages (${perPartition.join('/')} per local partition), batches of ${BATCH}, ` +
      `median of ${FORWARD_RUNS} runs each, alternating`,
  );
  const baseline = rate('baseline');
  const ferry = rate('ferry');
  const rates = (side) => samples[side].map((s) => (FORWARD_MESSAGES * 1000) / s.ms);
  console.log(`    ${'plain fetch loop in the page, the same batches posted one at a time'.padEnd(column)}${fmt(baseline)} msg/s  (baseline)  ${spread(rates('baseline'))}; ${posts(samples.baseline)}`);
  // Each run's pair ran back to back, so its ratio is the one least moved by the machine's drift.
  const paired = median(samples.ferry.map((s, r) => samples.baseline[r].ms / s.ms));
  console.log(
    `    ${`bus.bridge({ batchSize: ${BATCH} }), from its start`.padEnd(column)}${fmt(ferry)} msg/s  ${(ferry / baseline).toFixed(2)}x (floor >= 0.80x; ` +
      `median of each run's pair ${paired.toFixed(2)}x)  ${spread(rates('ferry'))}; ${posts(samples.ferry)}`,
  );
  const perPost = (side, field) => `${median(samples[side].flatMap((s) => s[field])).toFixed(1)} ms`;
  console.log(
    `    (per post, median over every run, from the page's Resource Timing: the request ${perPost('baseline', 'requests')} (loop) and ${perPost('ferry', 'requests')} (bridge); ` +
      `from an answer to the next post ${perPost('baseline', 'gaps')} (loop) and ${perPost('ferry', 'gaps')} (bridge))`,
  );
  console.log(
    `  drain: ${DRAIN_MESSAGES.toLocaleString('en-US')} messages queued while the edge was down (Miniflare disposed, its port refusing), ` +
      `the bridge started (and failing) a median ${Math.round(median(drains.map((d) => d.downMs))).toLocaleString('en-US')} ms before Miniflare, started again on the same port and storage, was ready; ` +
      `median of ${DRAIN_RUNS} runs; the bridge's default retry (1 s backoff, doubling, jitter)`,
  );
  const drainLine = (label, field, note = '') => console.log(`    ${label.padEnd(column)}${ms(median(drains.map((d) => d[field])))}  ${spread(drains.map((d) => d[field]))}${note}`);
  drainLine('edge ready -> first message stored (the rest of the backoff)', 'waitMs');
  const drainRate = median(drains.map((d) => (DRAIN_MESSAGES * 1000) / d.drainMs));
  drainLine('first message stored -> all stored', 'drainMs', `  ${fmt(drainRate).trim()} msg/s, ${(drainRate / ferry).toFixed(2)}x of the forwarding figure`);
  drainLine(`  of which no post in flight, gaps over ${IDLE_GAP_MS} ms between posts`, 'idleMs', `  (median ${median(drains.map((d) => d.idleGaps))} such gaps per run)`);
  drainLine('edge ready -> all stored', 'ms', `  ${posts(drains)}`);
  console.log(`  (every run checked at the edge: each message stored once, under an id used once, each key in send order)`);
  console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
} finally {
  await browser.close();
  await server.close();
  // Already disposed when a drain failed while the edge was down.
  await edge.dispose().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
