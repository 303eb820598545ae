// The edge bus spreads a topic's partitions over Durable Objects (one per bus, topic
// and partition, plus the bus's topic directory) and still keeps its contract: Kafka's
// partitions, per-key order, atomic sends, delays and ids across partitions,
// per-partition dead letters, merged stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Bus as NodeBus } from 'ferry';
import { startWorker } from './workerd.mjs';

// Each path of the Worker runs one step, with the JSON body as its arguments, and
// answers `{ value }`, or `{ error: { code, message } }` for a FerryError.
const worker = `
import { FerryObject, FerryError, connect } from 'ferry/workers';

export class Bus extends FerryObject {}

const view = ({ topic, partition, offset, key, value, headers, id, attempt }) => ({ topic, partition, offset, key, value, headers, id, attempt });

const steps = {
  createTopic: (bus, { topic, ...options }) => bus.createTopic(topic, options),
  send(bus, { topic, messages, undefinedAt }) {
    // JSON cannot carry undefined: the step puts it in.
    if (undefinedAt !== undefined) messages[undefinedAt] = { ...messages[undefinedAt], value: undefined };
    return bus.producer().send({ topic, messages });
  },
  // One receive({ max }) of the group, each message then acked or left leased; or,
  // with settle 'retry', the first of each partition's run retried, the rest of
  // the run left alone (a retry gives it back), and only those returned.
  async receive(bus, { groupId, topics, fromBeginning = true, options = {}, max = 10, settle = 'ack', error }) {
    const consumer = bus.consumer({ groupId, ...options });
    await consumer.subscribe({ topics, fromBeginning });
    const received = await consumer.receive({ max });
    if (settle === 'retry') {
      const heads = received.filter((m, i) => i === 0 || received[i - 1].partition !== m.partition);
      for (const m of heads) if (!(await m.retry({ error }))) throw new Error('the retry of ' + m.value + ', first of its run, was refused');
      return heads.map(view);
    }
    if (settle === 'ack') for (const m of received) await m.ack();
    return received.map(view);
  },
  // One receive({ max }), then every message settled at once: acks, and one retry
  // with a bad delayMs; each settlement's outcome, in order.
  async settleTogether(bus, { groupId, topics, max = 10 }) {
    const consumer = bus.consumer({ groupId, ordering: 'none' });
    await consumer.subscribe({ topics, fromBeginning: true });
    const received = await consumer.receive({ max });
    const outcomes = await Promise.allSettled(received.map((m, i) => (i === 1 ? m.retry({ delayMs: -1 }) : m.ack())));
    return {
      values: received.map((m) => m.value),
      outcomes: outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.reason instanceof FerryError ? o.reason.code : String(o.reason))),
    };
  },
  stats: (bus) => bus.stats(),
  topics: (bus) => bus.topics(),
  redrive: (bus, options) => bus.redrive(options),
  // The Durable Object ids of names in the namespace, as Miniflare names their files.
  ids: (bus, { names }, env) => names.map((name) => env.BUS.idFromName(name).toString()),
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      const { connect: connectOptions = {}, ...args } = await request.json();
      const bus = connect(env.BUS, { name: 'shop', ...connectOptions });
      return Response.json({ value: await steps[url.pathname.slice(1)](bus, args, env) });
    } catch (e) {
      if (e instanceof FerryError) return Response.json({ error: { code: e.code, message: e.message } });
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

const start = (persistTo = false) => startWorker(worker, { persistTo });

/** A test with a fresh Worker (its own Miniflare), disposed after. */
const edgeTest = (name, body) =>
  test(name, { timeout: 60000 }, async () => {
    const mf = await start();
    try {
      await body(mf);
    } finally {
      await mf.dispose();
    }
  });

/** Runs one step; resolves to its value, or to `{ error }` when it rejected with a FerryError. */
async function call(mf, path, args = {}) {
  const response = await mf.dispatchFetch(`http://ferry.test/${path}`, {
    method: 'POST',
    body: JSON.stringify(args),
    signal: AbortSignal.timeout(15000),
  });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

/** The step's value; fails the test when it rejected. */
async function step(mf, path, args) {
  const result = await call(mf, path, args);
  assert.equal(result.error, undefined, `${path} rejected: ${JSON.stringify(result.error)}`);
  return result.value;
}

/** The step's FerryError code; fails the test when it resolved. */
async function stepCode(mf, path, args) {
  const result = await call(mf, path, args);
  assert.ok(result.error, `${path} should reject, resolved ${JSON.stringify(result.value)?.slice(0, 200)}`);
  return result.error.code;
}

/**
 * Receives in rounds of receive({ max }) until `expected` messages came (or three
 * rounds in a row bring nothing), settling each as `receive.settle` says (ack by
 * default); then checks that one more round brings nothing.
 */
async function drain(mf, group, expected, receive = {}) {
  const all = [];
  for (let round = 0, empty = 0; round < 200 && all.length < expected && empty < 3; round++) {
    const got = await step(mf, 'receive', { ...group, ...receive });
    empty = got.length === 0 ? empty + 1 : 0;
    all.push(...got);
  }
  assert.equal(all.length, expected, `the group ${group.groupId} received ${all.length} of ${expected}`);
  assert.deepEqual(await step(mf, 'receive', { ...group, ...receive }), [], 'nothing is left');
  return all;
}

/** Receives (and acks) in rounds until a round brings nothing: all the group may handle now. */
async function drainAll(mf, group) {
  const all = [];
  for (let round = 0; round < 200; round++) {
    const got = await step(mf, 'receive', group);
    if (got.length === 0) return all;
    all.push(...got);
  }
  assert.fail(`${group.groupId} still receives after 200 rounds`);
}

const range = (n) => Array.from({ length: n }, (_, i) => i);

/** `perKey` messages for each of `keys` keys, value `{ key, seq }`, keys interleaved differently each round. */
function keyedMessages(keys, perKey) {
  const messages = [];
  for (let seq = 0; seq < perKey; seq++) {
    // An odd stride permutes the keys (a power of two), differently each round.
    const order = range(keys).map((i) => (i * (2 * seq + 1) * 7 + seq * 13) % keys);
    for (const i of order) messages.push({ key: `key-${i}`, value: { key: `key-${i}`, seq }, headers: { seq: String(seq) } });
  }
  return messages;
}

/** `messages` cut into batches of the given sizes, cycling (a batch can hold several messages of one key). */
function batches(messages, sizes) {
  const out = [];
  for (let at = 0, i = 0; at < messages.length; i++) {
    const size = sizes[i % sizes.length];
    out.push(messages.slice(at, at + size));
    at += size;
  }
  return out;
}

/** What the Node build of the package answers for the same sends: Kafka's partitions. */
async function nodeReference(topic, partitions, sends) {
  const bus = await NodeBus.open({ storage: 'memory', name: `reference-${Math.random()}` });
  try {
    await bus.createTopic(topic, { partitions });
    const results = [];
    for (const messages of sends) results.push(...(await bus.producer().send({ topic, messages })));
    return results;
  } finally {
    await bus.close();
  }
}

/** Sends `sends` (batches) to `topic` through the Worker; the results, in order. */
async function sendAll(mf, topic, sends) {
  const results = [];
  for (const messages of sends) {
    const got = await step(mf, 'send', { topic, messages });
    assert.equal(got.length, messages.length);
    results.push(...got);
  }
  return results;
}

/** Per partition, how many of `results` went there. */
function countsByPartition(results, partitions) {
  const counts = Array(partitions).fill(0);
  for (const r of results) counts[r.partition]++;
  return counts;
}

/** Fails unless, per key, the received `{ key, seq }` values come in send order (0, 1, 2, ...). */
function assertPerKeyOrder(received, firstSeq = new Map()) {
  const next = new Map(firstSeq);
  for (const m of received) {
    const expected = next.get(m.value.key) ?? 0;
    assert.equal(m.value.seq, expected, `${m.value.key}: seq ${m.value.seq} received when ${expected} was next`);
    assert.equal(m.key, m.value.key);
    next.set(m.value.key, expected + 1);
  }
  return next;
}

const topicStats = (stats, topic) => {
  const found = stats.topics.filter((t) => t.topic === topic);
  assert.equal(found.length, 1, `stats list ${topic} once: ${JSON.stringify(stats.topics.map((t) => t.topic))}`);
  return found[0];
};

const groupStats = (stats, groupId, topic) => {
  const found = stats.groups.filter((g) => g.groupId === groupId && g.topic === topic);
  assert.equal(found.length, 1, `stats list ${groupId} on ${topic} once`);
  return found[0];
};

/**
 * The objects Miniflare persisted under `dir` for the Bus class: its folder is
 * `<worker>-Bus` and holds `<object id>.sqlite` per object beside its own
 * `metadata.sqlite` (and -wal/-shm files). Resolves to the object ids.
 */
async function busObjectFiles(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.sqlite') && e.name !== 'metadata.sqlite')
    .filter((e) => /(^|-)Bus$/.test(basename(e.parentPath ?? e.path)))
    .map((e) => e.name.replace(/\.sqlite$/, ''));
}

test('keyed sends land on Kafka\'s partitions, and a group gets each message once, per key in order', { timeout: 60000 }, async () => {
  const sends = batches(keyedMessages(64, 4), [50, 7, 64, 1, 33]);
  const reference = await nodeReference('clicks', 8, sends);
  const mf = await start();
  try {
    assert.equal(await step(mf, 'createTopic', { topic: 'clicks', partitions: 8 }), true);
    const results = await sendAll(mf, 'clicks', sends);
    assert.deepEqual(results.map((r) => [r.topic, r.partition, r.offset, r.duplicate]), reference.map((r) => ['clicks', r.partition, r.offset, false]), 'the Node build\'s partitions and offsets');
    const counts = countsByPartition(results, 8);
    assert.ok(counts.every((n) => n > 0), `every partition has messages: ${counts}`);

    const before = topicStats(await step(mf, 'stats'), 'clicks');
    assert.deepEqual(before.partitions.map((p) => [p.partition, p.lowOffset, p.highOffset, p.depth]), counts.map((n, p) => [p, 0, n, n]));

    const received = await drain(mf, { groupId: 'analytics', topics: ['clicks'] }, results.length);
    const messages = sends.flat();
    const sent = new Map(results.map((r, i) => [`${r.partition}/${r.offset}`, messages[i]]));
    const seen = new Set();
    for (const m of received) {
      const at = `${m.partition}/${m.offset}`;
      assert.ok(!seen.has(at), `${at} delivered once`);
      seen.add(at);
      assert.deepEqual([m.topic, m.key, m.value, m.headers, m.attempt], ['clicks', sent.get(at).key, sent.get(at).value, sent.get(at).headers, 1]);
    }
    assert.equal(seen.size, results.length);
    assertPerKeyOrder(received);

    const after = await step(mf, 'stats');
    const group = groupStats(after, 'analytics', 'clicks');
    assert.deepEqual(group.partitions.map((p) => [p.partition, p.committedOffset, p.lag, p.inFlight]), counts.map((n, p) => [p, n, 0, 0]));
  } finally {
    await mf.dispose();
  }
});

test('each partition is its own Durable Object, beside the bus\'s topic directory', { timeout: 60000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-partitions-'));
  try {
    const mf = await start(dir);
    let ids;
    try {
      await step(mf, 'createTopic', { topic: 'spread', partitions: 8 });
      const results = await step(mf, 'send', { topic: 'spread', messages: range(8).map((p) => ({ value: `to ${p}`, partition: p })) });
      assert.deepEqual(results.map((r) => [r.partition, r.offset]), range(8).map((p) => [p, 0]));
      ids = await step(mf, 'ids', { names: ['shop', ...range(8).map((p) => `shop/spread/${p}`)] });
    } finally {
      await mf.dispose();
    }
    const objects = await busObjectFiles(dir);
    assert.equal(objects.length, 9, `1 directory + 8 partitions, found ${objects.length}: ${objects.join(', ')}`);
    // The objects are the ones named `${name}` and `${name}/${topic}/${partition}`.
    assert.deepEqual([...objects].sort(), [...ids].sort(), 'the directory "shop" and "shop/spread/0".."shop/spread/7"');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

edgeTest('a send over many partitions is atomic: one bad message and none is stored', async (mf) => {
  await step(mf, 'createTopic', { topic: 'orders', partitions: 8 });
  // 24 keyed messages over all 8 partitions.
  const messages = range(24).map((i) => ({ key: `order-${i}`, value: `order ${i}` }));
  const reference = await nodeReference('orders', 8, [messages]);
  assert.equal(new Set(reference.map((r) => r.partition)).size, 8, 'the batch spans every partition');
  const nothingStored = async (why) => {
    const stats = topicStats(await step(mf, 'stats'), 'orders');
    assert.deepEqual(stats.partitions.map((p) => [p.partition, p.highOffset]), range(8).map((p) => [p, 0]), why);
  };

  const tooLarge = messages.map((m, i) => (i === 13 ? { ...m, value: 'x'.repeat(2000) } : m));
  assert.equal(await stepCode(mf, 'send', { connect: { maxMessageBytes: 1000 }, topic: 'orders', messages: tooLarge }), 'MESSAGE_TOO_LARGE');
  await nothingStored('MESSAGE_TOO_LARGE stores nothing');

  assert.equal(await stepCode(mf, 'send', { topic: 'orders', messages, undefinedAt: 11 }), 'INVALID_ARGUMENT');
  await nothingStored('an undefined value stores nothing');

  // A later good send starts every partition at offset 0.
  const results = await step(mf, 'send', { topic: 'orders', messages });
  assert.deepEqual(results.map((r) => [r.partition, r.offset]), reference.map((r) => [r.partition, r.offset]));
  const stats = topicStats(await step(mf, 'stats'), 'orders');
  assert.deepEqual(stats.partitions.map((p) => p.highOffset), countsByPartition(results, 8));
  const received = await drain(mf, { groupId: 'audit', topics: ['orders'] }, messages.length);
  assert.deepEqual(received.map((m) => m.value).sort(), messages.map((m) => m.value).sort(), 'only the good send is delivered');
});

edgeTest('a full partition rejects the whole send with QUEUE_FULL, on every partition', async (mf) => {
  await step(mf, 'createTopic', { topic: 'jobs', partitions: 8, maxDepth: 2 });
  await step(mf, 'send', { topic: 'jobs', messages: [{ value: 'a', partition: 5 }, { value: 'b', partition: 5 }] });
  // Only partition 5's own object knows it is full.
  const spread = range(8).map((p) => ({ value: `job ${p}`, partition: p }));
  assert.equal(await stepCode(mf, 'send', { topic: 'jobs', messages: spread }), 'QUEUE_FULL');
  const stats = topicStats(await step(mf, 'stats'), 'jobs');
  assert.deepEqual(stats.partitions.map((p) => p.highOffset), [0, 0, 0, 0, 0, 2, 0, 0]);
  const results = await step(mf, 'send', { topic: 'jobs', messages: spread.filter((m) => m.partition !== 5) });
  assert.deepEqual(results.map((r) => [r.partition, r.offset]), [0, 1, 2, 3, 4, 6, 7].map((p) => [p, 0]));
});

edgeTest('a delayed part of a send over many partitions waits its delayMs in the partition it is forwarded to', async (mf) => {
  await step(mf, 'createTopic', { topic: 'later', partitions: 4 });
  // One message per partition; the first partition's object coordinates and forwards the rest.
  const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  const messages = keys.map((key) => ({ key, value: key, delayMs: 1500 }));
  const sent = await step(mf, 'send', { topic: 'later', messages });
  assert.ok(new Set(sent.map((r) => r.partition)).size > 1, 'the send spans partitions');
  const group = { groupId: 'patient', topics: ['later'] };
  assert.deepEqual(await step(mf, 'receive', group), [], 'nothing before delayMs');
  await new Promise((resolve) => setTimeout(resolve, 1700));
  const got = await drainAll(mf, group);
  assert.deepEqual(got.map((m) => m.value).sort(), keys);
  for (const m of got) assert.equal(m.partition, sent[keys.indexOf(m.value)].partition, `${m.value} on its partition`);
});

edgeTest('a repeated id meets the first across partitions: keyless messages with an id are placed by it', async (mf) => {
  await step(mf, 'createTopic', { topic: 'outbox', partitions: 8 });
  const messages = range(16).map((i) => ({ id: `msg-${i}`, value: i }));
  const first = await step(mf, 'send', { topic: 'outbox', messages });
  assert.ok(new Set(first.map((r) => r.partition)).size > 1, 'ids spread over partitions');
  assert.ok(first.every((r) => !r.duplicate));
  // The whole batch again, as an outbox retrying it would, and one by one.
  const again = await step(mf, 'send', { topic: 'outbox', messages: [...messages].reverse() });
  assert.deepEqual(again.reverse().map((r) => [r.partition, r.offset, r.duplicate]), first.map((r) => [r.partition, r.offset, true]));
  const single = await step(mf, 'send', { topic: 'outbox', messages: [messages[5]] });
  assert.deepEqual([single[0].partition, single[0].offset, single[0].duplicate], [first[5].partition, first[5].offset, true]);
  const stats = topicStats(await step(mf, 'stats'), 'outbox');
  assert.equal(stats.partitions.reduce((n, p) => n + p.highOffset, 0), 16, 'nothing stored twice');
});

edgeTest('acks made together go to each partition in one call, each with its own outcome', async (mf) => {
  await step(mf, 'createTopic', { topic: 'batch', partitions: 2 });
  await step(mf, 'send', { topic: 'batch', messages: range(20).map((i) => ({ value: i, partition: i % 2 })) });
  const group = { groupId: 'fast', topics: ['batch'] };
  const { values, outcomes } = await step(mf, 'settleTogether', { ...group, max: 10 });
  assert.deepEqual(outcomes, [true, 'INVALID_ARGUMENT', ...Array(8).fill(true)], 'the bad retry alone is refused');
  const stats = groupStats(await step(mf, 'stats'), 'fast', 'batch');
  assert.equal(stats.partitions.reduce((n, p) => n + p.inFlight, 0), 1, 'the refused retry changed nothing: its message is still leased');
  // Every ack took effect: the next receive brings exactly the other ten.
  const rest = await step(mf, 'receive', { ...group, options: { ordering: 'none' }, max: 100 });
  assert.deepEqual([...values, ...rest.map((m) => m.value)].sort((a, b) => a - b), range(20));
});

edgeTest('concurrent sends spanning partitions, from many requests at once: each message once, each sender\'s keys in order', async (mf) => {
  await step(mf, 'createTopic', { topic: 'busy', partitions: 8 });
  // 8 requests at once, each sending 6 batches of 16 keyed messages (its own 8 keys,
  // so every batch spans partitions and every object coordinates some).
  const senders = range(8).map((sender) =>
    (async () => {
      const results = [];
      for (let seq = 0; seq < 6; seq++) {
        const messages = range(16).map((i) => {
          const key = `s${sender}-k${i % 8}`;
          return { key, value: { key, seq: seq * 2 + Math.floor(i / 8) } };
        });
        results.push(...(await step(mf, 'send', { topic: 'busy', messages })));
      }
      return results;
    })(),
  );
  const sent = (await Promise.all(senders)).flat();
  const offsets = new Map();
  for (const r of sent) {
    const list = offsets.get(r.partition) ?? [];
    list.push(r.offset);
    offsets.set(r.partition, list);
  }
  assert.equal(offsets.size, 8, 'every partition took some');
  for (const [p, list] of offsets) {
    assert.deepEqual([...list].sort((a, b) => a - b), range(list.length), `partition ${p}: offsets 0..n-1, each once`);
  }
  const received = await drainAll(mf, { groupId: 'all', topics: ['busy'], max: 100 });
  assert.equal(received.length, 8 * 6 * 16, 'each message once');
  assertPerKeyOrder(received);
});

edgeTest('dead letters keep their partition in T.dlq, and redrive brings them back to it once', async (mf) => {
  await step(mf, 'createTopic', { topic: 'pay', partitions: 4 });
  const messages = range(12).map((i) => ({ key: `cust-${i}`, value: `charge-${i}`, headers: { trace: `t-${i}` } }));
  const sent = await step(mf, 'send', { topic: 'pay', messages });
  const origin = new Map(sent.map((r, i) => [messages[i].value, { ...messages[i], partition: r.partition, offset: r.offset }]));
  assert.deepEqual([...new Set(sent.map((r) => r.partition))].sort(), [0, 1, 2, 3], 'the messages span every partition');

  // Every attempt fails, and one attempt is all there is.
  const billing = { groupId: 'billing', topics: ['pay'], options: { retry: { maxAttempts: 1 } } };
  const failed = await drain(mf, billing, messages.length, { settle: 'retry', error: 'card declined' });
  assert.ok(failed.every((m) => m.attempt === 1));

  const stats = await step(mf, 'stats');
  assert.equal(groupStats(stats, 'billing', 'pay').deadLettered, messages.length);
  assert.deepEqual(groupStats(stats, 'billing', 'pay').partitions.map((p) => p.lag), [0, 0, 0, 0], 'dead-lettering acks the source');
  assert.equal(topicStats(stats, 'pay.dlq').partitions.length, 4, 'the dead-letter topic has the source\'s partition count');

  const letters = await drain(mf, { groupId: 'ops', topics: ['pay.dlq'] }, messages.length);
  for (const m of letters) {
    const source = origin.get(m.value);
    assert.ok(source, `${m.value} was sent`);
    assert.equal(m.partition, source.partition, `${m.value} is dead-lettered on its partition`);
    assert.equal(m.key, source.key);
    assert.deepEqual(m.headers, {
      trace: source.headers.trace,
      'ferry-dlq-topic': 'pay',
      'ferry-dlq-partition': String(source.partition),
      'ferry-dlq-offset': String(source.offset),
      'ferry-dlq-group': 'billing',
      'ferry-dlq-attempts': '1',
      'ferry-dlq-error': 'card declined',
    });
  }
  assert.deepEqual(letters.map((m) => m.value).sort(), [...origin.keys()].sort());

  assert.equal(await step(mf, 'redrive', { from: 'pay.dlq' }), messages.length);
  assert.equal(await step(mf, 'redrive', { from: 'pay.dlq' }), 0, 'a message is moved once');

  // A new group reads each one again, on its partition after the originals. (The
  // originals are gone once billing, the only group then, committed past them; if
  // some are still retained the new group may read them too, where they were.)
  const counts = countsByPartition(sent, 4);
  const all = await drainAll(mf, { groupId: 'recheck', topics: ['pay'] });
  const redriven = all.filter((m) => m.offset >= counts[m.partition]);
  for (const m of all.filter((m) => m.offset < counts[m.partition])) {
    assert.deepEqual([m.partition, m.offset], [origin.get(m.value).partition, origin.get(m.value).offset], `${m.value} is an original`);
  }
  assert.equal(redriven.length, messages.length, `every redriven message: ${JSON.stringify(all.map((m) => [m.partition, m.offset, m.value]))}`);
  for (const m of redriven) {
    const source = origin.get(m.value);
    assert.equal(m.partition, source.partition, `${m.value} is redriven to its partition`);
    assert.deepEqual([m.key, m.headers, m.attempt], [source.key, source.headers, 1], 'ferry-dlq-* headers dropped, user headers kept');
  }
  assert.deepEqual(redriven.map((m) => m.value).sort(), [...origin.keys()].sort());
  const after = topicStats(await step(mf, 'stats'), 'pay');
  assert.deepEqual(after.partitions.map((p) => p.highOffset), counts.map((n) => 2 * n));
});

edgeTest('stats merge the partitions: each topic once, one entry per group and topic, partitions in order', async (mf) => {
  await step(mf, 'createTopic', { topic: 'events', partitions: 8 });
  await step(mf, 'createTopic', { topic: 'other', partitions: 3 });
  const events = await sendAll(mf, 'events', batches(keyedMessages(32, 2), [20, 44]));
  const other = await step(mf, 'send', { topic: 'other', messages: range(9).map((i) => ({ value: i })) });

  // g2 acks two rounds of events and leaves a third leased; then g1 reads both topics
  // to the end (from what is retained: what g2, the only group then, acked is gone).
  let acked = 0;
  for (let round = 0; round < 2; round++) acked += (await step(mf, 'receive', { groupId: 'g2', topics: ['events'] })).length;
  const leased = (await step(mf, 'receive', { groupId: 'g2', topics: ['events'], settle: 'none' })).length;
  assert.ok(acked > 0 && leased > 0, `g2 acked ${acked}, leased ${leased}`);
  const g1 = await drainAll(mf, { groupId: 'g1', topics: ['events', 'other'] });
  assert.ok(g1.length >= events.length - acked + other.length, `g1 read ${g1.length} of ${events.length} + ${other.length}, g2 acked ${acked}`);

  const stats = await step(mf, 'stats');
  const topics = stats.topics.map((t) => t.topic);
  assert.deepEqual([...topics].sort(), ['events', 'other'], `each topic once: ${topics}`);
  const high = {};
  for (const [topic, n, sent] of [['events', 8, events], ['other', 3, other]]) {
    const t = topicStats(stats, topic);
    assert.deepEqual(t.partitions.map((p) => p.partition), range(n), `${topic}'s partitions in order`);
    assert.deepEqual(t.partitions.map((p) => p.highOffset), countsByPartition(sent, n));
    high[topic] = t.partitions.map((p) => p.highOffset);
  }
  const groups = stats.groups.map((g) => `${g.groupId}/${g.topic}`);
  assert.deepEqual([...groups].sort(), ['g1/events', 'g1/other', 'g2/events'], `one entry per group and topic: ${groups}`);
  for (const g of stats.groups) {
    assert.deepEqual(g.partitions.map((p) => p.partition), range(high[g.topic].length), `${g.groupId}/${g.topic}: partitions in order`);
    for (const p of g.partitions) {
      assert.equal(p.lag, high[g.topic][p.partition] - p.committedOffset, `${g.groupId}/${g.topic}/${p.partition}: lag = highOffset - committedOffset`);
    }
  }
  assert.ok(groupStats(stats, 'g1', 'events').partitions.every((p) => p.lag === 0));
  assert.ok(groupStats(stats, 'g1', 'other').partitions.every((p) => p.lag === 0));
  const g2 = groupStats(stats, 'g2', 'events');
  assert.equal(g2.partitions.reduce((n, p) => n + p.committedOffset, 0), acked);
  assert.equal(g2.partitions.reduce((n, p) => n + p.inFlight, 0), leased);

  const listed = await step(mf, 'topics');
  assert.deepEqual(listed.map((t) => [t.topic, t.partitions]).sort(), [['events', 8], ['other', 3]]);
});

test('with 8 partitions a restart keeps every position: the group receives exactly the rest, per key in order', { timeout: 60000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-partitions-'));
  const group = { groupId: 'fulfilment', topics: ['parcels'] };
  try {
    let mf = await start(dir);
    let sent, before;
    try {
      await step(mf, 'createTopic', { topic: 'parcels', partitions: 8 });
      sent = await sendAll(mf, 'parcels', batches(keyedMessages(16, 5), [30, 50]));
      assert.equal(sent.length, 80);
      before = [];
      for (let round = 0; round < 3; round++) before.push(...(await step(mf, 'receive', group)));
      assert.ok(before.length > 0 && before.length < 80, `${before.length} acked before the restart`);
    } finally {
      await mf.dispose();
    }
    mf = await start(dir);
    try {
      const rest = await drain(mf, group, 80 - before.length);
      const at = (m) => `${m.partition}/${m.offset}`;
      const both = [...before, ...rest].map(at);
      assert.equal(new Set(both).size, 80, 'no message twice');
      assert.deepEqual([...both].sort(), sent.map(at).sort(), 'every message once');
      assertPerKeyOrder(rest, assertPerKeyOrder(before));
      const stats = await step(mf, 'stats');
      assert.deepEqual(groupStats(stats, 'fulfilment', 'parcels').partitions.map((p) => p.lag), range(8).map(() => 0));
      assert.deepEqual(topicStats(stats, 'parcels').partitions.map((p) => p.highOffset), countsByPartition(sent, 8));
    } finally {
      await mf.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
