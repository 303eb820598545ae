// One page of the benchmarks across contexts: benches/contexts.mjs opens several of
// these in one browser context and calls the functions below through
// `window.contexts`. A page only does its part (send, echo, consume, record); every
// time comes from clock(), which the pages of one browser share, so a figure may
// start in one page and end in another.
import { Bus } from 'ferry';
import { DexieQueue } from './dexie-queue.js';

const VALUE_BYTES = 256;
/** The 256-byte value of the message or job `key`, so that each delivery can be checked against its place. */
const labelled = (key) => `${key}-`.padEnd(VALUE_BYTES, 'v');
/** The key of a message by where it must be: partition and offset. */
const messageKey = (partition, offset) => `${partition}:${offset}`;

/** Milliseconds since the epoch with sub-millisecond resolution, the same in every page. */
const clock = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What this page opened, closed again by reset() so that one page serves many runs. */
const opened = [];

function keep(closable) {
  opened.push(closable);
  return closable;
}

async function reset() {
  for (const closable of opened.splice(0)) await closable.close();
}

/**
 * Opens the bus `name` with `writer`: "each" (every page writes), "one" (a page
 * writes for the others: the first to open) or "shared" (one writer in a
 * SharedWorker, the default of Bus.open).
 */
const openBus = async (name, writer = 'each') => keep(await Bus.open({ name, writer: writer === 'each' ? 'each' : 'one', sharedWorker: writer === 'shared' }));

/** Resolves with the first message on `channel` that `accept` takes. */
function nextMessage(channel, accept) {
  return new Promise((resolve) => {
    const listener = ({ data }) => {
      if (!accept(data)) return;
      channel.removeEventListener('message', listener);
      resolve(data);
    };
    channel.addEventListener('message', listener);
  });
}

// --- Latency ---------------------------------------------------------------

/** The far end of the raw round trip: sends every message on `name` straight back. */
function echo(name) {
  const channel = keep(new BroadcastChannel(name));
  channel.onmessage = ({ data }) => channel.postMessage(data);
}

/**
 * Round trips (ms) of `count` messages, one at a time, to the page echoing on
 * `name`, after `warmUp` that are not counted.
 */
async function roundTrips(name, count, warmUp) {
  const channel = keep(new BroadcastChannel(name));
  const samples = [];
  for (let seq = 0; seq < warmUp + count; seq++) {
    const back = nextMessage(channel, (n) => n === seq);
    const start = clock();
    channel.postMessage(seq);
    await back;
    samples.push(clock() - start);
  }
  return samples.slice(warmUp);
}

/** Opens the bus `name` with `writer` and keeps it open: a page that only writes for the others. */
async function host(name, writer) {
  await openBus(name, writer);
}

/** Consumes a new one-partition `topic`, telling the sender on `reportTo` how long each message took. */
async function reportLatency(busName, topic, reportTo, writer) {
  const bus = await openBus(busName, writer);
  await bus.createTopic(topic, { partitions: 1 });
  const channel = keep(new BroadcastChannel(reportTo));
  const consumer = bus.consumer({ groupId: 'latency' });
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => channel.postMessage({ seq: message.value.seq, ms: clock() - message.value.sentAt }),
  });
}

/**
 * Publishes `warmUp + count` messages, each once the previous one was handled;
 * resolves to the latencies (ms) of the last `count`.
 */
async function publishOneAtATime(busName, topic, reportTo, count, warmUp, writer) {
  const bus = await openBus(busName, writer);
  const channel = keep(new BroadcastChannel(reportTo));
  const samples = [];
  for (let seq = 0; seq < warmUp + count; seq++) {
    // Listening before sending: the report may come before publish resolves.
    const handled = nextMessage(channel, (report) => report.seq === seq);
    await bus.publish(topic, { seq, sentAt: clock() });
    samples.push((await handled).ms);
  }
  return samples.slice(warmUp);
}

// --- Consumers: ferry's group members and the Dexie queue's workers --------------

/**
 * This page's consumer: `start(record, label)` runs it, calling record(key, value,
 * where) for each delivery; what it handled (key -> when first), its deliveries and
 * the keys whose value was not theirs.
 */
let member = null;

const newMember = (start) => ({ start, handled: new Map(), deliveries: 0, lastAt: 0, wrong: [], log: null });

/** Opens the bus (with `writer`, "each" by default) and subscribes a consumer, without running it yet. */
async function prepareMember(busName, topic, options, writer) {
  const bus = await openBus(busName, writer);
  const consumer = bus.consumer(options);
  await consumer.subscribe({ topic, fromBeginning: true });
  member = newMember((record) =>
    consumer.run({
      eachMessage: async ({ partition, message }) =>
        record(messageKey(partition, message.offset), message.value, { partition, offset: message.offset }),
    }),
  );
}

/** Opens the Dexie queue `name` and makes its worker this page's consumer, without starting it yet. */
async function prepareJobWorker(name) {
  const queue = keep(await DexieQueue.open(name));
  member = newMember((record, label) => queue.work(label, (job) => record(job.key, job.value)));
}

/**
 * Starts the prepared consumer; resolves to when it was started and when it was
 * running (for ferry, once it joined its group). With `logTo`,
 * every delivery is also told to the page collecting on that channel, so that what
 * a page handled just before it was closed is not lost with it.
 */
async function startMember(label, logTo) {
  const m = member;
  m.log = logTo ? keep(new BroadcastChannel(logTo)) : null;
  const startedAt = clock();
  await m.start((key, value, where) => {
    const at = clock();
    m.deliveries++;
    if (value !== labelled(key)) m.wrong.push(key);
    if (!m.handled.has(key)) m.handled.set(key, at);
    m.lastAt = at;
    m.log?.postMessage({ label, ...where, at });
  }, label);
  return { startedAt, runningAt: clock() };
}

const progress = () => ({ handled: member.handled.size, deliveries: member.deliveries, lastAt: member.lastAt, wrong: member.wrong.slice(0, 10) });
/** [key, when first handled] of everything this page's consumer handled. */
const handledKeys = () => [...member.handled];

// --- Preload and flow (producer side) ------------------------------------------

/**
 * Calls `store(items)` with `count` items made by `item(i)`, 100 at a time (a send
 * or one transaction each); resolves to the keys of all of them.
 */
async function inHundreds(count, item, store) {
  const keys = [];
  for (let i = 0; i < count; i += 100) {
    const items = [];
    for (let j = i; j < Math.min(count, i + 100); j++) items.push(item(j));
    await store(items);
    keys.push(...items.map((it) => it.key));
  }
  return keys;
}

/**
 * Stores `count` labelled messages in a new topic, pinned round-robin to its
 * partitions; resolves to their keys (partition:offset).
 */
async function preload(busName, topic, partitions, count) {
  const bus = await Bus.open({ name: busName, writer: 'each' });
  await bus.createTopic(topic, { partitions });
  const producer = bus.producer();
  const message = (i) => {
    const partition = i % partitions;
    const key = messageKey(partition, Math.floor(i / partitions));
    return { key, partition, value: labelled(key) };
  };
  // The bench's key stays out of the message: ferry would take it for a partitioning key.
  const send = (items) => producer.send({ topic, messages: items.map(({ partition, value }) => ({ partition, value })) });
  const keys = await inHundreds(count, message, send);
  await bus.close();
  return keys;
}

/** Stores `count` labelled jobs in the Dexie queue `name`; resolves to their keys. */
async function preloadJobs(name, count) {
  const queue = await DexieQueue.open(name);
  const job = (i) => ({ key: `job:${i}`, value: labelled(`job:${i}`) });
  const keys = await inHundreds(count, job, (jobs) => queue.add(jobs));
  await queue.close();
  return keys;
}

let flow = null;

/**
 * Sends one message to every partition of a new topic every `intervalMs` until
 * stopFlow(), and collects what the members log on `logFrom`.
 */
async function startFlow(busName, topic, partitions, intervalMs, logFrom) {
  const bus = await openBus(busName);
  await bus.createTopic(topic, { partitions });
  const log = [];
  keep(new BroadcastChannel(logFrom)).onmessage = ({ data }) => log.push(data);
  const f = { bus, log, running: true, sent: 0 };
  f.done = (async () => {
    const producer = bus.producer();
    while (f.running) {
      // Send n puts offset n on every partition.
      const messages = Array.from({ length: partitions }, (_, partition) => ({ value: labelled(messageKey(partition, f.sent)), partition }));
      await producer.send({ topic, messages });
      f.sent++;
      await sleep(intervalMs);
    }
  })();
  flow = f;
}

/** Stops the flow; resolves to how many messages each partition received. */
async function stopFlow() {
  flow.running = false;
  await flow.done;
  return flow.sent;
}

/** The member owning each partition of the flow's group now, and when that was read. */
async function owners() {
  const stats = await flow.bus.stats();
  return { owners: stats.groups[0]?.partitions.map((p) => p.owner) ?? [], at: clock() };
}

// --- Raw Web Lock handoff (the failover's baseline) ----------------------------

/** Resolves once this page holds the lock `name`, which it keeps until it is closed. */
function holdLock(name) {
  return new Promise((held) =>
    navigator.locks.request(name, () => {
      held();
      return new Promise(() => {});
    }),
  );
}

let lockGrantedAt = null;

/** Asks for the lock `name`; it is granted here once the page holding it is gone. */
function awaitLock(name) {
  lockGrantedAt = null;
  navigator.locks.request(name, () => {
    lockGrantedAt = clock();
  });
}

const lockGranted = () => lockGrantedAt;

// --- Writer handover (writer "one") --------------------------------------------------

let publishing = null;

/** Opens the bus `name` with writer "one" and publishes to 'handover', one message at a time, noting when each resolved, until publishGap. */
async function keepPublishing(name) {
  const bus = await openBus(name, 'one');
  await bus.createTopic('handover');
  const state = { stop: false, resolvedAt: [] };
  publishing = state;
  (async () => {
    while (!state.stop) {
      await bus.publish('handover', 'x');
      state.resolvedAt.push(clock());
    }
  })();
}

/**
 * Once publishes resolved for `windowMs` after `since`, stops publishing; resolves
 * to the longest wait between two publishes resolving, from the last before
 * `since` on: how long the page was kept waiting.
 */
async function publishGap(since, windowMs) {
  const giveUpAt = clock() + 60_000;
  while (!(publishing.resolvedAt.at(-1) > since + windowMs)) {
    if (clock() > giveUpAt) throw new Error('no publish resolved for a minute');
    await sleep(1);
  }
  publishing.stop = true;
  const times = publishing.resolvedAt;
  const from = Math.max(0, times.findIndex((at) => at > since) - 1);
  let gap = 0;
  for (let i = from + 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
  return gap;
}

/** What the members logged of the flow, handled after `since`. */
const flowLog = (since) => flow.log.filter((entry) => entry.at > since);

/**
 * Opens the bus `name` with `writer` ("one" or "each"); once `startAt` (clock())
 * comes, publishes `count` single messages to 'sends' all at once. Resolves to
 * when they started and when the last one resolved.
 */
async function produce(name, writer, count, startAt) {
  const bus = await openBus(name, writer);
  await sleep(Math.max(0, startAt - clock()));
  const started = clock();
  await Promise.all(Array.from({ length: count }, (_, i) => bus.publish('sends', labelled(i))));
  return { started, ended: clock() };
}

/** Messages stored in 'sends' of the bus `name`, as its stats say. */
async function sendsStored(name) {
  const bus = await openBus(name);
  return (await bus.stats()).topics.find((t) => t.topic === 'sends').partitions.reduce((n, p) => n + p.highOffset, 0);
}

window.contexts = {
  clock,
  host,
  produce,
  sendsStored,
  reset,
  echo,
  roundTrips,
  reportLatency,
  publishOneAtATime,
  prepareMember,
  prepareJobWorker,
  startMember,
  progress,
  handledKeys,
  preload,
  preloadJobs,
  startFlow,
  stopFlow,
  owners,
  flowLog,
  holdLock,
  awaitLock,
  lockGranted,
  keepPublishing,
  publishGap,
};
document.title = 'ready';
