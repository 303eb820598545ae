// handleHttp() in real workerd (through Miniflare): every status it answers, that no
// refused request stores anything, and consuming over HTTP (receive, then acks).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './workerd.mjs';

const TOKEN = 'test-token-5f1c';

// The Worker of pkg/README.md: /v1/ paths go to handleHttp. The host picks the bus:
// "shop" as a deployment would have it, "strict" opened with autoCreateTopics off
// and 1 KiB messages, "open" a deployment that forgot its token, "consume" the bus
// the receive tests consume from. /setup makes, with
// connect(), a topic with a maxDepth on "shop" and a topic on "strict".
const worker = `
import { FerryObject, connect, handleHttp } from 'ferry/workers';

export class Bus extends FerryObject {}

const strict = { name: 'strict', autoCreateTopics: false, maxMessageBytes: 1024 };
const options = (env) => ({
  'shop.test': { token: env.FERRY_TOKEN, name: 'shop' },
  'strict.test': { token: env.FERRY_TOKEN, ...strict },
  'open.test': { name: 'open' },
  'consume.test': { token: env.FERRY_TOKEN, name: 'consume' },
});

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/v1/')) return handleHttp(request, env.BUS, options(env)[url.hostname]);
    if (url.pathname === '/bytes') {
      return Response.json(await connect(env.BUS, { name: 'consume' }).publish('blobs', new Uint8Array([0, 255, 1])));
    }
    if (url.pathname === '/setup') {
      await connect(env.BUS, { name: 'shop' }).createTopic('tight', { maxDepth: 1 });
      return Response.json(await connect(env.BUS, strict).createTopic('small'));
    }
    return new Response('not found', { status: 404 });
  },
};
`;

let mf;

before(async () => {
  mf = await startWorker(worker, { bindings: { FERRY_TOKEN: TOKEN } });
  assert.equal((await mf.dispatchFetch('http://shop.test/setup')).status, 200);
});

after(() => mf?.dispose());

/** One request; resolves to `{ status, headers, body }` with the body parsed as JSON. */
async function request(path, { method = 'GET', host = 'shop.test', token = TOKEN, authorization, body } = {}) {
  const headers = {};
  if (authorization !== undefined) headers.Authorization = authorization;
  else if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body?.constructor === Object) body = JSON.stringify(body);
  const response = await mf.dispatchFetch(`http://${host}${path}`, {
    method,
    headers,
    body,
    duplex: body instanceof ReadableStream ? 'half' : undefined,
    signal: AbortSignal.timeout(15000),
  });
  const text = await response.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`status ${response.status}, body not JSON: ${text}`);
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** Asserts an error answer: its status and `{ error: { code, message } }`. */
function assertError(response, status, code) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code);
  assert.equal(typeof response.body.error.message, 'string');
  assert.ok(response.body.error.message.length > 0);
}

const send = (topic, messages, options) => request(`/v1/topics/${topic}/messages`, { method: 'POST', body: { messages }, ...options });
const receive = (topic, body, options) => request(`/v1/topics/${topic}/receive`, { method: 'POST', body, ...options });
const acks = (receipts, options) => request('/v1/acks', { method: 'POST', body: { receipts }, ...options });
const consume = { host: 'consume.test' };

test('200: POST /v1/topics/{topic}/messages sends, in order, with each message shape', async () => {
  const { status, body } = await send('orders', [
    { key: 'order-1', value: { sku: 'A-1', qty: 2 }, id: 'order-1', headers: { source: 'checkout' } },
    { value: 'plain string' },
    { value: [1, null, true], partition: 0, delayMs: 0 },
  ]);
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(
    body.results.map(({ topic, partition, offset, duplicate }) => ({ topic, partition, offset, duplicate })),
    [0, 1, 2].map((offset) => ({ topic: 'orders', partition: 0, offset, duplicate: false })),
  );
  assert.ok(body.results.every((r) => Number.isInteger(r.timestamp)));
});

test('200: GET /v1/stats answers the stats', async () => {
  const { status, body } = await request('/v1/stats');
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(body.topics.find((t) => t.topic === 'orders').partitions, [{ partition: 0, lowOffset: 0, highOffset: 3, depth: 3, expired: 0 }]);
  assert.deepEqual(body.groups, []);
});

test('401: a missing, wrong or non-Bearer token, and a deployment without a token', async () => {
  const valid = [{ value: 'must not be stored' }];
  for (const options of [{ token: null }, { token: 'wrong' }, { token: `${TOKEN}x` }, { authorization: `Basic ${TOKEN}` }, { token: '' }]) {
    const refused = await send('sneaky', valid, options);
    assertError(refused, 401, 'INVALID_ARGUMENT');
    assert.equal(refused.headers.get('WWW-Authenticate'), 'Bearer');
    assertError(await request('/v1/stats', options), 401, 'INVALID_ARGUMENT');
    assertError(await receive('orders', { group: 'sneaky' }, options), 401, 'INVALID_ARGUMENT');
    assertError(await acks([{ receipt: 'sneaky:orders:0:0:1:0' }], options), 401, 'INVALID_ARGUMENT');
    assertError(await request('/v1/topics/orders/messages?partition=0', options), 401, 'INVALID_ARGUMENT');
    assertError(await request('/v1/topics/orders.dlq/redrive', { method: 'POST', ...options }), 401, 'INVALID_ARGUMENT');
    assertError(await request('/v1/topics/orders.dlq/purge', { method: 'POST', ...options }), 401, 'INVALID_ARGUMENT');
  }
  // The scheme is case-insensitive (RFC 7235): the right token under "bearer" passes.
  assert.equal((await request('/v1/stats', { authorization: `bearer ${TOKEN}` })).status, 200);
  // No token configured: refused whatever the request carries, even "Bearer undefined".
  for (const token of [TOKEN, 'undefined', null]) {
    assertError(await send('sneaky', valid, { host: 'open.test', token }), 401, 'INVALID_ARGUMENT');
    assertError(await request('/v1/stats', { host: 'open.test', token }), 401, 'INVALID_ARGUMENT');
  }
  // Credentials come first: without them no path or method is even looked at.
  assertError(await request('/v1/nothing', { token: null }), 401, 'INVALID_ARGUMENT');
});

test('400: malformed JSON, a body of the wrong shape, invalid arguments', async () => {
  const post = (path, body) => request(path, { method: 'POST', body });
  for (const body of ['{"messages": [', '', 'messages', '{"messages": [{"value": 1}]} trailing', new Uint8Array([0x7b, 0xff, 0x7d])]) {
    assertError(await post('/v1/topics/orders/messages', body), 400, 'INVALID_ARGUMENT');
  }
  for (const body of ['[]', 'null', '"x"', '{}', '{"messages": {"value": 1}}', '{"messages": "a"}', '{"messages": []}']) {
    assertError(await post('/v1/topics/orders/messages', body), 400, 'INVALID_ARGUMENT');
  }
  const invalid = [
    ['bad name!', [{ value: 'x' }]], // topic name outside [A-Za-z0-9._-]
    ['x'.repeat(250), [{ value: 'x' }]], // topic name over 249 characters
    ['%E0%A4%A', [{ value: 'x' }]], // not percent-encoding
    ['fresh', [{ value: 'ok' }, { key: 7, value: 'x' }]], // a key must be a string; atomic: 'ok' is not stored either
    ['fresh', [{ key: 'k' }]], // no value
    ['fresh', [{ value: 'x', headers: { h: 1 } }]], // header values are strings
    ['fresh', [{ value: 'x', delayMs: -1 }]],
  ];
  for (const [topic, messages] of invalid) {
    assertError(await send(topic, messages), 400, 'INVALID_ARGUMENT');
  }
  // The consuming routes take JSON bodies too, checked whole before anything moves.
  for (const path of ['/v1/topics/orders/receive', '/v1/acks']) {
    for (const body of ['{"group": ', '', 'group', '{} trailing', new Uint8Array([0x7b, 0xff, 0x7d]), '[]', 'null', '"x"']) {
      assertError(await post(path, body), 400, 'INVALID_ARGUMENT');
    }
  }
  const badReceives = [
    ['orders', {}, /group/], // no group
    ['orders', { group: 7 }, /group/],
    ['orders', { group: 'bad group!' }, /group/],
    ['orders', { group: 'g', max: 0 }, /max/],
    ['orders', { group: 'g', max: 101 }, /max/],
    ['orders', { group: 'g', max: 1.5 }, /max/],
    ['orders', { group: 'g', ackTimeoutMs: -1 }, /ackTimeoutMs/],
    ['orders', { group: 'g', fromBeginning: 'yes' }, /fromBeginning/],
    ['orders', { group: 'g', retry: { maxAttempts: 0 } }, /retry\.maxAttempts/],
    ['orders', { group: 'g', ordering: 'random' }, /ordering/],
    ['bad name!', { group: 'g' }, /topic/],
  ];
  for (const [topic, body, field] of badReceives) {
    const refused = await receive(topic, body);
    assertError(refused, 400, 'INVALID_ARGUMENT');
    assert.match(refused.body.error.message, field, JSON.stringify(body));
  }
  const receipt = 'g:orders:0:0:1:0';
  const badAcks = [
    [{}, /receipts/],
    [{ receipts: 'x' }, /receipts/],
    [{ receipts: [] }, /receipts/],
    [{ receipts: Array.from({ length: 1001 }, () => ({ receipt })) }, /receipts/],
    [{ receipts: [7] }, /receipts\[0\]/], // an item is a receipt or an object
    [{ receipts: ['made up'] }, /receipts\[0\]/],
    [{ receipts: [{ receipt }, {}] }, /receipts\[1\]\.receipt/],
    [{ receipts: [{ receipt: 'made up' }] }, /receipts\[0\]\.receipt/],
    [{ receipts: [{ receipt: 'g:orders:0:0:1' }] }, /receipts\[0\]\.receipt/],
    [{ receipts: [{ receipt, retry: 'now' }] }, /receipts\[0\]\.retry/],
    [{ receipts: [{ receipt, delayMs: 'soon' }] }, /receipts\[0\]\.delayMs/],
    [{ receipts: [{ receipt, retry: { delayMs: -5 } }] }, /receipts\[0\]\.retry\.delayMs/],
    [{ receipts: [{ receipt, retry: { error: 5 } }] }, /receipts\[0\]\.retry\.error/],
  ];
  for (const [body, field] of badAcks) {
    const refused = await request('/v1/acks', { method: 'POST', body: JSON.stringify(body) });
    assertError(refused, 400, 'INVALID_ARGUMENT');
    assert.match(refused.body.error.message, field, JSON.stringify(body).slice(0, 80));
  }
});

test('413: a 2 MB body, with Content-Length and streamed without it; a message over maxMessageBytes', async () => {
  // 2,000 messages of 1 KB: each one, and their count, the bus would take, so only
  // maxBodyBytes stands between this body and the topic.
  const big = JSON.stringify({ messages: Array.from({ length: 2000 }, (_, i) => ({ value: `${i}`.padEnd(1000, '.') })) });
  assert.ok(big.length > 2_000_000);
  const withLength = await request('/v1/topics/big/messages', { method: 'POST', body: big });
  assertError(withLength, 413, 'MESSAGE_TOO_LARGE');
  assert.match(withLength.body.error.message, /maxBodyBytes/);
  // Chunked, no Content-Length: the bytes are counted as they arrive.
  const bytes = new TextEncoder().encode(big);
  const stream = new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += 65536) controller.enqueue(bytes.slice(at, at + 65536));
      controller.close();
    },
  });
  const streamed = await request('/v1/topics/big/messages', { method: 'POST', body: stream });
  assertError(streamed, 413, 'MESSAGE_TOO_LARGE');
  assert.match(streamed.body.error.message, /maxBodyBytes/);
  // The consuming routes have the same body limit.
  const padded = JSON.stringify({ group: 'g', pad: 'x'.repeat(2_000_000) });
  assertError(await request('/v1/topics/orders/receive', { method: 'POST', body: padded }), 413, 'MESSAGE_TOO_LARGE');
  assertError(await request('/v1/acks', { method: 'POST', body: padded }), 413, 'MESSAGE_TOO_LARGE');
  // The bus's own limit: "strict" takes messages up to 1 KiB.
  const tooLarge = await send('small', [{ value: 'x'.repeat(2048) }], { host: 'strict.test' });
  assertError(tooLarge, 413, 'MESSAGE_TOO_LARGE');
  assert.doesNotMatch(tooLarge.body.error.message, /maxBodyBytes/);
});

test('404: an unknown path, and an unknown topic while autoCreateTopics is off', async () => {
  for (const path of ['/v1/nothing', '/v1/topics/orders', '/v1/topics/orders/messages/x', '/v1/stats/', '/v1/topics/a/b/messages', '/v1/topics/orders/receive/x', '/v1/acks/x', '/v1/topics/orders/acks']) {
    assertError(await request(path), 404, 'INVALID_ARGUMENT');
  }
  assertError(await send('nowhere', [{ value: 'x' }], { host: 'strict.test' }), 404, 'UNKNOWN_TOPIC');
});

test('405: a wrong method, with an Allow header', async () => {
  for (const [method, path, allow] of [
    ['PUT', '/v1/topics/orders/messages', 'GET, POST'],
    ['DELETE', '/v1/topics/orders/messages', 'GET, POST'],
    ['GET', '/v1/topics/orders.dlq/redrive', 'POST'],
    ['DELETE', '/v1/topics/orders.dlq/purge', 'POST'],
    ['POST', '/v1/stats', 'GET'],
    ['DELETE', '/v1/stats', 'GET'],
    ['GET', '/v1/topics/orders/receive', 'POST'],
    ['GET', '/v1/acks', 'POST'],
  ]) {
    const refused = await request(path, { method });
    assertError(refused, 405, 'INVALID_ARGUMENT');
    assert.equal(refused.headers.get('Allow'), allow);
  }
});

test('429: a send over the topic maxDepth is back-pressure', async () => {
  assertError(await send('tight', [{ value: 1 }, { value: 2 }]), 429, 'QUEUE_FULL');
});

test('receive leases messages in order per partition, each with a receipt; acks settle them', async () => {
  assert.equal((await send('jobs', [1, 2, 3, 4, 5].map((n) => ({ key: 'k', value: { n }, id: `job-${n}` })), consume)).status, 200);
  await send('jobs', [{ value: new Array(3).fill('x').join('') }], consume);
  // `groupId`, as a consumer's options name it, is the group too.
  const first = await receive('jobs', { groupId: 'workers', max: 3, fromBeginning: true }, consume);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.messages.map((m) => [m.value.n, m.key, m.id, m.attempt, m.topic]), [
    [1, 'k', 'job-1', 1, 'jobs'],
    [2, 'k', 'job-2', 1, 'jobs'],
    [3, 'k', 'job-3', 1, 'jobs'],
  ]);
  const [m] = first.body.messages;
  assert.equal(typeof m.receipt, 'string');
  assert.ok(Number.isInteger(m.timestamp) && Number.isInteger(m.offset) && Number.isInteger(m.partition));
  // Under "partition" ordering a partition has one run out at a time: nothing more until it is settled.
  assert.deepEqual((await receive('jobs', { group: 'workers', max: 10 }, consume)).body.messages, []);
  // A body with one bad receipt settles none of its good ones: they are acked below, once.
  assertError(await acks([{ receipt: m.receipt }, { receipt: 'nope' }], consume), 400, 'INVALID_ARGUMENT');
  const settled = await acks(first.body.messages.map(({ receipt }) => ({ receipt })), consume);
  assert.equal(settled.status, 200, JSON.stringify(settled.body));
  assert.deepEqual(settled.body.results, [true, true, true]);
  const second = await receive('jobs', { group: 'workers', max: 10 }, consume);
  assert.deepEqual(second.body.messages.map((m) => m.value.n ?? m.value), [4, 5, 'xxx']);
  // A receipt alone is an ack too.
  assert.deepEqual((await acks(second.body.messages.map(({ receipt }) => receipt), consume)).body.results, [true, true, true]);
  // An ack of a receipt already settled settles nothing.
  assert.deepEqual((await acks([{ receipt: m.receipt }], consume)).body.results, [false]);
  const stats = (await request('/v1/stats', consume)).body;
  const workers = stats.groups.find((g) => g.groupId === 'workers');
  assert.deepEqual(workers.partitions.map((p) => [p.committedOffset, p.lag, p.inFlight]), [[6, 0, 0]]);
  assert.deepEqual((await receive('jobs', { group: 'workers' }, consume)).body.messages, []);
});

test('a retried receipt comes again after its delay, then goes to the dead-letter topic with the error', async () => {
  await send('flaky', [{ value: 'boom' }], consume);
  const group = { group: 'flaky-workers', fromBeginning: true, retry: { maxAttempts: 2, initialBackoffMs: 0 } };
  const [first] = (await receive('flaky', group, consume)).body.messages;
  assert.equal(first.attempt, 1);
  assert.deepEqual((await acks([{ receipt: first.receipt, retry: { error: 'no stock', delayMs: 0 } }], consume)).body.results, [true]);
  let again = [];
  for (let i = 0; i < 50 && again.length === 0; i++) again = (await receive('flaky', group, consume)).body.messages;
  assert.equal(again[0]?.attempt, 2, 'delivered again, as attempt 2');
  // The error on the item itself is a failed attempt too.
  assert.deepEqual((await acks([{ receipt: again[0].receipt, error: 'still no stock' }], consume)).body.results, [true]);
  let dead = [];
  for (let i = 0; i < 50 && dead.length === 0; i++) dead = (await receive('flaky.dlq', { group: 'dlq-reader', fromBeginning: true }, consume)).body.messages;
  assert.equal(dead[0]?.value, 'boom');
  assert.equal(dead[0].headers['ferry-dlq-error'], 'still no stock');
  assert.equal(dead[0].headers['ferry-dlq-attempts'], '2');
});

test('bytes published at the edge are received as base64 with ferry-value-encoding', async () => {
  const page = await mf.dispatchFetch('http://consume.test/bytes');
  assert.equal(page.status, 200, await page.text());
  const [m] = (await receive('blobs', { group: 'g', fromBeginning: true }, consume)).body.messages;
  assert.equal(m.value, 'AP8B');
  assert.equal(m.headers['ferry-value-encoding'], 'base64');
});

test('the inspector routes: browse moves no group, redrive moves chosen dead letters once, purge empties; stats list the pull member', async () => {
  const to = ['ada', 'alan', 'grace'];
  await send('mail', to.map((name) => ({ key: 'k', value: { to: name } })), consume);
  const group = { group: 'mailers', fromBeginning: true, ordering: 'none', retry: { maxAttempts: 1 }, max: 10 };
  const leased = (await receive('mail', group, consume)).body.messages;
  assert.deepEqual(leased.map((m) => m.value.to), to);
  const browse = (topic, query) => request(`/v1/topics/${topic}/messages?${new URLSearchParams(query)}`, consume);
  const source = leased[0].partition;
  // While leased, each shows the group's attempt; once settled the group's log is trimmed.
  assert.deepEqual((await browse('mail', { partition: source, groupId: 'mailers' })).body.messages.map((m) => [m.value.to, m.attempt]), to.map((name) => [name, 1]));
  assert.deepEqual((await acks(leased.map(({ receipt }) => ({ receipt, error: 'smtp down' })), consume)).body.results, [true, true, true]);
  const stats = async () => (await request('/v1/stats', consume)).body;
  const dlqPartition = async () => (await stats()).topics.find((t) => t.topic === 'mail.dlq').partitions.find((p) => p.depth > 0);
  let dead;
  for (let i = 0; i < 100 && (dead?.depth ?? 0) < 3; i++) dead = await dlqPartition();
  assert.equal(dead?.depth, 3, 'all three dead-lettered');
  const before = await stats();
  assert.deepEqual(before.topics.map((t) => [t.topic, t.deadLetter]).filter(([t]) => t.startsWith('mail')), [['mail', false], ['mail.dlq', true]]);
  assert.ok(before.members.some((m) => m.groupId === 'mailers' && m.memberId === 'pull' && m.context === 'edge-pull' && m.lastSeenMs > 0), JSON.stringify(before.members));

  // Two pages of the dead-letter partition, each with its reason.
  const first = await browse('mail.dlq', { partition: dead.partition, limit: 2 });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.messages.map((m) => [m.value.to, m.headers['ferry-dlq-error'], m.headers['ferry-dlq-group'], m.redriven]), [
    ['ada', 'smtp down', 'mailers', false],
    ['alan', 'smtp down', 'mailers', false],
  ]);
  const second = await browse('mail.dlq', { partition: dead.partition, offset: first.body.nextOffset, limit: 2 });
  assert.deepEqual(second.body.messages.map((m) => m.value.to), ['grace']);
  assert.equal(second.body.nextOffset, second.body.highOffset);
  const committed = (s) => s.groups.map((g) => [g.groupId, g.topic, g.partitions.map((p) => p.committedOffset)]);
  assert.deepEqual(committed(await stats()), committed(before), 'browsing moved no group');
  assertError(await browse('mail', { partition: 'x' }), 400, 'INVALID_ARGUMENT');
  assertError(await browse('mail', { partition: source, limit: 0 }), 400, 'INVALID_ARGUMENT');
  assertError(await browse('nowhere', {}), 404, 'UNKNOWN_TOPIC');

  // The chosen one moves back once; then the rest are purged.
  const alan = first.body.messages[1];
  const redrive = (body) => request('/v1/topics/mail.dlq/redrive', { method: 'POST', body, ...consume });
  assert.deepEqual((await redrive({ offsets: [{ partition: dead.partition, offset: alan.offset }] })).body, { redriven: 1 });
  assert.deepEqual((await redrive({ offsets: [{ partition: dead.partition, offset: alan.offset }] })).body, { redriven: 0 });
  assert.deepEqual((await browse('mail.dlq', { partition: dead.partition })).body.messages.map((m) => m.redriven), [false, true, false]);
  const high = (s, topic) => s.topics.find((t) => t.topic === topic).partitions.reduce((n, p) => n + p.highOffset, 0);
  assert.equal(high(await stats(), 'mail'), high(before, 'mail') + 1, 'alan is back on mail, once');
  assertError(await redrive([1]), 400, 'INVALID_ARGUMENT');
  const purged = await request('/v1/topics/mail.dlq/purge', { method: 'POST', ...consume });
  assert.deepEqual(purged.body, { purged: 3 });
  const after = (await stats()).topics.find((t) => t.topic === 'mail.dlq').partitions.find((p) => p.partition === dead.partition);
  assert.deepEqual([after.depth, after.lowOffset], [0, after.highOffset]);
});

test('nothing was stored by a refused request', async () => {
  const { status, body } = await request('/v1/stats');
  assert.equal(status, 200);
  // Only the 3 messages of the one accepted send; "sneaky", "fresh" and "big" never came to be.
  assert.deepEqual(
    body.topics.map(({ topic, partitions }) => [topic, partitions.map((p) => p.highOffset)]),
    [['orders', [3]], ['tight', [0]]],
  );
  // No refused receive joined a group.
  assert.deepEqual(body.groups, []);
  const strict = await request('/v1/stats', { host: 'strict.test' });
  assert.deepEqual(strict.body.topics.map(({ topic, partitions }) => [topic, partitions.map((p) => p.highOffset)]), [['small', [0]]]);
});
