// The offline outbox (www/outbox.js): a page enqueues while the server is down, the
// service worker's forwarder retries with backoff, and once the server is back
// every message arrives with its id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { serve } from '../../www/serve.mjs';
import { outboxReceiver } from '../../www/outbox-server.mjs';
import { launch, openTestPage } from './browsers.mjs';

const MESSAGES = 12;

let server;
let browser;

before(async () => {
  server = await serve();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The test's own receiving server on `port` (0: any); resolves to `{ port, receiver, close() }`. */
async function startReceiver(port = 0) {
  const receiver = outboxReceiver();
  const http = createServer(receiver.handle);
  await new Promise((resolve) => http.listen(port, '127.0.0.1', resolve));
  // Stopping drops open connections too: a browser's keep-alive or half-sent request
  // would otherwise hold close() open.
  const close = () => new Promise((resolve) => {
    http.close(resolve);
    http.closeAllConnections();
  });
  return { port: http.address().port, receiver, close };
}

async function waitFor(condition, timeoutMs, what) {
  const giveUpAt = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('messages enqueued while the server is down all arrive, with their ids, once it is back', async () => {
  // Take a free port, then stop the server: posts to it are refused.
  const first = await startReceiver();
  const port = first.port;
  await first.close();

  const page = await openTestPage(browser, server.url);
  const bus = `outbox-${Date.now()}`;
  const target = `http://127.0.0.1:${port}/messages`;
  const enqueued = await page.evaluate(
    async ({ bus, target, count }) => {
      const { enqueue } = await import('/www/outbox.js');
      const registration = await navigator.serviceWorker.register(`/www/outbox-sw.js?bus=${bus}&target=${encodeURIComponent(target)}`, { type: 'module', scope: '/www/' });
      const worker = registration.installing ?? registration.waiting ?? registration.active;
      await new Promise((resolve) => (worker.state === 'activated' ? resolve() : worker.addEventListener('statechange', () => worker.state === 'activated' && resolve())));
      const b = await window.ferry.Bus.open({ name: bus });
      for (let i = 0; i < count; i++) await enqueue(b, { note: i });
      // The forwarder may have been killed while idle: a ping starts it again.
      registration.active.postMessage('enqueued');
      await b.close();
      return count;
    },
    { bus, target, count: MESSAGES },
  );
  assert.equal(enqueued, MESSAGES);

  // Let some attempts fail against the closed port, then bring the server back.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const back = await startReceiver(port);
  try {
    await waitFor(() => back.receiver.received.size === MESSAGES, 30_000, `${MESSAGES} messages at the server`);
    const values = [...back.receiver.received.values()].map((m) => m.value.note).sort((a, b) => a - b);
    assert.deepEqual(values, Array.from({ length: MESSAGES }, (_, i) => i));
    const arrived = [...back.receiver.received.values()];
    for (const message of arrived) assert.match(message.id, /^[0-9a-f-]{36}$/);
    assert.ok(arrived.some((m) => m.attempt > 1), 'posts failed during the outage and were retried');
    const pending = await page.evaluate(async (bus) => {
      const { pending } = await import('/www/outbox.js');
      const b = await window.ferry.Bus.open({ name: bus });
      // The last acks may still be on their way.
      let left = await pending(b);
      for (let i = 0; i < 50 && left > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        left = await pending(b);
      }
      await b.close();
      return left;
    }, bus);
    assert.equal(pending, 0, 'the outbox is empty once everything arrived');
    console.log(`outbox: ${MESSAGES} messages arrived after the outage, ${back.receiver.repeats} repeats dropped by id, at most ${Math.max(...arrived.map((m) => m.attempt))} attempts`);
  } finally {
    await back.close();
    await page.close();
  }
});
