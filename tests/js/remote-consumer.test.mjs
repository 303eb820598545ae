// `Bus.remote()` in each browser engine: a page consumes topics that live at the
// edge, in real workerd (Miniflare) through handleHttp's receive and acks routes,
// across origins (CORS). The handlers are the ones a local consumer runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../www/serve.mjs';
import { forEachEngine } from './browsers.mjs';
import { edgeWorker, startWorker } from './workerd.mjs';

const TOKEN = 'remote-secret';
let server;
let workerd;
let edgeUrl;

// handleHttp of the bus "edge" for pages of any origin; /bytes publishes bytes
// from inside the Worker, as a Worker's own producer would.
const worker = edgeWorker(
  'edge',
  `
    if (url.pathname === '/bytes') return Response.json(await bus.publish(url.searchParams.get('topic'), new Uint8Array([0, 255, 7])));
    return new Response('not found', { status: 404 });`,
);

before(async () => {
  server = await serve();
  workerd = await startWorker(worker, { bindings: { FERRY_TOKEN: TOKEN } });
  edgeUrl = String(await workerd.ready).replace(/\/$/, '');
});

after(async () => {
  await workerd?.dispose();
  await server?.close();
});

/** Sends `messages` to the edge topic `topic` through handleHttp, from Node. */
async function sendToEdge(topic, messages) {
  const response = await fetch(`${edgeUrl}/v1/topics/${topic}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages }),
  });
  assert.equal(response.status, 200, await response.text());
}

/** The edge's stats, from Node. */
const edgeStats = async () => (await fetch(`${edgeUrl}/v1/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();

let topics = 0;
/** A fresh topic name per test and engine. */
const freshTopic = (engine, what) => `${what}-${engine}-${++topics}`;

forEachEngine(() => server.url, (engine, openPage) => {
  test(`${engine}: eachMessage over HTTP: every message once, each key in order, the group's lag 0 at the edge`, async () => {
    const topic = freshTopic(engine, 'orders');
    const sent = Array.from({ length: 60 }, (_, n) => ({ key: `customer-${n % 6}`, value: { n }, id: `order-${n}` }));
    await sendToEdge(topic, sent);
    const seen = await page(openPage, async ({ url, token, topic }) => {
      const edge = await window.ferry.Bus.remote({ url, token });
      const consumer = edge.consumer({ groupId: 'fulfil', concurrency: 4, pollIntervalMs: 50 });
      await consumer.subscribe({ topic, fromBeginning: true });
      const seen = [];
      await new Promise((resolve) =>
        consumer.run({
          eachMessage: async ({ topic: t, partition, message }) => {
            seen.push({ t, partition, key: message.key, value: message.value, id: message.id, attempt: message.attempt, offset: message.offset });
            if (seen.length === 60) resolve();
          },
        }),
      );
      await consumer.stop();
      return seen;
    }, { url: edgeUrl, token: TOKEN, topic });
    const orders = seen;
    assert.deepEqual(orders.map((m) => m.value.n).sort((a, b) => a - b), sent.map((m) => m.value.n), 'each message once');
    assert.ok(orders.every((m) => m.t === topic && m.attempt === 1 && typeof m.offset === 'number' && m.id === `order-${m.value.n}`));
    const byKey = new Map();
    for (const m of orders) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m.value.n]);
    for (const [key, ns] of byKey) assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `${key} in send order`);
    const group = (await edgeStats()).groups.find((g) => g.groupId === 'fulfil' && g.topic === topic);
    assert.equal(group.partitions.reduce((lag, p) => lag + p.lag, 0), 0, 'every message acked at the edge');
  });

  test(`${engine}: a handler that throws is retried by the edge's backoff, then dead-lettered there with the error`, async () => {
    const topic = freshTopic(engine, 'payments');
    await sendToEdge(topic, [{ key: 'p', value: 'declined' }, { key: 'p', value: 'ok' }]);
    const attempts = await page(openPage, async ({ url, token, topic }) => {
      const edge = await window.ferry.Bus.remote({ url, token });
      const consumer = edge.consumer({ groupId: 'charge', retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 10 }, pollIntervalMs: 20 });
      await consumer.subscribe({ topic, fromBeginning: true });
      const attempts = [];
      await new Promise((resolve) =>
        consumer.run({
          eachMessage: async ({ message }) => {
            attempts.push([message.value, message.attempt]);
            if (message.value === 'declined') throw new Error('card declined');
            resolve();
          },
        }),
      );
      await consumer.stop();
      return attempts;
    }, { url: edgeUrl, token: TOKEN, topic });
    assert.deepEqual(attempts, [['declined', 1], ['declined', 2], ['declined', 3], ['ok', 1]], 'the key waits for its failing message, in order');
    const dead = await receiveAtEdge(`${topic}.dlq`);
    assert.equal(dead.length, 1);
    assert.equal(dead[0].value, 'declined');
    assert.equal(dead[0].headers['ferry-dlq-error'], 'card declined');
    assert.equal(dead[0].headers['ferry-dlq-attempts'], '3');
  });

  test(`${engine}: eachBatch over HTTP with resolveOffset; bytes published at the edge arrive as a Uint8Array`, async () => {
    const topic = freshTopic(engine, 'blobs');
    assert.equal((await fetch(`${edgeUrl}/bytes?topic=${topic}`)).status, 200);
    await sendToEdge(topic, [{ value: 'a', partition: 0 }, { value: 'b', partition: 0 }]);
    const batches = await page(openPage, async ({ url, token, topic }) => {
      const edge = await window.ferry.Bus.remote({ url, token });
      const consumer = edge.consumer({ groupId: 'batches', pollIntervalMs: 20 });
      await consumer.subscribe({ topic, fromBeginning: true });
      const batches = [];
      await new Promise((resolve) =>
        consumer.run({
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning }) => {
            await heartbeat();
            batches.push({ running: isRunning(), values: batch.messages.map((m) => (m.value instanceof Uint8Array ? [...m.value] : m.value)), encoding: batch.messages[0].headers['ferry-value-encoding'] ?? null });
            for (const m of batch.messages) resolveOffset(m.offset);
            resolve();
          },
        }),
      );
      await consumer.stop();
      return batches;
    }, { url: edgeUrl, token: TOKEN, topic });
    assert.deepEqual(batches, [{ running: true, values: [[0, 255, 7], 'a', 'b'], encoding: null }]);
  });

  test(`${engine}: one handler, run on a local topic and on the same topic at the edge, sees the same messages`, async () => {
    const topic = freshTopic(engine, 'same');
    const messages = [{ key: 'k', value: { n: 1 }, headers: { source: 'web' } }, { key: 'k', value: 'two' }, { value: [3] }];
    await sendToEdge(topic, messages);
    const [local, remote] = await page(openPage, async ({ url, token, topic, messages }) => {
      const handled = (out, done) => async ({ message }) => {
        out.push({ key: message.key, value: message.value, headers: message.headers, attempt: message.attempt });
        if (out.length === 3) done();
      };
      const consume = async (bus) => {
        const out = [];
        const consumer = bus.consumer({ groupId: 'same', pollIntervalMs: 20 });
        await consumer.subscribe({ topic, fromBeginning: true });
        await new Promise((resolve) => consumer.run({ eachMessage: handled(out, resolve) }));
        await consumer.stop();
        return out;
      };
      const local = await window.ferry.Bus.open({ name: `same-${Math.random()}` });
      await local.createTopic(topic, { partitions: 1 });
      await local.producer().send({ topic, messages });
      return [await consume(local), await consume(await window.ferry.Bus.remote({ url, token }))];
    }, { url: edgeUrl, token: TOKEN, topic, messages });
    assert.deepEqual(remote, local);
  });

  test(`${engine}: a wrong token is refused: the remote consumer ends, and nothing is leased`, async () => {
    const topic = freshTopic(engine, 'closed');
    await sendToEdge(topic, [{ value: 'x' }]);
    const handled = await page(openPage, async ({ url, topic }) => {
      const edge = await window.ferry.Bus.remote({ url, token: 'wrong' });
      const consumer = edge.consumer({ groupId: 'intruder' });
      await consumer.subscribe({ topic, fromBeginning: true });
      let handled = 0;
      await consumer.run({ eachMessage: async () => handled++ });
      // The refusal ends the loop; stop() then finds it ended.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await consumer.stop();
      return handled;
    }, { url: edgeUrl, topic });
    assert.equal(handled, 0);
    assert.equal((await edgeStats()).groups.some((g) => g.groupId === 'intruder'), false);
  });

  test(`${engine}: bad options are a FerryError naming the field`, async () => {
    const errors = await page(openPage, async () => {
      const code = async (f) => {
        try {
          await f();
          return 'no error';
        } catch (error) {
          return `${error.code}: ${error.message}`;
        }
      };
      const edge = await window.ferry.Bus.remote({ url: 'http://127.0.0.1:9' });
      return [
        await code(() => window.ferry.Bus.remote({ url: 'ftp://x' })),
        await code(() => edge.consumer({})),
        await code(() => edge.consumer({ groupId: 'g', pollIntervalMs: 0 })),
        await code(() => edge.consumer({ groupId: 'g' }).run({ eachMessage: async () => {} })),
      ];
    }, {});
    assert.match(errors[0], /^INVALID_ARGUMENT: url/);
    assert.match(errors[1], /^INVALID_ARGUMENT: groupId/);
    assert.match(errors[2], /^INVALID_ARGUMENT: pollIntervalMs/);
    assert.match(errors[3], /^INVALID_ARGUMENT: subscribe/);
  });
});

/** Runs `f(arg)` in a new page and closes it. */
async function page(openPage, f, arg) {
  const p = await openPage();
  try {
    return await p.evaluate(f, arg);
  } finally {
    await p.close();
  }
}

/** Receives (and acks) what the edge holds in `topic`, from Node through handleHttp. */
async function receiveAtEdge(topic) {
  const post = (path, body) =>
    fetch(`${edgeUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) }).then((r) => r.json());
  for (let i = 0; i < 100; i++) {
    const { messages } = await post(`/v1/topics/${topic}/receive`, { group: 'inspect', fromBeginning: true, max: 100 });
    if (messages.length > 0) {
      await post('/v1/acks', { receipts: messages.map(({ receipt }) => ({ receipt })) });
      return messages;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return [];
}
