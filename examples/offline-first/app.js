// The offline-first order page. An order is published on the local topic
// `orders.new` and is durable at once (IndexedDB), online or not. The worker
// (checkout-worker.js) prices it onto `order.placed` and bridges that topic to the
// edge with `bus.bridge`. The edge (examples/workers) fulfils each order and
// publishes its status on `order.status`, which this page consumes over HTTP with
// `Bus.remote`, running the same kind of handler it would run on a local topic.
import { Bus } from 'ferry';

// The edge: the demo serves it at /edge/ on this origin (www/edge.mjs). A deployed
// app points at its Worker, and gives each user a token of their own
// (`headers: () => ({ authorization: ... })`), not one written in the page.
export const EDGE = new URL('/edge', location.href).href;
const TOKEN = 'ferry-demo-token';

// The page's own record of its orders and their last status, so that a reload
// shows them at once; the bus holds the orders themselves.
const ROWS_KEY = 'ferry-offline-orders';
const rows = new Map(JSON.parse(localStorage.getItem(ROWS_KEY) ?? '[]'));
// Each device reads every status from its own group at the edge.
const DEVICE_KEY = 'ferry-offline-device';
const device = localStorage.getItem(DEVICE_KEY) ?? crypto.randomUUID();
localStorage.setItem(DEVICE_KEY, device);

export const bus = await Bus.open({ name: 'offline-orders' });
await bus.createTopic('orders.new', { partitions: 4 });

const worker = new Worker(new URL('./checkout-worker.js', import.meta.url), { type: 'module' });
worker.postMessage({ edge: EDGE, token: TOKEN });
worker.onerror = (event) => log(`the worker failed: ${event.message}`);
// The bridge's events, from the worker that runs it.
let lastError = 'none';
worker.onmessage = ({ data }) => {
  if (data.event === 'forwarded') log(`forwarded ${data.count} order(s) of partition ${data.partition}`);
  if (data.event === 'failed') {
    lastError = data.error;
    log(`${data.refused ? 'refused' : 'will retry'}: ${data.error}`);
  }
};

/** Places an order: stored on this device before this resolves, whatever the network. */
export async function placeOrder({ customer, sku, qty }) {
  const order = { id: `order-${crypto.randomUUID()}`, customer, items: [{ sku, qty }] };
  // Keyed by customer: a customer's orders reach the edge in the order placed.
  await bus.publish('orders.new', order, { key: customer, id: order.id });
  show({ ...order, status: 'queued' });
  return order.id;
}

/** Statuses from the edge, over HTTP. */
const edge = await Bus.remote({ url: EDGE, token: TOKEN });
const statuses = edge.consumer({ groupId: `status-${device}`, pollIntervalMs: 500 });
await statuses.subscribe({ topic: 'order.status', fromBeginning: true });
await statuses.run({ eachMessage: async ({ message }) => show(message.value) });

/** Keeps `order`'s row (merged with what is known of it) and draws it. */
function show(order) {
  const row = { ...rows.get(order.id), ...order };
  rows.set(order.id, row);
  localStorage.setItem(ROWS_KEY, JSON.stringify([...rows]));
  let tr = document.getElementById(order.id);
  if (!tr) {
    tr = document.createElement('tr');
    tr.id = order.id;
    document.querySelector('#orders tbody').prepend(tr);
  }
  const item = row.items?.map(({ sku, qty }) => `${qty} × ${sku}`).join(', ') ?? '';
  const cells = [row.id.slice(6, 14), row.customer ?? '', item, row.total === undefined ? '' : row.total.toFixed(2), row.status];
  tr.replaceChildren(...cells.map((text) => Object.assign(document.createElement('td'), { textContent: text })));
  tr.lastChild.dataset.status = row.status;
}

function log(text) {
  const li = Object.assign(document.createElement('li'), { textContent: `${new Date().toLocaleTimeString()} ${text}` });
  document.getElementById('log').prepend(li);
}

/** What waits on this device: orders to price, orders to forward, and the bridge's last error. */
async function drawLocal() {
  const { groups } = await bus.stats();
  const lag = (groupId, topic) => groups.filter((g) => g.groupId === groupId && g.topic === topic).flatMap((g) => g.partitions);
  const sum = (partitions, field) => partitions.reduce((n, p) => n + p[field], 0);
  const forwarding = lag('ferry-bridge', 'order.placed');
  const fields = {
    toPrice: sum(lag('checkout', 'orders.new'), 'lag'),
    pending: sum(forwarding, 'lag'),
    failing: sum(forwarding, 'retrying'),
    lastError,
  };
  for (const [field, value] of Object.entries(fields)) document.querySelector(`[data-field="${field}"]`).textContent = String(value);
}

for (const row of rows.values()) show(row);
document.getElementById('order').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  placeOrder({ customer: form.get('customer'), sku: form.get('sku'), qty: Number(form.get('qty')) });
});
const offline = document.getElementById('offline');
offline.checked = (await (await fetch('/edge-switch')).json()).offline;
offline.addEventListener('change', async () => {
  await fetch(`/edge-switch?offline=${offline.checked ? 1 : 0}`, { method: 'POST' });
  // A browser tells its pages and workers when the network comes back: the bridge
  // tries at once then. The switch stands for the network, so it tells them too.
  if (!offline.checked) worker.postMessage({ online: true });
});
setInterval(drawLocal, 500);
await drawLocal();
document.title = 'ferry — offline-first orders (ready)';
