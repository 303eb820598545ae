// A module service worker that forwards the outbox (www/outbox.js). It may be
// killed whenever it is idle: the outbox lives in IndexedDB, and a message from a
// page or a Background Sync event starts the forwarder again.
// `?bus=` names the bus, `?target=` the URL messages are posted to.
import { Bus } from '/pkg/entry/browser.js';
import { pending, startForwarder } from './outbox.js';

const params = new URL(self.location.href).searchParams;
const BUS = params.get('bus') ?? 'ferry-outbox';
const TARGET = new URL(params.get('target') ?? '/outbox/messages', self.location.origin).href;
// A sync event that ends with messages left is retried later by the browser.
const DRAIN_MS_MAX = 60_000;

let forwarding = null;

/** The bus with its forwarder running, started once per service worker life. */
function forward() {
  forwarding ??= Bus.open({ name: BUS }).then(async (bus) => {
    await startForwarder(bus, TARGET);
    return bus;
  });
  return forwarding.catch((error) => {
    forwarding = null;
    throw error;
  });
}

/** Resolves once nothing is left to forward; rejects after DRAIN_MS_MAX. */
async function drain() {
  const bus = await forward();
  const giveUpAt = Date.now() + DRAIN_MS_MAX;
  while ((await pending(bus)) > 0) {
    if (Date.now() > giveUpAt) throw new Error('the outbox is not drained yet');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim().then(forward)));
// Pages ping after they enqueue: the worker may have been killed since.
self.addEventListener('message', (event) => event.waitUntil(forward()));
self.addEventListener('sync', (event) => {
  if (event.tag === 'ferry-outbox') event.waitUntil(drain());
});
