// `ferry/bullmq` and `ferry/kafkajs` in real workerd (through Miniflare), each given
// the bus as `{ ferry: { bus: connect(env.BUS) } }`; each request is a program.
// - bullmq follows BullMQ's Quick Start, Retrying failing jobs, Prioritized, Delayed
//   and Repeatable pages: the queues live in the bus's directory Durable Object, and
//   a repeatable job's slots come due from its alarm, with no request.
// - kafkajs follows KafkaJS's Producing and Admin pages; a Worker reads with ferry's
//   pull consumer, and KafkaJS's consumer.run() is refused there (API.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './workerd.mjs';

const worker = `
import { FerryObject, connect } from 'ferry/workers';
import { Queue, Worker, FerryError } from 'ferry/bullmq';
import { Kafka, CompressionTypes } from 'ferry/kafkajs';

export class Bus extends FerryObject {}

/** Runs a Worker until it settled \`count\` jobs; answers what it saw, in order. */
async function work(ferry, count, concurrency = 1) {
  const seen = [];
  await new Promise((resolve, reject) => {
    const worker = new Worker('mail', async (job) => {
      if (job.data.fails > job.attemptsMade) throw new Error('smtp down');
      return { sent: job.data.to };
    }, { ferry, concurrency });
    const note = (what) => (job) => {
      seen.push([what, job.name, job.attemptsMade]);
      if (seen.filter(([w]) => w === 'completed').length === count) worker.close().then(resolve, reject);
    };
    worker.on('completed', note('completed'));
    worker.on('failed', note('failed'));
    worker.on('error', reject);
  });
  return seen;
}

const steps = {
  async add(ferry) {
    const queue = new Queue('mail', { ferry });
    const jobs = await queue.addBulk([
      { name: 'low', data: { to: 'a' }, opts: { priority: 5 } },
      { name: 'plain', data: { to: 'b' } },
      { name: 'flaky', data: { to: 'c', fails: 1 }, opts: { attempts: 3, backoff: { type: 'fixed', delay: 50 } } },
      { name: 'high', data: { to: 'd' }, opts: { priority: 1 } },
    ]);
    await queue.add('later', { to: 'e' }, { delay: 300 });
    return { ids: jobs.map((j) => j.id), counts: await queue.getJobCounts('waiting', 'prioritized', 'delayed') };
  },
  work: (ferry) => work(ferry, 5),
  async state(ferry) {
    const queue = new Queue('mail', { ferry });
    const flaky = await queue.getJob('3');
    return { counts: await queue.getJobCounts('completed', 'failed', 'active'), flaky: [flaky.attemptsMade, flaky.returnvalue, await flaky.getState()] };
  },
  async repeat(ferry) {
    const queue = new Queue('ticks', { ferry });
    await queue.add('tick', {}, { repeat: { every: 250, limit: 3 } });
    return (await queue.getRepeatableJobs()).length;
  },
  async ticks(ferry) {
    return new Queue('ticks', { ferry }).getJobCounts('waiting', 'delayed');
  },
  async refused(ferry) {
    try {
      await new Queue('mail', { ferry }).add('x', {}, { priority: -1 });
      return null;
    } catch (e) {
      return [e instanceof FerryError, e.code, e.message];
    }
  },
};

const kafka = (env) => new Kafka({ clientId: 'shop', brokers: ['kafka:9092'], ferry: { bus: connect(env.BUS, { name: 'kafka' }) } });

const kafkaSteps = {
  async produce(env) {
    const client = kafka(env);
    const admin = client.admin();
    await admin.connect();
    const created = await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 3 }] });
    const producer = client.producer();
    await producer.connect();
    const keys = ['alice', 'bob', 'carol', 'dave'];
    const sent = await producer.send({
      topic: 'orders',
      compression: CompressionTypes.GZIP,
      messages: keys.flatMap((key) => [1, 2].map((n) => ({ key, value: key + '-' + n, headers: { source: 'edge' } }))),
    });
    const batch = await producer.sendBatch({ topicMessages: [{ topic: 'orders', messages: [{ key: 'alice', value: 'alice-3' }] }] });
    await producer.disconnect();
    return {
      created,
      sent: sent.map(({ topicName, partition, errorCode, baseOffset }) => [topicName, partition, errorCode, typeof baseOffset]),
      batch: batch.length,
      topics: await admin.listTopics(),
      metadata: (await admin.fetchTopicMetadata({ topics: ['orders'] })).topics[0].partitions.length,
      offsets: await admin.fetchTopicOffsets('orders'),
    };
  },
  async read(env) {
    const consumer = connect(env.BUS, { name: 'kafka' }).consumer({ groupId: 'billing' });
    await consumer.subscribe({ topics: ['orders'], fromBeginning: true });
    const got = [];
    for (let round = 0; round < 5 && got.length < 9; round++) {
      for (const m of await consumer.receive({ max: 100 })) {
        got.push([m.partition, m.key, m.value, m.headers.source ?? null]);
        await m.ack();
      }
    }
    return { got, committed: await kafka(env).admin().fetchOffsets({ groupId: 'billing', topics: ['orders'] }) };
  },
  async refused(env) {
    const consumer = kafka(env).consumer({ groupId: 'billing' });
    await consumer.subscribe({ topic: 'orders' });
    const refusals = [];
    for (const attempt of [() => consumer.run({ eachMessage: async () => {} }), () => new Kafka({ brokers: [] })]) {
      try {
        await attempt();
        refusals.push(null);
      } catch (e) {
        refusals.push([e instanceof FerryError, e.code, e.message]);
      }
    }
    return refusals;
  },
};

export default {
  async fetch(request, env) {
    const [face, name] = new URL(request.url).pathname.slice(1).split('/');
    try {
      if (face === 'kafka') return Response.json(await kafkaSteps[name](env));
      return Response.json(await steps[name]({ bus: connect(env.BUS, { name: 'jobs' }) }));
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

let mf;
before(async () => {
  mf = await startWorker(worker);
});
after(() => mf?.dispose());

async function step(path) {
  const response = await mf.dispatchFetch(`http://ferry.test/${path}`, { signal: AbortSignal.timeout(20000) });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

test('in workerd: jobs added in one request are processed in another, by priority, with retries and a delay, and their state read in a third', { timeout: 60000 }, async () => {
  const added = await step('jobs/add');
  assert.deepEqual(added, { ids: ['1', '2', '3', '4'], counts: { waiting: 2, prioritized: 2, delayed: 1 } });
  const seen = await step('jobs/work');
  // No priority first, in the order added (the flaky one fails once, then waits its
  // backoff), then priority 1 before 5; the delayed job when its time comes.
  assert.deepEqual(seen.slice(0, 2), [['completed', 'plain', 1], ['failed', 'flaky', 1]]);
  assert.deepEqual(seen.filter(([what]) => what === 'completed').map(([, name]) => name).sort(), ['flaky', 'high', 'later', 'low', 'plain']);
  const names = seen.filter(([what]) => what === 'completed').map(([, name]) => name);
  assert.ok(names.indexOf('high') < names.indexOf('low'), names.join());
  const state = await step('jobs/state');
  assert.deepEqual(state, { counts: { completed: 5, failed: 0, active: 0 }, flaky: [2, { sent: 'c' }, 'completed'] });
});

test('in workerd: bad job options are refused with FerryError naming the field', { timeout: 30000 }, async () => {
  const [isFerryError, code, message] = await step('jobs/refused');
  assert.deepEqual([isFerryError, code], [true, 'INVALID_ARGUMENT']);
  assert.match(message, /priority/);
});

test("in workerd: a repeatable job's slots come due from the Durable Object's alarm, with no request between", { timeout: 30000 }, async () => {
  assert.equal(await step('jobs/repeat'), 1);
  // Any request makes due slots too, but only the latest: a request after three
  // slots finds them all made only if the alarm made each when it came.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(await step('jobs/ticks'), { waiting: 3, delayed: 0 });
});

test('in workerd: KafkaJS producing and admin on the edge bus; a pull consumer reads each key in order; offsets committed', { timeout: 30000 }, async () => {
  const produced = await step('kafka/produce');
  assert.equal(produced.created, true);
  assert.ok(produced.sent.every(([topic, , errorCode, offset]) => topic === 'orders' && errorCode === 0 && offset === 'string'), JSON.stringify(produced.sent));
  assert.equal(produced.batch, 1);
  assert.deepEqual(produced.topics, ['orders']);
  assert.equal(produced.metadata, 3);
  assert.equal(produced.offsets.reduce((sum, p) => sum + Number(p.high), 0), 9);
  const { got, committed } = await step('kafka/read');
  assert.equal(got.length, 9);
  for (const key of ['alice', 'bob', 'carol', 'dave']) {
    const mine = got.filter(([, k]) => k === key);
    assert.equal(new Set(mine.map(([partition]) => partition)).size, 1, `${key} stays on one partition`);
    assert.deepEqual(mine.map(([, , value]) => value), [1, 2, 3].slice(0, mine.length).map((n) => `${key}-${n}`));
  }
  assert.equal(got.filter(([, , , source]) => source === 'edge').length, 8);
  const high = Object.fromEntries(produced.offsets.map((p) => [p.partition, p.high]));
  assert.deepEqual(committed[0].partitions.map((p) => [p.partition, p.offset]), Object.entries(high).map(([p, h]) => [Number(p), h]));
});

test('in workerd: KafkaJS consumer.run() is refused naming receive(); a Kafka without the bus is refused', { timeout: 30000 }, async () => {
  const [run, noBus] = await step('kafka/refused');
  assert.deepEqual(run.slice(0, 2), [true, 'INVALID_ARGUMENT']);
  assert.match(run[2], /consumer\.run\(\).*receive\(\)/);
  assert.deepEqual(noBus.slice(0, 2), [true, 'INVALID_ARGUMENT']);
  assert.match(noBus[2], /connect\(env\.BUS\)/);
});
