// A module service worker that bridges a bus's local 'orders' topic to the edge
// (tests/js/bridge-offline.test.mjs) with no page needed. Every time the worker
// starts it opens the bus and starts its bridge, so what is waiting drains on the
// bridge's backoff timer while it runs, on a Background Sync where the browser has
// one, and at its next start. The script's URL says where to: `?name=` the bus,
// `?url=` the edge's handleHttp, `?token=` its bearer token, `?topic=` the edge's
// topic. Everything it needs is in IndexedDB and that URL, so the browser may stop
// it whenever it is idle.
import { Bus } from '/pkg/entry/browser.js';

const params = new URL(self.location.href).searchParams;
const NAME = params.get('name');
const EDGE = params.get('url');
const TOKEN = params.get('token');
const TOPIC = params.get('topic');

let bridging = null;

/** The bus with its bridge running: started once per life of the worker. */
function bridge() {
  bridging ??= (async () => {
    const bus = await Bus.open({ name: NAME });
    // Short backoffs: an outage of seconds is over within a second of its end.
    const consumer = await bus.bridge({ url: EDGE, token: TOKEN, topics: { orders: TOPIC }, batchSize: 10, retry: { initialBackoffMs: 100, maxBackoffMs: 500 } });
    return { bus, consumer };
  })();
  return bridging.catch((error) => {
    bridging = null;
    throw error;
  });
}

/** The bridge's group in the bus's stats: what is left to forward, and how much of it waits after a failed post. */
async function progress() {
  const { bus } = await bridge();
  const stats = await bus.stats();
  const group = stats.groups.find((g) => g.groupId === 'ferry-bridge');
  const sum = (field) => group?.partitions.reduce((n, p) => n + p[field], 0) ?? 0;
  return { joined: Boolean(group), lag: sum('lag'), retrying: sum('retrying'), bridges: stats.bridges, partitions: group?.partitions };
}

// Started with the worker, not on some event: a start alone drains.
bridge().catch((error) => console.error('bridge-sw: the bridge did not start', error));

self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
// A page asks how far the bridge is, over the MessageChannel port it sends.
self.addEventListener('message', (event) => {
  const [port] = event.ports;
  event.waitUntil(progress().then((p) => port.postMessage(p), (error) => port.postMessage({ error: String(error?.stack ?? error) })));
});
// Added as the script first runs, as a browser requires of a functional event's
// listener: the bridge registers this tag after a failed post, and drained()
// keeps the worker alive until the drain is done (a failure rejects, and the
// browser syncs again later).
self.addEventListener('sync', (event) => {
  if (event.tag === 'ferry-bridge') event.waitUntil(bridge().then(({ consumer }) => consumer.drained()));
});
