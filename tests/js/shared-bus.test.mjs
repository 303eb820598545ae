// Many contexts, one bus, in each browser engine (tests/js/browsers.mjs): pages, a
// dedicated worker and a module service worker of one origin share a bus through
// IndexedDB. The members of a group split its partitions and take over at once
// from a page that is closed or crashes (Web Locks), every group gets every
// message, and producers in several contexts get gapless offsets. The shared
// work and the chaos run with every context writing (writer "each") and with one
// writer (the default, "one"), whose context the chaos kills too.
//
// Each member reports every message it handled, before acking it
// (tests/browser/member.js), so the reports hold every message its group
// committed; ordering and exclusivity are read off the handlers' start and end
// times, all taken from the one system clock of this machine.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { serve } from '../../www/serve.mjs';
import { ENGINES, crash, launch, openTestPage } from './browsers.mjs';

const run = `${process.pid}-${Date.now()}`;
// Messages of the shared-work run; FERRY_SHARED_BUS_MESSAGES sets another count (a
// multiple of 10) for a quicker or a longer run. The chaos run sends 2 in 5 of them
// to keep this file short: five members handle about 100 a second, and the chaos
// goes on killing pages until every message is handled.
const MESSAGES = Number(process.env.FERRY_SHARED_BUS_MESSAGES ?? 5000);
const CHAOS_MESSAGES = (MESSAGES * 2) / 5;
// Time for a run to handle `count` messages: at least four times what it takes here.
const handledTimeoutMs = (count) => 30_000 + count * 40;
// The chaos schedule's seed; FERRY_CHAOS_SEED replays another one.
const CHAOS_SEED = Number(process.env.FERRY_CHAOS_SEED ?? 20240611);
// 16 keys, two for each partition of an 8-partition topic (Kafka's partitioner), so
// that every partition gets work.
const KEYS = ['key-1', 'key-5', 'key-0', 'key-4', 'key-25', 'key-32', 'key-3', 'key-7', 'key-6', 'key-17', 'key-9', 'key-13', 'key-2', 'key-10', 'key-20', 'key-27'];
// maxAttempts: a message caught in flight by several kills is redelivered each time,
// never dead-lettered, so every message must turn up handled.
// Runs of at most 16 keep the duplicate bound of the chaos test meaningful.
const MEMBER_OPTIONS = { concurrency: 2, maxBatchSize: 16, retry: { maxAttempts: 1000 } };

let server;
// The browser of the engine whose tests run now (one engine at a time), its context
// and its host page.
let browser;
let context;
/** A page never closed: it hosts the dedicated workers and registers the service worker. */
let host;
/** Handled-message records by bus name, filled by the members' reports. */
const reports = new Map();
/** Where pages post the members' reports. */
let reportServer;

before(async () => {
  server = await serve();
  reportServer = await serveReports();
});

after(async () => {
  await reportServer?.close();
  await server?.close();
});

/**
 * An HTTP server on another port of 127.0.0.1 that stores the record each POST
 * carries in `reports`, then answers: a page's report resolves once the record is
 * here. Plain HTTP rather than the drivers' exposeFunction, which puppeteer runs
 * over WebDriver BiDi in some 60 ms a call (2 ms in playwright's Chromium): that
 * made the Firefox runs many times slower than the bus.
 */
async function serveReports() {
  const http = createServer(async (request, response) => {
    let body = '';
    for await (const chunk of request.setEncoding('utf8')) body += chunk;
    const record = JSON.parse(body);
    reports.get(record.bus)?.push(record);
    // A text/plain POST needs no preflight, only this header, to cross origins.
    response.writeHead(204, { 'access-control-allow-origin': '*' }).end();
  });
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${http.address().port}/`,
    // Keep-alive connections of the browsers would otherwise hold close() open.
    close: () => new Promise((resolve) => {
      http.close(resolve);
      http.closeAllConnections();
    }),
  };
}

/** A test page whose `window.ferryReport(record)` posts to the report server. */
async function openPage() {
  const page = await openTestPage(context, server.url);
  await page.evaluate((url) => {
    window.ferryReport = async (record) => {
      const response = await fetch(url, { method: 'POST', body: JSON.stringify(record) });
      if (!response.ok) throw new Error(`report refused: ${response.status}`);
    };
  }, reportServer.url);
  return page;
}

/** A bus name no other test or run uses, with an empty list for its reports. */
function newBus(label) {
  const bus = `${label}-${run}`;
  reports.set(bus, []);
  return bus;
}

function createTopic(page, bus, topic, partitions) {
  return page.evaluate(
    async ({ bus, topic, partitions }) => {
      const b = await window.ferry.Bus.open({ name: bus });
      await b.createTopic(topic, { partitions });
      await b.close();
    },
    { bus, topic, partitions },
  );
}

/** Makes `page` a member; resolves once it joined. */
/** The default sessionTimeoutMs: a member seen gone only when it runs out was not noticed through its Web Lock. */
const SESSION_TIMEOUT_MS = 10_000;

function startPageMember(page, config) {
  return page.evaluate(async (config) => {
    const { startMember } = await import('/tests/browser/member.js');
    window.stopMember = await startMember(config, window.ferryReport);
  }, config);
}

function stopPageMember(page) {
  return page.evaluate(() => window.stopMember());
}

/** Starts a member in a new dedicated worker of the host page; resolves once it joined. */
function startWorkerMember(config) {
  return host.evaluate(async (config) => {
    const { startMemberIn } = await import('/tests/browser/member.js');
    const worker = new Worker('/tests/browser/member-worker.js', { type: 'module' });
    const stop = await startMemberIn(worker, config, window.ferryReport);
    window.members[config.label] = async () => {
      await stop();
      worker.terminate();
    };
  }, config);
}

/** Starts a member in the service worker, kept alive (member-sw.js); resolves once it joined. */
function startServiceWorkerMember(config) {
  return host.evaluate(async (config) => {
    const { startMemberIn } = await import('/tests/browser/member.js');
    const registration = await navigator.serviceWorker.ready;
    const stop = await startMemberIn(registration.active, config, window.ferryReport);
    const keepAlive = setInterval(() => registration.active.postMessage('keep-alive'), 10_000);
    window.members[config.label] = async () => {
      clearInterval(keepAlive);
      await stop();
    };
  }, config);
}

/** Stops a member the host page runs (in a worker or the service worker). */
function stopHostedMember(label) {
  return host.evaluate((label) => window.members[label](), label);
}

/** Runs `produce(config)` of tests/browser/member.js in `page`; resolves to its metadata. */
function producePage(page, config) {
  return page.evaluate(async (config) => {
    const { produce } = await import('/tests/browser/member.js');
    return produce(config);
  }, config);
}

/** Runs `produce(config)` in a new dedicated worker of the host page. */
function produceInWorker(config) {
  return host.evaluate(async (config) => {
    const { produceIn } = await import('/tests/browser/member.js');
    const worker = new Worker('/tests/browser/member-worker.js', { type: 'module' });
    const sent = await produceIn(worker, config);
    worker.terminate();
    return sent;
  }, config);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** mulberry32: a small seeded PRNG, so a chaos schedule can be replayed. */
function prng(seed) {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function groupBy(items, keyOf) {
  const groups = new Map();
  for (const item of items) {
    const key = keyOf(item);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  return groups;
}

function countBy(items, keyOf) {
  return Object.fromEntries([...groupBy(items, keyOf)].map(([key, group]) => [key, group.length]));
}

const where = (partition, offset) => `${partition}:${offset}`;

/** How many distinct messages the records cover. */
function distinct(records) {
  return new Set(records.map((r) => where(r.partition, r.offset))).size;
}

/** The metadata of sends made by `produce`, each with the `{ from, seq }` and key its message carried. */
function sentBy(from, metadata, keys = []) {
  return metadata.map((m, seq) => ({ ...m, from, seq, key: keys.length ? keys[seq % keys.length] : null }));
}

/** Every sent message is among the records, with its key and value, and nothing else is. */
function assertAllHandled(sent, records) {
  const handled = new Map(records.map((r) => [where(r.partition, r.offset), r]));
  const missing = sent.filter((m) => !handled.has(where(m.partition, m.offset)));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${sent.length} messages never handled`);
  const differs = (m, r) => r.key !== m.key || r.value.from !== m.from || r.value.seq !== m.seq;
  const wrong = sent.filter((m) => differs(m, handled.get(where(m.partition, m.offset))));
  assert.deepEqual(wrong.slice(0, 10), [], 'a handled message differs from the one sent there');
  assert.equal(distinct(records), sent.length, 'handled messages that were never sent');
}

/**
 * Per partition, in the order handlers started: offsets go up one at a time from 0;
 * after a member is killed (`kills`: label -> when) the partition may go back, but
 * only to an offset that member handled since it took the partition over: acks of
 * a run are stored in batches, so a killed member's last acks may be lost and
 * those messages handled again; and a handler starts only once the partition's
 * previous one ended: in "partition" ordering one handler at a time holds a
 * partition, so no message is ever handled by two members at once.
 */
function partitionOrderViolations(records, kills = new Map()) {
  const violations = [];
  for (const [partition, handled] of groupBy(records, (r) => r.partition)) {
    handled.sort((a, b) => a.start - b.start || a.offset - b.offset);
    let previous = { offset: -1, end: -Infinity, member: 'none yet' };
    // Where the previous member's unbroken stretch of this partition began.
    let stretchStart = 0;
    for (const r of handled) {
      const killed = kills.get(previous.member) <= r.start;
      const redelivered = killed && r.offset >= stretchStart && r.offset <= previous.offset;
      if (r.offset !== previous.offset + 1 && !redelivered) {
        violations.push(`partition ${partition}: offset ${r.offset} (${r.member}, attempt ${r.attempt}) came after offset ${previous.offset} (${previous.member})`);
      }
      if (r.start < previous.end) {
        violations.push(`partition ${partition}: offset ${r.offset} (${r.member}) started at ${r.start}, before offset ${previous.offset} (${previous.member}) ended at ${previous.end}`);
      }
      if (r.member !== previous.member) stretchStart = r.offset;
      previous = r;
    }
  }
  return violations;
}

/** A bus with an 8-partition topic and the config its members share. */
async function sharedWork(label, writer = 'each') {
  const bus = newBus(label);
  const topic = 'work';
  await createTopic(host, bus, topic, 8);
  return { bus, topic, writer, member: (label) => ({ bus, writer, topic, groupId: 'workers', label, options: MEMBER_OPTIONS }) };
}

/** `count` messages over KEYS, half from each of two new pages; resolves to what was sent. */
async function produceFromTwoPages({ bus, topic, writer }, count, pauseMs) {
  const pages = await Promise.all([openPage(), openPage()]);
  const froms = ['producer-0', 'producer-1'];
  const metadata = await Promise.all(
    pages.map((page, i) => producePage(page, { bus, writer, topic, from: froms[i], count: count / 2, batch: 25, keys: KEYS, pauseMs })),
  );
  await Promise.all(pages.map((page) => page.close()));
  return metadata.flatMap((m, i) => sentBy(froms[i], m, KEYS));
}

/**
 * Closes or crashes member pages of `engine` and opens new ones, one step at a
 * time after a random pause, until `finished()` or the run's time is up; keeps 1
 * to 4 member pages. Resolves to the kills, label -> when.
 */
async function chaos(engine, memberPages, startMember, random, finished) {
  const kills = new Map();
  const steps = [];
  const started = Date.now();
  let opened = memberPages.length;
  while (!finished() && Date.now() < started + handledTimeoutMs(CHAOS_MESSAGES)) {
    await sleep(200 + random() * 600);
    const roll = random();
    const open = memberPages.length < 2 || (memberPages.length < 4 && roll >= 2 / 3);
    if (open) {
      const label = `page-${opened++}`;
      const page = await openPage();
      await startMember(page, label);
      memberPages.push({ page, label });
      steps.push(`+${Date.now() - started} ms opened ${label}`);
      continue;
    }
    const [{ page, label }] = memberPages.splice(Math.floor(random() * memberPages.length), 1);
    const how = roll < 1 / 3 ? 'closed' : 'crashed';
    kills.set(label, Date.now());
    if (how === 'crashed') await crash(engine, page);
    await page.close();
    steps.push(`+${kills.get(label) - started} ms ${how} ${label}`);
  }
  console.log(`${engine} chaos: ${steps.join(', ')}`);
  return kills;
}

for (const engine of ENGINES) {
  describe(engine, () => {
    before(async () => {
      browser = await launch(engine);
      context = await browser.newContext();
      host = await openPage();
      await host.evaluate(async () => {
        await navigator.serviceWorker.register('/tests/browser/member-sw.js', { type: 'module', scope: '/tests/browser/' });
        await navigator.serviceWorker.ready;
        window.members = {};
      });
    });

    after(() => browser?.close());

    for (const writer of ['each', 'one']) {
      // With writer "one", the first of them to open the bus writes it for all: in
      // the chaos, the pages killed include the writer's.
      const mode = writer === 'each' ? '' : ' (writer "one")';
      test(`${engine}: three pages, a dedicated worker and a service worker share the work of one group${mode}`, async () => {
        const work = await sharedWork(`shared-work-${writer}`, writer);
        const memberPages = await Promise.all([openPage(), openPage(), openPage()]);
        await Promise.all([
          ...memberPages.map((page, i) => startPageMember(page, work.member(`page-${i}`))),
          startWorkerMember(work.member('worker')),
          startServiceWorkerMember(work.member('service-worker')),
        ]);
        const started = Date.now();
        const sent = await produceFromTwoPages(work, MESSAGES, 0);
        const records = reports.get(work.bus);
        await until(() => distinct(records) >= sent.length, handledTimeoutMs(sent.length), 'every message handled');
        console.log(`${engine} shared work: ${sent.length} messages handled in ${Date.now() - started} ms, by member ${JSON.stringify(countBy(records, (r) => r.member))}`);
        await Promise.all([...memberPages.map(stopPageMember), stopHostedMember('worker'), stopHostedMember('service-worker')]);
        await Promise.all(memberPages.map((page) => page.close()));

        assertAllHandled(sent, records);
        assert.deepEqual(partitionOrderViolations(records).slice(0, 10), []);
        assert.equal(records.length, sent.length, 'with no member killed, no message is handled twice');
        // Each of the five owned some of the 8 partitions, and every partition got work.
        assert.deepEqual(Object.keys(countBy(records, (r) => r.member)).sort(), ['page-0', 'page-1', 'page-2', 'service-worker', 'worker']);
      });

      test(`${engine}: chaos: member pages closed, crashed and opened while the group works lose nothing${mode}`, async () => {
        const work = await sharedWork(`chaos-${writer}`, writer);
        const startMember = (page, label) => startPageMember(page, work.member(label));
        const memberPages = await Promise.all(
          ['page-0', 'page-1', 'page-2'].map(async (label) => {
            const page = await openPage();
            await startMember(page, label);
            return { page, label };
          }),
        );
        await Promise.all([startWorkerMember(work.member('worker')), startServiceWorkerMember(work.member('service-worker'))]);
        const records = reports.get(work.bus);
        console.log(`${engine} chaos: seed ${CHAOS_SEED} (FERRY_CHAOS_SEED replays another)`);
        // The chaos goes on until every message was handled, so that every kill hits a
        // group at work; the producers pause between sends so that messages keep coming.
        const [sent, kills] = await Promise.all([
          produceFromTwoPages(work, CHAOS_MESSAGES, 100),
          chaos(engine, memberPages, startMember, prng(CHAOS_SEED), () => distinct(records) >= CHAOS_MESSAGES),
        ]);
        await until(() => distinct(records) >= sent.length, handledTimeoutMs(sent.length), 'every message handled');
        await Promise.all([...memberPages.map(({ page }) => stopPageMember(page)), stopHostedMember('worker'), stopHostedMember('service-worker')]);
        await Promise.all(memberPages.map(({ page }) => page.close()));

        // A killed member loses at most the acks of the runs it held, one per slot.
        const twice = records.length - distinct(records);
        const bound = kills.size * MEMBER_OPTIONS.concurrency * MEMBER_OPTIONS.maxBatchSize;
        console.log(`${engine} chaos: ${sent.length} messages, ${kills.size} members killed, ${twice} handled twice (at most ${bound}), ${records.filter((r) => r.attempt > 1).length} redelivered`);
        assert.ok(kills.size >= 3, `only ${kills.size} members killed before the group was done: too few to tell anything`);
        assertAllHandled(sent, records);
        assert.deepEqual(partitionOrderViolations(records, kills).slice(0, 10), []);
        assert.ok(twice <= bound, `${twice} messages handled twice, more than ${kills.size} kills x concurrency ${MEMBER_OPTIONS.concurrency} x maxBatchSize ${MEMBER_OPTIONS.maxBatchSize}`);
      });
    }

    test(`${engine}: a partition moves to the other member page when its owner closes, before the owner's session would run out`, async () => {
      const bus = newBus('failover');
      const topic = 'stream';
      await createTopic(host, bus, topic, 2);
      const [a, b, producer] = await Promise.all([openPage(), openPage(), openPage()]);
      const member = (label) => ({ bus, topic, groupId: 'failover', label });
      await Promise.all([startPageMember(a, member('a')), startPageMember(b, member('b'))]);
      // A steady stream into both partitions, so that the owner is closed mid-stream.
      const producing = producePage(producer, { bus, topic, from: 'producer', count: 400, batch: 2, pauseMs: 10 });
      const records = reports.get(bus);
      await until(() => records.length >= 10, 10_000, 'the stream to flow');
      const { partition, member: owner } = records[0];
      const survivor = owner === 'a' ? 'b' : 'a';

      const closedAt = Date.now();
      await (owner === 'a' ? a : b).close();
      const takenOver = () => records.find((r) => r.partition === partition && r.member === survivor && r.start >= closedAt);
      await until(takenOver, 15_000, `${survivor} to handle partition ${partition}`);
      const failoverMs = takenOver().start - closedAt;
      console.log(`${engine} failover: partition ${partition} went from ${owner} to ${survivor} ${failoverMs} ms after close()`);
      await producing;
      await stopPageMember(owner === 'a' ? b : a);
      await Promise.all([a, b, producer].filter((page) => !page.isClosed()).map((page) => page.close()));

      // The closed page's Web Lock tells the survivor at once: without it the move
      // waits for the session to run out (sessionTimeoutMs, 10 s by default). How
      // fast is for benches/contexts.mjs to say; a loaded machine makes it slower.
      assert.ok(failoverMs < SESSION_TIMEOUT_MS, `failover took ${failoverMs} ms: the owner's session ran out before anyone noticed it was gone`);
      assert.deepEqual(partitionOrderViolations(records, new Map([[owner, closedAt]])).slice(0, 10), []);
    });

    test(`${engine}: a page closed in the middle of a run: its message in flight comes back with one more attempt, the rest of the run as it was`, async () => {
      const bus = newBus('mid-run');
      const topic = 'run';
      await createTopic(host, bus, topic, 1);
      const [a, b, producer] = await Promise.all([openPage(), openPage(), openPage()]);
      // A short heartbeat: the acks before a slow message are stored within one.
      const member = (label, hangAtOffset) => ({ bus, topic, groupId: 'runs', label, hangAtOffset, options: { ackTimeoutMs: 60_000, heartbeatIntervalMs: 100 } });
      await startPageMember(a, member('a', 3));
      await startPageMember(b, member('b'));
      const sent = sentBy('producer', await producePage(producer, { bus, topic, from: 'producer', count: 10, batch: 10 }));
      const records = reports.get(bus);
      const committed = () => host.evaluate(async (bus) => {
        const b = await window.ferry.Bus.open({ name: bus });
        const stats = await b.stats();
        await b.close();
        return stats.groups[0].partitions[0].committedOffset;
      }, bus);
      // One member holds the partition's run of 10; it handles 0 to 2 and hangs at 3.
      await until(() => records.some((r) => r.offset === 3), 10_000, 'the run to reach offset 3');
      const owner = records.find((r) => r.offset === 3).member;
      const survivor = owner === 'a' ? 'b' : 'a';
      if (owner === 'b') throw new Error('b took the partition first: its member has no hang');
      const deadline = Date.now() + 10_000;
      for (let stored = await committed(); stored < 3; stored = await committed()) {
        if (Date.now() > deadline) throw new Error(`the acks of offsets 0 to 2 were not stored: committed offset ${stored}`);
        await sleep(20);
      }

      const closedAt = Date.now();
      await a.close();
      await until(() => records.some((r) => r.member === survivor && r.offset === 9), 15_000, `${survivor} to finish the run`);
      await stopPageMember(b);
      await Promise.all([b, producer].map((page) => page.close()));

      const after = records.filter((r) => r.member === survivor).map((r) => [r.offset, r.attempt]);
      assert.deepEqual(after, [[3, 2], [4, 1], [5, 1], [6, 1], [7, 1], [8, 1], [9, 1]], 'only the message in flight counts an attempt');
      assert.deepEqual(records.filter((r) => r.member === owner).map((r) => r.offset), [0, 1, 2, 3]);
      assertAllHandled(sent, records);
      assert.deepEqual(partitionOrderViolations(records, new Map([[owner, closedAt]])).slice(0, 10), []);
    });

    test(`${engine}: two groups in two pages each get every message a third page produces`, async () => {
      const bus = newBus('fan-out');
      const topic = 'events';
      await createTopic(host, bus, topic, 4);
      const [billing, shipping, producer] = await Promise.all([openPage(), openPage(), openPage()]);
      await Promise.all([
        startPageMember(billing, { bus, topic, groupId: 'billing', label: 'billing' }),
        startPageMember(shipping, { bus, topic, groupId: 'shipping', label: 'shipping' }),
      ]);
      const sent = sentBy('producer', await producePage(producer, { bus, topic, from: 'producer', count: 200, batch: 20, keys: KEYS }), KEYS);
      const records = reports.get(bus);
      const ofGroup = (groupId) => records.filter((r) => r.groupId === groupId);
      await until(() => distinct(ofGroup('billing')) >= sent.length && distinct(ofGroup('shipping')) >= sent.length, 30_000, 'both groups to handle everything');
      await Promise.all([billing, shipping].map(stopPageMember));
      await Promise.all([billing, shipping, producer].map((page) => page.close()));

      for (const groupId of ['billing', 'shipping']) {
        assertAllHandled(sent, ofGroup(groupId));
        assert.equal(ofGroup(groupId).length, sent.length, `${groupId} handled a message twice`);
      }
    });

    test(`${engine}: three pages and a dedicated worker sending at once to one partition get gapless offsets`, async () => {
      const bus = newBus('producers');
      const topic = 'log';
      const count = 150;
      const pages = await Promise.all([openPage(), openPage(), openPage()]);
      // Different batch sizes, so that the contexts' sends interleave unevenly.
      const metadata = await Promise.all([
        ...pages.map((page, i) => producePage(page, { bus, topic, from: `page-${i}`, count, batch: [1, 7, 30][i] })),
        produceInWorker({ bus, topic, from: 'worker', count, batch: 3 }),
      ]);
      const sent = metadata.flatMap((m, i) => sentBy(i < 3 ? `page-${i}` : 'worker', m));
      assert.deepEqual(
        sent.map((m) => m.offset).sort((x, y) => x - y),
        Array.from({ length: 4 * count }, (_, i) => i),
        'offsets 0 to n-1, each once',
      );
      assert.ok(sent.every((m) => m.partition === 0 && !m.duplicate));

      await startPageMember(pages[0], { bus, topic, groupId: 'audit', label: 'audit' });
      const records = reports.get(bus);
      await until(() => distinct(records) >= sent.length, 30_000, 'everything read back');
      await stopPageMember(pages[0]);
      await Promise.all(pages.map((page) => page.close()));

      assertAllHandled(sent, records);
      assert.equal(records.length, sent.length, 'a message read back twice');
      assert.deepEqual(partitionOrderViolations(records), []);
    });
  });
}
