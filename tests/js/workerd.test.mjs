// The package in real workerd (through Miniflare), bundled the way wrangler bundles a Worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Miniflare } from 'miniflare';
import { bundleWorker, root } from './workerd.mjs';

// One fetch exercises the whole API on the default storage, which is memory here
// (workerd has no IndexedDB), and answers with what it saw.
const worker = `
import { Bus, FerryError } from 'ferry';

const MESSAGES = [
  { key: 'order-1', value: 'first' },
  { key: 'order-2', value: { n: 2 } },
  { key: 'order-1', value: 'third' },
  { key: 'order-2', value: new Uint8Array([4]) },
];

// Rejects with a named error instead of hanging the request when nothing arrives.
async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(what + ' timed out')), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function consumeAll(bus, count) {
  const consumer = bus.consumer({ groupId: 'edge-group' });
  await consumer.subscribe({ topic: 'orders', fromBeginning: true });
  const received = [];
  let allReceived;
  const done = new Promise((resolve) => (allReceived = resolve));
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const value = message.value instanceof Uint8Array ? { bytes: [...message.value] } : message.value;
      received.push({ partition, offset: message.offset, key: message.key, value });
      if (received.length === count) allReceived();
    },
  });
  await within(5000, 'consuming', done);
  await consumer.stop();
  return received;
}

async function rejection(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { ferryError: e instanceof FerryError, code: e.code };
  }
}

async function exercise() {
  const bus = await Bus.open({ name: 'edge' });
  const created = await bus.createTopic('orders', { partitions: 2 });
  const sent = await bus.producer().send({ topic: 'orders', messages: MESSAGES.slice(0, 3) });
  const published = await bus.publish('orders', MESSAGES[3].value, { key: MESSAGES[3].key });
  const received = await consumeAll(bus, MESSAGES.length);
  const stats = await bus.stats();
  const badName = await rejection(bus.createTopic('bad name!'));
  await bus.close();
  const afterClose = await rejection(bus.stats());
  return { created, sent: [...sent, published], received, stats, badName, afterClose };
}

export default {
  async fetch() {
    try {
      return Response.json(await exercise());
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

test('in workerd the workerd entry loads the engine, and a bus produces, consumes and fails as in pkg/README.md', { timeout: 20000 }, async () => {
  const { modules, inputs } = await bundleWorker(worker);
  assert.ok(inputs.includes('pkg/entry/workerd.js'), `the workerd entry is bundled: ${inputs.join(', ')}`);
  const mf = new Miniflare({ modules, modulesRoot: root, compatibilityDate: '2025-09-01' });
  try {
    // A worker that never answers must still leave time for dispose() to stop workerd.
    const response = await mf.dispatchFetch('http://ferry.test/', { signal: AbortSignal.timeout(15000) });
    const body = await response.text();
    assert.equal(response.status, 200, body);
    const { created, sent, received, stats, badName, afterClose } = JSON.parse(body);

    assert.equal(created, true);
    // Kafka's partitioner puts order-1 on partition 0 and order-2 on 1, as in Node.
    assert.deepEqual(sent.map((r) => [r.partition, r.offset, r.duplicate]), [[0, 0, false], [1, 0, false], [0, 1, false], [1, 1, false]]);

    // Every message once, each key in send order on its key's partition.
    const ofKey = (key) => received.filter((m) => m.key === key).map((m) => [m.partition, m.offset, m.value]);
    assert.equal(received.length, 4);
    assert.deepEqual(ofKey('order-1'), [[0, 0, 'first'], [0, 1, 'third']]);
    assert.deepEqual(ofKey('order-2'), [[1, 0, { n: 2 }], [1, 1, { bytes: [4] }]]);

    const topic = stats.topics.find((t) => t.topic === 'orders');
    assert.deepEqual(topic.partitions.map((p) => p.highOffset), [2, 2]);
    const group = stats.groups.find((g) => g.groupId === 'edge-group');
    assert.deepEqual(group.partitions.map((p) => [p.committedOffset, p.lag]), [[2, 0], [2, 0]]);

    assert.deepEqual(badName, { ferryError: true, code: 'INVALID_ARGUMENT' });
    assert.deepEqual(afterClose, { ferryError: true, code: 'CLOSED' });
  } finally {
    await mf.dispose();
  }
});

// A Worker using both entries: the bus in memory of 'ferry' beside the Durable
// Objects of 'ferry/workers'. Bundled as wrangler does, wasm modules are named by
// their file, so the two engines must not share a file name.
const both = `
import { Bus } from 'ferry';
import { FerryObject, connect } from 'ferry/workers';

export class BusObject extends FerryObject {}

export default {
  async fetch(request, env) {
    try {
      const local = await Bus.open({ name: 'local' });
      const here = await local.publish('t', 'in memory');
      await local.close();
      const edge = connect(env.BUS, { name: 'edge' });
      const there = await edge.publish('t', 'in a Durable Object');
      return Response.json({ here: here.offset, there: there.offset });
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

test('a Worker importing both ferry and ferry/workers bundles two engines under their own names, and both run', { timeout: 20000 }, async () => {
  const { modules } = await bundleWorker(both);
  const engines = modules.filter((m) => m.type === 'CompiledWasm').map((m) => m.path.slice(root.length));
  assert.equal(engines.length, 2, `two wasm modules: ${engines.join(', ')}`);
  const mf = new Miniflare({ modules, modulesRoot: root, compatibilityDate: '2025-09-01', durableObjects: { BUS: { className: 'BusObject', useSQLite: true } } });
  try {
    const response = await mf.dispatchFetch('http://ferry.test/', { signal: AbortSignal.timeout(15000) });
    const body = await response.text();
    assert.equal(response.status, 200, body);
    assert.deepEqual(JSON.parse(body), { here: 0, there: 0 });
  } finally {
    await mf.dispose();
  }
});
