// Runs www/bench-contexts.html in several pages of one headless Chromium context
// sharing a bus, and prints what crossing contexts costs: latency beside a raw
// BroadcastChannel round trip between the same pages, throughput of 4 consumer
// pages beside 1 (ferry's ordered and unordered consumers, and beside them a job
// queue on Dexie that the same pages share, www/dexie-queue.js), failover after a
// closed tab, 4 producer pages beside 1, and the handover of writer "one" after
// the writer's tab closed. Figures only: nothing here fails on timing; it fails
// when a message is lost, altered, misplaced or, under partition ordering,
// handled out of order.
// `node benches/contexts.mjs [section ...]` after `make pkg` (sections at the end).
import { serve } from '../www/serve.mjs';
import { launch } from '../tests/js/browsers.mjs';

const LATENCY_MESSAGES = 1000;
const WARM_UP = 50;
const THROUGHPUT_MESSAGES = 5000;
const THROUGHPUT_PARTITIONS = 8;
const THROUGHPUT_RUNS = 5;
const FAILOVER_RUNS = 10;
const HANDOVER_RUNS = 10;
// How long after the close the publishes are watched for the longest wait.
const HANDOVER_WINDOW_MS = 500;
const FLOW_PARTITIONS = 2;
// Producer pages: each publishes this many single messages at once.
const PRODUCER_SENDS = 1000;
const PRODUCER_RUNS = 3;
// The browser alone takes tens of milliseconds to release a closed page's locks,
// so at this rate a message of its partition is already waiting when the other
// member takes over: the figure is the failover, not the wait for the next send.
// (A much faster flow makes failover slower: every commit then queues behind it.)
const FLOW_INTERVAL_MS = 10;
// How long the flow runs after the owners settled, before the tab is closed.
const FLOW_BEFORE_CLOSE_MS = 200;
// Waiting this long for something means it is lost or stuck, not slow.
const GIVE_UP_MS = 60_000;
// After the flow stops, the surviving member handles the rest within this.
const CATCH_UP_MS = 5000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const percentile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];
const median = (xs) => percentile(xs, 0.5);
const unique = (label) => `bench-${label}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
/** Node's clock on the pages' scale: epoch milliseconds, sub-millisecond. */
const nodeClock = () => performance.timeOrigin + performance.now();

/** Calls `window.contexts[name](...args)` in `page`. */
const call = (page, name, ...args) => page.evaluate(([name, args]) => window.contexts[name](...args), [name, args]);

async function openPage(context, url) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${url}/www/bench-contexts.html`);
  await page.waitForFunction(() => document.title === 'ready');
  return page;
}

/** Polls `check` until it returns something truthy, and returns that. */
async function until(what, check, intervalMs = 10) {
  const giveUpAt = Date.now() + GIVE_UP_MS;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > giveUpAt) throw new Error(`gave up after ${GIVE_UP_MS / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * p50 and p99 (ms) of raw round trips and of ferry's publish -> eachMessage, A to
 * B: with writer "each" (A and B write), with writer "one" where a third page W,
 * which opened the bus first, writes for both (A -> W -> B), and with the
 * default, where the SharedWorker A starts writes for both.
 */
async function latency(a, b, w) {
  const channel = unique('echo');
  await call(b, 'echo', channel);
  const roundTrip = await call(a, 'roundTrips', channel, LATENCY_MESSAGES, WARM_UP);
  const spread = (xs) => ({ p50: percentile(xs, 0.5), p99: percentile(xs, 0.99) });
  const out = { roundTrip: spread(roundTrip) };
  for (const writer of ['each', 'one', 'shared']) {
    const [bus, reports] = [unique('latency'), unique('reports')];
    if (writer === 'one') await call(w, 'host', bus, writer);
    await call(b, 'reportLatency', bus, 'latency', reports, writer);
    out[writer] = spread(await call(a, 'publishOneAtATime', bus, 'latency', reports, LATENCY_MESSAGES, WARM_UP, writer));
    await Promise.all([a, b, w].map((page) => call(page, 'reset')));
  }
  return out;
}

/**
 * The consumers the throughput case compares, each on THROUGHPUT_MESSAGES preloaded
 * 256-byte messages: `preload(page, name)` resolves to the keys stored, `prepare`
 * readies one page's consumer; `ordered` ones must handle each partition in order.
 */
const CONSUMERS = {
  ordered: {
    label: 'ferry, "partition" ordering, concurrency 8, "each"',
    ordered: true,
    preload: (page, name) => call(page, 'preload', name, 'work', THROUGHPUT_PARTITIONS, THROUGHPUT_MESSAGES),
    // No `ordering`: the default is what is measured; every page writes.
    prepare: (page, name) => call(page, 'prepareMember', name, 'work', { groupId: 'work', concurrency: 8 }),
  },
  orderedOne: {
    label: 'ferry, the same with writer "one", a page writes',
    ordered: true,
    preload: (page, name) => call(page, 'preload', name, 'work', THROUGHPUT_PARTITIONS, THROUGHPUT_MESSAGES),
    prepare: (page, name) => call(page, 'prepareMember', name, 'work', { groupId: 'work', concurrency: 8 }, 'one'),
  },
  orderedShared: {
    label: 'ferry, the same, the writer in a SharedWorker (the default)',
    ordered: true,
    preload: (page, name) => call(page, 'preload', name, 'work', THROUGHPUT_PARTITIONS, THROUGHPUT_MESSAGES),
    prepare: (page, name) => call(page, 'prepareMember', name, 'work', { groupId: 'work', concurrency: 8 }, 'shared'),
  },
  unordered: {
    label: 'ferry, ordering "none", concurrency 100, "each"',
    ordered: false,
    preload: (page, name) => call(page, 'preload', name, 'work', THROUGHPUT_PARTITIONS, THROUGHPUT_MESSAGES),
    prepare: (page, name) => call(page, 'prepareMember', name, 'work', { groupId: 'work', ordering: 'none', concurrency: 100 }),
  },
  dexie: {
    label: 'Dexie job queue, claims of 100 (unordered)',
    ordered: false,
    preload: (page, name) => call(page, 'preloadJobs', name, THROUGHPUT_MESSAGES),
    prepare: (page, name) => call(page, 'prepareJobWorker', name),
  },
};

/** Once every preloaded message was handled in one of `pages` (duplicates across pages not counted), their progress and when each message was first handled; else null. */
async function allHandled(pages) {
  const progress = await Promise.all(pages.map((p) => call(p, 'progress')));
  if (sum(progress.map((p) => p.handled)) < THROUGHPUT_MESSAGES) return null;
  const handled = await firstHandled(pages);
  return handled.size >= THROUGHPUT_MESSAGES ? { progress, handled } : null;
}

/** Key -> when it was first handled in any of `pages`. */
async function firstHandled(pages) {
  const handled = new Map();
  for (const entries of await Promise.all(pages.map((p) => call(p, 'handledKeys')))) {
    for (const [key, at] of entries) handled.set(key, Math.min(at, handled.get(key) ?? Infinity));
  }
  return handled;
}

/**
 * Throws unless exactly the `stored` keys were handled, each with its own value,
 * and (when `ordered`) each partition's offsets first handled in offset order.
 */
function checkHandled(what, stored, { progress, handled }, ordered) {
  const wrong = progress.flatMap((p) => p.wrong);
  if (wrong.length) throw new Error(`${what}: delivered with another message's value: ${wrong.join(' ')}`);
  const unknown = [...handled.keys()].filter((key) => !stored.has(key));
  if (unknown.length || handled.size !== stored.size) throw new Error(`${what}: handled ${handled.size} of ${stored.size} stored, ${unknown.length} never stored: ${unknown.slice(0, 10).join(' ')}`);
  if (!ordered) return;
  const byPartition = new Map();
  for (const [key, at] of handled) {
    const [partition, offset] = key.split(':').map(Number);
    byPartition.set(partition, [...(byPartition.get(partition) ?? []), { offset, at }]);
  }
  for (const [partition, list] of byPartition) {
    list.sort((a, b) => a.offset - b.offset);
    const early = list.find((e, i) => i > 0 && e.at < list[i - 1].at);
    if (early) throw new Error(`${what}: partition ${partition} offset ${early.offset} first handled before the offset ahead of it`);
  }
}

/**
 * Messages per second for `consumer` spread over `pages`, from the first start to
 * the last message handled, and how many deliveries were repeats.
 */
async function throughput(consumer, pages) {
  const name = unique('throughput');
  const stored = new Set(await consumer.preload(pages[0], name));
  await Promise.all(pages.map((p) => consumer.prepare(p, name)));
  const starts = await Promise.all(pages.map((p, i) => call(p, 'startMember', `page${i}`, null)));
  const firstStart = Math.min(...starts.map((s) => s.startedAt));
  const result = await until(`every preloaded message handled (${consumer.label}, ${pages.length} pages)`, () => allHandled(pages), 20);
  await Promise.all(pages.map((p) => call(p, 'reset')));
  checkHandled(`${consumer.label}, ${pages.length} pages`, stored, result, consumer.ordered);
  const ms = Math.max(...result.progress.map((p) => p.lastAt)) - firstStart;
  // How much of it the pages spent starting (ferry: joining the group, rebalancing as the others join).
  const startingMs = Math.max(...starts.map((s) => s.runningAt)) - firstStart;
  return { rate: (THROUGHPUT_MESSAGES / ms) * 1000, ms, startingMs, repeats: sum(result.progress.map((p) => p.deliveries)) - THROUGHPUT_MESSAGES };
}

/**
 * Median rate of 1 and of 4 consumer pages for each of CONSUMERS, runs interleaved
 * so that drift over the process hits them all alike.
 */
async function throughputs(pages) {
  const runs = Object.fromEntries(Object.keys(CONSUMERS).map((name) => [name, { one: [], four: [] }]));
  for (let i = 0; i < THROUGHPUT_RUNS; i++) {
    for (const [name, consumer] of Object.entries(CONSUMERS)) {
      runs[name].one.push(await throughput(consumer, pages.slice(0, 1)));
      runs[name].four.push(await throughput(consumer, pages.slice(0, 4)));
    }
  }
  const summary = (rs) => ({
    rate: median(rs.map((r) => r.rate)),
    ms: median(rs.map((r) => r.ms)),
    startingMs: median(rs.map((r) => r.startingMs)),
    repeats: sum(rs.map((r) => r.repeats)),
  });
  return Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, { one: summary(r.one), four: summary(r.four) }]));
}

/** The pages' clock minus Node's, from the exchange with the shortest round trip. */
async function clockOffset(page) {
  let best = { roundTrip: Infinity, offset: 0 };
  for (let i = 0; i < 20; i++) {
    const before = nodeClock();
    const theirs = await call(page, 'clock');
    const after = nodeClock();
    if (after - before < best.roundTrip) best = { roundTrip: after - before, offset: theirs - (before + after) / 2 };
  }
  return best.offset;
}

/** The label of the page handling partition 0 once each member owns one partition. */
async function ownerOfPartition0(producer) {
  const bothOwn = ({ owners }) => owners.length === FLOW_PARTITIONS && owners.every(Boolean) && new Set(owners).size === FLOW_PARTITIONS;
  const { at } = await until('each member owning a partition', async () => {
    const o = await call(producer, 'owners');
    return bothOwn(o) && o;
  });
  await sleep(FLOW_BEFORE_CLOSE_MS);
  const handled = (await call(producer, 'flowLog', at)).filter((e) => e.partition === 0);
  if (handled.length === 0) throw new Error(`partition 0 not handled within ${FLOW_BEFORE_CLOSE_MS} ms of the rebalance`);
  return handled.at(-1).label;
}

/** `partition:offset` of the `sentPerPartition` messages of each partition not in `log`. */
function missingFrom(log, sentPerPartition) {
  const seen = new Set(log.map((e) => `${e.partition}:${e.offset}`));
  const partitions = Array.from({ length: FLOW_PARTITIONS }, (_, p) => p);
  const all = partitions.flatMap((p) => Array.from({ length: sentPerPartition }, (_, offset) => `${p}:${offset}`));
  return all.filter((key) => !seen.has(key));
}

/** The flow's messages no member was seen handling once the survivor caught up. */
async function unhandled(producer, sentPerPartition) {
  const giveUpAt = Date.now() + CATCH_UP_MS;
  for (;;) {
    const missing = missingFrom(await call(producer, 'flowLog', 0), sentPerPartition);
    if (missing.length === 0 || Date.now() > giveUpAt) return missing;
    await sleep(50);
  }
}

/**
 * One failover: two member pages share a flow on two partitions; the page owning
 * partition 0 is closed. Resolves to the time (ms) until the other page handles a
 * message of partition 0, the time until a raw Web Lock the closed page held is
 * granted in another page (the browser's own notice, ferry's floor), and what was
 * never handled.
 */
async function failover(context, url, producer, offset) {
  const [bus, log, lock] = [unique('failover'), unique('log'), unique('alive')];
  const pages = { x: await openPage(context, url), y: await openPage(context, url) };
  // The topic must have its two partitions before a member joins (and so creates it).
  await call(producer, 'startFlow', bus, 'flow', FLOW_PARTITIONS, FLOW_INTERVAL_MS, log);
  for (const [label, page] of Object.entries(pages)) {
    await call(page, 'prepareMember', bus, 'flow', { groupId: 'flow' });
    await call(page, 'startMember', label, log);
  }
  const closing = await ownerOfPartition0(producer);
  const survivor = closing === 'x' ? 'y' : 'x';
  await call(pages[closing], 'holdLock', lock);
  await call(producer, 'awaitLock', lock);
  const closedAt = nodeClock() + offset;
  await pages[closing].close();
  const next = await until(`page ${survivor} handling partition 0 after page ${closing} closed`, async () =>
    (await call(producer, 'flowLog', closedAt)).find((e) => e.label === survivor && e.partition === 0),
  );
  const lockAt = await until('the closed page\'s lock granted', () => call(producer, 'lockGranted'));
  const sent = await call(producer, 'stopFlow');
  const missing = await unhandled(producer, sent);
  await call(pages[survivor], 'reset');
  await pages[survivor].close();
  await call(producer, 'reset');
  return { ms: next.at - closedAt, lockMs: lockAt - closedAt, missing };
}

async function failovers(context, url, producer) {
  const offset = await clockOffset(producer);
  const runs = [];
  for (let i = 0; i < FAILOVER_RUNS; i++) runs.push(await failover(context, url, producer, offset));
  return runs;
}

/**
 * HANDOVER_RUNS times: a new page writes a bus (writer "one") that page `client`
 * publishes to, one message at a time; the writer's page closes. The longest the
 * client waited between two publishes resolving (the last writer's, then the
 * next writer's: the client itself), beside a raw Web Lock the closed page held
 * being granted to the client.
 */
async function handovers(context, url, client) {
  const offset = await clockOffset(client);
  const runs = [];
  for (let i = 0; i < HANDOVER_RUNS; i++) {
    const [bus, lock] = [unique('handover'), unique('alive')];
    const writer = await openPage(context, url);
    await call(writer, 'host', bus, 'one');
    await call(client, 'keepPublishing', bus);
    await call(writer, 'holdLock', lock);
    await call(client, 'awaitLock', lock);
    await sleep(50);
    const closedAt = nodeClock() + offset;
    await writer.close();
    const gapMs = await call(client, 'publishGap', closedAt, HANDOVER_WINDOW_MS);
    const lockAt = await until('the closed page\'s lock granted', () => call(client, 'lockGranted'));
    runs.push({ ms: gapMs, lockMs: lockAt - closedAt });
    await call(client, 'reset');
  }
  return runs;
}

/**
 * 1 or 4 pages each publishing PRODUCER_SENDS single messages at once, with
 * `writer` "each" (every page writes IndexedDB), "one" (one page runs every
 * page's calls) or "shared" (a SharedWorker does): messages per second from the first send to the last result,
 * median of PRODUCER_RUNS runs.
 */
async function producers(pages) {
  const out = {};
  for (const writer of ['each', 'one', 'shared']) {
    out[writer] = {};
    for (const n of [1, 4]) {
      const rates = [];
      for (let run = 0; run < PRODUCER_RUNS; run++) {
        const name = unique(`producers-${writer}-${n}`);
        const startAt = nodeClock() + 500;
        const spans = await Promise.all(pages.slice(0, n).map((page) => call(page, 'produce', name, writer, PRODUCER_SENDS, startAt)));
        const stored = await call(pages[0], 'sendsStored', name);
        if (stored !== n * PRODUCER_SENDS) throw new Error(`producers, writer ${writer}, ${n} pages: ${stored} stored of ${n * PRODUCER_SENDS}`);
        const ms = Math.max(...spans.map((s) => s.ended)) - Math.min(...spans.map((s) => s.started));
        rates.push((n * PRODUCER_SENDS * 1000) / ms);
        for (const page of pages) await call(page, 'reset');
      }
      out[writer][n] = median(rates);
    }
  }
  return out;
}

const ms = (n) => `${n.toFixed(2).padStart(6)} ms`;
const rate = (n) => Math.round(n).toLocaleString('en-US').padStart(8);
const x = (n, base) => `${(n / base).toFixed(2)}x`;
const column = 54;

function reportLatency(lat) {
  console.log(`  latency, page A publish -> page B eachMessage, 1-partition topic, ${LATENCY_MESSAGES.toLocaleString('en-US')} messages one at a time`);
  console.log(`    raw BroadcastChannel round trip A -> B -> A  p50 ${ms(lat.roundTrip.p50)}  p99 ${ms(lat.roundTrip.p99)}  (baseline)`);
  console.log(`    ferry, writer "each": A and B write          p50 ${ms(lat.each.p50)}  p99 ${ms(lat.each.p99)}  (baseline)`);
  const floor = '(floor p50 <= 3 ms and <= 0.50x, p99 <= 10 ms)';
  console.log(`    ferry, writer "one": page W writes for both  p50 ${ms(lat.one.p50)}  p99 ${ms(lat.one.p99)}  ${x(lat.one.p50, lat.each.p50)} of "each" at p50  ${floor}`);
  console.log(`    ferry, the default: a SharedWorker writes    p50 ${ms(lat.shared.p50)}  p99 ${ms(lat.shared.p99)}  ${x(lat.shared.p50, lat.each.p50)} of "each" at p50  ${floor}`);
}

function reportThroughput(tput) {
  console.log(
    `  throughput, ${THROUGHPUT_MESSAGES.toLocaleString('en-US')} preloaded 256-byte messages (ferry: ${THROUGHPUT_PARTITIONS} partitions), ` +
      `one group of 1 or 4 consumer pages, median of ${THROUGHPUT_RUNS} runs each; every message checked handled, repeats counted`,
  );
  console.log(`    ${''.padEnd(column)}        1 page       4 pages  4 vs 1`);
  for (const [name, { label }] of Object.entries(CONSUMERS)) {
    const { one, four } = tput[name];
    const floor = name === 'orderedOne' || name === 'orderedShared' ? '  (floor >= 1.00x)' : '';
    const repeats = one.repeats + four.repeats;
    const starting = (r) => `${Math.round(r.startingMs)} of ${Math.round(r.ms)} ms`;
    console.log(`    ${label.padEnd(column)}${rate(one.rate)} msg/s${rate(four.rate)} msg/s  ${x(four.rate, one.rate)}${floor}  ${repeats} repeats  (starting took ${starting(one)}, 4 pages ${starting(four)})`);
  }
  for (const name of ['ordered', 'orderedOne', 'orderedShared', 'unordered']) {
    const [ferry, dexie] = [tput[name], tput.dexie];
    const label = `${CONSUMERS[name].label.replace(/, concurrency.*/, '')} vs the Dexie queue`;
    console.log(`    ${label.padEnd(column)}${x(ferry.one.rate, dexie.one.rate).padStart(14)}${x(ferry.four.rate, dexie.four.rate).padStart(14)}`);
  }
}

const medianSpread = (xs) => `median ${ms(median(xs))}  (min ${ms(Math.min(...xs)).trim()}, max ${ms(Math.max(...xs)).trim()})`;

function reportFailover(fail) {
  console.log(`  failover, 2 member pages, ${FLOW_PARTITIONS} partitions, a message to each every ${FLOW_INTERVAL_MS} ms; close the page owning partition 0, ${FAILOVER_RUNS} runs`);
  console.log(`    close -> a raw Web Lock it held granted in another page  ${medianSpread(fail.map((r) => r.lockMs))}  (baseline)`);
  console.log(`    close -> next message of partition 0 handled elsewhere   ${medianSpread(fail.map((r) => r.ms))}`);
  const missing = fail.flatMap((r, i) => (r.missing.length ? [`run ${i + 1}: ${r.missing.join(' ')}`] : []));
  if (missing.length) console.log(`    never seen handled (partition:offset): ${missing.join('; ')}`);
}

function reportHandover(runs) {
  console.log(`  handover, writer "one": the writer's page closes while another page publishes one message at a time, ${HANDOVER_RUNS} runs`);
  console.log(`    close -> a raw Web Lock it held granted in the other page  ${medianSpread(runs.map((r) => r.lockMs))}  (baseline)`);
  console.log(`    the other page's longest wait between two publishes         ${medianSpread(runs.map((r) => r.ms))}  (floor median <= 300 ms)`);
}

function reportProducers(prod) {
  console.log(`  producers: 1 or 4 pages, each publishing ${PRODUCER_SENDS.toLocaleString('en-US')} single 256-byte messages at once, median of ${PRODUCER_RUNS} runs`);
  console.log(`    ${''.padEnd(column)}        1 page       4 pages  4 vs 1`);
  const modes = [
    ['each', 'writer "each": every page writes (baseline)'],
    ['one', 'writer "one": one page runs every page\'s calls'],
    ['shared', 'the default: a SharedWorker runs them'],
  ];
  for (const [writer, label] of modes) {
    const { 1: one, 4: four } = prod[writer];
    const floor = writer === 'each' ? '' : '  (floor >= 1.50x)';
    console.log(`    ${label.padEnd(column)}${rate(one)} msg/s${rate(four)} msg/s  ${x(four, one)}${floor}`);
  }
}

// `node benches/contexts.mjs [latency] [throughput] [failover] [producers] [handover]`: the
// sections named, or all of them.
const SECTIONS = {
  latency: { run: (pages) => latency(pages[0], pages[1], pages[2]), report: reportLatency },
  throughput: { run: (pages) => throughputs(pages), report: reportThroughput },
  failover: { run: (pages, context, url) => failovers(context, url, pages[0]), report: reportFailover },
  producers: { run: (pages) => producers(pages), report: reportProducers },
  handover: { run: (pages, context, url) => handovers(context, url, pages[0]), report: reportHandover },
};
const chosen = process.argv.slice(2);
const unknown = chosen.filter((name) => !SECTIONS[name]);
if (unknown.length) throw new Error(`unknown sections ${unknown.join(', ')}: choose from ${Object.keys(SECTIONS).join(', ')}`);

const server = await serve();
const browser = await launch();
try {
  // One context: the pages share an origin's IndexedDB, BroadcastChannels and Web Locks.
  const context = await browser.newContext();
  const pages = [];
  for (let i = 0; i < 4; i++) pages.push(await openPage(context, server.url));
  const results = [];
  for (const name of chosen.length ? chosen : Object.keys(SECTIONS)) results.push([name, await SECTIONS[name].run(pages, context, server.url)]);
  console.log('ferry across pages of one headless Chromium context (IndexedDB bus, BroadcastChannel wake-ups, Web Locks failover)');
  for (const [name, result] of results) SECTIONS[name].report(result);
} finally {
  await browser.close();
  await server.close();
}
