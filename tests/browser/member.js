// The contexts of tests/js/shared-bus.test.mjs: a group member and a producer that
// run alike in a page, a dedicated worker (member-worker.js) and a module service
// worker (member-sw.js), and the message protocol a page uses to run them in the
// workers. No top-level await: module service workers forbid it.
import { Bus } from '/pkg/entry/browser.js';

/**
 * Joins `groupId` on `topic` of bus `bus` and hands `report` a record of every
 * message it handled. The handler awaits `report` before it resolves, so a message
 * is reported before it is acked: a message the group committed is never missing
 * from the reports. With `hangAtOffset`, the first attempt at that offset is
 * reported and then never ends (a context about to die mid-run). `writer` is
 * `Bus.open`'s ("each" when not given). Resolves, once
 * the member joined, to a function that stops it.
 */
export async function startMember({ bus: name, writer, topic, groupId, label, options = {}, hangAtOffset }, report) {
  const bus = await Bus.open({ name, writer });
  const consumer = bus.consumer({ groupId, ...options });
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const start = Date.now();
      // Yields once, so handlers of one member overlap (concurrency > 1) as real work would.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const { offset, key, value, attempt } = message;
      // [start, end] is the handler's work; it resolves, and is acked, only later.
      await report({ bus: name, groupId, member: label, partition, offset, key, value, attempt, start, end: Date.now() });
      if (offset === hangAtOffset && attempt === 1) await new Promise(() => {});
    },
  });
  return () => bus.close();
}

/**
 * Sends `count` messages `{ from, seq }` to `topic` in sends of up to `batch`, keyed
 * round robin over `keys` (none when empty), each send `pauseMs` after the last;
 * resolves to the metadata of every message, in order.
 */
export async function produce({ bus: name, writer, topic, from, count, batch, keys = [], pauseMs = 0 }) {
  const bus = await Bus.open({ name, writer });
  const producer = bus.producer();
  const sent = [];
  for (let seq = 0; seq < count; seq += batch) {
    const messages = [];
    for (let i = seq; i < Math.min(count, seq + batch); i++) {
      messages.push({ key: keys.length ? keys[i % keys.length] : null, value: { from, seq: i } });
    }
    sent.push(...(await producer.send({ topic, messages })));
    if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  await bus.close();
  return sent;
}

/**
 * Runs one request of a page in a worker: `{ task: 'produce', config }` answers
 * `{ done: metadata }`; `{ task: 'member', config }` answers `{ started }`, passes on
 * each record as `{ record }` with a port to confirm it on, and stops on `{ stop }`,
 * answering `{ done }`. Resolves when the request is over, so a service worker can
 * keep itself alive for a member's whole life.
 */
export async function serveRequest({ task, config }, port) {
  try {
    if (task === 'produce') {
      port.postMessage({ done: await produce(config) });
      return;
    }
    const stopped = new Promise((resolve) => (port.onmessage = ({ data }) => data.stop && resolve()));
    const stop = await startMember(config, (record) => relay(port, record));
    port.postMessage({ started: true });
    await stopped;
    await stop();
    port.postMessage({ done: true });
  } catch (e) {
    port.postMessage({ error: String(e?.stack ?? e) });
  }
}

/** Posts a record to the page and resolves once the page confirmed it. */
function relay(port, record) {
  const confirm = new MessageChannel();
  const confirmed = new Promise((resolve) => (confirm.port1.onmessage = resolve));
  port.postMessage({ record }, [confirm.port2]);
  return confirmed.then(() => confirm.port1.close());
}

/**
 * The page's side of `serveRequest`: posts `{ task, config }` to `target` (a worker
 * or a service worker), and passes each record it gets back to `report`, confirming
 * it once `report` resolved. `answer()` resolves to the next answer (`{ started }`,
 * `{ done }`) or rejects with the error the worker answered instead.
 */
function request(target, task, config, report) {
  const { port1: port, port2 } = new MessageChannel();
  let settle;
  const answer = () => new Promise((resolve, reject) => (settle = (data) => (data.error ? reject(new Error(data.error)) : resolve(data))));
  const first = answer();
  port.onmessage = async ({ data, ports: [confirm] }) => {
    if (!data.record) {
      settle(data);
      return;
    }
    await report(data.record);
    confirm.postMessage(null);
  };
  target.postMessage({ task, config }, [port2]);
  return { first, answer, port };
}

/** Starts a member in `target`; resolves once it joined, to an async `stop()`. */
export async function startMemberIn(target, config, report) {
  const { first, answer, port } = request(target, 'member', config, report);
  await first;
  return async () => {
    const stopped = answer();
    port.postMessage({ stop: true });
    await stopped;
  };
}

/** Runs `produce(config)` in `target`; resolves to its metadata. */
export async function produceIn(target, config) {
  return (await request(target, 'produce', config).first).done;
}
