// ferry on Cloudflare Workers (pkg/README.md, "Cloudflare Workers: ferry/workers"):
//
//   POST /orders   publishes the JSON order in the body on `order.placed`
//   GET  /work     the `fulfilment` group pulls up to 10 orders, acks each one it
//                  fulfils and retries the ones that fail; answers with the bus's stats
//   /v1/...        the bus's HTTP API (handleHttp), behind `Authorization: Bearer $FERRY_TOKEN`
import { FerryObject, FerryError, connect, handleHttp } from 'ferry/workers';

// The Durable Object that holds the bus; wrangler.toml binds it as BUS (SQLite-backed).
export class Bus extends FerryObject {}

// One bus (a directory object and one object per topic partition): the routes below
// and the /v1/ API all use this name.
const BUS_NAME = 'shop';

// Stands for the real work (a call to a warehouse, say). Throwing is a failed attempt:
// the order is retried with backoff and dead-lettered to `order.placed.dlq` after 5.
async function fulfil(order) {
  if (!Array.isArray(order.items) || order.items.length === 0) throw new Error(`order ${order.id} has no items`);
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/v1/')) return handleHttp(request, env.BUS, { token: env.FERRY_TOKEN, name: BUS_NAME });

    const bus = connect(env.BUS, { name: BUS_NAME });
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
        // Orders are independent, so ordering "none": a failed order does not hold
        // back the ones after it (with the default, "partition", a retry gives the
        // rest of its partition's run back). fromBeginning: the group starts with
        // the orders placed before its first receive.
        const consumer = bus.consumer({ groupId: 'fulfilment', retry: { maxAttempts: 5 }, ordering: 'none' });
        await consumer.subscribe({ topic: 'order.placed', fromBeginning: true });
        const handled = [];
        const retried = [];
        for (const m of await consumer.receive({ max: 10 })) {
          try {
            await fulfil(m.value);
            await m.ack();
            handled.push(m.value.id);
          } catch (e) {
            await m.retry({ error: String(e) });
            retried.push({ id: m.value.id, attempt: m.attempt, error: String(e) });
          }
        }
        return Response.json({ handled, retried, stats: await bus.stats() });
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
};
