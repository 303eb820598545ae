// `ferry/workers`: the bus in Cloudflare Durable Objects. FerryObject is the
// object class (bind it as a SQLite-backed class). One instance, named after the
// bus, is its directory of topics; one instance serves each topic partition,
// named `${bus}/${topic}/${partition}`, so a topic's throughput grows with its
// partitions. connect() is the client a Worker uses: it routes each message with
// the engine's partitioner and fans reads out over the partitions. The engine (its
// own build, with the Durable Object face) is imported as a compiled module, as
// workerd requires, and instantiated on first use.
import { DurableObject } from 'cloudflare:workers';
import wasmModule from '../dist/edge/ferry_edge_bg.wasm';
import { initSync, EdgeObject, checkConsumerOptions, checkHttpOptions, pullPlan, routePublish, routeSend, seekPartition } from '../dist/edge/ferry_edge.js';
import { FerryError } from './error.js';

export { FerryError };
import { serveHttp } from './workers-http.js';

let engineReady = false;
function loadEngine() {
  if (!engineReady) {
    initSync({ module: wasmModule });
    engineReady = true;
  }
}

const objectName = (bus, topic, partition) => `${bus}/${topic}/${partition}`;

/** An error as data, so that its code crosses RPC. */
const errorData = (error) => ({ error: { code: error.code ?? 'STORAGE', message: String(error.message ?? error) } });

/** Runs `request` ({ options, topics, method, args }) in the object `name`; its error is thrown here. */
async function callObject(namespace, name, request) {
  const { value, error } = await namespace.get(namespace.idFromName(name)).call({ name, ...request });
  if (error) throw new FerryError(error.code, error.message);
  return value;
}

/**
 * A Durable Object holding a bus's directory or one of its partitions. Extend it
 * and bind the subclass. It carries what the engine's protocol (EdgeObject)
 * decides: calls in, calls to other objects out, answers, and the alarm.
 */
export class FerryObject extends DurableObject {
  #object = null;
  #namespace = null;
  #nextCall = 0;
  /** Resolvers of the calls waiting for their answer, by call id. */
  #answers = new Map();

  /** The protocol, opened on first use: the first call names the object. */
  #open(name) {
    if (!this.#object) {
      loadEngine();
      this.#object = new EdgeObject(this.ctx.storage, name);
    }
    if (name !== undefined && name !== this.#object.name) throw new FerryError('INVALID_ARGUMENT', `this object holds '${this.#object.name}', not '${name}'`);
    return this.#object;
  }

  /** One RPC from a client or another object. Errors come back as data so their codes cross RPC. */
  async call(request) {
    try {
      const object = this.#open(request.name);
      const id = this.#nextCall++;
      const answer = new Promise((resolve) => this.#answers.set(id, resolve));
      object.handleCall(id, request, Date.now());
      await this.#pump(object);
      return await answer;
    } catch (error) {
      return errorData(error);
    }
  }

  async alarm() {
    const object = this.#open();
    object.handleAlarm(Date.now());
    await this.#pump(object);
  }

  /** Makes the calls the protocol hands out, gives the answers it has, and sets the alarm it asks for. */
  async #pump(object) {
    for (let out = object.pollTransmit(); out !== undefined; out = object.pollTransmit()) this.#transmit(object, out);
    for (let done = object.pollResult(); done !== undefined; done = object.pollResult()) {
      const { id, ...answer } = done;
      this.#answers.get(id)?.(answer);
      this.#answers.delete(id);
    }
    const alarm = object.pollAlarm();
    if (alarm === null) await this.ctx.storage.deleteAlarm();
    else if (alarm !== undefined) await this.ctx.storage.setAlarm(Math.max(alarm, Date.now() + 1));
  }

  async #transmit(object, { id, request }) {
    let outcome;
    try {
      outcome = { value: await callObject(this.#namespaceOf(object), request.name, request) };
    } catch (error) {
      outcome = errorData(error);
    }
    object.handleTransmitResult(id, outcome, Date.now());
    await this.#pump(object);
  }

  /**
   * The namespace binding this class: the one whose id for this object's name is
   * this object's id. Objects of a bus reach each other through it.
   */
  #namespaceOf(object) {
    if (this.#namespace) return this.#namespace;
    for (const binding of Object.values(this.env ?? {})) {
      if (typeof binding?.idFromName !== 'function') continue;
      try {
        if (binding.idFromName(object.name).equals(this.ctx.id)) return (this.#namespace = binding);
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

/**
 * Serves `request` from the bus `name` in `namespace` over HTTP (see pkg/README.md).
 * Other options (`autoCreateTopics`, `maxMessageBytes`) go to `connect` as they
 * are, and so apply to this request's calls.
 */
export async function handleHttp(request, namespace, { token, name = 'ferry', maxBodyBytes, ...busOptions } = {}) {
  loadEngine();
  // A deployment mistake, not the caller's: thrown, as every other bad argument of the API.
  const checked = checkHttpOptions(maxBodyBytes);
  return serveHttp(request, () => connect(namespace, { name, ...busOptions }), { token, maxBodyBytes: checked });
}
