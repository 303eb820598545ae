// The worker: fulfilment and billing, each its own consumer group. Billing calls a
// flaky payment provider and retries with exponential backoff.
import { Bus } from '/pkg/entry/browser.js';

const say = (text, kind = '') => self.postMessage({ text, kind });
let paymentsFixed = false;
self.onmessage = ({ data }) => {
  if (data === 'fix-payments') paymentsFixed = true;
};

const bus = await Bus.open({ name: 'ferry-demo' });

const fulfilment = bus.consumer({ groupId: 'fulfilment' });
await fulfilment.subscribe({ topic: 'order.placed', fromBeginning: true });
await fulfilment.run({
  eachMessage: async ({ partition, message }) => {
    const order = JSON.parse(message.value.toString());
    say(`fulfilment: schedules ${order.id} (partition ${partition}, offset ${message.offset})`, 'ok');
  },
});

const billing = bus.consumer({ groupId: 'billing', retry: { maxAttempts: 5, initialBackoffMs: 300, multiplier: 2 } });
await billing.subscribe({ topic: 'order.placed', fromBeginning: true });
await billing.run({
  eachMessage: async ({ message }) => {
    const order = JSON.parse(message.value.toString());
    const number = Number(order.id.split('-')[1]);
    const fails = (number % 10 === 3 && message.attempt <= 2) || (number % 10 === 7 && !paymentsFixed);
    if (fails) {
      const last = number % 10 === 7 && message.attempt === 5;
      say(`billing: ${order.id} attempt ${message.attempt}: payment provider answered 503${last ? ' -> dead-lettered' : ''}`, last ? 'dead' : 'fail');
      throw new Error(`payment provider answered 503 for ${order.id}`);
    }
    say(`billing: ${order.id} attempt ${message.attempt}: charged ${order.total} EUR`, 'ok');
  },
});
// The page names partition owners by tab: it needs this worker's member ids.
self.postMessage({ members: [fulfilment.memberId, billing.memberId] });
say(`worker: fulfilment and billing are running (members ${fulfilment.memberId}, ${billing.memberId})`);
