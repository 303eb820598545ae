// ferry on Cloudflare Workers (pkg/README.md, "Cloudflare Workers: ferry/workers"),
// and the edge half of the offline-first order page (examples/offline-first):
//
//   POST /orders   publishes the JSON order in the body on `order.placed`
//   GET  /work     the `fulfilment` group pulls up to 10 orders, acks each one it
//                  fulfils and retries the ones that fail; answers with the bus's stats
//   /v1/...        the bus's HTTP API (handleHttp), behind `Authorization: Bearer $FERRY_TOKEN`:
//                  pages bridge their orders in here (bus.bridge) and read `order.status`
//                  back (Bus.remote); orders that arrive are fulfilled right after the answer
//
// Every fulfilled or failed order is published on `order.status`, keyed by the order.
// A cron trigger (wrangler.toml) fulfils what is left: retries after their backoff.
import { FerryObject, FerryError, connect, handleHttp } from 'ferry/workers';

// The Durable Object that holds the bus; wrangler.toml binds it as BUS (SQLite-backed).
export class Bus extends FerryObject {}

// One bus (a directory object and one object per topic partition): the routes below
// and the /v1/ API all use this name.
const BUS_NAME = 'shop';
const ATTEMPTS = 5;

// Stands for the real work (a call to a warehouse, say). Throwing is a failed attempt:
// the order is retried with backoff and dead-lettered to `order.placed.dlq` after 5.
async function fulfil(order) {
  if (!Array.isArray(order.items) || order.items.length === 0) throw new Error(`order ${order.id} has no items`);
}

/** `ALLOW_ORIGINS` (wrangler.toml [vars]): "*" or a comma-separated list of the origins whose pages may call /v1/. */
function allowOrigins(env) {
  const origins = env.ALLOW_ORIGINS?.trim();
  if (!origins) return undefined;
  return origins === '*' ? '*' : origins.split(',').map((origin) => origin.trim());
}

/**
 * One pull of the `fulfilment` group: up to 10 orders, each fulfilled and acked or
 * retried; a fulfilled order, and one that failed its last attempt, is published on
 * `order.status`. Orders are independent, so ordering "none": a failed order does
 * not hold back the ones after it. fromBeginning: the group starts with the orders
 * placed before its first receive.
 */
async function work(bus) {
  const consumer = bus.consumer({ groupId: 'fulfilment', retry: { maxAttempts: ATTEMPTS }, ordering: 'none' });
  await consumer.subscribe({ topic: 'order.placed', fromBeginning: true });
  const handled = [];
  const retried = [];
  for (const m of await consumer.receive({ max: 10 })) {
    const order = m.value;
    try {
      await fulfil(order);
      await m.ack();
      handled.push(order.id);
      await publishStatus(bus, order, 'fulfilled');
    } catch (e) {
      await m.retry({ error: String(e) });
      retried.push({ id: order.id, attempt: m.attempt, error: String(e) });
      if (m.attempt >= ATTEMPTS) await publishStatus(bus, order, 'failed', String(e));
    }
  }
  return { handled, retried };
}

/** The order's new status on `order.status`; its id makes a repeat (a pull run twice) a duplicate. */
function publishStatus(bus, order, status, error) {
  const update = { id: order.id, customer: order.customer, items: order.items, total: order.total, status, at: Date.now(), ...(error ? { error } : {}) };
  return bus.publish('order.status', update, { key: order.id, id: `${order.id}/${status}` });
}

/** Pulls until the group has nothing left that is due, at most `rounds` times. */
async function workAll(bus, rounds = 20) {
  for (let i = 0; i < rounds; i++) {
    const { handled, retried } = await work(bus);
    if (handled.length + retried.length === 0) return;
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const bus = connect(env.BUS, { name: BUS_NAME });
    if (url.pathname.startsWith('/v1/')) {
      const response = await handleHttp(request, env.BUS, { token: env.FERRY_TOKEN, name: BUS_NAME, allowOrigins: allowOrigins(env) });
      // Orders that just arrived (a page's bridge) are fulfilled after the answer.
      if (response.ok && request.method === 'POST' && url.pathname === '/v1/topics/order.placed/messages') ctx.waitUntil(workAll(bus));
      return response;
    }

    try {
      if (url.pathname === '/orders' && request.method === 'POST') {
        const order = await request.json().catch(() => null);
        if (typeof order?.id !== 'string') return Response.json({ error: 'the body must be a JSON order with a string id' }, { status: 400 });
        // The order id is the key (Kafka's partitioner) and the idempotency key: a
        // repeated POST of the same order within a day is not stored again.
        const sent = await bus.publish('order.placed', order, { key: order.id, id: order.id });
        return Response.json(sent, { status: sent.duplicate ? 200 : 201 });
      }

      if (url.pathname === '/work' && request.method === 'GET') {
        return Response.json({ ...(await work(bus)), stats: await bus.stats() });
      }

      return Response.json({ error: 'not found' }, { status: 404 });
    } catch (e) {
      // The bus's refusals (the contract's codes) as JSON, like handleHttp's.
      if (e instanceof FerryError) {
        const status = { MESSAGE_TOO_LARGE: 413, QUEUE_FULL: 429, STORAGE: 500 }[e.code] ?? 400;
        return Response.json({ error: { code: e.code, message: e.message } }, { status });
      }
      throw e;
    }
  },

  // The cron trigger: orders waiting for a retry are fulfilled once their backoff is over.
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(workAll(connect(env.BUS, { name: BUS_NAME })));
  },
};
