// The offline-first order page (examples/offline-first) as `make demo` serves it, in
// each browser engine, against its edge (examples/workers in workerd, www/edge.mjs):
// orders placed with the edge switched off are kept on the device, survive the tab
// closing, and once the edge is back arrive there once each, each customer's in
// the order placed, and their statuses come back to the page over HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../www/serve.mjs';
import { DEMO_TOKEN } from '../../www/edge.mjs';
import { forEachEngine } from './browsers.mjs';

let server;

before(async () => {
  server = await serve(0, { edge: true });
});

after(() => server?.close());

/** Opens the example page in `openPage()`'s context, once it is ready. */
async function openExample(openPage) {
  const page = await openPage();
  await page.goto(`${server.url}/examples/offline-first/`);
  await page.waitForFunction(() => document.title.endsWith('(ready)'));
  return page;
}

/** Waits until `check()` is true, for at most 30 s. */
async function until(check, what, shown = async () => '') {
  const giveUpAt = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what} ${await shown()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The page's "On this device" figures and its orders table, `{ id: status }`. */
const view = (page) =>
  page.evaluate(() => ({
    local: Object.fromEntries([...document.querySelectorAll('#local dd')].map((dd) => [dd.dataset.field, dd.textContent])),
    statuses: Object.fromEntries([...document.querySelectorAll('#orders tbody tr')].map((tr) => [tr.id, tr.lastChild.textContent])),
  }));

/**
 * A consumer group of the edge topic `topic`, through the demo's /edge/: `read()`
 * gives what it has not had yet, acked. Joined before the messages come, it keeps
 * them at the edge (a topic keeps a message until every group has it) after the
 * example's own groups are done with them.
 */
async function edgeGroup(topic, group) {
  const post = async (path, body) => {
    const response = await fetch(`${server.url}/edge${path}`, { method: 'POST', headers: { authorization: `Bearer ${DEMO_TOKEN}` }, body: JSON.stringify(body) });
    assert.equal(response.status, 200, await response.clone().text());
    return response.json();
  };
  const read = async () => {
    const all = [];
    for (;;) {
      const { messages } = await post(`/v1/topics/${topic}/receive`, { group, fromBeginning: true, max: 100, ordering: 'none' });
      if (messages.length === 0) return all;
      all.push(...messages);
      await post('/v1/acks', { receipts: messages.map(({ receipt }) => ({ receipt })) });
    }
  };
  await read();
  return { read };
}

forEachEngine(() => server.url, (engine, openPage) => {
  test(`${engine}: orders placed with the edge off are kept, survive the tab, and arrive once each, in order per customer, when it is back`, async () => {
    await fetch(`${server.url}/edge-switch?offline=0`, { method: 'POST' });
    const check = await edgeGroup('order.placed', `check-${engine}`);
    const page = await openExample(openPage);
    await page.evaluate(() => document.getElementById('offline').click());
    await until(() => server.edge.offline, 'the edge switched off');
    // Placed through the form, as a user would: 12 orders of 3 customers.
    const customers = ['alice', 'bob', 'carol'];
    for (let i = 0; i < 12; i++) {
      await page.evaluate(
        ([customer, qty]) => {
          const form = document.getElementById('order');
          form.customer.value = customer;
          form.qty.value = String(qty);
          form.requestSubmit();
        },
        [customers[i % 3], (i % 9) + 1],
      );
    }
    await until(async () => Object.keys((await view(page)).statuses).length === 12, 'every order in the table');
    const placed = await page.evaluate(() => [...document.querySelectorAll('#orders tbody tr')].map((tr) => tr.id).reverse());
    await until(async () => {
      const { local } = await view(page);
      return local.pending === '12' && Number(local.failing) > 0 && local.lastError !== 'none';
    }, 'the orders priced and waiting to be forwarded, the bridge failing', async () => JSON.stringify((await view(page)).local));
    assert.ok(Object.values((await view(page)).statuses).every((s) => s === 'queued'));
    // The tab goes; what it placed is on the device, and the next tab's worker forwards it.
    await page.close();
    const next = await openExample(openPage);
    await next.evaluate(() => document.getElementById('offline').click());
    await until(() => !server.edge.offline, 'the edge switched on');
    await until(async () => {
      const { statuses } = await view(next);
      return placed.every((id) => statuses[id] === 'fulfilled');
    }, 'every order fulfilled, its status read back over HTTP', async () =>
      JSON.stringify([await view(next), await next.evaluate(async () => [document.getElementById('log').textContent, (await (await import('./app.js')).bus.stats()).groups.map((g) => [g.groupId, g.topic, g.partitions.map((p) => p.owner)])])]));
    await until(async () => (await view(next)).local.pending === '0', 'nothing left to forward');
    // At the edge: each order once, and each customer's in the order placed.
    const stored = (await check.read()).filter((m) => placed.includes(m.id));
    assert.deepEqual(stored.map((m) => m.id).sort(), [...placed].sort(), 'each order stored once');
    const byCustomer = new Map();
    for (const m of stored.sort((a, b) => a.partition - b.partition || a.offset - b.offset)) byCustomer.set(m.key, [...(byCustomer.get(m.key) ?? []), m.id]);
    for (const [customer, ids] of byCustomer) assert.deepEqual(ids, placed.filter((id) => ids.includes(id)), `${customer}'s orders in the order placed`);
    assert.ok(stored.every((m) => typeof m.value.total === 'number' && m.value.total > 0), 'priced by the worker');
    await next.close();
  });
});
