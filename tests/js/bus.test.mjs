// The API.md contract for what the package has so far, in Node on the memory store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, FerryError } from 'ferry';

const rejectsWith = (promise, code, field) =>
  assert.rejects(promise, (e) => {
    assert.ok(e instanceof FerryError, `a FerryError, got ${e}`);
    assert.ok(e instanceof Error);
    assert.equal(e.code, code, e.message);
    if (field) assert.match(e.message, new RegExp(field.replace(/[[\]]/g, '\\$&')));
    return true;
  });

test('createTopic resolves true, then false, and conflicts on another partition count', async () => {
  const bus = await Bus.open({ name: 'topics' });
  assert.equal(await bus.createTopic('orders', { partitions: 3 }), true);
  assert.equal(await bus.createTopic('orders', { partitions: 3 }), false);
  await rejectsWith(bus.createTopic('orders', { partitions: 4 }), 'TOPIC_CONFLICT');
  assert.deepEqual(await bus.topics(), [{ topic: 'orders', partitions: 3, retentionMs: null, maxDepth: null }]);
});

test('keys land where Kafka puts them, offsets are gapless from 0', async () => {
  const bus = await Bus.open();
  await bus.createTopic('t', { partitions: 8 });
  const producer = bus.producer();
  // Kafka's murmur2("21") = -973932308 -> (h & 0x7fffffff) % 8
  const results = await producer.send({ topic: 't', messages: [{ key: '21', value: 'a' }, { key: '21', value: 'b' }] });
  assert.deepEqual(results.map((r) => [r.partition, r.offset, r.duplicate]), [[(-973932308 & 0x7fffffff) % 8, 0, false], [(-973932308 & 0x7fffffff) % 8, 1, false]]);
  assert.equal(typeof results[0].timestamp, 'number');
});

test('ids deduplicate within the window', async () => {
  const bus = await Bus.open();
  const first = await bus.publish('orders', { id: 42 }, { id: 'order-42' });
  const again = await bus.publish('orders', { id: 42 }, { id: 'order-42' });
  assert.equal(again.duplicate, true);
  assert.equal(again.offset, first.offset);
  const stats = await bus.stats();
  assert.equal(stats.topics[0].partitions[0].highOffset, 1);
});

test('a send is atomic: one bad message stores nothing', async () => {
  const bus = await Bus.open({ maxMessageBytes: 16 });
  await rejectsWith(bus.producer().send({ topic: 't', messages: [{ value: 'ok' }, { value: 'x'.repeat(17) }] }), 'MESSAGE_TOO_LARGE', 'messages[1]');
  assert.deepEqual((await bus.stats()).topics, []);
});

test('bad input rejects with INVALID_ARGUMENT naming the field, and stores nothing', async () => {
  const bus = await Bus.open();
  const send = (messages) => bus.producer().send({ topic: 't', messages });
  const cyclic = {};
  cyclic.self = cyclic;
  const cases = [
    [bus.createTopic('bad name'), 'topic'],
    [bus.createTopic('t', { partitions: 0 }), 'partitions'],
    [bus.createTopic('t', { partitions: 1.5 }), 'partitions'],
    [bus.createTopic('t', { partitions: NaN }), 'partitions'],
    [bus.createTopic('t', { partitions: '2' }), 'partitions'],
    [bus.createTopic('t', { retentionMs: -1 }), 'retentionMs'],
    [send([]), 'messages'],
    [send('nope'), 'messages'],
    [send([{ value: undefined }]), 'messages[0].value'],
    [send([{ value: () => 1 }]), 'messages[0].value'],
    [send([{ value: 10n }]), 'messages[0].value'],
    [send([{ value: cyclic }]), 'messages[0].value'],
    [send([{ value: 'v', key: 5 }]), 'messages[0].key'],
    [send([{ value: 'v', headers: { a: 1 } }]), 'messages[0].headers.a'],
    [send([{ value: 'v', delayMs: -5 }]), 'messages[0].delayMs'],
    [bus.publish(7, 'v'), 'topic'],
    [bus.redrive({}), 'from'],
  ];
  for (const [promise, field] of cases) await rejectsWith(promise, 'INVALID_ARGUMENT', field);
  await rejectsWith(Bus.open({ maxMessageBytes: 2 ** 40 }), 'INVALID_ARGUMENT', 'maxMessageBytes');
  assert.deepEqual((await bus.stats()).topics, []);
});

test('strings, bytes and JSON values are stored; unknown topics reject without auto-creation', async () => {
  const bus = await Bus.open({ autoCreateTopics: false });
  await rejectsWith(bus.publish('missing', 'v'), 'UNKNOWN_TOPIC');
  await bus.createTopic('v');
  await bus.publish('v', 'text');
  await bus.publish('v', new Uint8Array([0, 255]));
  await bus.publish('v', { a: [1, null, 'x'] });
  const stats = await bus.stats();
  assert.equal(stats.topics[0].partitions[0].highOffset, 3);
});

test('close makes later calls reject with CLOSED', async () => {
  const bus = await Bus.open();
  await bus.close();
  await rejectsWith(bus.publish('t', 'v'), 'CLOSED');
  await rejectsWith(bus.stats(), 'CLOSED');
});
