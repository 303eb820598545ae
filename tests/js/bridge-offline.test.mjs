// `bus.bridge()` through outages of a real edge, in each browser engine
// (tests/js/browsers.mjs): the edge is handleHttp of a Worker in workerd
// (Miniflare), with its Durable Objects persisted on disk, on another origin than
// the pages. While it is stopped its port refuses, as a device offline or an edge
// that is down would look to the page; it comes back on the same port with the same
// storage. Checked at the edge by id and by (partition, offset): every message
// stored exactly once and each key's messages in the order they were sent,
// - from a page whose bridge runs through the whole outage, with the edge
//   stopped a second time in the middle of the drain;
// - from a service worker (tests/browser/bridge-sw.js), the edge coming back
//   only once no page is open, so the worker drains alone: on its bridge's
//   backoff timer while it still runs, and (Chromium, which has Background Sync)
//   after it was stopped, started again by a sync.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../../www/serve.mjs';
import { forEachEngine } from './browsers.mjs';
import { edgeWorker, startWorker } from './workerd.mjs';

const TOKEN = 'bridge-offline-secret';
// The edge's topics, one per engine and case, so that each test reads only its own.
const TOPICS = [...['chromium', 'firefox'].flatMap((engine) => [`orders-page-${engine}`, `orders-sw-${engine}`]), 'orders-sync-chromium'];

// /v1/ is handleHttp of the bus "edge", open to pages of any origin (CORS).
// /setup creates the topics (4 partitions each) and stores a marker; /read?topic=
// hands out what the pull consumer group "check" has not had yet, acked at once;
// /stats is the bus's stats.
const worker = edgeWorker(
  'edge',
  `
    if (url.pathname === '/setup') {
      for (const topic of url.searchParams.getAll('topic')) await bus.createTopic(topic, { partitions: 4 });
      await bus.createTopic('marker', { partitions: 1 });
      await bus.publish('marker', 'stored before the edge first stopped', { id: 'marker' });
      return Response.json({ ok: true });
    }
    if (url.pathname === '/stats') return Response.json(await bus.stats());
    const consumer = bus.consumer({ groupId: 'check' });
    await consumer.subscribe({ topic: url.searchParams.get('topic'), fromBeginning: true });
    const messages = await consumer.receive({ max: 100 });
    await Promise.all(messages.map((m) => m.ack()));
    return Response.json(messages.map((m) => ({ id: m.id, key: m.key, value: m.value, partition: m.partition, offset: m.offset })));`,
);

let server;
let storage;
let port;
let edgeUrl;
// The running Miniflare, when the edge is up.
let edge = null;

/** Starts the edge on its port with its storage; resolves once it answers. */
async function startEdge() {
  const started = await startWorker(worker, { bindings: { FERRY_TOKEN: TOKEN }, persistTo: storage, port });
  edge = started;
  const url = String(await started.ready).replace(/\/$/, '');
  assert.equal(url, edgeUrl, 'the edge is back where it was');
}

/** Stops the edge: its port refuses from then on. */
async function stopEdge() {
  const stopping = edge;
  edge = null;
  await stopping?.dispose();
}

before(async () => {
  server = await serve();
  storage = await mkdtemp(join(tmpdir(), 'ferry-bridge-offline-'));
  // A first start takes a free port and creates the storage the later starts reuse.
  edge = await startWorker(worker, { bindings: { FERRY_TOKEN: TOKEN }, persistTo: storage });
  edgeUrl = String(await edge.ready).replace(/\/$/, '');
  port = Number(new URL(edgeUrl).port);
  const setup = new URLSearchParams(TOPICS.map((topic) => ['topic', topic]));
  assert.equal((await fetch(`${edgeUrl}/setup?${setup}`)).status, 200);
  await stopEdge();
});

after(async () => {
  await stopEdge();
  await server?.close();
  if (storage) await rm(storage, { recursive: true, force: true });
});

/** Waits until `check()` is true, for at most `ms`. */
async function until(check, what, ms = 30_000) {
  const giveUpAt = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What the edge's group "check" had not had yet from `topic` (up to 100), acked. */
async function readEdge(topic) {
  const response = await fetch(`${edgeUrl}/read?topic=${topic}`);
  assert.equal(response.status, 200);
  return response.json();
}

/** The edge's stats: each topic's number of stored messages. */
async function storedAtEdge() {
  const { topics } = await (await fetch(`${edgeUrl}/stats`)).json();
  return Object.fromEntries(topics.map((t) => [t.topic, t.partitions.reduce((n, p) => n + p.highOffset, 0)]));
}

/** The orders a test sends: `count` over 16 keys, each with its own id, in send order. */
const orders = (prefix, count) => Array.from({ length: count }, (_, n) => ({ id: `${prefix}-${n}`, key: `customer-${n % 16}`, value: { n } }));

/** Publishes `sent` from `page` into 'orders' of `window.bus` in that order, 20 to a send. */
const publish = (page, sent) =>
  page.evaluate(async (sent) => {
    const producer = window.bus.producer();
    for (let i = 0; i < sent.length; i += 20) await producer.send({ topic: 'orders', messages: sent.slice(i, i + 20) });
  }, sent);

/** The lag and failed posts waiting for their backoff of the bridge's group, from `page`'s view of the bus. */
const bridgeProgress = (page) =>
  page.evaluate(async () => {
    const group = (await window.bus.stats()).groups.find((g) => g.groupId === 'ferry-bridge');
    const sum = (field) => group?.partitions.reduce((n, p) => n + p[field], 0) ?? 0;
    return { joined: Boolean(group), lag: sum('lag'), retrying: sum('retrying') };
  });

/** Throws unless `arrived` holds each of `sent` exactly once, and each key's in send order by (partition, offset). */
function assertOnceInOrder(arrived, sent) {
  const ids = arrived.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no id arrived twice');
  assert.deepEqual([...ids].sort(), sent.map((m) => m.id).sort(), 'every message arrived, by its own id');
  for (const m of arrived) assert.deepEqual(m.value, sent[m.value.n].value, `${m.id} arrived as sent`);
  const atEdge = new Map();
  for (const m of [...arrived].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) atEdge.set(m.key, [...(atEdge.get(m.key) ?? []), m.id]);
  const sentByKey = new Map();
  for (const m of sent) sentByKey.set(m.key, [...(sentByKey.get(m.key) ?? []), m.id]);
  for (const [key, ids] of sentByKey) assert.deepEqual(atEdge.get(key), ids, `${key}: at the edge in send order`);
}

/** The URLs of the pages open in `page`'s browser context, in either driver. */
const openPagesOf = async (page) => {
  const pages = typeof page.context === 'function' ? page.context().pages() : await page.browserContext().pages();
  return pages.filter((p) => !p.isClosed()).map((p) => p.url());
};

/**
 * Registers tests/browser/bridge-sw.js for the bus `name` at `scope` (holding no
 * page, so it controls none) from `page`, which creates the bus's 'orders' topic
 * first and keeps the bus as `window.bus`; resolves once the worker's bridge has
 * joined its group. `progress()` asks the worker how far its bridge is, through
 * `page`; `finish(later)` checks from another page, opened once the test is done,
 * that the bridge has nothing left, and unregisters the worker.
 */
async function startBridgeWorker(page, { name, topic, scope }) {
  const script = `/tests/browser/bridge-sw.js?${new URLSearchParams({ name, url: edgeUrl, token: TOKEN, topic })}`;
  await page.evaluate(
    async ({ name, script, scope }) => {
      window.bus = await window.ferry.Bus.open({ name });
      await window.bus.createTopic('orders', { partitions: 4 });
      const registration = await navigator.serviceWorker.register(script, { type: 'module', scope });
      const worker = registration.installing ?? registration.waiting ?? registration.active;
      await new Promise((resolve) => {
        if (worker.state === 'activated') resolve();
        worker.addEventListener('statechange', () => worker.state === 'activated' && resolve());
      });
    },
    { name, script, scope },
  );
  // Where the bridge stands, asked from `page`.
  const progressFrom = async (page) => {
    const answer = await page.evaluate(async (scope) => {
      const registration = await navigator.serviceWorker.getRegistration(scope);
      const channel = new MessageChannel();
      const answer = new Promise((resolve) => (channel.port1.onmessage = (event) => resolve(event.data)));
      registration.active.postMessage('progress', [channel.port2]);
      return answer;
    }, scope);
    if (answer.error) throw new Error(`the service worker: ${answer.error}`);
    return answer;
  };
  const progress = () => progressFrom(page);
  // The worker's bridge is the group's only member: no page runs one.
  await until(async () => (await progress()).joined, "the service worker's bridge in its group");
  const finish = async (later) => {
    await later.evaluate((name) => window.ferry.Bus.open({ name }).then((bus) => (window.bus = bus)), name);
    await until(async () => (await bridgeProgress(later)).lag === 0, 'every order acked by the bridge');
    await later.evaluate(async (scope) => (await navigator.serviceWorker.getRegistration(scope))?.unregister(), scope);
    await later.close();
  };
  return { progress, progressFrom, finish };
}

/** Closes `page` and waits until its browser context has no page open. */
async function closeEveryPage(page) {
  if (!page.isClosed()) await page.close();
  // Firefox's driver may list a page for a moment after its close resolved.
  await until(async () => (await openPagesOf(page)).length === 0, 'no page open');
}

/**
 * Starts the edge with no page open and waits until the service worker has forwarded each
 * of `sent` to `topic`: once each, each key in order. Should it not, `state()`, where
 * given, says where the worker's bridge stood.
 */
async function drainedAlone(topic, sent, state) {
  const arrived = [];
  try {
    await startEdge();
    await until(async () => {
      arrived.push(...(await readEdge(topic)));
      return arrived.length >= sent.length;
    }, 'every order at the edge, from the service worker alone').catch(async (error) => {
      const where = state ? JSON.stringify(await state().catch(String)) : 'not asked';
      throw new Error(`${error.message}: ${arrived.length} of ${sent.length} there; the worker's bridge: ${where}`);
    });
    assertOnceInOrder(arrived, sent);
    assert.equal((await storedAtEdge())[topic], sent.length, 'each order stored once at the edge');
  } finally {
    await stopEdge();
  }
}

forEachEngine(() => server.url, (engine, openPage) => {
  test(`${engine}: 1,000 orders published while the edge is down arrive once each when it is back, each key in order, across a second outage mid-drain`, async () => {
    const topic = `orders-page-${engine}`;
    const sent = orders(`order-${engine}`, 1000);
    const page = await openPage();
    try {
      await page.evaluate(
        async ({ name, url, token, topic }) => {
          window.bus = await window.ferry.Bus.open({ name });
          await window.bus.createTopic('orders', { partitions: 4 });
          // Batches of 10, so that the drain takes many posts and the edge can stop between them.
          window.bridge = await window.bus.bridge({ url, token, topics: { orders: topic }, batchSize: 10, retry: { initialBackoffMs: 100, maxBackoffMs: 500 } });
        },
        { name: `bridge-offline-${engine}-${Date.now()}`, url: edgeUrl, token: TOKEN, topic },
      );
      await publish(page, sent);
      // A post has failed against the refused port and waits for its backoff.
      await until(async () => (await bridgeProgress(page)).retrying > 0, 'a failed post while the edge is down');
      assert.equal((await bridgeProgress(page)).lag, 1000, 'nothing forwarded while the edge is down');

      await startEdge();
      assert.equal((await storedAtEdge()).marker, 1, 'the edge came back with the storage it had');
      const arrived = [];
      await until(async () => {
        arrived.push(...(await readEdge(topic)));
        return arrived.length >= 200;
      }, 'some orders at the edge');
      await stopEdge();
      // The edge stopped with orders left to forward: those posted while it stopped
      // may be stored there with their answers lost, and are posted again.
      const left = await bridgeProgress(page);
      assert.ok(left.lag > 0, `the edge stopped mid-drain (lag ${left.lag})`);
      console.log(`  ${engine}: the edge stopped again with ${arrived.length} orders read there and ${left.lag} not yet acked by the bridge`);
      await until(async () => (await bridgeProgress(page)).retrying > 0, 'a failed post during the second outage');

      await startEdge();
      await until(async () => {
        arrived.push(...(await readEdge(topic)));
        return arrived.length >= 1000;
      }, 'every order at the edge');
      await until(async () => (await bridgeProgress(page)).lag === 0, 'every order acked by the bridge');
      assert.deepEqual(await readEdge(topic), [], 'nothing more at the edge');
      assert.equal((await storedAtEdge())[topic], 1000, 'each order stored once at the edge');
      assertOnceInOrder(arrived, sent);
      await page.evaluate(() => window.bridge.stop());
    } finally {
      await stopEdge();
      if (!page.isClosed()) await page.close();
    }
  });

  test(`${engine}: a service worker drains to the edge with no page open: each order once, each key in order`, async () => {
    const topic = `orders-sw-${engine}`;
    const sent = orders(`sw-order-${engine}`, 200);
    const page = await openPage();
    const worker = await startBridgeWorker(page, { name: `bridge-sw-${engine}-${Date.now()}`, topic, scope: '/tests/browser/bridge/' });
    await publish(page, sent);
    // Asked by the page just before it closes, as a page pings its worker after it
    // queued work: the worker's last event. Firefox stops a worker 30 s after its
    // last event (Chromium does too, but not while Playwright's DevTools session is
    // attached to it), so the edge must be back and drained within that. In
    // Chromium, the next test covers a worker stopped first.
    await until(async () => (await worker.progress()).retrying > 0, "a failed post of the service worker's bridge while the edge is down");
    assert.equal((await worker.progress()).lag, sent.length, 'nothing forwarded while the edge is down');
    await closeEveryPage(page);
    await drainedAlone(topic, sent, async () => {
      const asking = await openPage();
      try {
        return await worker.progressFrom(asking);
      } finally {
        await asking.close();
      }
    });
    await worker.finish(await openPage());
  });

  // Only Chromium has Background Sync, and lets a test (through CDP, as DevTools
  // does) stop a service worker and fire a sync at it with no page open.
  if (engine === 'chromium') {
    test(`${engine}: a service worker stopped while the edge is down is started by a Background Sync with no page open and drains: each order once, each key in order`, async () => {
      const topic = 'orders-sync-chromium';
      const scope = '/tests/browser/bridge-sync/';
      const sent = orders('sync-order', 200);
      const page = await openPage();
      const context = page.context();
      const worker = await startBridgeWorker(page, { name: `bridge-sync-${Date.now()}`, topic, scope });
      await publish(page, sent);
      await until(async () => (await worker.progress()).retrying > 0, "a failed post of the service worker's bridge while the edge is down");
      await closeEveryPage(page);
      // A page of no origin for CDP's ServiceWorker domain, which has no other target.
      const blank = await context.newPage();
      const cdp = await context.newCDPSession(blank);
      const registrations = new Map();
      const versions = new Map();
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: list }) => list.forEach((r) => registrations.set(r.registrationId, r)));
      cdp.on('ServiceWorker.workerVersionUpdated', ({ versions: list }) => list.forEach((v) => versions.set(v.versionId, v)));
      await cdp.send('ServiceWorker.enable');
      const registration = () => [...registrations.values()].find((r) => r.scopeURL === `${server.url}${scope}` && !r.isDeleted);
      const status = () => [...versions.values()].find((v) => v.registrationId === registration()?.registrationId && v.status === 'activated')?.runningStatus;
      await until(() => status() !== undefined, 'the worker known to CDP');
      // Stopped, as the browser stops a worker idle for 30 s.
      await cdp.send('ServiceWorker.stopAllWorkers');
      await until(() => status() === 'stopped', 'the worker stopped');
      // The sync starts it; its handler holds it until the bridge has drained.
      await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: server.url, registrationId: registration().registrationId, tag: 'ferry-bridge', lastChance: false });
      await until(() => status() === 'running', 'the worker started by the sync');
      await cdp.detach();
      await blank.close();
      await closeEveryPage(blank);
      // The member of the worker's previous life still holds half the partitions:
      // its lock was released before this life saw it held, which is how a member
      // without Web Locks looks too, so it is taken for gone only once its session
      // runs out (sessionTimeoutMs, 10 s by default).
      await drainedAlone(topic, sent);
      await worker.finish(await openPage());
    });
  }
});
