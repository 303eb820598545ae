// serveHttp(), behind handleHttp(): the bus over HTTP, for forwarding from browsers
// and other services.
//
// Routes (pkg/README.md): `POST /v1/topics/{topic}/messages`, `GET /v1/stats`; for
// consuming over HTTP `POST /v1/topics/{topic}/receive` and `POST /v1/acks`; for the
// inspector `GET /v1/topics/{topic}/messages` (browse), `POST /v1/topics/{topic}/redrive`
// and `POST /v1/topics/{topic}/purge` (a dead-letter topic's). Every
// error answers `{ "error": { "code", "message" } }` with a code from the contract's table.
// A refused request changes nothing: every check runs (in the engine) before the one
// operation it makes, and a send is atomic.
//
import { FerryError } from './error.js';

// How each FerryError code of the bus becomes an HTTP status.
const STATUS_OF_CODE = {
  INVALID_ARGUMENT: 400,
  UNKNOWN_TOPIC: 404, // the topic is the resource named by the path
  TOPIC_CONFLICT: 409,
  MESSAGE_TOO_LARGE: 413,
  QUEUE_FULL: 429, // back-pressure (the topic's maxDepth): the sender should retry later; the bus itself is fine
  QUOTA_EXCEEDED: 507, // Insufficient Storage
  STORAGE: 500,
  INCOMPATIBLE_STORAGE: 500,
  CLOSED: 503,
};

// The HTTP-only refusals have no code of their own in pkg/README.md; each takes the closest:
// 401 (credentials), 404 (path) and 405 (method) are all a wrong argument of the
// request, INVALID_ARGUMENT; 413 over maxBodyBytes is MESSAGE_TOO_LARGE.
class Refusal extends Error {
  constructor(status, code, message, headers) {
    super(message);
    Object.assign(this, { status, code, headers });
  }
}

const TOPIC_PATH = /^\/v1\/topics\/([^/]*)\/(messages|receive|redrive|purge)$/;

/**
 * Serves `request` from `client()` (the isolate's client of the bus, made only
 * once the request is authorized): `handleHttp` in workers.js passes it.
 * `maxBodyBytes` is checked there.
 */
export async function serveHttp(request, client, { token, maxBodyBytes, allowOrigins }) {
  const cors = corsHeaders(request, allowOrigins);
  // A browser's preflight carries no credentials: it is answered before they are checked.
  if (request.method === 'OPTIONS' && cors) {
    const preflight = { 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'authorization, content-type', 'Access-Control-Max-Age': '86400' };
    return new Response(null, { status: 204, headers: { ...cors, ...preflight } });
  }
  const response = await serveChecked(request, client, token, maxBodyBytes);
  for (const [name, value] of Object.entries(cors ?? {})) response.headers.set(name, value);
  return response;
}

/**
 * The CORS headers for a request from an origin `allowOrigins` lets in ("*" or a
 * list), so that a page there (a bridge: `bus.bridge`) reads the answers and
 * `Retry-After`; else null, and the browser keeps the answer from the page.
 */
function corsHeaders(request, allowOrigins) {
  const origin = request.headers.get('Origin');
  if (origin === null || allowOrigins === undefined || (allowOrigins !== '*' && !allowOrigins.includes(origin))) return null;
  return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': 'retry-after', Vary: 'Origin' };
}

async function serveChecked(request, client, token, maxBodyBytes) {
  try {
    // Credentials first, so a caller without them learns nothing, not even which paths exist.
    if (!(await authorized(request, token))) {
      throw new Refusal(401, 'INVALID_ARGUMENT', 'Authorization: Bearer <token> is missing or wrong', { 'WWW-Authenticate': 'Bearer' });
    }
    const url = new URL(request.url);
    const methods = route(url.pathname);
    const serve = Object.hasOwn(methods, request.method) ? methods[request.method] : undefined;
    if (serve === undefined) {
      const allow = Object.keys(methods).join(', ');
      throw new Refusal(405, 'INVALID_ARGUMENT', `${request.method} is not allowed here; use ${allow}`, { Allow: allow });
    }
    return await serve(request, client(), maxBodyBytes, url);
  } catch (error) {
    return errorResponse(error);
  }
}

/** What serves `pathname`, by method (each to a Response); else a 404. */
function route(pathname) {
  if (pathname === '/v1/stats') return { GET: async (request, client) => Response.json(await client.face().stats()) };
  if (pathname === '/v1/acks') return { POST: settle };
  const [, segment, action] = TOPIC_PATH.exec(pathname) ?? [];
  const on = (serve) => (request, client, maxBodyBytes, url) => serve(request, client, topicOf(segment), maxBodyBytes, url);
  if (action === 'messages') return { GET: on(browse), POST: on(sendMessages) };
  if (action === 'receive') return { POST: on(receive) };
  if (action === 'redrive') return { POST: on(redrive) };
  if (action === 'purge') return { POST: on(purge) };
  throw new Refusal(404, 'INVALID_ARGUMENT', `no such path: ${pathname}`);
}

function topicOf(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new FerryError('INVALID_ARGUMENT', `topic is not valid percent-encoding: ${segment}`);
  }
}

/**
 * `{ "messages": [...] }` -> `{ results }`; the bus checks the messages themselves.
 * Content-Type is not required: the body parses as JSON or is a 400 either way.
 */
async function sendMessages(request, client, topic, maxBodyBytes) {
  const body = jsonObject(await readBody(request, maxBodyBytes), '{ "messages": [...] }');
  if (!Array.isArray(body.messages)) throw new FerryError('INVALID_ARGUMENT', 'messages must be an array');
  return Response.json({ results: await client.face().producer().send({ topic, messages: body.messages }) });
}

/** `{ group, max, ... }` -> `{ messages }`, each with its receipt: the engine checks the body and writes the answer. */
async function receive(request, client, topic, maxBodyBytes) {
  const text = await client.receiveHttp(topic, parseJson(await readBody(request, maxBodyBytes)));
  return new Response(text, { headers: { 'content-type': 'application/json' } });
}

/**
 * `?partition&offset&limit&groupId` -> a page of the partition's messages, read
 * without leasing them: the engine checks the query and writes the answer.
 */
async function browse(request, client, topic, maxBodyBytes, url) {
  const text = await client.browseHttp(topic, Object.fromEntries(url.searchParams));
  return new Response(text, { headers: { 'content-type': 'application/json' } });
}

/** `{ limit?, offsets? }` (or no body) -> `{ redriven }`, how many dead letters of `topic` moved back. */
async function redrive(request, client, topic, maxBodyBytes) {
  const { limit, offsets } = jsonObject(await readBody(request, maxBodyBytes), '{ "limit"?: n, "offsets"?: [...] }', { optional: true });
  return Response.json({ redriven: await client.face().redrive({ from: topic, limit, offsets }) });
}

/** No body (or `{}`) -> `{ purged }`, how many messages of the dead-letter topic were removed. */
async function purge(request, client, topic, maxBodyBytes) {
  jsonObject(await readBody(request, maxBodyBytes), '{}', { optional: true });
  return Response.json({ purged: await client.face().purge({ topic }) });
}

/** The body as a JSON object (`shape` says which in the refusal); with `optional`, an empty body is `{}`. */
function jsonObject(bytes, shape, { optional = false } = {}) {
  if (optional && bytes.byteLength === 0) return {};
  const body = parseJson(bytes);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new FerryError('INVALID_ARGUMENT', `the body must be a JSON object ${shape}`);
  return body;
}

/** `{ receipts: [{ receipt, retry? }] }` -> `{ results }`, whether each settled. */
async function settle(request, client, maxBodyBytes) {
  return Response.json({ results: await client.settleHttp(parseJson(await readBody(request, maxBodyBytes))) });
}

/**
 * The body's bytes, refused with 413 past `maxBodyBytes`. Content-Length is checked
 * first to refuse early, but the bytes are counted too: the header may be absent
 * (a chunked body) or lie, and neither may get past the limit.
 */
async function readBody(request, maxBodyBytes) {
  const tooLarge = () => new Refusal(413, 'MESSAGE_TOO_LARGE', `the body is over maxBodyBytes (${maxBodyBytes})`);
  if (Number(request.headers.get('Content-Length')) > maxBodyBytes) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBodyBytes) {
      reader.cancel().catch(() => {}); // the rest is never read
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

function parseJson(bytes) {
  try {
    // fatal: bytes that are not UTF-8 are malformed, not silently replaced.
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new FerryError('INVALID_ARGUMENT', `the body is not valid JSON: ${error.message}`);
  }
}

/**
 * Whether the request carries `Authorization: Bearer <token>`. With no token
 * configured every request is refused: an open bus is never what a deployment
 * means (a missing secret binding must not publish the bus to the world).
 */
async function authorized(request, token) {
  if (typeof token !== 'string' || token === '') return false;
  const given = /^Bearer +(\S+) *$/i.exec(request.headers.get('Authorization') ?? '');
  return given !== null && (await sameSecret(given[1], token));
}

/**
 * Compares in constant time: both sides are hashed first, so the loop always runs
 * over 32 bytes whatever the given token's length or where it first differs.
 */
async function sameSecret(given, expected) {
  const digest = async (text) => new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** `{ "error": { code, message } }` with the status of its code; anything unexpected is a 500 STORAGE. */
function errorResponse(error) {
  if (error instanceof FerryError && Object.hasOwn(STATUS_OF_CODE, error.code)) {
    return errorJson(STATUS_OF_CODE[error.code], error.code, error.message);
  }
  if (error instanceof Refusal) {
    return errorJson(error.status, error.code, error.message, error.headers);
  }
  // E.g. the Durable Object could not be reached. the contract's STORAGE names the underlying error.
  return errorJson(500, 'STORAGE', `${error?.name ?? 'Error'}: ${error?.message ?? String(error)}`);
}

function errorJson(status, code, message, headers) {
  return Response.json({ error: { code, message } }, { status, headers });
}
