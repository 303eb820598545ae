// The contract suite (tests/contract/suite.js) at the edge: run inside a Worker in
// workerd (through Miniflare) against `connect()` of `ferry/workers`, the bus in a
// SQLite-backed Durable Object. Cases that need a `consumer.run` loop (`needs: 'run'`)
// cannot run there and are skipped; the edge-only cases below check what a Worker
// uses instead: pull consumers with receive, ack and retry.
import { test, before, after } from 'node:test';
import { cases } from '../contract/suite.js';
import { startWorker } from './workerd.mjs';

// Edge-only cases. They are written here but run inside the Worker: each one is
// copied into the Worker's source as text (Function.prototype.toString), so it may
// only use its arguments and what that source defines: `assert`, `rejectsWith`,
// `sleep`, `untilReceived`, `drain` and `badConsumerOptions` (below).
const edgeCases = [
  {
    name: 'receive and ack: "partition" ordering hands out whole runs, in order per partition, held until acked',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('receive-ack') });
      await bus.createTopic('orders', { partitions: 2 });
      // Kafka's partitioner puts order-1 on partition 0 and order-2 on partition 1.
      const messages = ['a', 'b', 'c', 'd', 'e', 'f'].map((value, i) => ({ key: `order-${(i % 2) + 1}`, value, id: `id-${value}`, headers: { n: String(i) } }));
      await bus.producer().send({ topic: 'orders', messages });
      const consumer = bus.consumer({ groupId: 'fulfilment', retry: { initialBackoffMs: 0, jitter: false } });
      await consumer.subscribe({ topic: 'orders', fromBeginning: true });
      const at = (batch) => batch.map((m) => [m.partition, m.offset, m.value, m.attempt]);
      const ofPartition = (batch, p) => batch.filter((m) => m.partition === p);

      const first = await consumer.receive({ max: 10 });
      assert.deepEqual(at(ofPartition(first, 0)), [[0, 0, 'a', 1], [0, 1, 'c', 1], [0, 2, 'e', 1]], 'partition 0, in order');
      assert.deepEqual(at(ofPartition(first, 1)), [[1, 0, 'b', 1], [1, 1, 'd', 1], [1, 2, 'f', 1]], 'partition 1, in order');
      const [a, c] = ofPartition(first, 0);
      for (const field of ['topic', 'partition', 'offset', 'key', 'value', 'headers', 'timestamp', 'id', 'attempt']) assert.ok(field in a, `a received message has ${field}`);
      assert.deepEqual([a.topic, a.key, a.id, a.headers], ['orders', 'order-1', 'id-a', { n: '0' }]);
      assert.equal(typeof a.timestamp, 'number');
      assert.deepEqual(await consumer.receive({ max: 10 }), [], 'both runs are held until they are settled');

      // c fails after a is acked: c is a failed attempt, e comes back behind it
      // with no attempt counted, and acking e now is refused (it was given back).
      const [, , e] = ofPartition(first, 0);
      assert.equal(await a.ack(), true);
      assert.equal(await c.retry({ error: 'out of stock' }), true);
      assert.equal(await e.ack(), false, 'the rest of a failed run is given back');
      assert.deepEqual(at(await consumer.receive({ max: 10 })), [[0, 1, 'c', 2], [0, 2, 'e', 1]], 'the failed message first, then the rest');
      for (const m of ofPartition(first, 1)) assert.equal(await m.ack(), true);
      const fulfilment = (await bus.stats()).groups.find((g) => g.groupId === 'fulfilment');
      assert.deepEqual(fulfilment.partitions.map((p) => [p.committedOffset, p.inFlight]), [[1, 2], [3, 0]]);

      // Ordering "none": messages are independent, several of one partition at once.
      // (Its own topic: "orders" already dropped a and b, which every group had acked.)
      await bus.createTopic('events', { partitions: 2 });
      await bus.producer().send({ topic: 'events', messages });
      const audit = bus.consumer({ groupId: 'audit', ordering: 'none' });
      await audit.subscribe({ topic: 'events', fromBeginning: true });
      const some = await audit.receive({ max: 4 });
      assert.equal(some.length, 4, 'max bounds a receive');
      const rest = await audit.receive({ max: 10 });
      const both = [...some, ...rest];
      assert.deepEqual(both.map((m) => m.value).sort(), ['a', 'b', 'c', 'd', 'e', 'f']);
      assert.ok([0, 1].every((p) => both.filter((m) => m.partition === p).length === 3), 'several per partition in flight');
      assert.deepEqual(await audit.receive(), [], 'leased messages are not handed out twice');
      for (const m of both) await m.ack();

      const group = (await bus.stats()).groups.find((g) => g.groupId === 'audit');
      assert.deepEqual(group.partitions.map((p) => [p.partition, p.committedOffset, p.lag, p.inFlight]), [[0, 3, 0, 0], [1, 3, 0, 0]]);
      assert.deepEqual(await audit.receive(), [], 'an acked message is never handed to the same group again');
    },
  },
  {
    name: 'receive({ max: 100 }) returns 100 messages of one partition in order; acks made together settle them in one call',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('receive-100') });
      await bus.producer().send({ topic: 'jobs', messages: Array.from({ length: 150 }, (_, i) => ({ value: `job-${i}` })) });
      const consumer = bus.consumer({ groupId: 'runners' });
      await consumer.subscribe({ topic: 'jobs', fromBeginning: true });
      const received = await consumer.receive({ max: 100 });
      assert.deepEqual(received.map((m) => m.offset), Array.from({ length: 100 }, (_, i) => i));
      assert.ok(received.every((m) => m.attempt === 1 && m.partition === 0));
      assert.deepEqual(await Promise.all(received.map((m) => m.ack())), received.map(() => true));
      const rest = await consumer.receive({ max: 100 });
      assert.deepEqual([rest.length, rest[0].offset], [50, 100]);
      const [runners] = (await bus.stats()).groups;
      assert.deepEqual(runners.partitions.map((p) => [p.committedOffset, p.inFlight]), [[100, 50]]);
    },
  },
  {
    name: 'retry backs off exponentially, then dead-letters with every ferry-dlq-* header; redrive moves it once',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('dead-letters') });
      const consumer = bus.consumer({ groupId: 'billing', retry: { maxAttempts: 3, initialBackoffMs: 200, multiplier: 2, jitter: false } });
      await consumer.subscribe({ topic: 'payments', fromBeginning: true });
      await bus.publish('payments', 'charge', { key: 'order-7', headers: { trace: 't1' } });
      const attempts = [];
      for (;;) {
        const [m] = await untilReceived(consumer);
        attempts.push([m.attempt, Date.now()]);
        await m.retry({ error: `provider down for ${m.key}` });
        if (m.attempt === 3) break;
        assert.deepEqual(await consumer.receive(), [], 'not before its backoff');
      }
      assert.deepEqual(attempts.map(([n]) => n), [1, 2, 3]);
      const waits = attempts.slice(1).map(([, t], i) => t - attempts[i][1]);
      assert.ok(waits[0] >= 200 && waits[1] >= 400, `backoff waits ${waits}`);
      const billing = (await bus.stats()).groups.find((g) => g.groupId === 'billing');
      assert.equal(billing.deadLettered, 1);
      assert.deepEqual(billing.partitions.map((p) => [p.committedOffset, p.lag, p.inFlight, p.retrying]), [[1, 0, 0, 0]], 'the source is acked');
      assert.deepEqual(await consumer.receive(), []);

      const reader = bus.consumer({ groupId: 'ops' });
      await reader.subscribe({ topic: 'payments.dlq', fromBeginning: true });
      const dead = await reader.receive();
      assert.equal(dead.length, 1);
      const [d] = dead;
      assert.deepEqual([d.topic, d.key, d.value], ['payments.dlq', 'order-7', 'charge']);
      assert.deepEqual(d.headers, {
        trace: 't1',
        'ferry-dlq-topic': 'payments',
        'ferry-dlq-partition': '0',
        'ferry-dlq-offset': '0',
        'ferry-dlq-group': 'billing',
        'ferry-dlq-attempts': '3',
        'ferry-dlq-error': 'provider down for order-7',
      });
      await d.ack();

      assert.equal(await bus.redrive({ from: 'payments.dlq' }), 1);
      assert.equal(await bus.redrive({ from: 'payments.dlq' }), 0);
      const [again] = await consumer.receive();
      assert.deepEqual([again.offset, again.key, again.value, again.headers, again.attempt], [1, 'order-7', 'charge', { trace: 't1' }, 1], 'redriven without ferry-dlq-* headers');
      await again.ack();
    },
  },
  {
    name: 'retry({ delayMs }) waits that long instead of the backoff, and counts as an attempt',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('retry-delay') });
      const consumer = bus.consumer({ groupId: 'later', retry: { maxAttempts: 3, initialBackoffMs: 60000 } });
      await consumer.subscribe({ topic: 'later', fromBeginning: true });
      await bus.publish('later', 'x');
      const [first] = await consumer.receive();
      const retried = Date.now();
      await first.retry({ delayMs: 300, error: 'not yet' });
      assert.deepEqual(await consumer.receive(), [], 'not before its delay');
      const [second] = await untilReceived(consumer, 3000);
      const waited = Date.now() - retried;
      assert.ok(waited >= 300 && waited < 3000, `waited ${waited} ms`);
      assert.deepEqual([second.value, second.attempt], ['x', 2]);
      await second.retry({ delayMs: 0 });
      const [third] = await consumer.receive();
      assert.deepEqual([third.value, third.attempt], ['x', 3], 'delayMs 0: at once');
      await third.retry({ delayMs: 0, error: 'gave up' });
      assert.deepEqual(await consumer.receive(), [], 'dead-lettered after maxAttempts');
      const stats = await bus.stats();
      assert.equal(stats.groups.find((g) => g.groupId === 'later').deadLettered, 1);
      assert.equal(stats.topics.find((t) => t.topic === 'later.dlq').partitions[0].highOffset, 1);
    },
  },
  {
    name: 'fan-out with pull consumers: two groups each receive every message, values as they were given',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('fan-out') });
      const groups = ['billing', 'shipping'].map((groupId) => bus.consumer({ groupId }));
      // subscribe joins the group in every partition: it starts at the end from then.
      for (const c of groups) await c.subscribe({ topic: 'v' });
      await bus.publish('v', 'text');
      await bus.publish('v', new Uint8Array([0, 255]));
      await bus.publish('v', { a: [1, null, 'x'] });
      for (const c of groups) {
        const values = (await drain(c, 3)).map((m) => m.value);
        assert.deepEqual(values, ['text', new Uint8Array([0, 255]), { a: [1, null, 'x'] }]);
        assert.ok(values[1] instanceof Uint8Array, 'bytes come back as a Uint8Array');
      }
      const stats = await bus.stats();
      for (const groupId of ['billing', 'shipping']) {
        const g = stats.groups.find((g) => g.groupId === groupId);
        assert.deepEqual(g.partitions.map((p) => [p.committedOffset, p.lag]), [[3, 0]], groupId);
      }
    },
  },
  {
    name: 'a message sent between subscribe({ fromBeginning: false }) and the first receive is the group\'s',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('subscribe-start') });
      await bus.createTopic('news', { partitions: 3 });
      await bus.producer().send({ topic: 'news', messages: [0, 1, 2].map((partition) => ({ value: 'before', partition })) });
      const consumer = bus.consumer({ groupId: 'readers' });
      await consumer.subscribe({ topic: 'news', fromBeginning: false });
      await bus.producer().send({ topic: 'news', messages: [0, 1, 2].map((partition) => ({ value: `after-${partition}`, partition })) });
      const got = await consumer.receive({ max: 10 });
      assert.deepEqual(got.map((m) => m.value).sort(), ['after-0', 'after-1', 'after-2']);
      assert.ok(got.every((m) => m.offset === 1), 'each partition from where it ended at subscribe');
    },
  },
  {
    name: 'seek abandons what was received from that partition: its ack resolves false, and receive replays from the offset with attempt 1',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('seek-received') });
      await bus.createTopic('events', { partitions: 2, retentionMs: 3_600_000 });
      await bus.producer().send({ topic: 'events', messages: ['a', 'b', 'c'].flatMap((value) => [0, 1].map((partition) => ({ value: `${value}${partition}`, partition }))) });
      const consumer = bus.consumer({ groupId: 'replayer', retry: { initialBackoffMs: 0 } });
      await consumer.subscribe({ topic: 'events', fromBeginning: true });
      const first = await consumer.receive({ max: 10 });
      const ofPartition = (batch, p) => batch.filter((m) => m.partition === p);
      const [a0, b0] = ofPartition(first, 0);
      assert.equal(await a0.ack(), true);
      assert.equal(await b0.retry(), true);
      for (const m of ofPartition(first, 1)) assert.equal(await m.ack(), true);
      assert.equal(await consumer.seek({ topic: 'events', partition: 1, offset: 1 }), 1);
      assert.equal(await consumer.seek({ topic: 'events', partition: 0, offset: 0 }), 0);
      const again = await consumer.receive({ max: 10 });
      const at = (batch) => batch.map((m) => [m.value, m.attempt]);
      assert.deepEqual(at(ofPartition(again, 0)), [['a0', 1], ['b0', 1], ['c0', 1]], 'the retry waiting is forgotten: attempt 1');
      assert.deepEqual(at(ofPartition(again, 1)), [['b1', 1], ['c1', 1]]);
      const [, , c0] = ofPartition(first, 0);
      assert.equal(await c0.ack(), false, 'received before the seek: settles nothing');
      await Promise.all(again.map((m) => m.ack()));
      const replayer = (await bus.stats()).groups.find((g) => g.groupId === 'replayer');
      assert.deepEqual(replayer.partitions.map((p) => [p.committedOffset, p.inFlight, p.retrying]), [[3, 0, 0], [3, 0, 0]]);
      await rejectsWith(ferry, consumer.seek({ topic: 'events', partition: 2, offset: 0 }), 'UNKNOWN_TOPIC', 'partition 2');
      await rejectsWith(ferry, consumer.seek({ topic: 'events', partition: 0 }), 'INVALID_ARGUMENT', 'offset');
    },
  },
  {
    name: 'pull consumers replay too: with retentionMs a new group with fromBeginning receives what another group consumed',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('replay-pull') });
      await bus.createTopic('events', { partitions: 2, retentionMs: 3_600_000 });
      await bus.producer().send({ topic: 'events', messages: ['a', 'b', 'c', 'd'].map((value, i) => ({ value, partition: i % 2 })) });
      const read = async (groupId) => {
        const consumer = bus.consumer({ groupId });
        await consumer.subscribe({ topic: 'events', fromBeginning: true });
        return (await drain(consumer, 4)).map((m) => m.value).sort();
      };
      assert.deepEqual(await read('first'), ['a', 'b', 'c', 'd']);
      const partitions = (await bus.stats()).topics.find((t) => t.topic === 'events').partitions;
      assert.deepEqual(partitions.map((p) => [p.lowOffset, p.depth]), [[0, 2], [0, 2]], 'consumed, and kept');
      assert.deepEqual(await read('later'), ['a', 'b', 'c', 'd'], 'a new group replays what is retained');
    },
  },
  {
    name: 'receive({ max }) takes 1 to 100: 0 and 101 reject with INVALID_ARGUMENT naming max',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('receive-max') });
      const consumer = bus.consumer({ groupId: 'g', ordering: 'none' });
      await consumer.subscribe({ topic: 't', fromBeginning: true });
      await bus.producer().send({ topic: 't', messages: [{ value: 1 }, { value: 2 }, { value: 3 }] });
      for (const max of [0, 101, 1.5, -1, '5']) await rejectsWith(ferry, consumer.receive({ max }), 'INVALID_ARGUMENT', 'max');
      assert.equal((await consumer.receive({ max: 1 })).length, 1);
      assert.equal((await consumer.receive({ max: 100 })).length, 2, 'the refused calls leased nothing');
    },
  },
  {
    name: 'bad consumer options are refused with INVALID_ARGUMENT naming the field (at the latest by receive); receive needs a subscribe',
    async run(ferry, env) {
      const bus = await ferry.Bus.open({ name: env.name('consumer-options') });
      for (const [options, field] of badConsumerOptions) {
        // bus.consumer() throws already (the contract suite's case); the object checks again on receive.
        const refused = async () => {
          const consumer = bus.consumer(options);
          await consumer.subscribe({ topic: 't', fromBeginning: true });
          await consumer.receive();
        };
        await rejectsWith(ferry, refused(), 'INVALID_ARGUMENT', field);
      }
      await rejectsWith(ferry, bus.consumer({ groupId: 'g' }).receive(), 'INVALID_ARGUMENT', 'subscribe');
      assert.deepEqual((await bus.stats()).topics, [], 'a refused receive creates no topic');
    },
  },
];

// The Worker: `ferry` is an adapter giving the suite the `Bus.open` it expects,
// backed by `connect()`; `/?case=<name>&run=<id>` runs one case and answers { ok }.
const worker = `
import { FerryObject, FerryError, connect } from 'ferry/workers';
import { badConsumerOptions, cases as contractCases, rejectsWith } from './tests/contract/suite.js';
import { assert } from './tests/contract/assert.js';

export class Bus extends FerryObject {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Receives until something comes (a retry or a delay falling due). */
async function untilReceived(consumer, timeoutMs = 3000) {
  const start = Date.now();
  for (;;) {
    const received = await consumer.receive();
    if (received.length > 0) return received;
    if (Date.now() - start > timeoutMs) throw new Error('nothing received in ' + timeoutMs + ' ms');
    await sleep(10);
  }
}

/** Receives and acks until \`count\` messages came, in delivery order. */
async function drain(consumer, count) {
  const got = [];
  for (let round = 0; got.length < count; round++) {
    if (round > 100) throw new Error('drained ' + got.length + ' of ' + count);
    for (const m of await consumer.receive()) {
      got.push(m);
      await m.ack();
    }
  }
  return got;
}

const edgeCases = [
${edgeCases.map((c) => `  { name: ${JSON.stringify(c.name)}, ${c.run.toString()} },`).join('\n')}
];

const all = [...contractCases, ...edgeCases];

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const run = url.searchParams.get('run');
    const found = all.find((c) => c.name === url.searchParams.get('case'));
    if (!found) return Response.json({ ok: false, error: 'no such case' }, { status: 404 });
    // The suite's \`Bus.open\` on connect(), the bus name from options.name.
    // connect() is synchronous and its options reach the Durable Object with the
    // first call, so open makes one (topics()) to open the object's bus and refuse
    // bad options there, as Bus.open does.
    // The edge client has no close(): nothing to release, since each call is one
    // request to the object. The adapter emulates it (later calls reject with
    // CLOSED) so the close case still checks the error's shape; that part tests the
    // adapter, not ferry.
    const ferry = {
      FerryError,
      Bus: {
        async open(options = {}) {
          const client = connect(env.BUS, options);
          await client.topics();
          let closed = false;
          const guard = (call) => (...args) => (closed ? Promise.reject(new FerryError('CLOSED', 'the bus was closed')) : call(...args));
          return {
            createTopic: guard(client.createTopic),
            topics: guard(client.topics),
            publish: guard(client.publish),
            stats: guard(client.stats),
            redrive: guard(client.redrive),
            purge: guard(client.purge),
            browse: guard(client.browse),
            producer: () => ({ send: guard(client.producer().send) }),
            consumer: (consumerOptions) => client.consumer(consumerOptions),
            async close() {
              closed = true;
            },
          };
        },
      },
    };
    try {
      await found.run(ferry, { name: (label) => label + '-' + run, edge: true });
      return Response.json({ ok: true });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.stack ?? e) });
    }
  },
};
`;

let mf;

before(async () => {
  mf = await startWorker(worker);
  await mf.ready;
});

after(() => mf?.dispose());

const run = `${process.pid}-${Date.now()}`;

async function runCase(name) {
  const url = new URL('http://ferry.test/');
  url.searchParams.set('case', name);
  url.searchParams.set('run', run);
  const response = await mf.dispatchFetch(url, { signal: AbortSignal.timeout(15000) });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${response.status}: ${text}`);
  }
  if (!body.ok) throw new Error(body.error);
}

// Contract cases where ferry's edge differs from pkg/README.md: run, reported, not failing the file.

for (const { name, needs } of cases) {
  const skip = needs === 'run' && 'needs a consumer.run loop, which a Worker does not have (the edge-only cases cover receive/ack/retry)';
  test(`contract: ${name}`, { skip, timeout: 20000 }, () => runCase(name));
}

const names = [...cases, ...edgeCases].map((c) => c.name);
if (new Set(names).size !== names.length) throw new Error('the Worker finds cases by name: edge-only cases need names of their own');

for (const { name } of edgeCases) {
  test(`edge: ${name}`, { timeout: 20000 }, () => runCase(name));
}
