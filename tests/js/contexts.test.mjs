// One bus shared by several contexts of an origin, in each browser engine
// (tests/js/browsers.mjs): every operation runs on what IndexedDB holds at that
// moment, whichever context wrote it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../www/serve.mjs';
import { forEachEngine } from './browsers.mjs';

let server;

before(async () => {
  server = await serve();
});

after(() => server?.close());

forEachEngine(() => server.url, (engine, openPage) => {
  test(`${engine}: two pages sending at once to one partition get gapless offsets, none lost or doubled`, async () => {
    const [a, b] = await Promise.all([openPage(), openPage()]);
    const send = (page, who) =>
      page.evaluate(async (who) => {
        const bus = await window.ferry.Bus.open({ name: 'concurrent' });
        const results = await Promise.all(Array.from({ length: 150 }, (_, i) => bus.publish('log', `${who}-${i}`)));
        await bus.close();
        return results.map((r) => r.offset);
      }, who);
    const [offsetsA, offsetsB] = await Promise.all([send(a, 'a'), send(b, 'b')]);
    const all = [...offsetsA, ...offsetsB].sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 300 }, (_, i) => i));
    const high = await a.evaluate(async () => {
      const bus = await window.ferry.Bus.open({ name: 'concurrent' });
      const stats = await bus.stats();
      await bus.close();
      return stats.topics[0].partitions[0].highOffset;
    });
    assert.equal(high, 300);
    await Promise.all([a.close(), b.close()]);
  });

  test(`${engine}: a dedicated worker consumes what a page produces`, async () => {
    const page = await openPage();
    const seen = await page.evaluate(async () => {
      const worker = new Worker('/tests/browser/worker.js', { type: 'module' });
      const done = new Promise((resolve) => (worker.onmessage = ({ data }) => resolve(data)));
      worker.postMessage({ name: 'handoff', topic: 'jobs', groupId: 'workers', count: 20 });
      const bus = await window.ferry.Bus.open({ name: 'handoff' });
      for (let i = 0; i < 20; i++) await bus.publish('jobs', { job: i });
      const seen = await done;
      await bus.close();
      worker.terminate();
      return seen;
    });
    assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => ({ job: i })));
    await page.close();
  });

  test(`${engine}: a member whose tab closed before the next tab opened is taken for gone at once, not at its session's end`, async () => {
    const name = `gone-first-${Date.now()}`;
    // Each tab's member runs in a dedicated worker of the tab, as an app's would.
    const start = (page) =>
      page.evaluate(async (name) => {
        window.bus = await window.ferry.Bus.open({ name });
        await window.bus.createTopic('t', { partitions: 4 });
        const { startMemberIn } = await import('/tests/browser/member.js');
        const worker = new Worker('/tests/browser/member-worker.js', { type: 'module' });
        await startMemberIn(worker, { bus: name, topic: 't', groupId: 'g', label: 'w' }, async () => {});
      }, name);
    const owners = async (page) => new Set(await page.evaluate(async () => (await window.bus.stats()).groups[0].partitions.map((p) => p.owner)));
    const first = await openPage();
    await start(first);
    const [gone] = await owners(first);
    await first.close();
    const next = await openPage();
    await start(next);
    // Well within the 10 s session of the member that went.
    const giveUpAt = Date.now() + 5000;
    let seen = await owners(next);
    while ((seen.has(gone) || seen.size !== 1) && Date.now() < giveUpAt) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = await owners(next);
    }
    assert.ok(!seen.has(gone) && seen.size === 1 && !seen.has(null), `one member owns every partition: ${[...seen]}`);
    await next.close();
  });
});
