// A bus written by an earlier ferry opens with this one and keeps working. Each
// fixture in tests/fixtures/upgrade is an IndexedDB database as an earlier build
// stored it (tests/fixtures/upgrade/generate.mjs made it, through that build's
// public API); it is restored byte for byte into a fresh browser context, and the
// current package must read every record of it, go on from where it was, and store
// its own schema version.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { serve } from '../../www/serve.mjs';
import { launch, openTestPage } from './browsers.mjs';
import { installUpgradeHelpers, schemaVersion } from '../fixtures/upgrade/idb.mjs';

const DIR = new URL('../fixtures/upgrade/', import.meta.url);
const FIXTURES = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

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

/** `actual` cut down to the fields `expected` has: fields a later version adds are no break. */
function project(actual, expected) {
  if (Array.isArray(expected)) return Array.isArray(actual) ? actual.map((a, i) => project(a, expected[i])) : actual;
  if (expected === null || typeof expected !== 'object' || actual === null || typeof actual !== 'object') return actual;
  return Object.fromEntries(Object.keys(expected).map((k) => [k, project(actual[k], expected[k])]));
}

/** Stats without owners: the members of the earlier build are gone once their sessions run out. */
const withoutOwners = (stats) => ({
  topics: stats.topics,
  groups: stats.groups.map((g) => ({ ...g, partitions: g.partitions.map(({ owner, ...p }) => p) })),
});

/** Stats once those members are gone: what one had in flight counts a failed attempt, the rest of its run is given back. */
const afterTheirLoss = (stats) => ({
  topics: stats.topics,
  groups: stats.groups.map((g) => ({
    ...g,
    partitions: g.partitions.map((p) => (p.inFlight ? { ...p, inFlight: 0, retrying: p.retrying + 1 } : p)),
  })),
});

const partitionOf = (stats, topic, partition) => stats.topics.find((t) => t.topic === topic).partitions[partition];

for (const file of FIXTURES) {
  const fixture = JSON.parse(readFileSync(new URL(file, DIR), 'utf8'));
  const { bus: name, expect } = fixture;

  test(`${file}: a bus stored by ${fixture.commit.slice(0, 7)} (schema version ${fixture.schemaVersion}) opens, goes on where it was, and is migrated`, { timeout: 60_000 }, async (t) => {
    const context = await browser.newContext();
    t.after(() => context.close());
    const page = await openTestPage(context, server.url);
    await page.evaluate(installUpgradeHelpers);

    // The schema this package writes, as a new bus stores it.
    const fresh = await page.evaluate(async () => {
      const bus = await window.ferry.Bus.open({ name: 'fresh' });
      await bus.createTopic('t');
      await bus.close();
      return window.upgrade.dump();
    });
    const current = schemaVersion(fresh, 'fresh');
    assert.ok(current >= fixture.schemaVersion, `this package writes schema ${current}, older than the fixture's ${fixture.schemaVersion}`);

    await page.evaluate((databases) => window.upgrade.restore(databases), fixture.databases);
    const restored = (await page.evaluate(() => window.upgrade.dump())).filter((d) => fixture.databases.some((f) => f.name === d.name));
    assert.deepEqual(restored, fixture.databases, 'the dump is restored exactly');

    // Opened: the topics and the stats are what the earlier build stored.
    const opened = await page.evaluate(async (name) => {
      window.bus = await window.ferry.Bus.open({ name });
      return { topics: await window.bus.topics(), stats: await window.bus.stats() };
    }, name);
    assert.deepEqual(project(opened.topics, expect.topics), expect.topics);
    assert.deepEqual(withoutOwners(project(opened.stats, expect.stats)), withoutOwners(afterTheirLoss(expect.stats)));

    // Redrive moves the dead letter back once; sends get the next offsets, and an id
    // the earlier build stored is still a duplicate.
    const dead = expect.sent.find((m) => m.topic === expect.deadLetter.topic && m.offset === expect.deadLetter.offset);
    const order1 = expect.sent.find((m) => m.key === 'order-1');
    const order3 = expect.sent.find((m) => m.id === 'order-3');
    const sends = [
      { topic: 'orders', value: { after: 'upgrade' }, options: { key: 'order-1', headers: { phase: 'after' }, id: 'after-1' } },
      { topic: 'orders', value: 'resent', options: { key: 'order-3', id: 'order-3' } },
      { topic: 'metrics', value: { $bytes: 'AAEC' }, options: {} },
    ];
    const changed = await page.evaluate(async ({ from, sends }) => {
      const { bus, upgrade } = window;
      const redriven = [await bus.redrive({ from }), await bus.redrive({ from })];
      const results = [];
      for (const { topic, value, options } of sends) results.push(await bus.publish(topic, upgrade.decode(value), options));
      return { redriven, results, stats: await bus.stats() };
    }, { from: expect.deadLetter.from, sends });
    assert.deepEqual(changed.redriven, [1, 0]);
    const metricsHigh = partitionOf(expect.stats, 'metrics', 0).highOffset;
    assert.deepEqual(changed.results.map(({ topic, partition, offset, duplicate }) => ({ topic, partition, offset, duplicate })), [
      { topic: 'orders', partition: order1.partition, offset: partitionOf(expect.stats, 'orders', order1.partition).highOffset, duplicate: false },
      { topic: 'orders', partition: order3.partition, offset: order3.offset, duplicate: true },
      { topic: 'metrics', partition: 0, offset: metricsHigh + 1, duplicate: false },
    ]);
    const storedSend = (i) => {
      const { topic, value, options: { key = null, headers = {}, id = null } } = sends[i];
      const { partition, offset } = changed.results[i];
      return { topic, partition, offset, key, value, headers, id };
    };

    // What each group must now get: every message from its committed offset to the
    // end, as it was sent; the retry that was waiting and the delivery that was in
    // flight when the earlier page closed each come with one more attempt.
    const messages = [
      ...expect.sent,
      { topic: 'metrics', partition: 0, offset: metricsHigh, key: dead.key, value: dead.value, headers: dead.headers, id: dead.id },
      storedSend(0),
      storedSend(2),
    ];
    const due = {};
    for (const g of expect.stats.groups) {
      for (const { partition, committedOffset } of g.partitions) {
        const high = partitionOf(changed.stats, g.topic, partition).highOffset;
        for (let offset = committedOffset; offset < high; offset++) {
          const m = messages.find((m) => m.topic === g.topic && m.partition === partition && m.offset === offset);
          assert.ok(m, `${g.topic}/${partition}/${offset} was sent`);
          const retry = expect.retries.find((r) => r.group === g.groupId && r.topic === g.topic && r.partition === partition && r.offset === offset);
          (due[g.groupId] ??= []).push({ ...m, attempt: retry?.attempt ?? 1 });
        }
      }
    }
    for (const r of expect.retries) assert.ok(due[r.group].some((m) => m.offset === r.offset && m.attempt === r.attempt), `${r.group} is due attempt ${r.attempt} of ${r.topic}/${r.partition}/${r.offset}`);

    const delivered = await page.evaluate(async ({ groups, counts, waitMs }) => {
      const { bus, upgrade } = window;
      const seen = Object.fromEntries(Object.keys(groups).map((g) => [g, []]));
      const consumers = [];
      for (const [groupId, { topics, options }] of Object.entries(groups)) {
        const consumer = bus.consumer({ groupId, ...options });
        await consumer.subscribe({ topics });
        await consumer.run({
          eachMessage: async ({ topic, partition, message }) => {
            const { key, value, headers, offset, id, attempt } = message;
            seen[groupId].push({ topic, partition, offset, key, value: upgrade.encode(value), headers, id, attempt });
          },
        });
        consumers.push(consumer);
      }
      const settled = (stats) => stats.groups.every((g) => g.partitions.every((p) => p.lag === 0 && p.inFlight === 0 && p.retrying === 0));
      const deadline = Date.now() + waitMs;
      let stats;
      while (!(Object.entries(counts).every(([g, n]) => seen[g].length >= n) && settled((stats = await bus.stats())))) {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const consumer of consumers) await consumer.stop();
      return { seen, stats };
    }, {
      groups: expect.groups,
      counts: Object.fromEntries(Object.entries(due).map(([g, ms]) => [g, ms.length])),
      // A retry of the fixture's may be due only shortly after it was written.
      waitMs: 10_000 + Math.max(0, expect.dueBy - Date.now()),
    });

    const byOffset = (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || a.offset - b.offset;
    for (const [groupId, { options }] of Object.entries(expect.groups)) {
      const got = delivered.seen[groupId];
      const wanted = due[groupId].sort(byOffset);
      if (options.ordering !== 'none') {
        // In order within each partition: stable-sorting by partition keeps the arrival order.
        const arrival = [...got].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
        assert.deepEqual(arrival, wanted, `${groupId}: each partition's uncommitted messages, in order`);
      } else {
        assert.deepEqual([...got].sort(byOffset), wanted, `${groupId}: every uncommitted message once`);
      }
    }
    for (const g of delivered.stats.groups) {
      for (const p of g.partitions) assert.deepEqual({ lag: p.lag, inFlight: p.inFlight, retrying: p.retrying }, { lag: 0, inFlight: 0, retrying: 0 }, `${g.groupId} ${g.topic}/${p.partition}`);
      const before = expect.stats.groups.find((b) => b.groupId === g.groupId && b.topic === g.topic);
      if (before) assert.equal(g.deadLettered, before.deadLettered, `${g.groupId} ${g.topic}: deadLettered`);
    }

    // Closed, the database holds this package's schema version; opened again, the
    // bus is as it was and still takes sends.
    const reopened = await page.evaluate(async ({ name }) => {
      await window.bus.close();
      const databases = await window.upgrade.dump();
      const bus = await window.ferry.Bus.open({ name });
      const stats = await bus.stats();
      const sent = await bus.publish('orders', 'after reopening', { key: 'order-1' });
      await bus.close();
      return { databases, stats, sent };
    }, { name });
    assert.equal(schemaVersion(reopened.databases, name), current, 'the migrated schema version is stored');
    assert.deepEqual(withoutOwners(reopened.stats), withoutOwners(delivered.stats));
    assert.deepEqual([reopened.sent.partition, reopened.sent.offset], [order1.partition, changed.results[0].offset + 1]);
  });
}
