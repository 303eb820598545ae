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
import { initSync, EdgeClient, EdgeObject, checkHttpOptions } from '../dist/edge/ferry_edge.js';
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

/** An error as data, so that its code crosses RPC. */
const errorData = (error) => ({ error: { code: error.code ?? 'STORAGE', message: String(error.message ?? error) } });

/**
 * Makes a protocol's calls to objects (`transmits`, `[{ id, to, bytes }]`, in the
 * namespace `namespaceOf()` gives) and resolves, once every one has answered, to
 * their answers, `[{ id, bytes } | { id, error }]`: a protocol hands out together
 * what it waits for together (a send's parts, a receive's shares), and the answers
 * cross into the engine once.
 */
function callAll(namespaceOf, transmits) {
  return Promise.all(
    transmits.map(async ({ id, to, bytes }) => {
      try {
        const namespace = namespaceOf();
        return { id, ...(await namespace.get(namespace.idFromName(to)).call({ name: to, bytes })) };
      } catch (error) {
        return { id, ...errorData(error) };
      }
    }),
  );
}

/**
 * A Durable Object holding a bus's directory or one of its partitions. Extend it
 * and bind the subclass. It carries what the engine's protocol (EdgeObject)
 * decides: calls in, calls to other objects out, answers, and the alarm.
 */
export class FerryObject extends DurableObject {
  #object = null;
  /** The object's name, as the protocol has it: asked once. */
  #name;
  #namespace = null;
  #nextCall = 0;
  /** Resolvers of the calls waiting for their answer, by call id. */
  #answers = new Map();

  /** The protocol, opened on first use: the first call names the object. */
  #open(name) {
    if (!this.#object) {
      loadEngine();
      this.#object = new EdgeObject(this.ctx.storage, name);
      this.#name = this.#object.name;
    }
    if (name !== undefined && name !== this.#name) throw new FerryError('INVALID_ARGUMENT', `this object holds '${this.#name}', not '${name}'`);
    return this.#object;
  }

  /** One RPC from a client or another object. Errors come back as data so their codes cross RPC. */
  async call(request) {
    try {
      const object = this.#open(request.name);
      const id = this.#nextCall++;
      const answer = new Promise((resolve) => this.#answers.set(id, resolve));
      await this.#carry(object.handleCall(id, request.bytes, Date.now()));
      return await answer;
    } catch (error) {
      return errorData(error);
    }
  }

  async alarm() {
    await this.#carry(this.#open().handleAlarm(Date.now()));
  }

  /** Makes the calls the protocol hands out, gives the answers it has, and sets the alarm it asks for. */
  async #carry({ transmits, results, alarm }) {
    if (transmits.length > 0) {
      callAll(() => this.#namespaceOf(), transmits).then((answers) => this.#carry(this.#object.handleTransmitResults(answers, Date.now())));
    }
    for (const { id, bytes } of results) {
      this.#answers.get(id)?.({ bytes });
      this.#answers.delete(id);
    }
    if (alarm === null) await this.ctx.storage.deleteAlarm();
    else if (alarm !== undefined) await this.ctx.storage.setAlarm(alarm);
  }

  /**
   * The namespace binding this class: the one whose id for this object's name is
   * this object's id. Objects of a bus reach each other through it.
   */
  #namespaceOf() {
    if (this.#namespace) return this.#namespace;
    for (const binding of Object.values(this.env ?? {})) {
      if (typeof binding?.idFromName !== 'function') continue;
      try {
        if (binding.idFromName(this.#name).equals(this.ctx.id)) return (this.#namespace = binding);
      } catch {
        // Not a Durable Object namespace after all.
      }
    }
    throw new FerryError('STORAGE', 'no binding in env holds this Durable Object class: bind it (durable_objects.bindings in wrangler.toml)');
  }
}

/**
 * Clients by namespace and options: the requests an isolate serves share one, and
 * so the topic settings it has fetched (a topic's partition count and settings
 * never change once it exists) instead of each asking the directory.
 */
const clients = new WeakMap();

/** A client for the bus `options.name` held by the Durable Object namespace `namespace`. */
export function connect(namespace, options = {}) {
  return clientOf(namespace, options).face();
}

/** The isolate's one client of `namespace` with `options`, made on first use. */
function clientOf(namespace, options) {
  loadEngine();
  const key = JSON.stringify(options ?? {});
  let byOptions = typeof namespace === 'object' && namespace !== null ? clients.get(namespace) : undefined;
  if (!byOptions) {
    byOptions = new Map();
    if (typeof namespace === 'object' && namespace !== null) clients.set(namespace, byOptions);
  }
  let client = byOptions.get(key);
  if (!client) {
    client = new Client(namespace, new EdgeClient(options));
    byOptions.set(key, client);
  }
  return client;
}

/** Carries what the client's protocol (EdgeClient) decides: calls to objects out, their answers in, results back. */
class Client {
  #namespace;
  #client;
  #waiting = new Map();
  #flushQueued = false;
  /** A pull consumer no one holds any more is forgotten by the engine too. */
  #releases = new FinalizationRegistry((id) => this.#client.release(id));

  constructor(namespace, client) {
    this.#namespace = namespace;
    this.#client = client;
  }

  /**
   * Starts an operation (`start` returns its id, or throws for bad input) and
   * resolves to its result. `holds` is kept until then: a consumer whose
   * operation is under way is not collected (and released) before it ends.
   */
  run(start, holds) {
    return new Promise((resolve, reject) => {
      this.#waiting.set(start(this.#client), { resolve, reject, holds });
      this.#carry(this.#client.poll());
    });
  }

  /** `POST /v1/topics/{topic}/receive`'s parsed body: resolves to the answer's JSON text. */
  receiveHttp(topic, body) {
    return this.run((c) => c.receiveHttp(topic, body));
  }

  /** `GET /v1/topics/{topic}/messages`'s query parameters: resolves to the answer's JSON text. */
  browseHttp(topic, query) {
    return this.run((c) => c.browseHttp(topic, query));
  }

  /** `POST /v1/acks`'s parsed body: resolves to whether each receipt settled, in order. */
  settleHttp(body) {
    // The ids come as a Float64Array, whose map would make numbers of the promises.
    const ids = Array.from(this.#client.settleHttp(body));
    const settled = Promise.all(ids.map((id) => new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }))));
    this.#carry(this.#client.poll());
    return settled;
  }

  /** An ack or retry: those made in one turn leave together. */
  settle(start, holds) {
    const result = this.run(start, holds);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => {
        this.#flushQueued = false;
        this.#carry(this.#client.flushSettles());
      });
    }
    return result;
  }

  /** Makes the calls the protocol hands out and settles the operations it finished. */
  #carry({ transmits, done }) {
    if (transmits.length > 0) {
      callAll(() => this.#namespace, transmits).then((answers) => this.#carry(this.#client.handleReplies(answers)));
    }
    for (const { id, value, error } of done) {
      const waiter = this.#waiting.get(id);
      this.#waiting.delete(id);
      if (error !== undefined) waiter?.reject(error);
      else waiter?.resolve(value);
    }
  }

  /** The `Bus` methods of pkg/README.md, each one operation of the protocol. */
  face() {
    const run = (start) => this.run(start);
    return {
      createTopic: (topic, topicOptions) => run((c) => c.createTopic(topic, topicOptions)),
      topics: () => run((c) => c.topics()),
      producer: () => ({ send: (record) => run((c) => c.send(record)) }),
      publish: (topic, value, messageOptions) => run((c) => c.publish(topic, value, messageOptions)),
      stats: () => run((c) => c.stats()),
      redrive: (redriveOptions) => run((c) => c.redrive(redriveOptions)),
      purge: (purgeOptions) => run((c) => c.purge(purgeOptions)),
      browse: (browseOptions) => run((c) => c.browse(browseOptions)),
      consumer: (consumerOptions) => this.#consumer(this.#client.consumer(consumerOptions)),
      // ferry/bullmq's: job queues live in the bus's directory object. Their events
      // are not told at the edge: each request is its own isolate's.
      __jobs: (queueName, operation) => run((c) => c.jobs(queueName, operation)),
    };
  }

  /** A pull consumer: `receive` leases messages, each settled by `ack` or `retry`. */
  #consumer(id) {
    const run = (start) => this.run(start, consumer);
    const settle = (start) => this.settle(start, consumer);
    const received = ({ topic, partition, message, generation }) => ({
      topic,
      partition,
      ...message,
      ack: () => settle((c) => c.ack(id, topic, partition, message.offset, message.attempt, generation)),
      retry: (options) => settle((c) => c.retry(id, topic, partition, message.offset, message.attempt, generation, options)),
    });
    const consumer = {
      subscribe: (subscription) => run((c) => c.subscribe(id, subscription)),
      receive: async (options) => (await run((c) => c.receive(id, options))).map(received),
      seek: (target) => run((c) => c.seek(id, target)),
    };
    this.#releases.register(consumer, id);
    return consumer;
  }
}

/**
 * Serves `request` from the bus `name` in `namespace` over HTTP (see pkg/README.md).
 * Other options (`autoCreateTopics`, `maxMessageBytes`) go to `connect` as they
 * are, and so apply to this request's calls.
 */
export async function handleHttp(request, namespace, { token, name = 'ferry', maxBodyBytes, allowOrigins, ...busOptions } = {}) {
  loadEngine();
  // A deployment mistake, not the caller's: thrown, as every other bad argument of the API.
  const checked = checkHttpOptions(maxBodyBytes, allowOrigins);
  return serveHttp(request, () => clientOf(namespace, { name, ...busOptions }), { token, maxBodyBytes: checked, allowOrigins });
}
