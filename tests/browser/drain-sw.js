// A module service worker that drains a bus's 'jobs' topic into 'done' while no
// page of the origin is open (tests/js/one-writer.test.mjs): alone, it takes the
// writer's lock and writes the bus itself. `self.drain(name)` is what a test runs
// in it; a `sync` event tagged `drain:{name}` runs the same.
import { Bus } from '/pkg/entry/browser.js';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** Handles every job of 'jobs' once, publishing its result to 'done'; resolves to what it saw. */
self.drain = async (name) => {
  const bus = await Bus.open({ name });
  const jobs = (await bus.stats()).topics.find((t) => t.topic === 'jobs').partitions.reduce((n, p) => n + p.highOffset, 0);
  const consumer = bus.consumer({ groupId: 'drain' });
  await consumer.subscribe({ topic: 'jobs', fromBeginning: true });
  let handled = 0;
  const drained = new Promise((resolve) =>
    consumer.run({
      eachMessage: async ({ message }) => {
        await bus.publish('done', { job: message.value, by: 'service worker' });
        if (++handled === jobs) resolve();
      },
    }),
  );
  await drained;
  await consumer.stop();
  const writers = (await navigator.locks.query()).held.filter((lock) => lock.name === `ferry:${name}:writer`).length;
  await bus.close();
  return { jobs, handled, writers };
};

self.addEventListener('sync', (event) => {
  if (event.tag.startsWith('drain:')) event.waitUntil(self.drain(event.tag.slice('drain:'.length)));
});
