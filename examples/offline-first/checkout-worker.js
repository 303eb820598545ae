// The offline-first page's worker: prices each new order (`orders.new` ->
// `order.placed`, the consumer group `checkout`) and bridges `order.placed` to the
// edge. Every tab starts one; their members share both groups, so an order is
// priced and forwarded once however many tabs are open, and a tab closed mid-way
// leaves its work to the others.
import { Bus } from '/pkg/entry/browser.js';

const PRICES = { tea: 4.5, coffee: 6, cake: 3.25 };

// Listening before the first await: a message the page sent while this module was
// still loading would be lost otherwise.
let configured;
const edge = new Promise((resolve) => (configured = resolve));
self.onmessage = ({ data }) => {
  if (data.edge) configured(data);
  if (data.online) self.dispatchEvent(new Event('online'));
};

const bus = await Bus.open({ name: 'offline-orders' });
await bus.createTopic('orders.new', { partitions: 4 });
await bus.createTopic('order.placed', { partitions: 4 });

const checkout = bus.consumer({ groupId: 'checkout' });
await checkout.subscribe({ topic: 'orders.new', fromBeginning: true });
await checkout.run({
  eachMessage: async ({ message }) => {
    const order = message.value;
    const total = order.items.reduce((sum, { sku, qty }) => sum + (PRICES[sku] ?? 0) * qty, 0);
    // The same id: priced again after a crash, it is still one order at the edge.
    await bus.publish('order.placed', { ...order, total }, { key: order.customer, id: order.id });
  },
});

const { edge: url, token } = await edge;
const bridge = await bus.bridge({ url, token, topics: ['order.placed'], retry: { initialBackoffMs: 500, maxBackoffMs: 10_000 } });
for (const event of ['forwarded', 'failed']) bridge.on(event, (detail) => self.postMessage({ event, ...detail }));
