// `ferry/workers`: the bus in a Cloudflare Durable Object. FerryObject is the
// object (bind it as a SQLite-backed class); connect() is the client a Worker
// uses. The engine (its own build, with the Durable Object face) is imported as a
// compiled module, as workerd requires, and instantiated on first use.
import { DurableObject } from 'cloudflare:workers';
import wasmModule from '../dist/edge/ferry_bg.wasm';
import { initSync, EdgeBus, checkConsumerOptions } from '../dist/edge/ferry.js';
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

// What a client may call on the object: the bus methods of API.md.
const METHODS = new Set(['createTopic', 'topics', 'send', 'publish', 'stats', 'redrive', 'receive', 'ack', 'retry']);

/** The Durable Object holding one bus. Extend it and bind the subclass. */
export class FerryObject extends DurableObject {
  #bus = null;
  /** The alarm this instance last set (ms; null: none): setting it again is skipped. */
  #alarmMs = undefined;

  /** The bus, opened on first use. */
  #open() {
    loadEngine();
    this.#bus ??= new EdgeBus(this.ctx.storage);
    return this.#bus;
  }

  /** One RPC: `method` of the bus. Errors come back as data so their codes cross RPC. */
  async call(options, method, args) {
    try {
      if (!METHODS.has(method)) throw new FerryError('INVALID_ARGUMENT', `unknown bus method '${method}'`);
      const bus = this.#open();
      // Each client's own options (autoCreateTopics, maxMessageBytes) for its call.
      bus.configure(options);
      const value = bus[method](...args);
      await this.#setAlarm(bus);
      return { value };
    } catch (error) {
      return { error: { code: error.code ?? 'STORAGE', message: String(error.message ?? error) } };
    }
  }

  /** Expired leases and sessions, dedup windows and retention run here, not in a loop. */
  async alarm() {
    const bus = this.#open();
    bus.configure({});
    bus.tick();
    // This alarm is spent: the next one must be set whatever it is.
    this.#alarmMs = undefined;
    await this.#setAlarm(bus);
  }

  /** One alarm, at the earliest time housekeeping is due. */
  async #setAlarm(bus) {
    const dueMs = bus.nextTickMs();
    if (dueMs === this.#alarmMs) return;
    if (dueMs === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(dueMs, Date.now() + 1));
    this.#alarmMs = dueMs;
  }
}

/** A client for the bus `name` held by the Durable Object namespace `namespace`. */
export function connect(namespace, { name = 'ferry', ...options } = {}) {
  const stub = namespace.get(namespace.idFromName(name));
  const call = async (method, ...args) => {
    const { value, error } = await stub.call(options, method, args);
    if (error) throw new FerryError(error.code, error.message);
    return value;
  };
  return {
    createTopic: (topic, topicOptions) => call('createTopic', topic, topicOptions),
    topics: () => call('topics'),
    producer: () => ({ send: (record) => call('send', record) }),
    publish: (topic, value, messageOptions) => call('publish', topic, value, messageOptions),
    stats: () => call('stats'),
    redrive: (redriveOptions) => call('redrive', redriveOptions),
    consumer: (consumerOptions) => {
      loadEngine();
      checkConsumerOptions(consumerOptions);
      return new PullConsumer(call, consumerOptions);
    },
  };
}

/** A consumer that pulls: `receive` leases messages, each settled by `ack` or `retry`. */
class PullConsumer {
  #call;
  #options;
  #subscriptions = [];

  constructor(call, options) {
    this.#call = call;
    this.#options = options;
  }

  async subscribe(subscription) {
    this.#subscriptions.push(subscription);
  }

  async receive({ max } = {}) {
    const groupId = this.#options?.groupId;
    const received = await this.#call('receive', this.#options, this.#subscriptions, max);
    return received.map(({ topic, partition, message }) => {
      const receipt = [groupId, topic, partition, message.offset, message.attempt];
      return {
        topic,
        partition,
        ...message,
        ack: () => this.#call('ack', ...receipt),
        retry: (options) => this.#call('retry', ...receipt, options),
      };
    });
  }
}
