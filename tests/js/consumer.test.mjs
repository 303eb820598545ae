// Consumers in Node on the memory store: the KafkaJS port from MISSION.md, fan-out,
// retries with backoff, dead letters, ack timeouts, ordering and stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, FerryError } from 'ferry';

const until = async (condition, timeoutMs = 5000) => {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('the KafkaJS example ports by changing the import and the client line', async () => {
  const bus = await Bus.open({ name: 'shop' });
  const producer = bus.producer();
  const consumer = bus.consumer({ groupId: 'order-service' });
  const scheduled = [];
  const schedule = (order) => scheduled.push(order);
  const order = { id: 'order-42', items: ['tea'], total: 12.5 };
  // the rest reads exactly as with KafkaJS:
  await consumer.subscribe({ topic: 'order.placed', fromBeginning: false });
  await consumer.run({ eachMessage: async ({ message }) => schedule(JSON.parse(message.value.toString())) });
  await producer.send({ topic: 'order.placed', messages: [{ key: order.id, value: JSON.stringify(order) }] });
  await until(() => scheduled.length === 1);
  assert.deepEqual(scheduled[0], order);
  await bus.close();
});

test('every group gets every message, values as they were given', async () => {
  const bus = await Bus.open();
  const seen = { billing: [], shipping: [] };
  for (const groupId of Object.keys(seen)) {
    const c = bus.consumer({ groupId });
    await c.subscribe({ topic: 'v' });
    await c.run({ eachMessage: async ({ message }) => seen[groupId].push(message.value) });
  }
  await bus.publish('v', 'text');
  await bus.publish('v', new Uint8Array([0, 255]));
  await bus.publish('v', { a: [1, null, 'x'] });
  await until(() => seen.billing.length === 3 && seen.shipping.length === 3);
  for (const values of Object.values(seen)) {
    assert.equal(values[0], 'text');
    assert.ok(values[1] instanceof Uint8Array);
    assert.deepEqual([...values[1]], [0, 255]);
    assert.deepEqual(values[2], { a: [1, null, 'x'] });
  }
  await bus.close();
});

test('failures retry with exponential backoff, then dead-letter with ferry-dlq-* headers', async () => {
  const bus = await Bus.open();
  const attempts = [];
  const consumer = bus.consumer({ groupId: 'billing', retry: { maxAttempts: 3, initialBackoffMs: 40, multiplier: 2, jitter: false } });
  await consumer.subscribe({ topic: 'payments' });
  await consumer.run({
    eachMessage: async ({ message }) => {
      attempts.push([message.attempt, Date.now()]);
      throw new Error(`provider down for ${message.key}`);
    },
  });
  await bus.publish('payments', 'charge', { key: 'order-7', headers: { trace: 't1' } });
  await until(async () => (await bus.stats()).groups.some((g) => g.deadLettered === 1));
  assert.deepEqual(attempts.map(([a]) => a), [1, 2, 3]);
  const waits = attempts.slice(1).map(([, t], i) => t - attempts[i][1]);
  assert.ok(waits[0] >= 40 && waits[1] >= 80, `backoff waits ${waits}`);
  const dead = [];
  const reader = bus.consumer({ groupId: 'ops' });
  await reader.subscribe({ topic: 'payments.dlq', fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => dead.push(message) });
  await until(() => dead.length === 1);
  const h = dead[0].headers;
  assert.equal(dead[0].key, 'order-7');
  assert.equal(dead[0].value, 'charge');
  assert.deepEqual(
    [h.trace, h['ferry-dlq-topic'], h['ferry-dlq-partition'], h['ferry-dlq-offset'], h['ferry-dlq-group'], h['ferry-dlq-attempts'], h['ferry-dlq-error']],
    ['t1', 'payments', '0', '0', 'billing', '3', 'provider down for order-7'],
  );
  assert.equal(await bus.redrive({ from: 'payments.dlq' }), 1);
  assert.equal(await bus.redrive({ from: 'payments.dlq' }), 0);
  await bus.close();
});

test('a handler past ackTimeoutMs is a failed attempt; partition order holds meanwhile', async () => {
  const bus = await Bus.open();
  const handled = [];
  const consumer = bus.consumer({ groupId: 'g', ackTimeoutMs: 50, retry: { initialBackoffMs: 10, jitter: false } });
  await consumer.subscribe({ topic: 'slow' });
  await consumer.run({
    eachMessage: async ({ message }) => {
      handled.push([message.value, message.attempt]);
      if (message.value === 'first' && message.attempt === 1) await new Promise((r) => setTimeout(r, 200));
    },
  });
  await bus.producer().send({ topic: 'slow', messages: [{ value: 'first' }, { value: 'second' }] });
  await until(() => handled.length === 3);
  assert.deepEqual(handled, [['first', 1], ['first', 2], ['second', 1]]);
  await bus.close();
});

test('bad consumer options throw FerryError naming the field', async () => {
  const bus = await Bus.open();
  for (const [options, field] of [
    [{}, 'groupId'],
    [{ groupId: 'bad name' }, 'groupId'],
    [{ groupId: 'g', retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
    [{ groupId: 'g', retry: { multiplier: Infinity } }, 'retry.multiplier'],
    [{ groupId: 'g', concurrency: 1.5 }, 'concurrency'],
    [{ groupId: 'g', ordering: 'random' }, 'ordering'],
    [{ groupId: 'g', ackTimeoutMs: -1 }, 'ackTimeoutMs'],
  ]) {
    assert.throws(() => bus.consumer(options), (e) => e instanceof FerryError && e.code === 'INVALID_ARGUMENT' && e.message.includes(field));
  }
  const consumer = bus.consumer({ groupId: 'g' });
  await assert.rejects(consumer.run({ eachMessage: () => {} }), (e) => e instanceof FerryError && /subscribe/.test(e.message));
  await bus.close();
});
