// `bus.bridge()` in each browser engine (tests/js/browsers.mjs): a page's local
// topic drained to a remote endpoint that speaks handleHttp's JSON, served here
// on another origin (with CORS, as a deployed edge would be). The endpoint keeps
// the first message of each id, as the edge's dedup window does, and can be
// down (503), refuse the token (401), throttle (429 with Retry-After) or be gone
// (its port closed: a network error).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { serve } from '../../www/serve.mjs';
import { forEachEngine } from './browsers.mjs';
import { edgeWorker, startWorker } from './workerd.mjs';

const TOKEN = 'bridge-secret';
let server;
let edge;
let workerd;
let workerdUrl;

// A Worker whose /v1/ paths are handleHttp of the bus "shop", open to pages of any
// origin (CORS); GET /orders lists what its consumer group "check" finds there.
const worker = edgeWorker(
  'shop',
  `
    const consumer = bus.consumer({ groupId: 'check' });
    await consumer.subscribe({ topic: url.searchParams.get('topic'), fromBeginning: true });
    const messages = await consumer.receive({ max: 100 });
    await Promise.all(messages.map((m) => m.ack()));
    return Response.json(messages.map((m) => ({ key: m.key, value: m.value, id: m.id, partition: m.partition, offset: m.offset })));`,
);

before(async () => {
  server = await serve();
  edge = await startEdge();
  workerd = await startWorker(worker, { bindings: { FERRY_TOKEN: TOKEN } });
  workerdUrl = String(await workerd.ready).replace(/\/$/, '');
});

after(async () => {
  await workerd?.dispose();
  await edge?.close();
  await server?.close();
});

/** The stand-in for the edge: `mode` is 'ok', 'down', or 'throttle' (429 once per post, then ok). */
async function startEdge(port = 0) {
  const state = { mode: 'ok', stored: new Map(), arrivals: [], repeats: 0, posts: [] };
  const server = createServer(async (request, response) => {
    const send = (status, body, headers = {}) => {
      response.writeHead(status, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-headers': 'content-type, authorization',
        'access-control-expose-headers': 'retry-after',
        ...headers,
      });
      response.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (request.method === 'OPTIONS') return send(204);
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const topic = /^\/v1\/topics\/([^/]+)\/messages$/.exec(new URL(request.url, 'http://x').pathname)?.[1];
    state.posts.push({ at: Date.now(), mode: state.mode, topic });
    if (request.headers.authorization !== `Bearer ${TOKEN}`) return send(401, { error: { code: 'INVALID_ARGUMENT', message: 'Authorization: Bearer <token> is missing or wrong' } });
    if (state.mode === 'down') return send(503, { error: { code: 'STORAGE', message: 'down' } });
    if (state.mode === 'throttle') {
      state.mode = 'ok';
      return send(429, { error: { code: 'QUEUE_FULL', message: 'slow down' } }, { 'retry-after': '1' });
    }
    const { messages } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const results = messages.map((message) => {
      if (state.stored.has(message.id)) state.repeats += 1;
      else {
        state.stored.set(message.id, { topic, ...message });
        state.arrivals.push({ topic, ...message });
      }
      return { topic, partition: 0, offset: state.stored.size - 1 };
    });
    send(200, { results });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
  });
  return { state, url: `http://127.0.0.1:${server.address().port}`, port: server.address().port, close };
}

/** Opens the bus `name` in `page` with a 4-partition 'orders' topic, kept as `window.bus` (and the stand-in's URL and token as `window.edgeUrl` and `window.token`). */
const openBus = (page, name) =>
  page.evaluate(
    async ({ name, edgeUrl, token }) => {
      Object.assign(window, { edgeUrl, token });
      window.bus = await window.ferry.Bus.open({ name });
      await window.bus.createTopic('orders', { partitions: 4 });
    },
    { name, edgeUrl: edge.url, token: TOKEN },
  );

/** Publishes `count` orders over 16 keys from `page`, one at a time; resolves to their values in send order. */
const publishOrders = (page, count) =>
  page.evaluate(async (count) => {
    const sent = [];
    for (let i = 0; i < count; i++) {
      const order = { key: `customer-${i % 16}`, n: i };
      await window.bus.publish('orders', order, { key: order.key });
      sent.push(order);
    }
    return sent;
  }, count);

/** Starts the page's bridge to `url` with short backoffs (`retry` to change them); `token` defaults to the right one. */
const startBridge = (page, url, token = TOKEN, retry = { initialBackoffMs: 100, maxBackoffMs: 400 }) =>
  page.evaluate(
    async ({ url, token, retry }) => {
      window.bridge = await window.bus.bridge({ url, token, topics: ['orders'], batchSize: 50, retry });
    },
    { url, token, retry },
  );

/** Waits until `check()` is true, for at most 20 s. */
async function until(check, what) {
  const giveUpAt = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Throws unless each key's orders arrived in the order they were sent. */
function assertKeyOrder(arrivals) {
  const byKey = new Map();
  for (const { key, value } of arrivals) byKey.set(key, [...(byKey.get(key) ?? []), value.n]);
  for (const [key, ns] of byKey) assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `${key} arrived in send order`);
}

forEachEngine(() => server.url, (engine, openPage) => {
  /** Two tabs with the bus `name` open, each as `window.bus`; the first created its 'orders' topic. */
  async function openTwoTabs(name) {
    const [a, b] = [await openPage(), await openPage()];
    await openBus(a, name);
    await b.evaluate(async (name) => {
      window.bus = await window.ferry.Bus.open({ name });
    }, name);
    return [a, b];
  }

  test(`${engine}: orders queued while the edge is down arrive once each when it is back, each key in order`, async () => {
    edge.state.stored.clear();
    edge.state.arrivals.length = 0;
    edge.state.mode = 'down';
    const page = await openPage();
    await openBus(page, `bridge-down-${Date.now()}`);
    const sent = await publishOrders(page, 300);
    await startBridge(page, edge.url);
    await page.evaluate(() => {
      window.events = { forwarded: [], failed: [] };
      for (const event of ['forwarded', 'failed']) window.bridge.on(event, (e) => window.events[event].push(e));
    });
    await until(() => edge.state.posts.some((p) => p.mode === 'down'), 'a post while down');
    assert.equal(edge.state.stored.size, 0);
    await until(async () => (await page.evaluate(async () => (await window.bus.stats()).bridges[0].failing)) > 0, 'a batch failing');
    edge.state.mode = 'ok';
    await until(() => edge.state.stored.size >= 300, 'every order at the edge');
    const values = edge.state.arrivals.map((a) => a.value.n).sort((a, b) => a - b);
    assert.deepEqual(values, sent.map((o) => o.n), 'each order stored once');
    assert.ok(edge.state.arrivals.every((a) => typeof a.id === 'string' && a.id.length > 0), 'every forwarded message carries an id');
    assertKeyOrder(edge.state.arrivals);
    await until(async () => (await page.evaluate(async () => (await window.bus.stats()).bridges[0].pending)) === 0, 'nothing pending');
    const [bridge] = await page.evaluate(async () => (await window.bus.stats()).bridges);
    assert.equal(bridge.groupId, 'ferry-bridge');
    assert.equal(bridge.url, edge.url);
    assert.deepEqual(bridge.topics, { orders: 'orders' });
    assert.equal(bridge.running, true);
    assert.equal(bridge.forwarded, 300, 'this tab forwarded every order');
    assert.equal(bridge.failing, 0);
    assert.equal(bridge.deadLettered, 0);
    assert.match(bridge.lastError, /^HTTP 503: /, 'the outage is the last error');
    assert.ok(bridge.lastForwardedAt >= bridge.lastErrorAt);
    const events = await page.evaluate(() => window.events);
    assert.ok(events.failed.length > 0 && events.failed.every((e) => e.refused === false && /^HTTP 503/.test(e.error) && e.topic === 'orders' && e.count > 0));
    assert.equal(events.forwarded.reduce((n, e) => n + e.count, 0), 300, 'a forwarded event for each batch');
    assert.ok(events.forwarded.every((e) => e.remoteTopic === 'orders' && e.lastOffset - e.firstOffset + 1 === e.count));
    await page.close();
  });

  test(`${engine}: two tabs bridging one bus share the work; one closed mid-drain, the other finishes: each order once, each key in order`, async () => {
    edge.state.stored.clear();
    edge.state.arrivals.length = 0;
    edge.state.mode = 'down';
    const [a, b] = await openTwoTabs(`bridge-two-${Date.now()}`);
    const sent = await publishOrders(a, 400);
    await startBridge(a, edge.url);
    await startBridge(b, edge.url);
    edge.state.mode = 'ok';
    await until(() => edge.state.stored.size >= 100, 'a quarter of the orders');
    await a.close();
    await until(() => edge.state.stored.size >= 400, 'every order, through the other tab');
    assert.deepEqual(edge.state.arrivals.map((m) => m.value.n).sort((x, y) => x - y), sent.map((o) => o.n), 'each order stored once');
    assertKeyOrder(edge.state.arrivals);
    await b.close();
  });

  test(`${engine}: a tab's bridge loads the engine's build only when started; bus.close() stops it, and the group loses its member`, async () => {
    edge.state.mode = 'ok';
    const [a, b] = await openTwoTabs(`bridge-close-${Date.now()}`);
    const fetchedEngine = (page) => page.evaluate(() => performance.getEntriesByType('resource').some((r) => r.name.includes('ferry_engine_bg')));
    assert.equal(await fetchedEngine(a), false, 'a tab whose SharedWorker writes does not load the engine to open its bus');
    await publishOrders(a, 10);
    await startBridge(a, edge.url);
    assert.equal(await fetchedEngine(a), true, "a tab's bridges run in the engine's build");
    await until(async () => (await a.evaluate(async () => (await window.bus.stats()).bridges[0].pending)) === 0, 'nothing pending');
    await a.evaluate(() => window.bus.close());
    const bridgeMembers = () => b.evaluate(async () => (await window.bus.stats()).members.filter((m) => m.groupId === 'ferry-bridge').length);
    await until(async () => (await bridgeMembers()) === 0, 'the closed bus to leave the bridge group');
    const posts = edge.state.posts.length;
    await publishOrders(b, 5);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(edge.state.posts.length, posts, 'a closed bus forwards nothing');
    await Promise.all([a.close(), b.close()]);
  });

  test(`${engine}: a wrong token is refused for good: the orders go to the local dead-letter topic with the response`, async () => {
    const page = await openPage();
    await openBus(page, `bridge-refused-${Date.now()}`);
    const before = edge.state.stored.size;
    // One key: one partition, one batch.
    await page.evaluate(async () => {
      for (let n = 0; n < 3; n++) await window.bus.publish('orders', { key: 'customer-0', n }, { key: 'customer-0' });
    });
    const postsBefore = edge.state.posts.length;
    await startBridge(page, edge.url, 'wrong');
    const dead = await page.evaluate(async () => {
      const reader = window.bus.consumer({ groupId: 'dlq-reader' });
      await reader.subscribe({ topic: 'orders.dlq', fromBeginning: true });
      const seen = [];
      await new Promise((resolve) => reader.run({ eachMessage: async ({ message }) => seen.push({ n: message.value.n, error: message.headers['ferry-dlq-error'], attempts: message.headers['ferry-dlq-attempts'] }) === 3 && resolve() }));
      await reader.stop();
      return seen.sort((a, b) => a.n - b.n);
    });
    assert.deepEqual(dead.map((d) => d.n), [0, 1, 2]);
    for (const d of dead) {
      assert.match(d.error, /^HTTP 401: .*missing or wrong/);
      assert.equal(d.attempts, '1', 'dead-lettered on the first attempt');
    }
    assert.equal(edge.state.stored.size, before, 'nothing stored at the edge');
    assert.equal(edge.state.posts.length - postsBefore, 1, 'the refused batch was dead-lettered whole, not posted again one by one');
    await page.close();
  });

  test(`${engine}: transform rewrites what goes and leaves out what it answers null for; a throw is a failed attempt`, async () => {
    edge.state.stored.clear();
    edge.state.arrivals.length = 0;
    edge.state.mode = 'ok';
    const page = await openPage();
    await openBus(page, `bridge-transform-${Date.now()}`);
    const failures = await page.evaluate(async () => {
      for (let n = 0; n < 6; n++) await window.bus.publish('orders', { n }, { key: 'k', id: `transform-${Date.now()}-${n}` });
      let thrown = false;
      const failures = [];
      const bridge = await window.bus.bridge({
        url: window.edgeUrl,
        token: window.token,
        topics: ['orders'],
        retry: { initialBackoffMs: 50, maxBackoffMs: 50 },
        transform: ({ topic, partition, message }) => {
          if (message.value.n === 3 && !thrown) {
            thrown = true;
            throw new Error('not yet');
          }
          if (message.value.n % 2 === 1) return null;
          return { value: { ...message.value, from: `${topic}/${partition}` }, headers: { ...message.headers, via: 'bridge' } };
        },
      });
      bridge.on('failed', ({ error }) => failures.push(error));
      await bridge.drained().catch(() => bridge.drained());
      await bridge.stop();
      return failures;
    });
    const mine = edge.state.arrivals.filter((a) => a.id.startsWith('transform-'));
    assert.deepEqual(mine.map((a) => a.value.n), [0, 2, 4], 'the odd ones left out, the rest in order');
    assert.ok(mine.every((a) => /^orders\/\d$/.test(a.value.from) && a.headers.via === 'bridge'), 'rewritten');
    assert.deepEqual(failures, ['transform threw: not yet']);
    await page.close();
  });

  test(`${engine}: 429 with Retry-After is waited out, then the batch goes`, async () => {
    const page = await openPage();
    await openBus(page, `bridge-throttled-${Date.now()}`);
    const before = edge.state.stored.size;
    await page.evaluate(() => window.bus.publish('orders', { n: -1 }, { id: `throttled-${Math.random()}` }));
    edge.state.mode = 'throttle';
    const postsBefore = edge.state.posts.length;
    await startBridge(page, edge.url);
    await until(() => edge.state.stored.size === before + 1, 'the order after the wait');
    const [throttled, next] = edge.state.posts.slice(postsBefore);
    assert.equal(throttled.mode, 'throttle');
    assert.ok(next.at - throttled.at >= 900, `the next post came ${next.at - throttled.at} ms later, Retry-After said 1 s`);
    await page.close();
  });

  test(`${engine}: the network back (an online event) tries at once, not at the end of a long backoff`, async () => {
    const page = await openPage();
    await openBus(page, `bridge-online-${Date.now()}`);
    const before = edge.state.stored.size;
    edge.state.mode = 'down';
    const postsBefore = edge.state.posts.length;
    await page.evaluate(() => window.bus.publish('orders', { n: -2 }, { id: `online-${Math.random()}` }));
    await startBridge(page, edge.url, TOKEN, { initialBackoffMs: 60_000, maxBackoffMs: 60_000, jitter: false });
    await until(() => edge.state.posts.length > postsBefore, 'the post while down');
    edge.state.mode = 'ok';
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await until(() => edge.state.stored.size === before + 1, 'the order, long before its minute of backoff');
    await page.close();
  });

  test(`${engine}: into handleHttp in workerd, across origins: every order stored once, each key in order; a wrong token dead-letters`, async () => {
    const page = await openPage();
    await openBus(page, `bridge-workerd-${Date.now()}`);
    const topic = `orders-${engine}`;
    const sent = await publishOrders(page, 64);
    await page.evaluate(
      async ({ url, token, topic }) => {
        window.bridge = await window.bus.bridge({ url, token, topics: { orders: topic }, batchSize: 10 });
      },
      { url: workerdUrl, token: TOKEN, topic },
    );
    const stored = [];
    await until(async () => {
      stored.push(...(await (await fetch(`${workerdUrl}/orders?topic=${topic}`)).json()));
      return stored.length >= 64;
    }, 'every order in workerd');
    assert.deepEqual(stored.map((m) => m.value.n).sort((a, b) => a - b), sent.map((o) => o.n), 'each order stored once');
    const byKey = new Map();
    for (const m of [...stored].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m.value.n]);
    for (const [key, ns] of byKey) assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `${key} stored in send order`);
    await page.evaluate(() => window.bridge.stop());
    await page.evaluate(
      async ({ url, topic }) => {
        await window.bus.publish('orders', { n: 'refused' }, { id: 'refused-1' });
        window.refusing = await window.bus.bridge({ url, token: 'wrong', topics: { orders: topic }, groupId: 'refusing' });
      },
      { url: workerdUrl, topic },
    );
    const dead = await page.evaluate(async () => {
      const reader = window.bus.consumer({ groupId: 'dlq-reader' });
      await reader.subscribe({ topic: 'orders.dlq', fromBeginning: true });
      const error = await new Promise((resolve) => reader.run({ eachMessage: async ({ message }) => resolve(message.headers['ferry-dlq-error']) }));
      await reader.stop();
      return error;
    });
    assert.match(dead, /^HTTP 401: .*"code":"INVALID_ARGUMENT"/);
    await page.close();
  });

  test(`${engine}: a network error (the edge's port closed) is retried until it is back`, async () => {
    const page = await openPage();
    await openBus(page, `bridge-gone-${Date.now()}`);
    const gone = await startEdge();
    const { port } = gone;
    await gone.close();
    await publishOrders(page, 20);
    await startBridge(page, `http://127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const back = await startEdge(port);
    try {
      await until(() => back.state.stored.size === 20, 'every order once the edge is back');
      assertKeyOrder(back.state.arrivals);
    } finally {
      await back.close();
      await page.close();
    }
  });
});
