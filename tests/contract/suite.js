// The pkg/README.md contract, one suite for every place the package runs: Node on the
// memory store, a Chromium page and a Chromium module service worker on IndexedDB.
// Each case gets the package (`{ Bus, FerryError }`) and `env.name(label)`, a bus
// name no other case or run uses; `env.edge` is true in workerd, through `connect`.
import { assert } from './assert.js';

export async function rejectsWith(ferry, promise, code, field) {
  const e = await assert.rejects(promise, `expected ${code}`);
  assert.ok(e instanceof ferry.FerryError, `a FerryError, got ${e}`);
  assert.ok(e instanceof Error, 'a FerryError is an Error');
  assert.equal(e.code, code, e.message);
  if (field) assert.ok(e.message.includes(field), `"${e.message}" names ${field}`);
}

async function until(condition, timeoutMs = 5000) {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Has `group` fail every message of `topic` once until `count` are dead-lettered: with a consumer.run loop, or at the edge (`env.edge`) receive and retry. */
async function deadLetterAll(bus, env, topic, group, count) {
  const consumer = bus.consumer({ groupId: group, retry: { maxAttempts: 1 } });
  await consumer.subscribe({ topic, fromBeginning: true });
  const deadLettered = async () => (await bus.stats()).groups.some((g) => g.groupId === group && g.deadLettered === count);
  if (env.edge) {
    await until(async () => {
      for (const m of await consumer.receive({ max: 100 })) await m.retry({ error: 'smtp down' });
      return deadLettered();
    });
    return;
  }
  await consumer.run({
    eachMessage: async () => {
      throw new Error('smtp down');
    },
  });
  await until(deadLettered);
  await consumer.stop();
}

/** Consumer options every place must refuse, with the field the message names. */
export const badConsumerOptions = [
  [{}, 'groupId'],
  [{ groupId: 'bad name' }, 'groupId'],
  [{ groupId: 'g', retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
  [{ groupId: 'g', retry: { multiplier: Infinity } }, 'retry.multiplier'],
  [{ groupId: 'g', concurrency: 1.5 }, 'concurrency'],
  [{ groupId: 'g', ordering: 'random' }, 'ordering'],
  [{ groupId: 'g', ackTimeoutMs: -1 }, 'ackTimeoutMs'],
  [{ groupId: 'g', maxBatchSize: 0 }, 'maxBatchSize'],
  [{ groupId: 'g', maxBatchSize: 1001 }, 'maxBatchSize'],
];

export const cases = [
  {
    name: 'createTopic resolves true, then false, and conflicts on another partition count',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('topics') });
      assert.equal(await bus.createTopic('orders', { partitions: 3 }), true);
      assert.equal(await bus.createTopic('orders', { partitions: 3 }), false);
      await rejectsWith(ferry, bus.createTopic('orders', { partitions: 4 }), 'TOPIC_CONFLICT');
      assert.deepEqual(await bus.topics(), [{ topic: 'orders', partitions: 3, retentionMs: null, maxDepth: null }]);
      await bus.close();
    },
  },
  {
    name: "keys land on Kafka's partition, offsets are gapless from 0",
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('partitioner') });
      await bus.createTopic('t', { partitions: 8 });
      // Kafka's UtilsTest vectors: murmur2 of the key, & 0x7fffffff, % partitions.
      const vectors = { 21: -973932308, foobar: -790332482, 'a-little-bit-long-string': -985981536, abc: 479470107 };
      for (const [key, hash] of Object.entries(vectors)) {
        const [first, second] = await bus.producer().send({ topic: 't', messages: [{ key, value: 'a' }, { key, value: 'b' }] });
        assert.equal(first.partition, (hash & 0x7fffffff) % 8, `partition of ${key}`);
        assert.equal(second.offset, first.offset + 1, `offsets of ${key}`);
      }
      const stats = await bus.stats();
      const total = stats.topics[0].partitions.reduce((n, p) => n + p.highOffset, 0);
      assert.equal(total, 8);
      await bus.close();
    },
  },
  {
    name: 'ids deduplicate within the window',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('dedup') });
      const first = await bus.publish('orders', { id: 42 }, { id: 'order-42' });
      const again = await bus.publish('orders', { id: 42 }, { id: 'order-42' });
      assert.deepEqual([again.duplicate, again.offset, again.timestamp], [true, first.offset, first.timestamp]);
      assert.equal((await bus.stats()).topics[0].partitions[0].highOffset, 1);
      await bus.close();
    },
  },
  {
    name: 'a send is atomic: one bad message stores nothing',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('atomic'), maxMessageBytes: 16 });
      await rejectsWith(ferry, bus.producer().send({ topic: 't', messages: [{ value: 'ok' }, { value: 'x'.repeat(17) }] }), 'MESSAGE_TOO_LARGE', 'messages[1]');
      assert.deepEqual((await bus.stats()).topics, []);
      await bus.close();
    },
  },
  {
    name: 'bad input rejects with INVALID_ARGUMENT naming the field, and stores nothing',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('bad-input') });
      const send = (messages) => bus.producer().send({ topic: 't', messages });
      const cyclic = {};
      cyclic.self = cyclic;
      const cases = [
        [() => bus.createTopic('bad name'), 'topic'],
        [() => bus.createTopic('t', { partitions: 0 }), 'partitions'],
        [() => bus.createTopic('t', { partitions: 1.5 }), 'partitions'],
        [() => bus.createTopic('t', { partitions: NaN }), 'partitions'],
        [() => bus.createTopic('t', { partitions: '2' }), 'partitions'],
        [() => bus.createTopic('t', { retentionMs: -1 }), 'retentionMs'],
        [() => send([]), 'messages'],
        [() => send('nope'), 'messages'],
        [() => send([{ value: undefined }]), 'messages[0].value'],
        [() => send([{ value: () => 1 }]), 'messages[0].value'],
        [() => send([{ value: 10n }]), 'messages[0].value'],
        [() => send([{ value: cyclic }]), 'messages[0].value'],
        [() => send([{ value: 'v', key: 5 }]), 'messages[0].key'],
        [() => send([{ value: 'v', headers: { a: 1 } }]), 'messages[0].headers.a'],
        [() => send([{ value: 'v', delayMs: -5 }]), 'messages[0].delayMs'],
        [() => send([{ value: 'v', partition: 2 ** 60 }]), 'messages[0].partition'],
        [() => bus.publish(7, 'v'), 'topic'],
        [() => bus.redrive({}), 'from'],
        [() => ferry.Bus.open({ maxMessageBytes: 2 ** 40 }), 'maxMessageBytes'],
        [() => ferry.Bus.open({ storage: 'disk' }), 'storage'],
      ];
      for (const [call, field] of cases) await rejectsWith(ferry, call(), 'INVALID_ARGUMENT', field);
      assert.deepEqual((await bus.stats()).topics, []);
      await bus.close();
    },
  },
  {
    name: 'close makes later calls reject with CLOSED',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('close') });
      const closing = bus.close();
      // Made after close() was asked, before it resolved: refused all the same.
      await rejectsWith(ferry, bus.producer().send({ topic: 't', messages: [{ value: 'v' }] }), 'CLOSED');
      await closing;
      await rejectsWith(ferry, bus.publish('t', 'v'), 'CLOSED');
      await rejectsWith(ferry, bus.stats(), 'CLOSED');
    },
  },
  {
    name: 'the KafkaJS example ports by changing the import and the client line',
    needs: 'run',
    async run(ferry, env) {
      const { Bus } = ferry;
      const bus = await Bus.open({ name: env.name('shop') });
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
    },
  },
  {
    name: 'every group gets every message, values as they were given',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('fan-out') });
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
        assert.deepEqual(values, ['text', new Uint8Array([0, 255]), { a: [1, null, 'x'] }]);
      }
      await bus.close();
    },
  },
  {
    name: 'failures retry with exponential backoff, then dead-letter with ferry-dlq-* headers; redrive moves them once',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('dead-letters') });
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
      await consumer.stop();
      const dead = [];
      const reader = bus.consumer({ groupId: 'ops' });
      await reader.subscribe({ topic: 'payments.dlq', fromBeginning: true });
      await reader.run({ eachMessage: async ({ message }) => dead.push(message) });
      await until(() => dead.length === 1);
      const h = dead[0].headers;
      assert.deepEqual([dead[0].key, dead[0].value], ['order-7', 'charge']);
      assert.deepEqual(
        [h.trace, h['ferry-dlq-topic'], h['ferry-dlq-partition'], h['ferry-dlq-offset'], h['ferry-dlq-group'], h['ferry-dlq-attempts'], h['ferry-dlq-error']],
        ['t1', 'payments', '0', '0', 'billing', '3', 'provider down for order-7'],
      );
      assert.equal(await bus.redrive({ from: 'payments.dlq' }), 1);
      assert.equal(await bus.redrive({ from: 'payments.dlq' }), 0);
      assert.equal((await bus.stats()).topics.find((t) => t.topic === 'payments').partitions[0].highOffset, 2);
      await bus.close();
    },
  },
  {
    name: 'a handler past ackTimeoutMs is a failed attempt; partition order holds meanwhile',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('ack-timeout') });
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
    },
  },
  {
    name: 'bad consumer options throw FerryError naming the field',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('consumer-options') });
      for (const [options, field] of badConsumerOptions) {
        const e = assert.throws(() => bus.consumer(options), `consumer(${JSON.stringify(options)})`);
        assert.ok(e instanceof ferry.FerryError && e.code === 'INVALID_ARGUMENT' && e.message.includes(field), `${e.message} names ${field}`);
      }
      await bus.close();
    },
  },
  {
    name: 'run before subscribe rejects with FerryError naming subscribe',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('run-unsubscribed') });
      const consumer = bus.consumer({ groupId: 'g' });
      const e = await assert.rejects(consumer.run({ eachMessage: () => {} }));
      assert.ok(e instanceof ferry.FerryError && /subscribe/.test(e.message), e.message);
      await bus.close();
    },
  },
  {
    name: 'a failure in the middle of a run retries it, then the rest comes back in order with no attempt counted',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('run-failure') });
      const handled = [];
      const consumer = bus.consumer({ groupId: 'g', retry: { initialBackoffMs: 20, jitter: false } });
      await consumer.subscribe({ topic: 'run', fromBeginning: true });
      await bus.producer().send({ topic: 'run', messages: ['0', '1', '2', '3', '4'].map((value) => ({ value })) });
      await consumer.run({
        eachMessage: async ({ message }) => {
          handled.push(`${message.value}#${message.attempt}`);
          if (message.value === '2' && message.attempt === 1) throw new Error('once');
        },
      });
      await until(() => handled.length === 6);
      assert.deepEqual(handled, ['0#1', '1#1', '2#1', '2#2', '3#1', '4#1']);
      await until(async () => (await bus.stats()).groups[0].partitions[0].committedOffset === 5);
      await bus.close();
    },
  },
  {
    name: 'eachBatch gets runs of one partition in order; resolveOffset acks, a throw fails the first unresolved message',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('each-batch') });
      await bus.producer().send({ topic: 'b', messages: ['0', '1', '2', '3', '4'].map((value) => ({ key: 'k', value })) });
      const batches = [];
      const consumer = bus.consumer({ groupId: 'g', maxBatchSize: 4, retry: { initialBackoffMs: 20, jitter: false } });
      await consumer.subscribe({ topic: 'b', fromBeginning: true });
      await consumer.run({
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          batches.push(batch.messages.map((m) => `${m.value}#${m.attempt}`));
          assert.equal(batch.topic, 'b');
          assert.equal(batch.highWatermark, 5);
          assert.equal(batch.firstOffset(), batch.messages[0].offset);
          assert.ok(isRunning() && !isStale());
          await heartbeat();
          if (batches.length === 1) {
            resolveOffset(batch.messages[1].offset);
            throw new Error('third failed');
          }
        },
      });
      await until(() => batches.flat().length >= 7);
      assert.deepEqual(batches, [['0#1', '1#1', '2#1', '3#1'], ['2#2', '3#1', '4#1']]);
      await until(async () => (await bus.stats()).groups[0].partitions[0].committedOffset === 5);
      await bus.close();
    },
  },
  {
    name: 'eachBatchAutoResolve false: what eachBatch leaves unresolved comes back as it was',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('each-batch-manual') });
      await bus.producer().send({ topic: 'b', messages: ['0', '1', '2'].map((value) => ({ value })) });
      const batches = [];
      const consumer = bus.consumer({ groupId: 'g' });
      await consumer.subscribe({ topic: 'b', fromBeginning: true });
      await consumer.run({
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset }) => {
          batches.push(batch.messages.map((m) => `${m.value}#${m.attempt}`));
          resolveOffset(batch.messages[0].offset);
        },
      });
      await until(() => batches.length === 3);
      assert.deepEqual(batches, [['0#1', '1#1', '2#1'], ['1#1', '2#1'], ['2#1']]);
      await bus.close();
    },
  },
  {
    name: 'run takes exactly one of eachMessage and eachBatch',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('run-handlers') });
      for (const [options, field] of [
        [{}, 'eachMessage'],
        [{ eachMessage: () => {}, eachBatch: () => {} }, 'eachBatch'],
        [{ eachBatch: 'no' }, 'eachBatch'],
        [{ eachMessage: () => {}, eachBatchAutoResolve: 'yes' }, 'eachBatchAutoResolve'],
      ]) {
        const consumer = bus.consumer({ groupId: 'g' });
        await consumer.subscribe({ topic: 't' });
        await rejectsWith(ferry, consumer.run(options), 'INVALID_ARGUMENT', field);
      }
      await bus.close();
    },
  },
  {
    name: 'values JSON would not give back as they were are refused naming the field, and headers must be a plain object',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('faithful-values') });
      const refused = [
        [NaN, 'messages[1].value is NaN'],
        [{ total: Infinity }, 'messages[1].value.total is Infinity'],
        [[1, -Infinity], 'messages[1].value[1] is -Infinity'],
        [new Date(0), 'messages[1].value is a Date'],
        [{ at: new Date(0) }, 'messages[1].value.at is a Date'],
        [new ArrayBuffer(2), 'messages[1].value is a ArrayBuffer'],
        [new DataView(new ArrayBuffer(2)), 'messages[1].value is a DataView'],
        [new Error('boom'), 'messages[1].value is a Error'],
        [/x/, 'messages[1].value is a RegExp'],
        [new Int16Array([1, 2]), 'messages[1].value is a Int16Array'],
        [{ list: [new Map([['a', 1]])] }, 'messages[1].value.list[0] is a Map'],
        [[undefined], 'messages[1].value[0] is undefined'],
      ];
      for (const [value, field] of refused) {
        await rejectsWith(ferry, bus.producer().send({ topic: 'v', messages: [{ value: 'ok' }, { value }] }), 'INVALID_ARGUMENT', field);
      }
      await rejectsWith(ferry, bus.publish('v', 'x', { headers: new Map([['trace', 't1']]) }), 'INVALID_ARGUMENT', 'headers must be a plain object');
      assert.deepEqual((await bus.stats()).topics, [], 'nothing was stored');
      await bus.close();
    },
  },
  {
    name: 'what JSON keeps is delivered deep-equal; an undefined property is dropped, as JSON.stringify drops it',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('kept-values') });
      const kept = { n: -0.5, nested: { list: [1, 'two', null, true, { deep: [] }] }, empty: {} };
      await bus.publish('v', { ...kept, dropped: undefined }, { headers: Object.assign(Object.create(null), { trace: 't1' }) });
      const consumer = bus.consumer({ groupId: 'g' });
      await consumer.subscribe({ topic: 'v', fromBeginning: true });
      const got = await new Promise((resolve) => consumer.run({ eachMessage: ({ message }) => resolve(message) }));
      assert.deepEqual([got.value, got.headers], [kept, { trace: 't1' }]);
      await bus.close();
    },
  },
  {
    name: 'messages past retentionMs are dropped and counted by the next operation, with no consumer running',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('retention-idle') });
      await bus.createTopic('short', { partitions: 1, retentionMs: 200 });
      await bus.producer().send({ topic: 'short', messages: [{ value: 'a' }, { value: 'b' }] });
      await new Promise((resolve) => setTimeout(resolve, 400));
      const [partition] = (await bus.stats()).topics.find((t) => t.topic === 'short').partitions;
      assert.deepEqual([partition.lowOffset, partition.highOffset, partition.depth, partition.expired], [2, 2, 0, 2]);
      await bus.close();
    },
  },
  {
    name: 'redrive never moves or drops messages of a topic that is not a dead-letter topic; ferry-* headers are refused on send',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('redrive-ordinary') });
      const forged = { value: 'x', headers: { 'ferry-dlq-topic': 'elsewhere' } };
      await rejectsWith(ferry, bus.producer().send({ topic: 'orders', messages: [{ value: 'ok' }, forged] }), 'INVALID_ARGUMENT', 'messages[1].headers.ferry-dlq-topic');
      await bus.producer().send({ topic: 'orders', messages: ['1', '2', '3', '4', '5'].map((value) => ({ value })) });
      // The edge's directory cannot tell a dead-letter topic: there, nothing is moved.
      if (env.edge) assert.equal(await bus.redrive({ from: 'orders' }), 0);
      else await rejectsWith(ferry, bus.redrive({ from: 'orders' }), 'INVALID_ARGUMENT', 'not a dead-letter topic');
      const [partition] = (await bus.stats()).topics.find((t) => t.topic === 'orders').partitions;
      assert.deepEqual([partition.lowOffset, partition.highOffset], [0, 5], 'every message is still there for every group');
      await bus.close();
    },
  },
  {
    name: 'browse reads a partition without moving any group; chosen dead letters are redriven once; purge empties a dead-letter topic',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('browse-redrive-purge') });
      await bus.createTopic('emails', { partitions: 2 });
      const tos = ['ada', 'alan', 'grace', 'edsger', 'barbara', 'ken'];
      await bus.producer().send({ topic: 'emails', messages: tos.map((to) => ({ key: to, value: { to }, headers: { lang: 'en' } })) });
      await deadLetterAll(bus, env, 'emails', 'mail', tos.length);
      const groups = async () => JSON.stringify((await bus.stats()).groups.map((g) => [g.groupId, g.topic, g.partitions.map((p) => [p.committedOffset, p.inFlight])]));
      const before = await groups();

      const pages = [];
      for (const partition of [0, 1]) pages.push(await bus.browse({ topic: 'emails.dlq', partition, limit: 100 }));
      const dead = pages.flatMap((page, partition) => page.messages.map((m) => ({ ...m, partition })));
      assert.deepEqual(dead.map((m) => m.value.to).sort(), [...tos].sort(), 'every dead letter, once');
      for (const m of dead) {
        assert.deepEqual([m.headers['ferry-dlq-topic'], m.headers['ferry-dlq-error'], m.headers.lang, m.redriven, m.attempt], ['emails', 'smtp down', 'en', false, 0]);
      }
      pages.forEach((page, partition) => assert.deepEqual([page.lowOffset, page.highOffset, page.nextOffset], [0, page.messages.length, page.messages.length], `partition ${partition}`));
      const fuller = pages[0].messages.length >= 2 ? 0 : 1;
      const first = await bus.browse({ topic: 'emails.dlq', partition: fuller, limit: 1 });
      const second = await bus.browse({ topic: 'emails.dlq', partition: fuller, offset: first.nextOffset, limit: 1 });
      assert.deepEqual([first.messages[0].offset, first.nextOffset, second.messages[0].offset], [0, 1, 1], 'paging');
      assert.equal(await groups(), before, 'browsing moved no group');

      const chosen = [dead.find((m) => m.partition === fuller && m.offset === 1), dead.find((m) => m.partition !== fuller) ?? dead.find((m) => m.partition === fuller && m.offset === 0)];
      const offsets = chosen.map((m) => ({ partition: m.partition, offset: m.offset }));
      assert.equal(await bus.redrive({ from: 'emails.dlq', offsets }), 2);
      assert.equal(await bus.redrive({ from: 'emails.dlq', offsets }), 0, 'each moved once');
      const flagged = (await bus.browse({ topic: 'emails.dlq', partition: fuller })).messages.filter((m) => m.redriven).map((m) => m.offset);
      assert.ok(flagged.includes(1), `offset 1 is marked moved (${flagged})`);
      await rejectsWith(ferry, bus.redrive({ from: 'emails.dlq', offsets: [{ partition: fuller, offset: 99 }] }), 'INVALID_ARGUMENT', 'offsets[0].offset');
      await rejectsWith(ferry, bus.redrive({ from: 'emails.dlq', offsets: [{ partition: -1, offset: 0 }] }), 'INVALID_ARGUMENT', 'offsets[0].partition');

      const left = (await bus.stats()).topics.find((t) => t.topic === 'emails.dlq').partitions.reduce((n, p) => n + p.depth, 0);
      const purged = await bus.purge({ topic: 'emails.dlq' });
      assert.ok(purged === left && purged >= tos.length - 2, `purged ${purged} of the ${left} kept`);
      assert.equal(await bus.redrive({ from: 'emails.dlq' }), 0, 'nothing left to move');
      const depths = (await bus.stats()).topics.find((t) => t.topic === 'emails.dlq').partitions.map((p) => p.depth);
      assert.deepEqual(depths, [0, 0]);
      const sent = (await bus.stats()).topics.find((t) => t.topic === 'emails').partitions.reduce((n, p) => n + p.highOffset, 0);
      assert.equal(sent, tos.length + 2, 'the source got the two chosen back');

      // The edge's partitions each answer for themselves: there a topic that is not a
      // dead-letter topic purges nothing.
      if (env.edge) assert.equal(await bus.purge({ topic: 'emails' }), 0);
      else await rejectsWith(ferry, bus.purge({ topic: 'emails' }), 'INVALID_ARGUMENT', 'not a dead-letter topic');
      await rejectsWith(ferry, bus.browse({ topic: 'emails', limit: 1001 }), 'INVALID_ARGUMENT', 'limit');
      await rejectsWith(ferry, bus.browse({ topic: 'emails', partition: 2 }), 'UNKNOWN_TOPIC');
      await bus.close();
    },
  },
  {
    name: 'stats mark dead-letter topics, and list each member with the kind of context it runs in and its last heartbeat',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('members') });
      await bus.publish('seen', 'one');
      const since = Date.now();
      const consumer = bus.consumer({ groupId: 'watchers' });
      await consumer.subscribe({ topic: 'seen', fromBeginning: true });
      if (env.edge) await consumer.receive({ max: 1 });
      else await consumer.run({ eachMessage: async () => {} });
      const inServiceWorker = typeof ServiceWorkerGlobalScope === 'function' && globalThis instanceof ServiceWorkerGlobalScope;
      const inPage = typeof Window === 'function' && globalThis instanceof Window;
      const context = env.edge ? 'edge-pull' : inServiceWorker ? 'service-worker' : inPage ? 'page' : 'node';
      let member;
      await until(async () => (member = (await bus.stats()).members.find((m) => m.groupId === 'watchers')) !== undefined);
      assert.equal(member.context, context, JSON.stringify(member));
      if (!env.edge) assert.equal(member.memberId, consumer.memberId);
      // The clocks of a page and the context writing its bus are one machine's.
      assert.ok(member.lastSeenMs >= since - 1000 && member.lastSeenMs <= Date.now() + 1000, `last seen ${member.lastSeenMs}, joined after ${since}`);
      assert.equal((await bus.stats()).topics.find((t) => t.topic === 'seen').deadLetter, false);
      if (!env.edge) await consumer.stop();
      await bus.publish('unpaid', 'two');
      await deadLetterAll(bus, env, 'unpaid', 'failing', 1);
      const deadLetter = (await bus.stats()).topics.map((t) => [t.topic, t.deadLetter]).filter(([t]) => t.startsWith('unpaid'));
      assert.deepEqual(deadLetter, [['unpaid', false], ['unpaid.dlq', true]]);
      await bus.close();
    },
  },
  {
    name: 'with retentionMs a consumed message is kept until it is that old, so a new group replays it',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('replay') });
      await bus.createTopic('events', { partitions: 1, retentionMs: 3_600_000 });
      await bus.producer().send({ topic: 'events', messages: ['a', 'b', 'c'].map((value) => ({ value })) });
      const read = async (groupId) => {
        const seen = [];
        const consumer = bus.consumer({ groupId });
        await consumer.subscribe({ topic: 'events', fromBeginning: true });
        await consumer.run({ eachMessage: ({ message }) => { seen.push(message.value); } });
        await until(async () => seen.length === 3 && (await bus.stats()).groups.find((g) => g.groupId === groupId).partitions[0].committedOffset === 3);
        await consumer.stop();
        return seen;
      };
      assert.deepEqual(await read('first'), ['a', 'b', 'c']);
      const [kept] = (await bus.stats()).topics.find((t) => t.topic === 'events').partitions;
      assert.deepEqual([kept.lowOffset, kept.depth, kept.expired], [0, 3, 0], 'consumed, and kept');
      assert.deepEqual(await read('later'), ['a', 'b', 'c'], 'a new group replays what is retained');
      await bus.close();
    },
  },
  {
    name: "seek moves the group's position as stats shows: below lowOffset to lowOffset, by timestamp to the first sent then or later; bad targets are refused naming the field",
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('seek') });
      await bus.createTopic('events', { partitions: 2, retentionMs: 3_600_000 });
      const [a] = await bus.producer().send({ topic: 'events', messages: [{ value: 'a', partition: 0 }] });
      await new Promise((resolve) => setTimeout(resolve, 5));
      const [b, c] = await bus.producer().send({ topic: 'events', messages: [{ value: 'b', partition: 0 }, { value: 'c', partition: 0 }] });
      const consumer = bus.consumer({ groupId: 'replayer' });
      const position = async (topic) => (await bus.stats()).groups.find((g) => g.groupId === 'replayer' && g.topic === topic).partitions.find((p) => p.partition === 0).committedOffset;
      const seek = (target) => consumer.seek({ topic: 'events', partition: 0, ...target });

      assert.equal(await seek({ offset: 2 }), 2);
      assert.equal(await position('events'), 2, "a seek is stored as the group's committed offset, before any run");
      assert.equal(await seek({ offset: '1' }), 1, 'offsets may be strings, as KafkaJS gives them');
      assert.equal(await seek({ offset: 3 }), 3, 'highOffset is the end');
      assert.equal(await seek({ timestamp: b.timestamp }), b.timestamp > a.timestamp ? 1 : 0, 'the first message sent at or after the time');
      assert.equal(await seek({ timestamp: c.timestamp + 1 }), 3, 'none sent that late: the end');
      assert.equal(await seek({ timestamp: 0 }), 0);

      await rejectsWith(ferry, seek({ offset: 4 }), 'INVALID_ARGUMENT', 'highOffset 3');
      for (const offset of [-1, 1.5, 'x', null]) await rejectsWith(ferry, seek({ offset }), 'INVALID_ARGUMENT', 'offset');
      await rejectsWith(ferry, seek({ timestamp: 'soon' }), 'INVALID_ARGUMENT', 'timestamp');
      await rejectsWith(ferry, seek({}), 'INVALID_ARGUMENT', 'offset');
      await rejectsWith(ferry, seek({ offset: 0, timestamp: 0 }), 'INVALID_ARGUMENT', 'timestamp');
      await rejectsWith(ferry, consumer.seek({ topic: 'events', partition: 2, offset: 0 }), 'UNKNOWN_TOPIC', 'partition 2');
      await rejectsWith(ferry, consumer.seek({ topic: 'events', partition: -1, offset: 0 }), 'INVALID_ARGUMENT', 'partition');
      await rejectsWith(ferry, consumer.seek({ topic: 'bad name', partition: 0, offset: 0 }), 'INVALID_ARGUMENT', 'topic');
      await rejectsWith(ferry, consumer.seek('events'), 'INVALID_ARGUMENT', 'options');
      assert.equal(await position('events'), 0, 'a refused seek changes nothing');

      // Without retentionMs a message goes once every group has committed past it.
      await bus.producer().send({ topic: 'jobs', messages: ['x', 'y', 'z'].map((value) => ({ value })) });
      assert.equal(await consumer.seek({ topic: 'jobs', partition: 0, offset: 2 }), 2);
      const [jobs] = (await bus.stats()).topics.find((t) => t.topic === 'jobs').partitions;
      assert.equal(jobs.lowOffset, 2, 'skipped by the only group: dropped');
      assert.equal(await consumer.seek({ topic: 'jobs', partition: 0, offset: 0 }), 2, 'below lowOffset goes to lowOffset');
      await bus.close();
    },
  },
  {
    name: 'seek while running replays from there: the run in flight is abandoned, its result ignored, no attempt counted',
    needs: 'run',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('seek-running') });
      await bus.createTopic('events', { partitions: 1, retentionMs: 3_600_000 });
      await bus.producer().send({ topic: 'events', messages: ['a', 'b', 'c', 'd', 'e'].map((value) => ({ value })) });
      let open;
      const gate = new Promise((resolve) => (open = resolve));
      const seen = [];
      const consumer = bus.consumer({ groupId: 'replayer' });
      await consumer.subscribe({ topic: 'events', fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          seen.push([message.value, message.attempt]);
          if (seen.length === 3) await gate;
        },
      });
      await until(() => seen.length === 3);
      assert.equal(await consumer.seek({ topic: 'events', partition: 0, offset: 0 }), 0);
      open();
      const committed = async () => (await bus.stats()).groups.find((g) => g.groupId === 'replayer').partitions[0].committedOffset;
      await until(async () => (await committed()) === 5);
      await consumer.stop();
      const values = ['a', 'b', 'c', 'a', 'b', 'c', 'd', 'e'];
      assert.deepEqual(seen, values.map((value) => [value, 1]), 'c finishes, d and e of that run are not handed out, and all comes again from a');
      await bus.close();
    },
  },
];
