// A module worker that consumes from a bus on request and reports what it handled.
import { Bus } from '/pkg/entry/browser.js';

self.onmessage = async ({ data: { name, topic, groupId, count } }) => {
  const bus = await Bus.open({ name });
  const consumer = bus.consumer({ groupId, heartbeatIntervalMs: 100 });
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await new Promise((resolve) =>
    consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value);
        if (seen.length === count) resolve();
      },
    }),
  );
  await bus.close();
  self.postMessage(seen);
};
