// The offline outbox: a page publishes to the `outbox` topic whatever must reach a
// server; a forwarder (in the service worker, or in a tab where there is no
// Background Sync) posts each message with `fetch`. A failed post is a failed
// attempt, retried with backoff until the server is back; each post carries the
// message's `id`, so the server drops repeats (delivery is at least once).
export const OUTBOX = 'outbox';
export const FORWARDER_GROUP = 'outbox-forwarder';
// A long outage is normal for an outbox: 1,000 attempts 5 s apart is over an hour
// before a message is dead-lettered to `outbox.dlq`.
const RETRY = { maxAttempts: 1000, initialBackoffMs: 250, maxBackoffMs: 5000 };

/** Stores `value` in the outbox with a fresh id; resolves once it is durable. */
export function enqueue(bus, value) {
  return bus.publish(OUTBOX, value, { id: crypto.randomUUID() });
}

/** Starts forwarding the outbox of `bus` to `url`; resolves to the running consumer. */
export async function startForwarder(bus, url) {
  const consumer = bus.consumer({ groupId: FORWARDER_GROUP, ordering: 'none', concurrency: 4, retry: RETRY });
  await consumer.subscribe({ topic: OUTBOX, fromBeginning: true });
  await consumer.run({ eachMessage: ({ message }) => post(url, message) });
  return consumer;
}

async function post(url, message) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: message.id, value: message.value, attempt: message.attempt }),
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
}

/** Messages in the outbox not yet forwarded. */
export async function pending(bus) {
  const { topics, groups } = await bus.stats();
  const sum = (partitions, field) => partitions.reduce((n, p) => n + p[field], 0);
  const forwarder = groups.find((g) => g.groupId === FORWARDER_GROUP && g.topic === OUTBOX);
  if (forwarder) return sum(forwarder.partitions, 'lag');
  // No forwarder has joined yet: everything stored is pending.
  const outbox = topics.find((t) => t.topic === OUTBOX);
  return outbox ? sum(outbox.partitions, 'depth') : 0;
}
