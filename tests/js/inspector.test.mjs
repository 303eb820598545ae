// The inspector (pkg/entry/inspector.js, www/inspector.html) in headless Chromium. With
// the orders demo open in two tabs, the inspector in a third shows what bus.stats()
// says in that tab (depth, committed offsets, lag, owners), and the owners moving when
// a tab closes. On a bus of its own, driven from the inspector page: redrive from the
// inspector moves dead letters back once, browsing moves no group, purge (after its
// confirm step) empties the dead-letter topic. An edge bus (the demo's, in workerd) is
// shown beside the local bus, with its dead letters and pull member; it redrives over
// HTTP, and refuses without the token. Every layout is checked at 1280×800 and 390×844
// for overflow, and screenshots of the demo's are written to target/screenshots/.
//
// The inspector's numbers are read from its data-* hooks, never from its text; every
// wait polls with a generous timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { serve } from '../../www/serve.mjs';
import { launch } from './browsers.mjs';

const SCREENSHOTS = fileURLToPath(new URL('../../target/screenshots/', import.meta.url));
const WIDE = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const run = `${process.pid}-${Date.now()}`;

let server;
let browser;
// One context: the demo tabs and the inspector share the origin's IndexedDB. It is
// new, so the demo's bus ferry-demo starts empty.
let context;

before(async () => {
  server = await serve(0, { edge: false });
  browser = await launch('chromium');
  context = await browser.newContext({ viewport: WIDE });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns something truthy (or `{ ok: true, ... }`); resolves to that. */
async function until(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await check();
    if (last && (typeof last !== 'object' || !('ok' in last) || last.ok)) return last;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 3000)}`);
    await sleep(250);
  }
}

async function openPage(path, { viewport } = {}) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on('pageerror', (e) => console.error(`page error (${path}):`, e));
  await page.goto(`${server.url}${path}`);
  return page;
}

/**
 * In the inspector page: the first inspector's numbers (from its data-* hooks) and the
 * same numbers from bus.stats() of a bus `name` opened in that page, keyed alike.
 */
function shownAndStats(page, name) {
  return page.evaluate(async (name) => {
    const { Bus } = await import('ferry');
    window.checkBus ??= await Bus.open({ name });
    const root = document.querySelector('ferry-inspector').shadowRoot;
    const shown = {};
    for (const td of root.querySelectorAll('[data-part="topics"] td[data-field][data-topic][data-partition]')) {
      if (['low', 'high', 'depth'].includes(td.dataset.field)) shown[`topic ${td.dataset.topic}/${td.dataset.partition} ${td.dataset.field}`] = Number(td.dataset.value);
    }
    for (const tr of root.querySelectorAll('[data-part="groups"] tr[data-group][data-partition]')) {
      const at = `group ${tr.dataset.group} ${tr.dataset.topic}/${tr.dataset.partition}`;
      for (const field of ['committed', 'lag']) shown[`${at} ${field}`] = Number(tr.querySelector(`td[data-field="${field}"]`).dataset.value);
      shown[`${at} owner`] = tr.querySelector('td[data-owned="true"]')?.dataset.member ?? '';
    }
    const stats = await window.checkBus.stats();
    const expected = {};
    for (const t of stats.topics) {
      for (const p of t.partitions) {
        expected[`topic ${t.topic}/${p.partition} low`] = p.lowOffset;
        expected[`topic ${t.topic}/${p.partition} high`] = p.highOffset;
        expected[`topic ${t.topic}/${p.partition} depth`] = p.depth;
      }
    }
    for (const g of stats.groups) {
      for (const p of g.partitions) {
        const at = `group ${g.groupId} ${g.topic}/${p.partition}`;
        expected[`${at} committed`] = p.committedOffset;
        expected[`${at} lag`] = p.lag;
        expected[`${at} owner`] = p.owner ?? '';
      }
    }
    return { shown, expected, stats };
  }, name);
}

/** The owner shown for each group partition of the first inspector: "group topic/partition" -> member id ('' for none). */
function shownOwners(page) {
  return page.evaluate(() => {
    const root = document.querySelector('ferry-inspector').shadowRoot;
    return Object.fromEntries(
      [...root.querySelectorAll('[data-part="groups"] tr[data-group][data-partition]')].map((tr) => [
        `${tr.dataset.group} ${tr.dataset.topic}/${tr.dataset.partition}`,
        tr.querySelector('td[data-owned="true"]')?.dataset.member ?? '',
      ]),
    );
  });
}

/** Stats of the bus `name` from the page (the bus opened there once). */
function statsIn(page, name) {
  return page.evaluate(async (name) => {
    const { Bus } = await import('ferry');
    window.checkBus ??= await Bus.open({ name });
    return window.checkBus.stats();
  }, name);
}

/**
 * Every element in each inspector's shadow root fits in its parent's box
 * horizontally (a scroller, overflow-x auto or scroll, must fit; what is inside it
 * may scroll), each inspector fits its parent, and the page has no horizontal scroll.
 */
function overflows(page) {
  return page.evaluate(() => {
    const problems = [];
    const name = (el) => {
      const classes = (el.getAttribute('class') ?? '').trim();
      const data = Object.keys(el.dataset ?? {}).length ? JSON.stringify({ ...el.dataset }) : '';
      return `${el.tagName.toLowerCase()}${classes ? `.${classes.split(/\s+/).join('.')}` : ''}${data}`;
    };
    const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    for (const host of document.querySelectorAll('ferry-inspector')) {
      const hostBox = host.getBoundingClientRect();
      const hostParent = host.parentElement.getBoundingClientRect();
      if (hostBox.right > hostParent.right + 1) problems.push(`ferry-inspector right ${hostBox.right} > ${hostParent.right}`);
      for (const el of host.shadowRoot.querySelectorAll('*')) {
        if (el.tagName === 'STYLE') continue;
        const box = el.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        let parent = el.parentElement;
        let inScroller = false;
        for (let up = parent; up; up = up.parentElement) if (scrolls(up)) inScroller = true;
        if (inScroller) continue;
        const parentBox = (parent ?? host).getBoundingClientRect();
        if (box.right > parentBox.right + 1) problems.push(`${name(el)} right ${box.right.toFixed(1)} > parent ${name(parent ?? host)} right ${parentBox.right.toFixed(1)}`);
      }
    }
    const { scrollWidth } = document.documentElement;
    if (scrollWidth > innerWidth) problems.push(`the page scrolls sideways: scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
    return problems;
  });
}

/** Waits until the inspector's layout settled, then asserts nothing overflows. */
async function assertFits(page, where) {
  // A layout may still be settling (a refresh rendering): the check passes once.
  let problems = [];
  await until(async () => (problems = await overflows(page)).length === 0 || { ok: false, problems }, `${where}: nothing overflowing`, 10_000).catch(() => {});
  assert.deepEqual(problems.slice(0, 20), [], `${where}: elements overflow their parents`);
}

describe('the inspector on the orders demo', () => {
  let tab1;
  let tab2;
  let inspector;

  /** The demo tab's own label and its worker's member ids (fulfilment's and billing's), from the tabs' channel. */
  async function tabMembers(tab) {
    const label = await tab.locator('#tab').textContent();
    const announced = () =>
      tab1.evaluate(
        () =>
          new Promise((resolve) => {
            const channel = new BroadcastChannel('ferry-demo:tabs');
            const seen = {};
            channel.onmessage = ({ data }) => {
              if (data?.tab) seen[data.tab] = data.members;
            };
            channel.postMessage('who');
            setTimeout(() => {
              channel.close();
              resolve(seen);
            }, 500);
          }),
      );
    const { seen } = await until(async () => {
      const seen = await announced();
      return { ok: seen[label]?.length === 2, seen };
    }, `${label} to announce its members`, 30_000);
    return seen[label];
  }

  before(async () => {
    tab1 = await openPage('/www/index.html');
    tab2 = await openPage('/www/index.html');
    for (const tab of [tab1, tab2]) {
      await until(() => tab.locator('#log li', { hasText: 'worker: fulfilment and billing are running' }).count(), 'the demo worker to start');
    }
  });

  test('with orders placed in two demo tabs, a third tab inspecting shows what bus.stats() says there', async () => {
    await tab1.click('#place10');
    inspector = await openPage('/www/inspector.html');
    const { stats } = await until(async () => {
      const { shown, expected, stats } = await shownAndStats(inspector, 'ferry-demo');
      const placed = stats.topics.find((t) => t.topic === 'order.placed')?.partitions.reduce((n, p) => n + p.highOffset, 0) ?? 0;
      const groups = new Set(stats.groups.map((g) => g.groupId));
      return { ok: placed >= 10 && groups.has('billing') && groups.has('fulfilment') && isDeepStrictEqual(shown, expected), shown, expected, stats };
    }, 'the inspector to show what bus.stats() says');
    assert.equal(stats.topics.find((t) => t.topic === 'order.placed').partitions.length, 4);
    // Members: each of stats' members, with its kind of context (the demo's consumers run in a dedicated worker).
    const rows = (stats) => stats.members.map((m) => [m.groupId, m.memberId, m.context]).sort((a, b) => `${a}`.localeCompare(`${b}`));
    await until(async () => {
      const shown = await inspector.locator('ferry-inspector [data-part="members"] tr[data-member]').evaluateAll((trs) => trs.map((tr) => [tr.dataset.group, tr.dataset.member, tr.querySelector('[data-field="context"]').dataset.value]));
      const expected = rows(await statsIn(inspector, 'ferry-demo'));
      shown.sort((a, b) => `${a}`.localeCompare(`${b}`));
      return { ok: expected.length === 4 && isDeepStrictEqual(shown, expected) && expected.every(([, , context]) => context === 'worker'), shown, expected };
    }, 'the members shown as bus.stats() lists them');
    // The header states its own load.
    const load = await inspector.locator('ferry-inspector [data-field="load"]').textContent();
    assert.match(load, /stats every 1 s; wake-ups at most 4\/s/);
  });

  test('the owners move in the inspector when a demo tab closes', async () => {
    const members1 = await tabMembers(tab1);
    const members2 = await tabMembers(tab2);
    // Tab 2 holds some partitions of each group before it goes.
    await until(async () => {
      const owners = await shownOwners(inspector);
      const held = (group) => Object.entries(owners).some(([at, owner]) => at.startsWith(`${group} `) && members2.includes(owner));
      return { ok: held('billing') && held('fulfilment'), owners, members2 };
    }, "tab 2's members to own partitions of both groups");

    await tab2.close();
    const owners = await until(async () => {
      const owners = await shownOwners(inspector);
      return { ok: Object.keys(owners).length === 8 && Object.values(owners).every((owner) => members1.includes(owner)), owners, members1 };
    }, "every partition owned by tab 1's members");
    console.log(`owners after tab 2 closed: ${JSON.stringify(owners.owners)}`);
    // And what it shows is still what bus.stats() says.
    await until(async () => {
      const { shown, expected } = await shownAndStats(inspector, 'ferry-demo');
      return { ok: isDeepStrictEqual(shown, expected), shown, expected };
    }, 'the inspector to show what bus.stats() says after the move');
  });

  test('the inspector fits 1280×800 and 390×844, and screenshots of it are written', async () => {
    // Orders over a few seconds, for the charts to show some traffic; each order whose
    // number ends in 7 is dead-lettered after 5 attempts with backoff.
    for (let round = 0; round < 3; round++) {
      await tab1.click('#place10');
      await sleep(1500);
    }
    await until(async () => (await inspector.locator('ferry-inspector [data-dlq] [data-dead-letter]').count()) >= 2, 'dead letters listed');
    await mkdir(SCREENSHOTS, { recursive: true });
    for (const viewport of [WIDE, PHONE]) {
      await inspector.setViewportSize(viewport);
      await assertFits(inspector, `${viewport.width}×${viewport.height}`);
      await inspector.screenshot({ path: `${SCREENSHOTS}inspector-${viewport.width}x${viewport.height}.png` });
    }
    await inspector.setViewportSize(WIDE);
  });

  test("the demo page's tables fit at 1280×800 and 390×844: no cell's text runs over the next", async () => {
    for (const viewport of [WIDE, PHONE]) {
      await tab1.setViewportSize(viewport);
      const problems = () =>
        tab1.evaluate(() => {
          const problems = [];
          for (const table of document.querySelectorAll('main table')) {
            const section = table.closest('section').getBoundingClientRect();
            if (table.getBoundingClientRect().right > section.right + 1) problems.push(`#${table.id} is wider than its section`);
            for (const cell of table.querySelectorAll('td, th')) {
              if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`#${table.id} ${cell.className || cell.tagName}: "${cell.textContent}" runs out of its cell`);
            }
          }
          const [left, right] = [...document.querySelectorAll('main > section')].map((s) => s.getBoundingClientRect());
          if (right && right.top < left.bottom && right.left < left.right) problems.push('the two sections overlap');
          if (document.documentElement.scrollWidth > innerWidth) problems.push('the page scrolls sideways');
          return problems;
        });
      // The tables render every half second: the check passes once they have rows.
      await until(async () => (await tab1.locator('#groups tbody tr').count()) > 0, 'the demo tables filled');
      let found = [];
      await until(async () => (found = await problems()).length === 0, `the demo at ${viewport.width}×${viewport.height} to fit`, 10_000).catch(() => {});
      assert.deepEqual(found.slice(0, 10), [], `the demo at ${viewport.width}×${viewport.height}: ${found.join("; ")}`);
    }
    await tab1.setViewportSize(WIDE);
  });

  after(async () => {
    await Promise.all([tab1, tab2, inspector].filter((page) => page && !page.isClosed()).map((page) => page.close()));
  });
});

describe('the inspector on a bus of its own', () => {
  const BUS = `inspector-${run}`;
  const TOPIC = 'payments';
  const DLQ = 'payments.dlq';
  const SENT = 40;
  // Every 8th payment is declined: 5 dead letters.
  const DECLINED = 5;
  let page;
  let inspector;

  const sumHigh = (stats, topic) => stats.topics.find((t) => t.topic === topic)?.partitions.reduce((n, p) => n + p.highOffset, 0) ?? 0;
  const result = async () => {
    const el = inspector.locator(`[data-dlq="${DLQ}"] [data-field="result"]`);
    return (await el.count()) ? { kind: await el.getAttribute('data-kind'), value: await el.getAttribute('data-value'), text: await el.textContent() } : null;
  };

  /**
   * Runs billing in the inspector page itself until every payment sent is handled:
   * the declined ones fail their one attempt and are dead-lettered. Then it stops, so
   * that nothing but the inspector's actions moves the bus.
   */
  async function bill(deadLettered) {
    await page.evaluate(async (topic) => {
      const consumer = window.checkBus.consumer({ groupId: 'billing', retry: { maxAttempts: 1 } });
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          if (message.value.declined) throw new Error(`card ${message.key} declined by the issuer`);
        },
      });
      window.consumer = consumer;
    }, TOPIC);
    await until(async () => {
      const stats = await statsIn(page, BUS);
      const billing = stats.groups.find((g) => g.groupId === 'billing' && g.topic === TOPIC);
      return { ok: billing?.deadLettered === deadLettered && billing.partitions.every((p) => p.lag === 0 && p.inFlight === 0), billing };
    }, `${deadLettered} payments dead-lettered`);
    await page.evaluate(() => window.consumer.stop());
  }

  before(async () => {
    page = await openPage(`/www/inspector.html?bus=${BUS}`);
    inspector = page.locator('ferry-inspector').first();
    await page.evaluate(
      async ({ name, topic, sent }) => {
        const { Bus } = await import('ferry');
        window.checkBus = await Bus.open({ name });
        // Kept a day, consumed or not, so that there is something to browse.
        await window.checkBus.createTopic(topic, { partitions: 2, retentionMs: 86_400_000 });
        const messages = Array.from({ length: sent }, (_, n) => ({ key: `card-${n}`, value: { n, amount: 10 + n, declined: n % 8 === 3 }, headers: { source: 'test' } }));
        await window.checkBus.producer().send({ topic, messages });
      },
      { name: BUS, topic: TOPIC, sent: SENT },
    );
    await bill(DECLINED);
  });

  after(() => page?.close());

  test('redrive from the inspector moves the dead letters back exactly once', async () => {
    const letters = inspector.locator(`[data-dlq="${DLQ}"] [data-dead-letter]`);
    await until(async () => (await letters.count()) === DECLINED, 'the dead letters listed');
    const reasons = await inspector.locator(`[data-dlq="${DLQ}"] [data-field="error"]`).allTextContents();
    assert.ok(reasons.every((r) => /^card card-\d+ declined by the issuer$/.test(r)), JSON.stringify(reasons));
    assert.equal(sumHigh(await statsIn(page, BUS), TOPIC), SENT);

    // "Redrive selected" with one that is not the first of its partition: a redriven
    // dead letter stays (marked) until those before it are redriven or purged too.
    const rows = await letters.evaluateAll((rows) => rows.map((r) => [Number(r.dataset.partition), Number(r.dataset.offset)]));
    const chosen = rows.find(([partition, offset]) => rows.some(([p, o]) => p === partition && o < offset));
    assert.ok(chosen, `5 dead letters in 2 partitions: one partition has two (${JSON.stringify(rows)})`);
    await inspector.locator(`[data-dlq="${DLQ}"] input[data-select="${chosen.join(':')}"]`).check();
    await inspector.locator(`[data-dlq="${DLQ}"] [data-action="redrive-selected"]`).click();
    await until(result, 'the redrive of the chosen one to answer');
    assert.deepEqual(await result(), { kind: 'redrive', value: '1', text: '1 moved back' });
    const marked = inspector.locator(`[data-dlq="${DLQ}"] [data-dead-letter][data-redriven="true"]`);
    await until(async () => (await marked.count()) === 1, 'the redriven one shown as redriven');
    assert.deepEqual([Number(await marked.getAttribute('data-partition')), Number(await marked.getAttribute('data-offset'))], chosen);
    assert.equal(await marked.locator('input').count(), 0, 'a redriven dead letter cannot be chosen');
    assert.equal(sumHigh(await statsIn(page, BUS), TOPIC), SENT + 1);

    // "Redrive all": the rest.
    await inspector.locator(`[data-dlq="${DLQ}"] [data-action="redrive-all"]`).click();
    await until(async () => (await result())?.value === String(DECLINED - 1), 'the rest moved back');
    assert.equal(sumHigh(await statsIn(page, BUS), TOPIC), SENT + DECLINED, 'the source topic grew by exactly the number redriven');
    await until(async () => (await inspector.locator(`[data-dlq="${DLQ}"] [data-dead-letter][data-redriven="false"]`).count()) === 0, 'no dead letter left to redrive');

    // Again: nothing moves.
    await inspector.locator(`[data-dlq="${DLQ}"] [data-action="redrive-all"]`).click();
    await until(async () => (await result())?.value === '0', 'the second redrive to answer');
    assert.deepEqual(await result(), { kind: 'redrive', value: '0', text: '0 moved back' });
    assert.equal(sumHigh(await statsIn(page, BUS), TOPIC), SENT + DECLINED, 'a second redrive moves nothing');
    const left = await page.evaluate(
      async (dlq) => (await Promise.all([0, 1].map((partition) => window.checkBus.browse({ topic: dlq, partition, limit: 100 })))).flatMap((p) => p.messages.map((m) => m.redriven)),
      DLQ,
    );
    assert.ok(left.every((redriven) => redriven), `every dead letter still stored is redriven: ${JSON.stringify(left)}`);
  });

  test('browsing messages in the inspector never moves a group', async () => {
    const committed = (stats) => stats.groups.flatMap((g) => g.partitions.map((p) => [`${g.groupId} ${g.topic}/${p.partition}`, p.committedOffset, p.inFlight]));
    const before = committed(await statsIn(page, BUS));
    assert.ok(before.length >= 2);
    const messages = inspector.locator('[data-part="messages"]');
    await messages.locator('select[data-control="topic"]').selectOption(TOPIC);
    await messages.locator('select[data-control="group"]').selectOption('billing');
    await messages.locator('input[data-control="limit"]').fill('5');

    // The page shown is bus.browse's, page after page.
    const shownPage = () => messages.locator('[data-message]').evaluateAll((rows) => rows.map((row) => [Number(row.dataset.offset), Number(row.querySelector('[data-field="attempt"]').dataset.value)]));
    const browsed = (partition, offset) =>
      page.evaluate(async (o) => (await window.checkBus.browse(o)).messages.map((m) => [m.offset, m.attempt]), { topic: TOPIC, partition, offset, limit: 5, groupId: 'billing' });
    const expectPage = async (partition, offset, what) => {
      const expected = await browsed(partition, offset);
      assert.ok(expected.length > 0, `${what}: partition ${partition} has messages at ${offset}`);
      await until(async () => {
        const shown = await shownPage();
        return { ok: isDeepStrictEqual(shown, expected), shown, expected };
      }, what, 30_000);
    };
    for (const partition of [0, 1]) {
      await messages.locator('select[data-control="partition"]').selectOption(String(partition));
      await messages.locator('input[data-control="offset"]').fill('0');
      await messages.locator('[data-action="from"]').click();
      await expectPage(partition, 0, `partition ${partition} from 0`);
      await messages.locator('[data-action="newer"]').click();
      await expectPage(partition, 5, `partition ${partition}, newer`);
      await messages.locator('[data-action="newer"]').click();
      await expectPage(partition, 10, `partition ${partition}, newer again`);
      await messages.locator('[data-action="older"]').click();
      await expectPage(partition, 5, `partition ${partition}, older`);
      await messages.locator('input[data-control="offset"]').fill('2');
      await messages.locator('[data-action="from"]').click();
      await expectPage(partition, 2, `partition ${partition} from 2`);
    }
    // A short value is previewed whole.
    const value = await messages.locator('[data-message] .value').first().textContent();
    assert.match(value, /^\{"n":\d+,"amount":\d+,"declined":(true|false)\}$/);
    assert.deepEqual(committed(await statsIn(page, BUS)), before, 'browsing moved a committed offset');
  });

  test('purge asks first, then empties the dead-letter topic', async () => {
    // The redriven payments are declined again: dead letters to purge.
    await bill(2 * DECLINED);
    const block = inspector.locator(`[data-dlq="${DLQ}"]`);
    await until(async () => (await block.locator('[data-dead-letter][data-redriven="false"]').count()) === DECLINED, 'the new dead letters listed');
    const dlqDepth = async () => (await statsIn(page, BUS)).topics.find((t) => t.topic === DLQ).partitions.reduce((n, p) => n + p.depth, 0);
    assert.equal(await dlqDepth(), DECLINED);
    await block.locator('[data-action="purge"]').click();
    assert.match(await block.locator('[data-actions]').textContent(), new RegExp(`Purge ${DECLINED} message\\(s\\) of payments\\.dlq\\?`));
    // Cancel purges nothing.
    await block.locator('[data-action="purge-cancel"]').click();
    await block.locator('[data-action="purge"]').waitFor();
    assert.equal(await dlqDepth(), DECLINED);

    await block.locator('[data-action="purge"]').click();
    await block.locator('[data-action="purge-confirm"]').click();
    await until(async () => (await result())?.kind === 'purge', 'the purge to answer');
    assert.deepEqual(await result(), { kind: 'purge', value: String(DECLINED), text: `${DECLINED} purged` });
    const stats = await statsIn(page, BUS);
    for (const p of stats.topics.find((t) => t.topic === DLQ).partitions) {
      assert.equal(p.depth, 0);
      assert.equal(p.lowOffset, p.highOffset);
    }
    await until(async () => {
      const depths = await inspector.locator(`[data-part="topics"] td[data-topic="${DLQ}"][data-field="depth"]`).evaluateAll((cells) => cells.map((c) => Number(c.dataset.value)));
      return { ok: depths.length === 2 && depths.every((d) => d === 0), depths };
    }, 'the inspector to show the dead-letter topic empty');
    await until(async () => (await block.locator('[data-dead-letter]').count()) === 0, 'no dead letter listed');
  });
});

describe('the inspector on an edge, in workerd', () => {
  // The demo's edge (examples/workers in local workerd through Miniflare, at /edge/ on
  // the demo's origin), whose handleHttp wants the demo's token. Its dead letters are
  // made over HTTP: three parcels received by the group shipping and failed once each.
  const TOKEN = 'ferry-demo-token';
  const TOPIC = `parcels-${process.pid}`;
  const DLQ = `${TOPIC}.dlq`;
  let edgeServer;
  let page;

  /** One request to the edge's /v1/ API from this process, with `token`; resolves to `{ status, body }`. */
  async function edgeApi(path, { method = 'GET', body, token = TOKEN } = {}) {
    const headers = { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) };
    const response = await fetch(`${edgeServer.url}/edge${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  }
  const edgeStats = async () => (await edgeApi('/v1/stats')).body;
  const sumHigh = (stats, topic) => stats.topics.find((t) => t.topic === topic)?.partitions.reduce((n, p) => n + p.highOffset, 0) ?? 0;

  before(async () => {
    edgeServer = await serve(0, { edge: true });
    const sent = await edgeApi(`/v1/topics/${TOPIC}/messages`, { method: 'POST', body: { messages: ['ada', 'alan', 'grace'].map((to) => ({ key: 'one-partition', value: { to } })) } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const leased = await edgeApi(`/v1/topics/${TOPIC}/receive`, { method: 'POST', body: { group: 'shipping', fromBeginning: true, ordering: 'none', retry: { maxAttempts: 1 }, max: 10 } });
    assert.equal(leased.body.messages.length, 3, JSON.stringify(leased.body));
    const failed = await edgeApi('/v1/acks', { method: 'POST', body: { receipts: leased.body.messages.map(({ receipt }) => ({ receipt, error: 'no such address' })) } });
    assert.deepEqual(failed.body.results, [true, true, true]);
    await until(async () => sumHigh(await edgeStats(), DLQ) === 3, 'the three parcels dead-lettered at the edge');
  });

  after(async () => {
    await page?.close();
    await edgeServer?.close();
  });

  /** The inspector page of the edge server, a local bus beside the edge's, with `token`. */
  async function openWithEdge(token, viewport = WIDE) {
    const opened = await context.newPage();
    await opened.setViewportSize(viewport);
    opened.on('pageerror', (e) => console.error('page error (edge):', e));
    await opened.goto(`${edgeServer.url}/www/inspector.html?bus=inspector-edge-${run}&edge=/edge&token=${token}`);
    return opened;
  }

  test('an edge bus shows beside the local one: its stats, dead letters and pull member; it redrives over HTTP, each one once', async () => {
    page = await openWithEdge(TOKEN);
    const edge = page.locator('ferry-inspector').nth(1);
    assert.equal(await edge.locator('[data-field="label"]').textContent(), `${edgeServer.url}/edge`);
    assert.match(await edge.locator('[data-field="load"]').textContent(), /stats every 1 s \(polls only\)/);

    // The topics' numbers are the edge's own stats.
    await until(async () => {
      const stats = await edgeStats();
      const shown = await edge.locator('[data-part="topics"] td[data-field="depth"][data-topic]').evaluateAll((cells) => cells.map((c) => `${c.dataset.topic}/${c.dataset.partition}=${c.dataset.value}`));
      const expected = stats.topics.flatMap((t) => t.partitions.map((p) => `${t.topic}/${p.partition}=${p.depth}`));
      return { ok: isDeepStrictEqual(shown.sort(), expected.sort()), shown, expected };
    }, 'the edge depths as its stats say');
    const card = edge.locator(`[data-part="topics"] [data-topic-card][data-topic="${DLQ}"]`);
    assert.equal(await card.getAttribute('data-dead-letter-topic'), 'true');

    // The dead letters, each with its reason; the group's pull member, as an edge pull.
    const letters = edge.locator(`[data-dlq="${DLQ}"] [data-dead-letter]`);
    await until(async () => (await letters.count()) === 3, 'the edge dead letters listed');
    assert.deepEqual(await edge.locator(`[data-dlq="${DLQ}"] [data-field="error"]`).allTextContents(), ['no such address', 'no such address', 'no such address']);
    const pull = edge.locator('[data-part="members"] tr[data-group="shipping"][data-member="pull"]');
    await until(() => pull.count(), 'the pull member listed');
    assert.equal(await pull.locator('[data-field="context"]').textContent(), 'edge pull');

    // The second of the partition, chosen, moves back once; then the rest.
    const [partition] = await letters.evaluateAll((rows) => rows.map((r) => Number(r.dataset.partition)));
    const high = sumHigh(await edgeStats(), TOPIC);
    await edge.locator(`[data-dlq="${DLQ}"] input[data-select="${partition}:1"]`).check();
    await edge.locator(`[data-dlq="${DLQ}"] [data-action="redrive-selected"]`).click();
    const result = edge.locator(`[data-dlq="${DLQ}"] [data-field="result"]`);
    await until(async () => (await result.getAttribute('data-value').catch(() => null)) === '1', 'the chosen one moved back');
    assert.equal(sumHigh(await edgeStats(), TOPIC), high + 1);
    const marked = edge.locator(`[data-dlq="${DLQ}"] [data-dead-letter][data-redriven="true"]`);
    await until(async () => (await marked.count()) === 1, 'the redriven one marked');
    await edge.locator(`[data-dlq="${DLQ}"] [data-action="redrive-all"]`).click();
    await until(async () => (await result.getAttribute('data-value').catch(() => null)) === '2', 'the other two moved back');
    assert.equal(sumHigh(await edgeStats(), TOPIC), high + 3, 'each dead letter moved back once');
    await edge.locator(`[data-dlq="${DLQ}"] [data-action="redrive-all"]`).click();
    await until(async () => (await result.textContent().catch(() => null)) === '0 moved back', 'a second redrive to move nothing');
    assert.equal(sumHigh(await edgeStats(), TOPIC), high + 3);

    // Side by side on a wide screen, stacked on a phone, overflowing neither.
    const boxes = () => page.locator('ferry-inspector').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()));
    let [a, b] = await boxes();
    assert.ok(b.left >= a.right && Math.abs(a.top - b.top) < 1, `side by side at 1280: ${JSON.stringify([a, b])}`);
    await assertFits(page, 'local and edge at 1280×800');
    await page.setViewportSize(PHONE);
    await until(async () => {
      [a, b] = await boxes();
      return b.top >= a.bottom;
    }, 'the inspectors stacked on a phone', 10_000);
    await assertFits(page, 'local and edge at 390×844');
  });

  test("pkg/README.md's inspector example shows a bus of this browser and the edge's", async () => {
    const readme = await readFile(new URL('../../pkg/README.md', import.meta.url), 'utf8');
    const [, example] = readme.slice(readme.indexOf('## Inspector')).match(/```html\n([\s\S]*?)```/);
    // The example as an app serves it: the package from its node_modules, the edge at its own URL.
    const html = example.replaceAll('/node_modules/ferry/', '/pkg/').replace('https://shop.example.workers.dev', `${edgeServer.url}/edge`).replace('the-edge-token', TOKEN);
    const opened = await context.newPage();
    opened.on('pageerror', (e) => console.error('page error (README example):', e));
    await opened.route('**/readme-inspector.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><meta charset="utf-8">${html}` }));
    await opened.goto(`${edgeServer.url}/readme-inspector.html`);
    const [local, edge] = [0, 1].map((i) => opened.locator('ferry-inspector').nth(i));
    for (const inspector of [local, edge]) {
      await until(async () => (await inspector.locator('[data-part="status"]').getAttribute('data-state')) === 'live', 'the example inspector live');
    }
    assert.equal(await local.locator('[data-field="label"]').textContent(), 'shop (this browser)');
    assert.match(await edge.locator('[data-field="load"]').textContent(), /stats every 2 s/);
    await until(async () => (await edge.locator(`[data-part="topics"] [data-topic-card][data-topic="${DLQ}"]`).count()) === 1, 'the edge topics shown');
    await opened.close();
  });

  test('without the token the edge refuses every inspector route, and the inspector shows why', async () => {
    // Topics and groups: a member's session may run out meanwhile, which is no change a request made.
    const stored = async () => {
      const { topics, groups } = await edgeStats();
      return { topics, groups };
    };
    const before = await stored();
    for (const token of [null, 'wrong-token']) {
      for (const [method, path] of [
        ['GET', '/v1/stats'],
        ['GET', `/v1/topics/${DLQ}/messages?partition=0`],
        ['POST', `/v1/topics/${DLQ}/redrive`],
        ['POST', `/v1/topics/${DLQ}/purge`],
      ]) {
        const refused = await edgeApi(path, { method, token, body: method === 'POST' ? {} : undefined });
        assert.deepEqual([refused.status, refused.body.error?.code], [401, 'INVALID_ARGUMENT'], `${method} ${path} with ${token}`);
      }
    }
    assert.deepEqual(await stored(), before, 'the refused requests changed nothing');

    const refused = await openWithEdge('wrong-token');
    const edge = refused.locator('ferry-inspector').nth(1);
    const error = edge.locator('[data-part="error"]');
    await until(async () => (await error.isVisible()) && (await error.textContent()) !== '', 'the error shown');
    assert.equal(await error.textContent(), 'Authorization: Bearer <token> is missing or wrong');
    assert.equal(await error.getAttribute('data-code'), 'INVALID_ARGUMENT');
    assert.equal(await edge.locator('[data-part="status"]').getAttribute('data-state'), 'error');
    await refused.close();
  });
});
