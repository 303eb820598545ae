// One writer per origin (`Bus.open({ writer: "one" })`), in each browser engine
// (tests/js/browsers.mjs): of the pages that open a bus, the one holding the Web
// Lock `ferry:{name}:writer` runs the others' calls. These tests check who
// writes, that the calls of every page get gapless offsets through it, that
// consumers in pages that do not write handle every message through it, each key
// in order, that a writer's page closed, crashed (ten times in one run) or
// frozen hands over to another page with every send stored once, that by
// default a SharedWorker writes (and a page takes over if it dies), and that a
// service worker alone writes the bus itself. The other tests open their
// pages with `sharedWorker: false`, so that a page writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../www/serve.mjs';
import { crash, forEachEngine, launch, openTestPage } from './browsers.mjs';

let server;

before(async () => {
  server = await serve();
});

after(() => server?.close());

/**
 * Opens the bus `name` in writer "one" mode in `page`, kept as `window.bus`. A page
 * hosts the writer itself unless `sharedWorker` (the default of `Bus.open`) starts
 * a SharedWorker to.
 */
const openBus = (page, name, { sharedWorker = false } = {}) =>
  page.evaluate(
    async ({ name, sharedWorker }) => {
      window.bus = await window.ferry.Bus.open({ name, writer: 'one', sharedWorker });
    },
    { name, sharedWorker },
  );

/** Whether the context holding the writer lock of the bus `name` is one of `pages` (each finds its own lock client id with a lock of its own). */
const writerIsPage = async (pages, name) => {
  const probe = (page) =>
    page.evaluate(async (name) => {
      const mine = `probe-${Math.random()}`;
      return navigator.locks.request(mine, async () => {
        const { held } = await navigator.locks.query();
        return { self: held.find((lock) => lock.name === mine).clientId, writer: held.find((lock) => lock.name === `ferry:${name}:writer`)?.clientId };
      });
    }, name);
  const seen = await Promise.all(pages.map(probe));
  assert.ok(seen[0].writer, 'a context holds the writer lock');
  return seen.some((s) => s.self === seen[0].writer);
};

/** How many contexts hold the writer lock of the bus `name`, by the origin's own record of held locks. */
const writerOf = async (pages, name) => {
  const held = await pages[0].evaluate(async () => (await navigator.locks.query()).held.map((lock) => lock.name));
  return held.filter((lock) => lock === `ferry:${name}:writer`).length;
};

/** Sends `count` single messages from `page` as `who`, `concurrent` at a time; resolves to the offsets of those that resolved, the errors, and the longest a send took. */
const sendFrom = (page, who, count, concurrent = 10) =>
  page.evaluate(
    async ({ who, count, concurrent }) => {
      const resolved = [];
      const errors = [];
      let longestMs = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrent }, async () => {
          while (next < count) {
            const i = next++;
            const sentAt = performance.now();
            try {
              const { offset } = await window.bus.publish('log', `${who}-${i}`);
              resolved.push({ value: `${who}-${i}`, offset });
            } catch (error) {
              errors.push(`${error.code}: ${error.message}`);
            }
            longestMs = Math.max(longestMs, performance.now() - sentAt);
          }
        }),
      );
      return { resolved, errors, longestMs };
    },
    { who, count, concurrent },
  );

/**
 * Runs a member of group 'g' on 'work' in `page`, recording what it handles in
 * `window.handled`. Leases the writer stored but never got to hand over (it
 * crashed first) come back when they run out: ackTimeoutMs keeps that short.
 */
const consumeIn = (page) =>
  page.evaluate(async () => {
    window.handled = [];
    const consumer = window.bus.consumer({ groupId: 'g', ackTimeoutMs: 2000 });
    await consumer.subscribe({ topic: 'work', fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        window.handled.push({ partition, offset: message.offset, key: message.key, value: message.value, at: performance.timeOrigin + performance.now() });
      },
    });
  });

/** Sends `count` messages keyed k0..k7 to 'work' from `page`, 8 per send, one send at a time; resolves to the values of those that resolved. */
const produceKeyed = (page, count) =>
  page.evaluate(async (count) => {
    const resolved = [];
    for (let i = 0; i < count; i += 8) {
      const batch = Array.from({ length: 8 }, (_, k) => ({ key: `k${k}`, value: `k${k}-${i / 8}` }));
      await window.bus.producer().send({ topic: 'work', messages: batch });
      resolved.push(...batch.map((m) => m.value));
    }
    return resolved;
  }, count);

/** What the pages' members handled once every value of `expected` was seen, or after 20 s. */
async function handledBy(pages, expected) {
  const giveUpAt = Date.now() + 20_000;
  for (;;) {
    const handled = (await Promise.all(pages.map((page) => page.evaluate(() => window.handled)))).flat();
    const seen = new Set(handled.map((h) => h.value));
    if (expected.every((v) => seen.has(v)) || Date.now() > giveUpAt) return handled;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Throws unless each key's values were first handled (by the pages' shared clock) in the order they were sent. */
function assertKeyOrder(handled) {
  const first = new Map();
  for (const h of [...handled].sort((a, b) => a.at - b.at)) if (!first.has(h.value)) first.set(h.value, h);
  const byKey = new Map();
  for (const h of first.values()) byKey.set(h.key, [...(byKey.get(h.key) ?? []), Number(h.value.split('-')[1])]);
  for (const [key, seqs] of byKey) {
    const early = seqs.findIndex((n, i) => i > 0 && n < seqs[i - 1]);
    assert.equal(early, -1, `${key}: ${seqs[early]} first handled after ${seqs[early - 1]}`);
  }
}

/**
 * Sends to 'log' from `page` as `who`, one send of `per` keyed messages (k0..k7)
 * at a time, until it sent `atLeast` messages and `window.sendersStop` is set;
 * resolves to each message's value, partition and offset, in the order sent.
 */
const sendUntilStopped = (page, who, atLeast, per) =>
  page.evaluate(
    async ({ who, atLeast, per }) => {
      const producer = window.bus.producer();
      const resolved = [];
      const errors = [];
      for (let i = 0; resolved.length < atLeast || !window.sendersStop; i++) {
        const messages = Array.from({ length: per }, (_, j) => ({ key: `k${(i * per + j) % 8}`, value: `${who}-${i}-${j}` }));
        try {
          const metadata = await producer.send({ topic: 'log', messages });
          metadata.forEach(({ partition, offset }, j) => resolved.push({ value: messages[j].value, partition, offset }));
        } catch (error) {
          errors.push(`${error.code}: ${error.message}`);
        }
      }
      return { resolved, errors };
    },
    { who, atLeast, per },
  );

/** Every message of every partition of 'log', read through a fresh group from `page`. */
const readLog = (page) =>
  page.evaluate(async () => {
    const expected = (await window.bus.stats()).topics.find((t) => t.topic === 'log').partitions.reduce((n, p) => n + p.highOffset, 0);
    const consumer = window.bus.consumer({ groupId: `reader-${Math.random()}`, ordering: 'none', concurrency: 64 });
    await consumer.subscribe({ topic: 'log', fromBeginning: true });
    const seen = [];
    await new Promise((resolve) => {
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          seen.push({ value: message.value, partition, offset: message.offset });
          if (seen.length >= expected) resolve();
        },
      });
      setTimeout(resolve, 30_000);
    });
    await consumer.stop();
    return seen;
  });

/**
 * Has `pages` send 300 messages each to the bus `name`, 5 at a time, runs
 * `killWriter` 150 ms in, and checks that no send failed, each that resolved
 * has its own offset and none is stored twice.
 */
async function assertStoredOnceAcross(engine, what, pages, name, killWriter) {
  const running = pages.map((page, n) => sendFrom(page, `p${n + 1}`, 300, 5));
  await new Promise((resolve) => setTimeout(resolve, 150));
  const started = Date.now();
  await killWriter();
  const sent = await Promise.all(running);
  const elapsed = Date.now() - started;
  assert.deepEqual(sent.flatMap((s) => s.errors), [], 'no send fails across the handover');
  assert.equal(await writerOf(pages, name), 1, 'a new writer holds the lock');
  const resolved = sent.flatMap((s) => s.resolved);
  const total = pages.length * 300;
  assert.equal(resolved.length, total);
  const log = await readLog(pages[0]);
  const counts = new Map();
  for (const { value } of log) counts.set(value, (counts.get(value) ?? 0) + 1);
  for (const r of resolved) assert.ok(counts.has(r.value), `${r.value} resolved at offset ${r.offset} and is stored`);
  // A call the old writer stored but whose reply it never sent is sent again
  // to the new one, which answers it with the reply stored with it.
  const doubled = [...counts].filter(([, n]) => n > 1).map(([v]) => v);
  assert.deepEqual(doubled, [], 'no send is stored twice');
  assert.deepEqual(resolved.map((r) => r.offset).sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i), 'each send resolved with its own offset');
  console.log(`  ${engine}, ${what}: ${total} sends finished ${elapsed} ms after`);
}

/** Ends every SharedWorker of the browser of a Chromium `page` through CDP, as a crash of its process would. */
async function terminateSharedWorkers(page) {
  const cdp = await page.context().browser().newBrowserCDPSession();
  const { targetInfos } = await cdp.send('Target.getTargets');
  for (const { targetId } of targetInfos.filter((t) => t.type === 'shared_worker')) await cdp.send('Target.closeTarget', { targetId });
  await cdp.detach();
}

/** Sets the Page Lifecycle state of a Chromium `page` ("frozen" or "active") through CDP, as a browser freezing a background tab would. */
async function setLifecycle(page, state) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Page.setWebLifecycleState', { state });
  await cdp.detach();
}

// Playwright reaches a service worker with no page open in Chromium only.
test('chromium: a service worker alone writes the bus: it drains a topic with no page open, is stopped, and a page opened later sees the result', async () => {
  const browser = await launch('chromium');
  try {
    const context = await browser.newContext();
    const name = `alone-${Date.now()}`;
    const page = await openTestPage(context, server.url);
    await page.evaluate(async (name) => {
      // Its scope holds no page: the worker runs for no client.
      const registration = await navigator.serviceWorker.register('/tests/browser/drain-sw.js', { type: 'module', scope: '/tests/browser/drain/' });
      const worker = registration.installing ?? registration.waiting ?? registration.active;
      await new Promise((resolve) => {
        if (worker.state === 'activated') resolve();
        worker.addEventListener('statechange', () => worker.state === 'activated' && resolve());
      });
      const bus = await window.ferry.Bus.open({ name });
      await bus.createTopic('jobs', { partitions: 2 });
      await bus.producer().send({ topic: 'jobs', messages: Array.from({ length: 40 }, (_, i) => ({ key: `order-${i % 5}`, value: i })) });
      await bus.close();
    }, name);
    const worker = context.serviceWorkers().find((w) => w.url().endsWith('/drain-sw.js')) ?? (await context.waitForEvent('serviceworker'));
    await page.close();
    const drained = await worker.evaluate((name) => self.drain(name), name);
    assert.deepEqual(drained, { jobs: 40, handled: 40, writers: 1 }, 'alone, the service worker held the writer lock and handled every job');
    // Stopped, as the browser stops an idle worker; CDP from a page of no origin.
    const blank = await context.newPage();
    const cdp = await context.newCDPSession(blank);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    const later = await openTestPage(context, server.url);
    const seen = await later.evaluate(async (name) => {
      const bus = await window.ferry.Bus.open({ name });
      const stats = await bus.stats();
      const done = [];
      const reader = bus.consumer({ groupId: 'reader' });
      await reader.subscribe({ topic: 'done', fromBeginning: true });
      await new Promise((resolve) => reader.run({ eachMessage: async ({ message }) => done.push(message.value) === 40 && resolve() }));
      await reader.stop();
      await bus.close();
      const group = stats.groups.find((g) => g.groupId === 'drain');
      return { lag: group.partitions.reduce((n, p) => n + p.lag, 0), jobs: done.map((d) => d.job).sort((a, b) => a - b), by: [...new Set(done.map((d) => d.by))] };
    }, name);
    assert.deepEqual(seen, { lag: 0, jobs: Array.from({ length: 40 }, (_, i) => i), by: ['service worker'] });
  } finally {
    await browser.close();
  }
});

forEachEngine(() => server.url, (engine, openPage) => {
  // Firefox has no CDP here to freeze a page.
  if (engine === 'chromium') {
    test(`${engine}: a frozen writer's page hands the lock over; the others go on, and it goes on as a client once it runs again`, async () => {
      const name = `frozen-${Date.now()}`;
      const [writer, ...others] = await Promise.all([openPage(), openPage(), openPage()]);
      await openBus(writer, name);
      await writer.evaluate(() => window.bus.createTopic('log', { partitions: 1 }));
      for (const page of others) await openBus(page, name);
      assert.deepEqual((await sendFrom(others[0], 'before', 50)).errors, []);
      const frozenAt = Date.now();
      await setLifecycle(writer, 'frozen');
      const sent = await Promise.all(others.map((page, n) => sendFrom(page, `p${n}`, 100)));
      const elapsed = Date.now() - frozenAt;
      assert.deepEqual(sent.flatMap((s) => s.errors), []);
      assert.equal(await writerOf(others, name), 1, 'a page that runs holds the writer lock');
      await setLifecycle(writer, 'active');
      const after = await writer.evaluate(async () => (await window.bus.publish('log', 'after')).offset);
      const offsets = [...sent.flatMap((s) => s.resolved.map((r) => r.offset)), after].sort((a, b) => a - b);
      assert.deepEqual(offsets, Array.from({ length: 201 }, (_, i) => 50 + i), 'gapless offsets, each send stored once');
      assert.equal((await writer.evaluate(async () => (await window.bus.stats()).topics[0].partitions[0].highOffset)), 251);
      console.log(`  ${engine}, writer frozen: 200 sends from the others finished ${elapsed} ms after the freeze`);
      await Promise.all([writer, ...others].map((page) => page.close()));
    });
  }

  test(`${engine}: one page writes; three pages sending at once get gapless offsets, none lost or doubled`, async () => {
    const name = `one-writer-${Date.now()}`;
    const pages = await Promise.all([openPage(), openPage(), openPage()]);
    for (const page of pages) await openBus(page, name);
    assert.equal(await writerOf(pages, name), 1, 'one context holds the writer lock');
    await pages[1].evaluate(() => window.bus.createTopic('log', { partitions: 1 }));
    const sent = await Promise.all(pages.map((page, n) => sendFrom(page, `p${n}`, 200)));
    assert.deepEqual(sent.flatMap((s) => s.errors), []);
    const offsets = sent.flatMap((s) => s.resolved.map((r) => r.offset)).sort((a, b) => a - b);
    assert.deepEqual(offsets, Array.from({ length: 600 }, (_, i) => i));
    const highs = await Promise.all(pages.map((page) => page.evaluate(async () => (await window.bus.stats()).topics[0].partitions[0].highOffset)));
    assert.deepEqual(highs, [600, 600, 600], 'every page sees the same bus');
    const log = await readLog(pages[2]);
    const byOffset = new Map(log.map((m) => [m.offset, m.value]));
    for (const s of sent) for (const r of s.resolved) assert.equal(byOffset.get(r.offset), r.value);
    await Promise.all(pages.map((page) => page.close()));
  });

  test(`${engine}: the writer's page closed or crashed 10 times in a 5,000-message run: every send stored once, each sender's in order per partition`, { timeout: 240_000 }, async () => {
    const name = `kills-${Date.now()}`;
    const kills = 10;
    // The writer's lock goes to the contexts in the order they asked for it: the
    // pages opened first write in turn, and the two senders, opened last, never do.
    const writers = [];
    for (let i = 0; i <= kills; i++) {
      writers.push(await openPage());
      await openBus(writers[i], name);
    }
    await writers[0].evaluate(() => window.bus.createTopic('log', { partitions: 4 }));
    const senders = [await openPage(), await openPage()];
    for (const page of senders) await openBus(page, name);
    const running = senders.map((page, n) => sendUntilStopped(page, `s${n}`, 2500, 5));
    const handoversMs = [];
    for (let k = 0; k < kills; k++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const killedAt = Date.now();
      if (k % 2) await crash(engine, writers[k]);
      else await writers[k].close();
      // Answered once the next writer runs it.
      await senders[1].evaluate(() => window.bus.topics());
      handoversMs.push(Date.now() - killedAt);
    }
    await Promise.all(senders.map((page) => page.evaluate(() => (window.sendersStop = true))));
    const sent = await Promise.all(running);
    assert.deepEqual(sent.flatMap((s) => s.errors), [], 'no send fails across the handovers');
    const resolved = sent.flatMap((s) => s.resolved);
    assert.ok(resolved.length >= 5000, `${resolved.length} messages sent`);
    const log = await readLog(senders[0]);
    const stored = new Map();
    for (const m of log) stored.set(m.value, [...(stored.get(m.value) ?? []), m]);
    assert.deepEqual([...stored].filter(([, copies]) => copies.length > 1).map(([value]) => value), [], 'no message stored twice');
    for (const r of resolved) assert.deepEqual(stored.get(r.value), [r], `${r.value} is stored where its send said`);
    assert.equal(log.length, resolved.length, 'nothing stored that no send resolved');
    for (const s of sent) {
      for (let p = 0; p < 4; p++) {
        const offsets = s.resolved.filter((r) => r.partition === p).map((r) => r.offset);
        assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]), `partition ${p} holds a sender's messages in the order sent`);
      }
    }
    const sorted = [...handoversMs].sort((a, b) => a - b);
    console.log(`  ${engine}, writer killed ${kills} times in ${resolved.length} messages: handovers ${handoversMs.join(', ')} ms, median ${sorted[kills / 2]} ms`);
    await Promise.all([...writers.slice(kills), ...senders].map((page) => page.close()));
  });

  for (const how of ['closed', 'crashed']) {
    test(`${engine}: the writer's page ${how} mid-run: another page takes over, and every send that resolved is stored once`, async () => {
      const name = `handover-${how}-${Date.now()}`;
      const pages = await Promise.all([openPage(), openPage(), openPage()]);
      // The first page to open takes the writer's lock.
      await openBus(pages[0], name);
      await pages[0].evaluate(() => window.bus.createTopic('log', { partitions: 1 }));
      for (const page of pages.slice(1)) await openBus(page, name);
      await assertStoredOnceAcross(engine, `writer ${how}`, pages.slice(1), name, () => (how === 'closed' ? pages[0].close() : crash(engine, pages[0])));
      await Promise.all(pages.slice(1).map((page) => page.close()));
    });
  }

  test(`${engine}: by default a SharedWorker writes; pages closing cost the others nothing, and a page opened after the last closed starts a new one`, async () => {
    const name = `shared-worker-${Date.now()}`;
    const pages = await Promise.all([openPage(), openPage(), openPage()]);
    for (const page of pages) await openBus(page, name, { sharedWorker: true });
    await pages[0].evaluate(() => window.bus.createTopic('log', { partitions: 1 }));
    assert.equal(await writerIsPage(pages, name), false, 'the writer is no page: the SharedWorker');
    const running = pages.slice(1).map((page, n) => sendFrom(page, `p${n + 1}`, 300, 5));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await pages[0].close();
    const sent = await Promise.all(running);
    assert.deepEqual(sent.flatMap((s) => s.errors), []);
    const offsets = sent.flatMap((s) => s.resolved.map((r) => r.offset)).sort((a, b) => a - b);
    assert.deepEqual(offsets, Array.from({ length: 600 }, (_, i) => i), 'gapless offsets, each send stored once');
    assert.equal(await writerIsPage(pages.slice(1), name), false, 'the SharedWorker still writes');
    console.log(`  ${engine}, SharedWorker writer, a page closed mid-run: longest send ${Math.round(Math.max(...sent.map((s) => s.longestMs)))} ms`);
    await Promise.all(pages.slice(1).map((page) => page.close()));
    const later = await openPage();
    await openBus(later, name, { sharedWorker: true });
    assert.equal(await later.evaluate(async () => (await window.bus.stats()).topics[0].partitions[0].highOffset), 600, 'what it wrote is stored');
    const other = await openPage();
    await openBus(other, name, { sharedWorker: true });
    assert.equal(await writerIsPage([later, other], name), false, 'a new SharedWorker writes');
    await Promise.all([later, other].map((page) => page.close()));
  });

  test(`${engine}: the SharedWorker alone asks for the members' Web Locks, once each, and evicts a member whose page closed before its session runs out`, async () => {
    const name = `member-locks-${Date.now()}`;
    const pages = await Promise.all([openPage(), openPage(), openPage()]);
    for (const page of pages) await openBus(page, name, { sharedWorker: true });
    await pages[0].evaluate(() => window.bus.createTopic('work', { partitions: 3 }));
    // A session that outlasts the test: only the Web Lock can tell a member gone.
    const members = await Promise.all(
      pages.map((page) =>
        page.evaluate(async () => {
          const consumer = window.bus.consumer({ groupId: 'g', sessionTimeoutMs: 120_000, heartbeatIntervalMs: 1000 });
          await consumer.subscribe({ topic: 'work' });
          await consumer.run({ eachMessage: async () => {} });
          return consumer.memberId;
        }),
      ),
    );
    const requests = () =>
      pages[2].evaluate(async (prefix) => {
        const { pending } = await navigator.locks.query();
        return pending.filter((lock) => lock.name.startsWith(prefix)).map((lock) => ({ member: lock.name.slice(prefix.length), from: lock.clientId }));
      }, `ferry:${name}:g:`);
    let asked = [];
    for (const giveUpAt = Date.now() + 10_000; Date.now() < giveUpAt && asked.length < members.length; ) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      asked = await requests();
    }
    assert.deepEqual(asked.map((r) => r.member).sort(), [...members].sort(), 'one request for each member, none for a pair of members');
    assert.equal(new Set(asked.map((r) => r.from)).size, 1, 'all from one context');
    const pageIds = await Promise.all(
      pages.map((page) => page.evaluate(() => navigator.locks.request(`probe-${Math.random()}`, async (lock) => (await navigator.locks.query()).held.find((l) => l.name === lock.name).clientId))),
    );
    assert.ok(!pageIds.includes(asked[0].from), 'from no page: the SharedWorker');
    await pages[0].close();
    const membersLeft = async () => (await pages[1].evaluate(async () => (await window.bus.stats()).members.filter((m) => m.groupId === 'g').map((m) => m.memberId))).sort();
    let left = await membersLeft();
    for (const giveUpAt = Date.now() + 10_000; Date.now() < giveUpAt && left.includes(members[0]); ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await membersLeft();
    }
    assert.deepEqual(left, members.slice(1).sort(), 'the closed page\'s member evicted, long before its session runs out');
    await Promise.all(pages.slice(1).map((page) => page.close()));
  });

  test(`${engine}: the database deleted by a page: the buses on it close (CLOSED), and the page reopened writes a new bus through the SharedWorker`, async () => {
    const name = `deleted-${Date.now()}`;
    const [page, other] = await Promise.all([openPage(), openPage()]);
    for (const p of [other, page]) await openBus(p, name, { sharedWorker: true });
    assert.equal(await page.evaluate(async () => (await window.bus.publish('log', 'before')).offset), 0);
    await page.evaluate((name) => new Promise((resolve, reject) => Object.assign(indexedDB.deleteDatabase(name), { onsuccess: resolve, onerror: reject })), name);
    const refused = await other.evaluate(() => window.bus.publish('log', 'stale').then(() => 'stored', (error) => error.code));
    assert.equal(refused, 'CLOSED', 'a bus whose database was deleted refuses calls');
    await page.reload();
    await page.waitForFunction(() => document.title === 'ready');
    await openBus(page, name, { sharedWorker: true });
    assert.equal(await page.evaluate(async () => (await window.bus.publish('log', 'after')).offset), 0, 'a new bus, written');
    assert.equal(await writerIsPage([page, other], name), false, 'the SharedWorker opened the new bus and writes it');
    await Promise.all([page, other].map((p) => p.close()));
  });

  // Only Chromium's CDP can end a SharedWorker while its pages stay open.
  if (engine === 'chromium') {
    test(`${engine}: the SharedWorker that writes terminated mid-run: a page takes over, and every send that resolved is stored once`, async () => {
      const name = `shared-worker-killed-${Date.now()}`;
      const pages = await Promise.all([openPage(), openPage()]);
      for (const page of pages) await openBus(page, name, { sharedWorker: true });
      await pages[0].evaluate(() => window.bus.createTopic('log', { partitions: 1 }));
      assert.equal(await writerIsPage(pages, name), false, 'the SharedWorker writes');
      // A page's build has no engine; the worker's has.
      const loadedEngine = (page) => page.evaluate(() => performance.getEntriesByType('resource').some((r) => r.name.includes('ferry_engine_bg')));
      assert.deepEqual(await Promise.all(pages.map(loadedEngine)), [false, false], 'no page fetched the engine while the SharedWorker wrote');
      await assertStoredOnceAcross(engine, 'SharedWorker terminated', pages, name, () => terminateSharedWorkers(pages[0]));
      assert.equal(await writerIsPage(pages, name), true, 'a page writes once the worker is gone');
      assert.ok((await Promise.all(pages.map(loadedEngine))).includes(true), 'the page that took over fetched the engine');
      await Promise.all(pages.map((page) => page.close()));
    });
  }

  for (const how of ['running', 'crashed']) {
    test(`${engine}: consumers in pages that do not write (writer ${how}): every message handled, each key in order`, async () => {
      const name = `clients-${how}-${Date.now()}`;
      const [writer, a, b, producer] = await Promise.all([openPage(), openPage(), openPage(), openPage()]);
      await openBus(writer, name);
      await writer.evaluate(() => window.bus.createTopic('work', { partitions: 4 }));
      for (const page of [a, b, producer]) await openBus(page, name);
      await consumeIn(a);
      await consumeIn(b);
      const producing = produceKeyed(producer, 400);
      if (how === 'crashed') {
        await new Promise((resolve) => setTimeout(resolve, 150));
        await crash(engine, writer);
      }
      const sent = await producing;
      assert.equal(sent.length, 400);
      const handled = await handledBy([a, b], sent);
      const seen = new Set(handled.map((h) => h.value));
      assert.deepEqual(sent.filter((v) => !seen.has(v)), [], 'every message that resolved is handled');
      if (how === 'running') assert.equal(handled.length, 400, 'each handled once');
      assertKeyOrder(handled);
      const pages = how === 'crashed' ? [a, b, producer] : [writer, a, b, producer];
      assert.equal(await writerOf(pages, name), 1, 'one context holds the writer lock');
      await Promise.all(pages.map((page) => page.close()));
    });
  }
});
