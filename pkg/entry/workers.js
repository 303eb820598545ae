// `ferry/workers`: the bus in Cloudflare Durable Objects. FerryObject is the
// object class (bind it as a SQLite-backed class). One instance, named after the
// bus, is its directory of topics; one instance serves each topic partition,
// named `${bus}/${topic}/${partition}`, so a topic's throughput grows with its
// partitions. connect() is the client a Worker uses: it routes each message with
// the engine's partitioner and fans reads out over the partitions. The engine (its
// own build, with the Durable Object face) is imported as a compiled module, as
// workerd requires, and instantiated on first use.
import { DurableObject } from 'cloudflare:workers';
import wasmModule from '../dist/edge/ferry_bg.wasm';
import { initSync, EdgeBus, checkConsumerOptions, pullPlan, routePublish, routeSend, seekPartition } from '../dist/edge/ferry.js';
import { FerryError } from './error.js';

export { FerryError };
export { handleHttp } from './workers-http.js';

let engineReady = false;
function loadEngine() {
  if (!engineReady) {
    initSync({ module: wasmModule });
    engineReady = true;
  }
}

// What a client may call: the directory's methods, and a partition's.
const DIRECTORY_METHODS = new Set(['createTopic', 'topics', 'topic', 'settings', 'redrive']);
const PARTITION_METHODS = new Set(['send', 'publish', 'stats', 'redrive', 'receive', 'settle', 'seek', 'accept', 'checkRoom']);
// The calls that may leave messages for other partitions (dead letters, redriven
// messages, a send's other parts), which return once those are forwarded. The
// others never wait for a forward: objects forwarding to each other would wait
// on each other for ever.
const FORWARDING_METHODS = new Set(['send', 'redrive', 'receive', 'settle']);
/** After a failed forward the object tries again this much later (ms), doubling up to the max. */
const FORWARD_RETRY_MS = 1000;
const FORWARD_RETRY_MS_MAX = 60000;

const objectName = (bus, topic, partition) => `${bus}/${topic}/${partition}`;

/** Runs `request` ({ options, topics, method, args }) in the object `name`; its error is thrown here. */
async function callObject(namespace, name, request) {
  const { value, error } = await namespace.get(namespace.idFromName(name)).call({ name, ...request });
  if (error) throw new FerryError(error.code, error.message);
  return value;
}

/** A Durable Object holding a bus's directory or one of its partitions. Extend it and bind the subclass. */
export class FerryObject extends DurableObject {
  #bus = null;
  /** `{ bus, topic, partition }` this object serves (null: the directory), and its bus's name. */
  #home = null;
  #busName = null;
  #namespace = null;
  /** The alarm this instance last set (ms; null: none): setting it again is skipped. */
  #alarmMs = undefined;
  /** The forwarding under way, which every call that needs it waits for. */
  #forwarding = null;
  /** When the alarm looks at forwarding again (ms; null: no need), and the wait after a failure. */
  #forwardDueMs = null;
  #forwardRetryMs = 0;
  #forwardError = null;
  /** Directory settings of the topics this object forwards to, by name. */
  #targets = new Map();
  /** What the sends in progress wait for: by `${topic}/${partition}/${offset here}`, the metadata where it was taken. */
  #awaited = new Map();

  /** The bus part, opened on first use: the first call names the object. */
  #open(name) {
    if (!this.#bus) {
      loadEngine();
      this.#bus = new EdgeBus(this.ctx.storage, name);
      this.#home = this.#bus.home;
      this.#busName = this.#home?.bus ?? this.#bus.name;
    }
    if (name !== undefined && name !== this.#bus.name) throw new FerryError('INVALID_ARGUMENT', `this object holds '${this.#bus.name}', not '${name}'`);
    return this.#bus;
  }

  /** One RPC from a client or another object. Errors come back as data so their codes cross RPC. */
  async call({ name, options, topics, method, args = [] }) {
    try {
      const bus = this.#open(name);
      const methods = this.#home ? PARTITION_METHODS : DIRECTORY_METHODS;
      if (!methods.has(method)) throw new FerryError('INVALID_ARGUMENT', `unknown bus method '${method}'`);
      // Each client's own options (autoCreateTopics, maxMessageBytes) for its call.
      bus.configure(options, topics);
      let value;
      if (method === 'send') value = await this.#send(bus, topics, args);
      else if (method === 'redrive' && this.#home) value = await this.#redrive(bus, options, args);
      else value = bus[method](...args);
      // Dead letters, redriven messages: they reach their partitions before the call returns.
      if (FORWARDING_METHODS.has(method)) await this.#forward(bus);
      else if (this.#home) this.#forward(bus);
      await this.#setAlarm(bus);
      return { value };
    } catch (error) {
      return { error: { code: error.code ?? 'STORAGE', message: String(error.message ?? error) } };
    }
  }

  /** Expired leases and sessions, dedup windows, retention and forwards left over run here, not in a loop. */
  async alarm() {
    const bus = this.#open();
    bus.configure({});
    bus.tick();
    // This alarm is spent: the next one must be set whatever it is.
    this.#alarmMs = undefined;
    this.#forwardDueMs = null;
    await this.#forward(bus);
    await this.#setAlarm(bus);
  }

  /** One alarm, at the earliest time housekeeping or a forward is due. */
  async #setAlarm(bus) {
    const tickMs = bus.nextTickMs();
    const dueMs = tickMs === null ? this.#forwardDueMs : this.#forwardDueMs === null ? tickMs : Math.min(tickMs, this.#forwardDueMs);
    if (dueMs === this.#alarmMs) return;
    if (dueMs === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(dueMs, Date.now() + 1));
    this.#alarmMs = dueMs;
  }

  /**
   * A send coordinated here: stored whole in this partition's transaction (so it is
   * atomic), then its other partitions' parts are forwarded and their metadata
   * taken from where they landed. maxDepth of those partitions is asked first,
   * since a stored part is no longer refused.
   */
  async #send(bus, topics, [record, partitions]) {
    const { topic, partition: home } = this.#home;
    const others = new Map();
    for (const p of partitions) if (p !== home) others.set(p, (others.get(p) ?? 0) + 1);
    if (others.size > 0 && topics?.[0]?.maxDepth != null) {
      await Promise.all([...others].map(([p, count]) => callObject(this.#namespaceOf(bus), objectName(this.#busName, topic, p), { topics, method: 'checkRoom', args: [count] })));
    }
    const results = bus.send(record, partitions);
    if (others.size === 0) return results;
    const keyOf = (r) => `${r.topic}/${r.partition}/${r.offset}`;
    const mine = results.filter((r) => r.partition !== home).map(keyOf);
    for (const key of mine) this.#awaited.set(key, null);
    try {
      await this.#forward(bus);
      return results.map((r) => {
        if (r.partition === home) return r;
        const landed = this.#awaited.get(keyOf(r));
        if (!landed) {
          throw new FerryError('STORAGE', `the send is stored, but its part for partition ${r.partition} is not forwarded yet (${this.#forwardError?.message ?? 'no answer'}); it will be, without its metadata`);
        }
        return landed;
      });
    } finally {
      for (const key of mine) this.#awaited.delete(key);
    }
  }

  /** A redrive of this dead-letter partition: the topics it sends to are taken from the directory first. */
  async #redrive(bus, options, args) {
    bus.configure(options, await callObject(this.#namespaceOf(bus), this.#busName, { method: 'settings' }));
    return bus.redrive(...args);
  }

  /** Forwards what waits here for other partitions, one run at a time; a failure is retried by the alarm. */
  #forward(bus) {
    this.#forwarding ??= this.#forwardAll(bus).finally(() => {
      this.#forwarding = null;
    });
    return this.#forwarding;
  }

  async #forwardAll(bus) {
    let out = bus.outbound();
    if (out.length === 0) return;
    try {
      // Should the object stop before this run ends (a restart), its alarm resumes
      // it. The alarm is left set when the run succeeds (it finds nothing to do), so
      // a stream of sends sets it about once per FORWARD_RETRY_MS, not twice per send.
      this.#forwardDueMs ??= Date.now() + FORWARD_RETRY_MS;
      await this.#setAlarm(bus);
      for (; out.length > 0; out = bus.outbound()) {
        const taken = await Promise.allSettled(out.map((entry) => this.#forwardOne(bus, entry)));
        // What arrived is dropped here (with the next commit), even when another forward failed.
        bus.forwarded(taken.flatMap((t, i) => (t.status === 'fulfilled' ? [out[i]] : [])));
        const failed = taken.find((t) => t.status === 'rejected');
        if (failed) throw failed.reason;
      }
      this.#forwardRetryMs = 0;
      this.#forwardError = null;
    } catch (error) {
      this.#forwardRetryMs = Math.min(FORWARD_RETRY_MS_MAX, this.#forwardRetryMs * 2 || FORWARD_RETRY_MS);
      this.#forwardDueMs = Date.now() + this.#forwardRetryMs;
      this.#forwardError = error;
    }
  }

  /** Hands one chunk to the partition that serves it. */
  async #forwardOne(bus, { topic, partition, partitions, send, from, end, bytes }) {
    const namespace = this.#namespaceOf(bus);
    const busName = this.#busName;
    // A dead-letter topic is made on demand with the source's partition count.
    let target = this.#targets.get(topic);
    if (!target) {
      target = await callObject(namespace, busName, { method: 'topic', args: [topic, partitions, true] });
      this.#targets.set(topic, target);
    }
    // A dead-letter topic that existed with fewer partitions takes the rest modulo its count.
    const to = partition < target.partitions ? partition : partition % target.partitions;
    const source = `${bus.name}>${topic}/${partition}`;
    const { skipped, results } = await callObject(namespace, objectName(busName, topic, to), { topics: [target], method: 'accept', args: [source, send, from, bytes] });
    results.forEach((landed, i) => {
      const key = `${topic}/${partition}/${from + skipped + i}`;
      if (this.#awaited.has(key)) this.#awaited.set(key, landed);
    });
  }

  /**
   * The namespace binding this class: the one whose id for this object's name is
   * this object's id. Objects of a bus reach each other through it.
   */
  #namespaceOf(bus) {
    if (this.#namespace) return this.#namespace;
    for (const binding of Object.values(this.env ?? {})) {
      if (typeof binding?.idFromName !== 'function') continue;
      try {
        if (binding.idFromName(bus.name).equals(this.ctx.id)) return (this.#namespace = binding);
      } catch {
        // Not a Durable Object namespace after all.
      }
    }
    throw new FerryError('STORAGE', 'no binding in env holds this Durable Object class: bind it (durable_objects.bindings in wrangler.toml)');
  }
}

/**
 * Topic settings fetched from directories, by namespace and then `${bus}/${topic}`.
 * A topic's partition count and settings never change once it exists, so the
 * requests an isolate serves share them instead of each asking the directory.
 */
const knownTopics = new WeakMap();
function knownTopicsOf(namespace) {
  if (typeof namespace !== 'object' || namespace === null) return new Map();
  if (!knownTopics.has(namespace)) knownTopics.set(namespace, new Map());
  return knownTopics.get(namespace);
}

/** A client for the bus `name` held by the Durable Object namespace `namespace`. */
export function connect(namespace, options = {}) {
  loadEngine();
  const name = options?.name ?? 'ferry';
  const call = (object, method, args, topics) => callObject(namespace, object, { options, topics, method, args });
  const directory = (method, ...args) => call(name, method, args);
  const partitionCall = (settings, partition, method, ...args) => call(objectName(name, settings.topic, partition), method, args, [settings]);

  // A topic auto-creation would make is only described until a send to it is
  // stored (a refused send makes nothing); consumers make it at once.
  const known = knownTopicsOf(namespace);
  const settings = async (topic, create = true) => {
    const key = `${name}/${topic}`;
    if (known.has(key)) return known.get(key);
    const found = await directory('topic', topic, undefined, create);
    if (!found.missing) known.set(key, found);
    return found;
  };
  const stored = async (found, result) => {
    if (found.missing) await settings(found.topic);
    return result;
  };
  // Where each topic's round-robin goes next; a client starts anywhere, so short-lived clients still spread.
  const roundRobin = new Map();
  const route = (topic, partitions, pick) => {
    const routed = pick(roundRobin.get(topic) ?? Math.floor(Math.random() * partitions));
    roundRobin.set(topic, routed.roundRobin);
    return routed.partitions;
  };

  const send = async (record) => {
    const topic = await settings(record?.topic, false);
    const partitions = route(topic.topic, topic.partitions, (next) => routeSend(record, topic.partitions, next));
    // One object coordinates the send: the partition of its first message.
    return stored(topic, await partitionCall(topic, partitions[0], 'send', record, partitions));
  };

  return {
    createTopic: (topic, topicOptions) => directory('createTopic', topic, topicOptions),
    topics: () => directory('topics'),
    producer: () => ({ send }),
    publish: async (topic, value, messageOptions) => {
      const found = await settings(topic, false);
      const [partition] = route(topic, found.partitions, (next) => routePublish(messageOptions, found.partitions, next));
      return stored(found, await partitionCall(found, partition, 'publish', topic, value, messageOptions, partition));
    },
    stats: async () => {
      const topics = await directory('settings');
      const parts = await Promise.all(topics.map((topic) => Promise.all(Array.from({ length: topic.partitions }, (_, p) => partitionCall(topic, p, 'stats')))));
      return mergeStats(topics, parts);
    },
    redrive: async (redriveOptions) => {
      // The directory checks the options (and the topic, when it may not be made).
      await directory('redrive', redriveOptions);
      const from = (await directory('settings')).find((topic) => topic.topic === redriveOptions.from);
      if (!from) return 0;
      let left = redriveOptions.limit ?? Infinity;
      let moved = 0;
      for (let p = 0; p < from.partitions && left > 0; p++) {
        const n = await partitionCall(from, p, 'redrive', { from: from.topic, ...(left === Infinity ? {} : { limit: left }) });
        moved += n;
        left -= n;
      }
      return moved;
    },
    consumer: (consumerOptions) => {
      checkConsumerOptions(consumerOptions);
      return new PullConsumer(consumerOptions, settings, partitionCall);
    },
  };
}

/** One `stats()` from each partition's own: `parts[t][p]` for topic `t` of `topics`. */
function mergeStats(topics, parts) {
  const groups = new Map();
  const merged = topics.map((topic, t) => ({
    topic: topic.topic,
    partitions: parts[t].flatMap((stats) => stats.topics.find((s) => s.topic === topic.topic)?.partitions ?? []),
  }));
  for (const stats of parts.flat()) {
    for (const g of stats.groups) {
      const key = `${g.groupId}\n${g.topic}`;
      const group = groups.get(key) ?? groups.set(key, { groupId: g.groupId, topic: g.topic, deadLettered: 0, partitions: [] }).get(key);
      group.deadLettered += g.deadLettered;
      group.partitions.push(...g.partitions);
    }
  }
  const order = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const list = [...groups.values()].sort((a, b) => order(a.groupId, b.groupId) || order(a.topic, b.topic));
  for (const group of list) group.partitions.sort((a, b) => a.partition - b.partition);
  return { topics: merged, groups: list };
}

/** A consumer that pulls: `receive` leases messages, each settled by `ack` or `retry`. */
class PullConsumer {
  #options;
  #settings;
  #partitionCall;
  #subscriptions = [];
  /** Where the next receive starts among the partitions, so none is always last. */
  #rotation = 0;
  /** Acks and retries not sent yet, by `${topic}/${partition}`. */
  #settling = new Map();

  constructor(options, settings, partitionCall) {
    this.#options = options;
    this.#settings = settings;
    this.#partitionCall = partitionCall;
  }

  /**
   * Joins the group in every partition of the topics at once, as `run` does in the
   * browser: the group's start is fixed now, so a message sent between `subscribe`
   * and the first `receive` is the group's (with `fromBeginning: false` too).
   */
  async subscribe(subscription) {
    const plan = pullPlan([subscription]);
    const joins = [];
    for (const { topic, fromBeginning } of plan.subscriptions) {
      const settings = await this.#settings(topic);
      for (let p = 0; p < settings.partitions; p++) joins.push(this.#partitionCall(settings, p, 'receive', this.#options, { topic, fromBeginning }, 0));
    }
    await Promise.all(joins);
    this.#subscriptions.push(subscription);
  }

  /**
   * Asks every subscribed partition at once for a share of `max` (which also joins
   * the group there), then, while fewer came, those not asked yet and those that
   * filled their share for what is left. Each round either fills `max` or drops a
   * partition that had less than its share, so the rounds end.
   */
  async receive({ max } = {}) {
    const plan = pullPlan(this.#subscriptions, max);
    const targets = [];
    for (const { topic, fromBeginning } of plan.subscriptions) {
      const settings = await this.#settings(topic);
      for (let p = 0; p < settings.partitions; p++) targets.push({ settings, p, subscription: { topic, fromBeginning } });
    }
    const start = this.#rotation++ % targets.length;
    let asking = [...targets.slice(start), ...targets.slice(0, start)];
    const received = [];
    for (let first = true; asking.length > 0 && received.length < plan.max; first = false) {
      const left = plan.max - received.length;
      const shares = asking.map((_, i) => Math.floor(left / asking.length) + (i < left % asking.length ? 1 : 0));
      const got = await Promise.all(asking.map((t, i) => (first || shares[i] > 0 ? this.#partitionCall(t.settings, t.p, 'receive', this.#options, t.subscription, shares[i]) : [])));
      got.forEach((list) => received.push(...list));
      const unasked = asking.filter((_, i) => shares[i] === 0);
      asking = [...unasked, ...asking.filter((_, i) => shares[i] > 0 && got[i].length === shares[i])];
    }
    return received.map(({ topic, partition, message, generation }) => this.#received(topic, partition, message, generation));
  }

  /**
   * Moves the group's position in one partition (KafkaJS's seek), in that
   * partition's object; resolves to the offset the group consumes next. Messages
   * of that partition received before and not settled are abandoned: their ack()
   * resolves false.
   */
  async seek(target) {
    seekPartition(target);
    const settings = await this.#settings(target.topic);
    return this.#partitionCall(settings, seekPartition(target, settings.partitions), 'seek', this.#options.groupId, target);
  }

  #received(topic, partition, message, generation) {
    const receipt = [this.#options.groupId, topic, partition, message.offset, message.attempt, generation];
    return {
      topic,
      partition,
      ...message,
      ack: () => this.#settle(topic, partition, ['ack', ...receipt]),
      retry: (options) => this.#settle(topic, partition, ['retry', ...receipt, options]),
    };
  }

  /**
   * Queues an ack or retry. Those made in the same turn (`Promise.all` over a
   * batch) go to each partition's object in one call and one commit; each still
   * resolves, or rejects, on its own.
   */
  #settle(topic, partition, item) {
    return new Promise((resolve, reject) => {
      const key = `${topic}/${partition}`;
      let batch = this.#settling.get(key);
      if (!batch) {
        batch = { topic, partition, items: [], waiters: [] };
        this.#settling.set(key, batch);
        queueMicrotask(() => this.#flush(key));
      }
      batch.items.push(item);
      batch.waiters.push({ resolve, reject });
    });
  }

  async #flush(key) {
    const { topic, partition, items, waiters } = this.#settling.get(key);
    this.#settling.delete(key);
    try {
      const results = await this.#partitionCall(await this.#settings(topic), partition, 'settle', items);
      results.forEach((result, i) => {
        if (typeof result === 'boolean') waiters[i].resolve(result);
        else waiters[i].reject(new FerryError(result.error.code, result.error.message));
      });
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
    }
  }
}
