// `ferry/kafkajs`: programs written as KafkaJS's documentation writes them, with only
// the import pointing at ferry, in Node and in a Chromium page. Each test names the
// documentation page (kafka.js.org/docs/...) whose calls and shapes it follows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel, CompressionTypes, Partitioners, FerryError } from 'ferry/kafkajs';
import { serve } from '../../www/serve.mjs';
import { launch, openTestPage } from './browsers.mjs';

let buses = 0;
/** A client on a bus of its own, as a program would make it (`ferry` picks the bus, in memory here). */
const kafka = (extra = {}) => new Kafka({ clientId: 'my-app', brokers: ['kafka1:9092', 'kafka2:9092'], logLevel: logLevel.ERROR, ferry: { name: `kafkajs-${process.pid}-${++buses}`, storage: 'memory' }, ...extra });

/** Runs `consumer` until `count` messages were handled; resolves to what eachMessage got. */
async function consume(consumer, count, run = {}) {
  const seen = [];
  await new Promise((resolve, reject) => {
    consumer
      .run({
        ...run,
        eachMessage: async (payload) => {
          await run.eachMessage?.(payload);
          seen.push(payload);
          if (seen.length === count) resolve();
        },
      })
      .catch(reject);
  });
  return seen;
}

// docs/getting-started
test('getting started: a producer sends, a consumer group reads from the beginning, Buffer keys and values, string offsets', async () => {
  const client = kafka();
  const producer = client.producer();
  await producer.connect();
  const sent = await producer.send({ topic: 'test-topic', messages: [{ value: 'Hello KafkaJS user!' }] });
  assert.deepEqual(sent.map(({ topicName, partition, errorCode, baseOffset }) => ({ topicName, partition, errorCode, baseOffset })), [{ topicName: 'test-topic', partition: 0, errorCode: 0, baseOffset: '0' }]);
  const consumer = client.consumer({ groupId: 'test-group' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'test-topic', fromBeginning: true });
  const [{ topic, partition, message }] = await consume(consumer, 1);
  assert.deepEqual({ topic, partition }, { topic: 'test-topic', partition: 0 });
  assert.ok(Buffer.isBuffer(message.value));
  assert.equal(message.value.toString(), 'Hello KafkaJS user!');
  assert.equal(message.key, null);
  assert.equal(message.offset, '0');
  assert.equal(typeof message.timestamp, 'string');
  assert.ok(Number(message.timestamp) > 0);
  await consumer.disconnect();
  await producer.disconnect();
});

// docs/producing
test('producing: keys by Kafka partitioner, headers, acks and compression accepted, sendBatch across topics, RecordMetadata per partition', async () => {
  const client = kafka();
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'topic-a', numPartitions: 3 }, { topic: 'topic-b' }] });
  const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  await producer.connect();
  const sent = await producer.send({
    topic: 'topic-a',
    acks: -1,
    timeout: 30000,
    compression: CompressionTypes.GZIP,
    messages: [
      { key: 'key1', value: 'hello world', headers: { 'correlation-id': '2bfb68bb', 'system-id': Buffer.from('my-system') } },
      { key: 'key1', value: 'hey hey!' },
      { value: Buffer.from([1, 2, 3]), partition: 2 },
    ],
  });
  assert.ok(sent.every((m) => m.topicName === 'topic-a' && m.errorCode === 0 && typeof m.baseOffset === 'string'));
  assert.equal(new Set(sent.map((m) => m.partition)).size, sent.length, 'one entry per partition');
  const batch = await producer.sendBatch({ topicMessages: [{ topic: 'topic-a', messages: [{ key: 'key1', value: 'third' }] }, { topic: 'topic-b', messages: [{ value: 'b' }] }] });
  assert.deepEqual(batch.map((m) => m.topicName), ['topic-a', 'topic-b']);
  const consumer = client.consumer({ groupId: 'readers' });
  await consumer.subscribe({ topics: ['topic-a'], fromBeginning: true });
  const seen = await consume(consumer, 4);
  const key1 = seen.filter((p) => p.message.key?.toString() === 'key1');
  assert.deepEqual(key1.map((p) => p.message.value.toString()), ['hello world', 'hey hey!', 'third'], 'one key, one partition, in order');
  assert.equal(new Set(key1.map((p) => p.partition)).size, 1);
  assert.equal(key1[0].message.headers['correlation-id'].toString(), '2bfb68bb');
  assert.equal(key1[0].message.headers['system-id'].toString(), 'my-system');
  const bytes = seen.find((p) => p.partition === 2 && p.message.key === null);
  assert.deepEqual([...bytes.message.value], [1, 2, 3]);
  await consumer.disconnect();
  await assert.rejects(producer.transaction(), (e) => e instanceof FerryError && /transaction\(\)/.test(e.message));
});

// docs/consuming
test('consuming: RegExp subscriptions, eachBatch with resolveOffset, seek, GROUP_JOIN and partitionsConsumedConcurrently', async () => {
  const client = kafka();
  const admin = client.admin();
  await admin.createTopics({ topics: [{ topic: 'pets.cats', numPartitions: 2 }, { topic: 'pets.dogs', numPartitions: 2 }, { topic: 'cars' }] });
  const producer = client.producer();
  await producer.send({ topic: 'pets.cats', messages: [{ key: 'a', value: 'tom' }, { key: 'b', value: 'felix' }] });
  await producer.send({ topic: 'pets.dogs', messages: [{ key: 'a', value: 'rex' }] });
  await producer.send({ topic: 'cars', messages: [{ value: 'not a pet' }] });
  const consumer = client.consumer({ groupId: 'pets' });
  const joins = [];
  const stopListening = consumer.on(consumer.events.GROUP_JOIN, (event) => joins.push(event));
  await consumer.subscribe({ topics: [/^pets\./], fromBeginning: true });
  const values = [];
  await new Promise((resolve) =>
    consumer.run({
      partitionsConsumedConcurrently: 2,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break;
          values.push(message.value.toString());
          resolveOffset(message.offset);
          await heartbeat();
        }
        assert.equal(typeof batch.highWatermark, 'string');
        assert.equal(batch.lastOffset(), batch.messages[batch.messages.length - 1].offset);
        if (values.length === 3) resolve();
      },
    }),
  );
  assert.deepEqual(values.sort(), ['felix', 'rex', 'tom'], 'the pets, not the cars');
  assert.equal(joins.length, 1);
  assert.equal(joins[0].type, 'consumer.group_join');
  assert.deepEqual(Object.keys(joins[0].payload.memberAssignment).sort(), ['pets.cats', 'pets.dogs']);
  stopListening();
  // seek: the group goes back to the start of a partition and reads it again.
  const [cats] = (await admin.fetchTopicOffsets('pets.cats')).filter((p) => p.high !== '0');
  await consumer.seek({ topic: 'pets.cats', partition: cats.partition, offset: '0' });
  await consumer.stop();
  const again = client.consumer({ groupId: 'pets' });
  await again.subscribe({ topic: 'pets.cats' });
  const [reread] = await consume(again, 1);
  assert.equal(reread.message.offset, '0');
  await again.disconnect();
  await consumer.disconnect();
  await assert.rejects(client.consumer({ groupId: 'x' }).run({ autoCommit: false, eachMessage: async () => {} }), /autoCommit: false/);
});

// docs/consuming#a-name-pause-resume-a-pause-resume
test('pause and resume: a paused topic waits while the member keeps it; resumed, it is handed out', async () => {
  const client = kafka();
  await client.admin().createTopics({ topics: [{ topic: 'jobs', numPartitions: 2 }, { topic: 'mail' }] });
  const consumer = client.consumer({ groupId: 'workers' });
  await consumer.subscribe({ topics: ['jobs', 'mail'], fromBeginning: true });
  const seen = [];
  await consumer.run({ eachMessage: async ({ topic, message }) => void seen.push(`${topic}:${message.value}`) });
  consumer.pause([{ topic: 'jobs' }]);
  assert.deepEqual(consumer.paused(), [{ topic: 'jobs', partitions: [0, 1] }]);
  const producer = client.producer();
  await producer.send({ topic: 'jobs', messages: [{ value: 'j1', partition: 0 }, { value: 'j2', partition: 1 }] });
  await producer.send({ topic: 'mail', messages: [{ value: 'm1' }] });
  const until = async (check) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  await until(() => seen.includes('mail:m1'));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(seen, ['mail:m1'], 'jobs wait while paused');
  consumer.resume([{ topic: 'jobs', partitions: [1] }]);
  assert.deepEqual(consumer.paused(), [{ topic: 'jobs', partitions: [0] }]);
  await until(() => seen.includes('jobs:j2'));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(seen, ['mail:m1', 'jobs:j2'], 'partition 0 is still paused');
  consumer.resume([{ topic: 'jobs' }]);
  await until(() => seen.includes('jobs:j1'));
  assert.deepEqual(seen, ['mail:m1', 'jobs:j2', 'jobs:j1']);
  assert.deepEqual(consumer.paused(), []);
  await consumer.disconnect();
});

// docs/consuming#a-name-retry-a-retry, docs/instrumentation-events
test('a handler that throws is retried with the consumer retry options, then dead-lettered; the group goes on', async () => {
  const client = kafka();
  const producer = client.producer();
  await producer.send({ topic: 'payments', messages: [{ key: 'p', value: 'declined' }, { key: 'p', value: 'paid' }] });
  const consumer = client.consumer({ groupId: 'charge', retry: { retries: 2, initialRetryTime: 10, maxRetryTime: 20 } });
  await consumer.subscribe({ topic: 'payments', fromBeginning: true });
  const attempts = [];
  await consume(consumer, 1, {
    eachMessage: async ({ message }) => {
      attempts.push(message.value.toString());
      if (message.value.toString() === 'declined') throw new Error('card declined');
    },
  });
  assert.deepEqual(attempts, ['declined', 'declined', 'declined', 'paid'], 'the first attempt and 2 retries, then the next message');
  await consumer.disconnect();
  const dead = client.consumer({ groupId: 'dlq-reader' });
  await dead.subscribe({ topic: 'payments.dlq', fromBeginning: true });
  const [letter] = await consume(dead, 1);
  assert.equal(letter.message.value.toString(), 'declined');
  assert.equal(letter.message.headers['ferry-dlq-error'].toString(), 'card declined');
  await dead.disconnect();
});

// docs/admin
test('admin: topics, their metadata and offsets, group offsets, resetting them, describing groups; deleteTopics refused', async () => {
  const client = kafka();
  const admin = client.admin();
  await admin.connect();
  assert.equal(await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 3, replicationFactor: 3 }] }), true);
  assert.equal(await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 3 }] }), false, 'it existed');
  assert.deepEqual(await admin.listTopics(), ['orders']);
  const { topics } = await admin.fetchTopicMetadata({ topics: ['orders'] });
  assert.deepEqual(topics[0].partitions.map((p) => p.partitionId), [0, 1, 2]);
  await client.producer().send({ topic: 'orders', messages: [{ value: 'o1', partition: 1 }, { value: 'o2', partition: 1 }] });
  assert.deepEqual(await admin.fetchTopicOffsets('orders'), [
    { partition: 0, offset: '0', high: '0', low: '0' },
    { partition: 1, offset: '2', high: '2', low: '0' },
    { partition: 2, offset: '0', high: '0', low: '0' },
  ]);
  const consumer = client.consumer({ groupId: 'shipping' });
  await consumer.subscribe({ topic: 'orders', fromBeginning: true });
  await consume(consumer, 2);
  await consumer.stop();
  const offsets = async () => (await admin.fetchOffsets({ groupId: 'shipping', topics: ['orders'] }))[0].partitions.map((p) => p.offset);
  assert.deepEqual(await offsets(), ['0', '2', '0']);
  // Messages stay (7 days, as Kafka keeps them) after the group read them: a reset reads them again.
  await admin.resetOffsets({ groupId: 'shipping', topic: 'orders', earliest: true });
  assert.deepEqual(await offsets(), ['0', '0', '0']);
  const { groups } = await admin.describeGroups(['shipping', 'nobody']);
  assert.deepEqual(groups.map((g) => [g.groupId, g.state, g.protocolType]), [['shipping', 'Empty', 'consumer'], ['nobody', 'Empty', 'consumer']]);
  await assert.rejects(admin.deleteTopics({ topics: ['orders'] }), (e) => e instanceof FerryError && /deleteTopics\(\)/.test(e.message));
  await assert.rejects(admin.fetchTopicOffsets('missing'), (e) => e.code === 'UNKNOWN_TOPIC');
  await admin.disconnect();
});

// docs/custom-logger
test("logging: logCreator gets KafkaJS's entries at the levels asked for; namespaces", () => {
  const entries = [];
  const created = [];
  const client = kafka({ logLevel: logLevel.WARN, logCreator: (level) => (created.push(level), (entry) => entries.push(entry)) });
  const logger = client.logger();
  logger.info('not shown');
  logger.warn('careful', { topic: 't' });
  logger.namespace('Consumer').error('broken');
  assert.deepEqual(
    entries.map(({ level, namespace, label, log }) => ({ level, namespace, label, message: log.message, topic: log.topic })),
    [
      { level: logLevel.WARN, namespace: '', label: 'WARN', message: 'careful', topic: 't' },
      { level: logLevel.ERROR, namespace: 'Consumer', label: 'ERROR', message: 'broken', topic: undefined },
    ],
  );
  assert.ok(created.every((level) => level === logLevel.WARN), 'logCreator is given the client level');
  assert.deepEqual(logLevel, { NOTHING: 0, ERROR: 1, WARN: 2, INFO: 4, DEBUG: 5 });
});

// The shape of KafkaJS's example programs (its repository's examples/): CommonJS,
// ssl and sasl options, a logCreator, messages logged through kafka.logger().
test('a CommonJS program as KafkaJS examples write them runs with require pointing at ferry/kafkajs', async () => {
  const { execFile } = await import('node:child_process');
  const { writeFile, rm } = await import('node:fs/promises');
  const program = new URL(`./kafkajs-program-${process.pid}.cjs`, import.meta.url);
  await writeFile(
    program,
    `const { Kafka, CompressionTypes, logLevel } = require('ferry/kafkajs')
const lines = []
const logCreator = () => ({ level, log }) => lines.push({ level, message: log.message, extra: log })
const kafka = new Kafka({
  logLevel: logLevel.INFO,
  logCreator,
  brokers: ['10.0.0.1:9094', '10.0.0.1:9097'],
  clientId: 'example-producer',
  ssl: { servername: 'localhost', rejectUnauthorized: false },
  sasl: { mechanism: 'plain', username: 'test', password: 'testtest' },
  ferry: { storage: 'memory' },
})
const topic = 'topic-test'
const producer = kafka.producer()
const consumer = kafka.consumer({ groupId: 'test-group' })
const run = async () => {
  await producer.connect()
  const messages = [1, 2, 3].map((num) => ({ key: 'key-' + num, value: 'value-' + num, headers: { 'correlation-id': num + '-' + Date.now() } }))
  const response = await producer.send({ topic, compression: CompressionTypes.GZIP, messages })
  kafka.logger().info('Messages sent', { response })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let msgNumber = 0
  await new Promise((resolve) => consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      msgNumber++
      kafka.logger().info('Message processed', {
        topic, partition, offset: message.offset, timestamp: message.timestamp,
        headers: Object.keys(message.headers).reduce((headers, key) => ({ ...headers, [key]: message.headers[key].toString() }), {}),
        key: message.key.toString(), value: message.value.toString(), msgNumber,
      })
      if (msgNumber === 3) resolve()
    },
  }))
  await consumer.disconnect()
  await producer.disconnect()
  console.log(JSON.stringify(lines))
}
run().catch((e) => { kafka.logger().error('[example] ' + e.message, { stack: e.stack }); console.log(JSON.stringify(lines)); process.exit(1) })
`,
  );
  try {
    const stdout = await new Promise((resolve, reject) => execFile(process.execPath, [program.pathname], (error, out, err) => (error ? reject(new Error(err || out)) : resolve(out))));
    const lines = JSON.parse(stdout);
    const processed = lines.filter((l) => l.message === 'Message processed').map((l) => l.extra);
    assert.deepEqual(processed.map((p) => p.value).sort(), ['value-1', 'value-2', 'value-3']);
    assert.ok(processed.every((p) => p.key === p.value.replace('value', 'key') && /^\d+-\d+$/.test(p.headers['correlation-id']) && typeof p.offset === 'string'));
    assert.equal(lines[0].message, 'Messages sent');
    assert.equal(lines[0].extra.response[0].errorCode, 0);
  } finally {
    await rm(program);
  }
});

// docs/getting-started, in a browser: values are Uint8Arrays whose toString() is the text.
let server;
let browser;
before(async () => {
  server = await serve();
  browser = await launch('chromium');
});
after(async () => {
  await browser?.close();
  await server?.close();
});

test('getting started in a Chromium page, with the import map pointing kafkajs at ferry/kafkajs', async () => {
  const page = await openTestPage(browser, server.url);
  const seen = await page.evaluate(async () => {
    const { Kafka } = await import('/pkg/entry/kafkajs-browser.js');
    const kafka = new Kafka({ clientId: 'page', brokers: ['localhost:9092'], ferry: { name: `kafkajs-page-${Math.random()}` } });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'test-topic', messages: [{ key: 'k', value: 'Hello KafkaJS user!', headers: { h: 'v' } }] });
    const consumer = kafka.consumer({ groupId: 'test-group' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'test-topic', fromBeginning: true });
    const message = await new Promise((resolve) => consumer.run({ eachMessage: async ({ message }) => resolve(message) }));
    await consumer.disconnect();
    return { value: message.value.toString(), key: message.key.toString(), header: message.headers.h.toString(), bytes: message.value instanceof Uint8Array, offset: message.offset };
  });
  assert.deepEqual(seen, { value: 'Hello KafkaJS user!', key: 'k', header: 'v', bytes: true, offset: '0' });
  await page.close();
});
