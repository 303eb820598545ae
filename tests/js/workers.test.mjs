// `ferry/workers` in real workerd (through Miniflare): the bus in a SQLite-backed
// Durable Object, a Worker's pull consumers, and persistence across restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from './workerd.mjs';

// Each path of the Worker runs one step against the bus and answers with what it saw.
const worker = `
import { FerryObject, FerryError, connect } from 'ferry/workers';

export class Bus extends FerryObject {}

const steps = {
  async send(bus) {
    await bus.createTopic('orders', { partitions: 2 });
    const messages = ['a', 'b', 'c', 'd', 'e', 'f'].map((v, i) => ({ key: 'order-' + (i % 2 + 1), value: v, id: 'id-' + v }));
    return bus.producer().send({ topic: 'orders', messages });
  },
  async receiveAndAck(bus, url) {
    const consumer = bus.consumer({ groupId: 'fulfilment' });
    await consumer.subscribe({ topic: 'orders', fromBeginning: true });
    const received = await consumer.receive({ max: Number(url.searchParams.get('max') ?? 10) });
    for (const m of received) await m.ack();
    return received.map(({ partition, offset, key, value, id, attempt }) => ({ partition, offset, key, value, id, attempt }));
  },
  async retryThenDeadLetter(bus) {
    await bus.publish('payments', 'charge 42', { key: 'p' });
    const consumer = bus.consumer({ groupId: 'billing', retry: { maxAttempts: 2, initialBackoffMs: 0, jitter: false } });
    await consumer.subscribe({ topic: 'payments', fromBeginning: true });
    const attempts = [];
    for (let round = 0; round < 3; round++) {
      for (const m of await consumer.receive()) {
        attempts.push(m.attempt);
        await m.retry({ error: 'provider down' });
      }
    }
    const stats = await bus.stats();
    return { attempts, deadLettered: stats.groups.find((g) => g.groupId === 'billing').deadLettered };
  },
  async errors(bus) {
    const codes = [];
    for (const call of [() => bus.createTopic('bad name!'), () => bus.createTopic('orders', { partitions: 3 }), () => bus.consumer({ groupId: 'g' }).receive()]) {
      try {
        await call();
        codes.push(null);
      } catch (e) {
        codes.push([e instanceof FerryError, e.code]);
      }
    }
    return codes;
  },
  async retryLater(bus) {
    await bus.publish('later', 'x');
    const consumer = bus.consumer({ groupId: 'later' });
    await consumer.subscribe({ topic: 'later', fromBeginning: true });
    const [m] = await consumer.receive();
    await m.retry({ delayMs: 400, error: 'not yet' });
    const atOnce = await consumer.receive();
    await new Promise((resolve) => setTimeout(resolve, 600));
    const later = await consumer.receive();
    return { atOnce: atOnce.length, later: later.map((m) => [m.value, m.attempt]) };
  },
  // Leases a message and lets it run out: only the object's alarm can notice.
  async leaseAndWalkAway(bus) {
    await bus.publish('leases', 'y');
    const consumer = bus.consumer({ groupId: 'leases', ackTimeoutMs: 300, retry: { initialBackoffMs: 60000 } });
    await consumer.subscribe({ topic: 'leases', fromBeginning: true });
    return (await consumer.receive()).length;
  },
  stats: (bus) => bus.stats(),
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      return Response.json(await steps[url.pathname.slice(1)](connect(env.BUS, { name: 'shop' }), url));
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

const start = (persistTo) => startWorker(worker, { persistTo });

async function step(mf, path) {
  const response = await mf.dispatchFetch(`http://ferry.test/${path}`, { signal: AbortSignal.timeout(15000) });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

test('a Worker sends, receives and acks through the Durable Object, and a restart keeps every position', { timeout: 60000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-workers-'));
  const before = [];
  try {
    let mf = await start(dir);
    try {
      const sent = await step(mf, 'send');
      // Kafka's partitioner: order-1 on partition 0, order-2 on 1, offsets gapless per partition.
      assert.deepEqual(sent.map((r) => [r.partition, r.offset]), [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]]);
      // "partition" ordering: runs, a share of max from each partition, in order.
      const first = await step(mf, 'receiveAndAck?max=4');
      assert.deepEqual(first.map((m) => [m.partition, m.offset, m.value, m.attempt]).sort(), [[0, 0, 'a', 1], [0, 1, 'c', 1], [1, 0, 'b', 1], [1, 1, 'd', 1]]);
      const second = await step(mf, 'receiveAndAck?max=1');
      assert.equal(second.length, 1);
      before.push(...first, ...second);
    } finally {
      await mf.dispose();
    }
    // A new workerd on the same storage goes on where the group stopped.
    mf = await start(dir);
    try {
      const rest = [];
      for (let i = 0; i < 5 && rest.length < 1; i++) rest.push(...(await step(mf, 'receiveAndAck')));
      const seen = rest.map((m) => m.value);
      assert.equal(seen.length, 1);
      assert.deepEqual([...before.map((m) => m.value), ...seen].sort(), ['a', 'b', 'c', 'd', 'e', 'f'], 'acked messages are not delivered again');
      const stats = await step(mf, 'stats');
      const group = stats.groups.find((g) => g.groupId === 'fulfilment');
      assert.deepEqual(group.partitions.map((p) => [p.committedOffset, p.lag]), [[3, 0], [3, 0]]);
    } finally {
      await mf.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('retry is a failed attempt: backoff, then dead-lettered after maxAttempts', { timeout: 30000 }, async () => {
  const mf = await start(false);
  try {
    const { attempts, deadLettered } = await step(mf, 'retryThenDeadLetter');
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(deadLettered, 1);
  } finally {
    await mf.dispose();
  }
});

test('bad calls reject with a FerryError and its code from pkg/README.md', { timeout: 30000 }, async () => {
  const mf = await start(false);
  try {
    await step(mf, 'send');
    const codes = await step(mf, 'errors');
    assert.deepEqual(codes, [[true, 'INVALID_ARGUMENT'], [true, 'TOPIC_CONFLICT'], [true, 'INVALID_ARGUMENT']]);
  } finally {
    await mf.dispose();
  }
});

test('time at the edge: retry({ delayMs }) waits that long, and the alarm expires a lease with no request', { timeout: 30000 }, async () => {
  const mf = await start(false);
  try {
    const { atOnce, later } = await step(mf, 'retryLater');
    assert.equal(atOnce, 0, 'not before its delay');
    assert.deepEqual(later, [['x', 2]]);

    assert.equal(await step(mf, 'leaseAndWalkAway'), 1);
    // No request until well past the 300 ms lease: the alarm counts the failed attempt.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const stats = await step(mf, 'stats');
    const [partition] = stats.groups.find((g) => g.groupId === 'leases').partitions;
    assert.deepEqual([partition.inFlight, partition.retrying], [0, 1]);
  } finally {
    await mf.dispose();
  }
});
