// handleHttp() in real workerd (through Miniflare): every status it answers, and
// that no refused request stores anything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './workerd.mjs';

const TOKEN = 'test-token-5f1c';

// The Worker of pkg/README.md: /v1/ paths go to handleHttp. The host picks the bus:
// "shop" as a deployment would have it, "strict" opened with autoCreateTopics off
// and 1 KiB messages, "open" a deployment that forgot its token. /setup makes, with
// connect(), a topic with a maxDepth on "shop" and a topic on "strict".
const worker = `
import { FerryObject, connect, handleHttp } from 'ferry/workers';

export class Bus extends FerryObject {}

const strict = { name: 'strict', autoCreateTopics: false, maxMessageBytes: 1024 };
const options = (env) => ({
  'shop.test': { token: env.FERRY_TOKEN, name: 'shop' },
  'strict.test': { token: env.FERRY_TOKEN, ...strict },
  'open.test': { name: 'open' },
});

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/v1/')) return handleHttp(request, env.BUS, options(env)[url.hostname]);
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
  // The bus's own limit: "strict" takes messages up to 1 KiB.
  const tooLarge = await send('small', [{ value: 'x'.repeat(2048) }], { host: 'strict.test' });
  assertError(tooLarge, 413, 'MESSAGE_TOO_LARGE');
  assert.doesNotMatch(tooLarge.body.error.message, /maxBodyBytes/);
});

test('404: an unknown path, and an unknown topic while autoCreateTopics is off', async () => {
  for (const path of ['/v1/nothing', '/v1/topics/orders', '/v1/topics/orders/messages/x', '/v1/stats/', '/v1/topics/a/b/messages']) {
    assertError(await request(path), 404, 'INVALID_ARGUMENT');
  }
  assertError(await send('nowhere', [{ value: 'x' }], { host: 'strict.test' }), 404, 'UNKNOWN_TOPIC');
});

test('405: a wrong method, with an Allow header', async () => {
  for (const [method, path, allow] of [
    ['GET', '/v1/topics/orders/messages', 'POST'],
    ['PUT', '/v1/topics/orders/messages', 'POST'],
    ['POST', '/v1/stats', 'GET'],
    ['DELETE', '/v1/stats', 'GET'],
  ]) {
    const refused = await request(path, { method });
    assertError(refused, 405, 'INVALID_ARGUMENT');
    assert.equal(refused.headers.get('Allow'), allow);
  }
});

test('429: a send over the topic maxDepth is back-pressure', async () => {
  assertError(await send('tight', [{ value: 1 }, { value: 2 }]), 429, 'QUEUE_FULL');
});

test('nothing was stored by a refused request', async () => {
  const { status, body } = await request('/v1/stats');
  assert.equal(status, 200);
  // Only the 3 messages of the one accepted send; "sneaky", "fresh" and "big" never came to be.
  assert.deepEqual(
    body.topics.map(({ topic, partitions }) => [topic, partitions.map((p) => p.highOffset)]),
    [['orders', [3]], ['tight', [0]]],
  );
  const strict = await request('/v1/stats', { host: 'strict.test' });
  assert.deepEqual(strict.body.topics.map(({ topic, partitions }) => [topic, partitions.map((p) => p.highOffset)]), [['small', [0]]]);
});
