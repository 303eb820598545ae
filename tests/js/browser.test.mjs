// The package in a real Chromium page, on real IndexedDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../www/serve.mjs';
import { launch, openTestPage } from './browsers.mjs';

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

const openPage = (context) => openTestPage(context, server.url);

test('the default storage in a page is IndexedDB, and FerryError crosses intact', async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  const result = await page.evaluate(async () => {
    const { Bus, FerryError } = window.ferry;
    const bus = await Bus.open({ name: 'default-storage' });
    await bus.createTopic('t', { partitions: 2 });
    const conflict = await bus.createTopic('t', { partitions: 3 }).catch((e) => [e instanceof FerryError, e.code]);
    const names = await new Promise((resolve) => {
      const req = indexedDB.open('default-storage');
      req.onsuccess = () => resolve([...req.result.objectStoreNames]);
    });
    await bus.close();
    return { conflict, names };
  });
  assert.deepEqual(result.conflict, [true, 'TOPIC_CONFLICT']);
  assert.deepEqual(result.names, ['records']);
  await context.close();
});

test('after a reload the group goes on exactly where it stopped', async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  await page.evaluate(async () => {
    const bus = await window.ferry.Bus.open({ name: 'persist' });
    await bus.producer().send({ topic: 'jobs', messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i % 3}`, value: { job: i } })) });
    await bus.close();
  });
  // Handles `count` messages as group "workers", then stops and closes.
  const consume = (count) =>
    page.evaluate(async (count) => {
      const bus = await window.ferry.Bus.open({ name: 'persist' });
      const consumer = bus.consumer({ groupId: 'workers' });
      await consumer.subscribe({ topic: 'jobs', fromBeginning: true });
      const seen = [];
      await new Promise((resolve) =>
        consumer.run({
          eachMessage: async ({ message }) => {
            seen.push(message.value.job);
            if (seen.length === count) resolve();
          },
        }),
      );
      await consumer.stop();
      const stats = await bus.stats();
      await bus.close();
      return { seen, stats };
    }, count);
  const first = await consume(4);
  assert.deepEqual(first.seen, [0, 1, 2, 3]);
  await page.reload();
  await page.waitForFunction(() => document.title === 'ready');
  const second = await consume(6);
  assert.deepEqual(second.seen, [4, 5, 6, 7, 8, 9]);
  const group = second.stats.groups.find((g) => g.groupId === 'workers');
  assert.equal(group.partitions[0].committedOffset, 10);
  assert.equal(group.partitions[0].lag, 0);
  await context.close();
});

test('a send that exceeds the origin quota stores nothing and the bus stays usable', async () => {
  const context = await browser.newContext();
  const page = await openPage(context);
  // Chromium applies the override to storage the origin opens afterwards.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 2 * 1024 * 1024 });
  const result = await page.evaluate(async () => {
    const { Bus, FerryError } = window.ferry;
    const bus = await Bus.open({ name: 'quota', maxMessageBytes: 4 * 1024 * 1024 });
    await bus.publish('big', 'small');
    // Random bytes: IndexedDB compresses values, so a repeated string would fit.
    const huge = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < huge.length; i += 65536) crypto.getRandomValues(huge.subarray(i, i + 65536));
    const error = await bus.publish('big', huge).then(() => null, (e) => [e instanceof FerryError, e.code]);
    const high = (await bus.stats()).topics[0].partitions[0].highOffset;
    const after = await bus.publish('big', 'still works');
    await bus.close();
    const reopened = await Bus.open({ name: 'quota' });
    const reopenedHigh = (await reopened.stats()).topics[0].partitions[0].highOffset;
    await reopened.close();
    return { error, high, afterOffset: after.offset, reopenedHigh };
  });
  assert.deepEqual(result.error, [true, 'QUOTA_EXCEEDED']);
  assert.equal(result.high, 1, 'nothing of the refused send is visible');
  assert.equal(result.afterOffset, 1, 'the next send takes the next offset');
  assert.equal(result.reopenedHigh, 2, 'nothing of the refused send was stored');
  await context.close();
});
