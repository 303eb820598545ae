// `ferry/kafkajs`: KafkaJS's API over a ferry bus, so that a KafkaJS program runs by
// changing its import. Only shapes are mapped here; topics, partitioning (Kafka's
// murmur2), groups, offsets, retries and dead letters are the engine's.
//
// What Kafka has and ferry has not is accepted and ignored where ignoring it keeps
// the program's meaning (brokers, SASL and SSL, `acks`, `timeout`, compression
// codecs, replication), and refused with a FerryError naming it where it would not
// (`autoCommit: false`, transactions, deleting topics).
import { FerryError } from './error.js';

export const logLevel = Object.freeze({ NOTHING: 0, ERROR: 1, WARN: 2, INFO: 4, DEBUG: 5 });
export const CompressionTypes = Object.freeze({ None: 0, GZIP: 1, Snappy: 2, LZ4: 3, ZSTD: 4 });
// ferry partitions keys as Kafka's Java client does (murmur2): every partitioner
// name stands for that one, so a program that picks one keeps its placement.
const partitioner = () => () => undefined;
export const Partitioners = Object.freeze({ DefaultPartitioner: partitioner, LegacyPartitioner: partitioner, JavaCompatiblePartitioner: partitioner });

const CONSUMER_EVENTS = Object.freeze({
  HEARTBEAT: 'consumer.heartbeat',
  COMMIT_OFFSETS: 'consumer.commit_offsets',
  GROUP_JOIN: 'consumer.group_join',
  FETCH_START: 'consumer.fetch_start',
  FETCH: 'consumer.fetch',
  START_BATCH_PROCESS: 'consumer.start_batch_process',
  END_BATCH_PROCESS: 'consumer.end_batch_process',
  CONNECT: 'consumer.connect',
  DISCONNECT: 'consumer.disconnect',
  STOP: 'consumer.stop',
  CRASH: 'consumer.crash',
  REBALANCING: 'consumer.rebalancing',
  RECEIVED_UNSUBSCRIBED_TOPICS: 'consumer.received_unsubscribed_topics',
  REQUEST: 'consumer.network.request',
  REQUEST_TIMEOUT: 'consumer.network.request_timeout',
  REQUEST_QUEUE_SIZE: 'consumer.network.request_queue_size',
});
const PRODUCER_EVENTS = Object.freeze({ CONNECT: 'producer.connect', DISCONNECT: 'producer.disconnect', REQUEST: 'producer.network.request' });
const ADMIN_EVENTS = Object.freeze({ CONNECT: 'admin.connect', DISCONNECT: 'admin.disconnect', REQUEST: 'admin.network.request' });

// Kafka's log.retention.hours default, 168: what a topic made through admin keeps.
const KAFKA_RETENTION_MS = 7 * 24 * 3600 * 1000;
// ferry's longest retention (src/core/limits.rs RETENTION_MS_MAX): Kafka's "for ever".
const RETENTION_MS_MAX = 10 * 365 * 24 * 3600 * 1000;

const refused = (what, why) => new FerryError('INVALID_ARGUMENT', `${what} ${why}`);

/** Where Node's Buffer is not: a Uint8Array whose toString() is the text, as a Buffer's is. */
export class KafkaBytes extends Uint8Array {
  /** The bytes as text (UTF-8; `'hex'` and `'base64'` as Buffer gives them too). */
  toString(encoding = 'utf8') {
    if (encoding === 'hex') return Array.from(this, (b) => b.toString(16).padStart(2, '0')).join('');
    if (encoding === 'base64') return btoa(String.fromCharCode(...this));
    return new TextDecoder().decode(this);
  }

  toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
  }

  static of(value) {
    return typeof value === 'string' ? new KafkaBytes(new TextEncoder().encode(value)) : new KafkaBytes(value);
  }
}

/**
 * The face for one platform: `Bus` is that entry's (`null` in a Worker, where the
 * bus is given: `ferry: { bus: connect(env.BUS) }`), `toBytes(text | Uint8Array)`
 * makes the Buffer-like values messages carry (Node's Buffer, else KafkaBytes).
 */
export function kafkaFace(Bus, toBytes) {
  /** `{ key, value, headers, offset, timestamp }` of a delivered message in KafkaJS's shape. */
  const kafkaMessage = (m) => ({
    key: m.key === null ? null : toBytes(m.key),
    value: m.value === null ? null : toBytes(typeof m.value === 'string' || m.value instanceof Uint8Array ? m.value : JSON.stringify(m.value)),
    headers: Object.fromEntries(Object.entries(m.headers).map(([name, value]) => [name, toBytes(value)])),
    offset: String(m.offset),
    timestamp: String(m.timestamp),
    attributes: 0,
    size: 0,
  });

  class Kafka {
    #bus;
    #logger;

    /**
     * `new Kafka({ clientId, brokers, logLevel, logCreator })`. `brokers`, `ssl`,
     * `sasl` and timeouts are accepted and ignored. Every Kafka of an origin (or a
     * Node process) that names no bus shares the bus "kafka", as programs of one
     * cluster share it; `ferry: { name, storage }` picks another, with Bus.open's
     * options, and `ferry: { bus }` gives one (in a Worker, `connect(env.BUS)`).
     */
    constructor(config = {}) {
      if (config === null || typeof config !== 'object') throw refused('config', 'must be an object { clientId, brokers }');
      const { clientId = 'kafkajs', ferry = {} } = config;
      if (ferry === null || typeof ferry !== 'object') throw refused('ferry', 'must be an object { name, storage } or { bus }');
      if (!Bus && !ferry.bus) throw refused('ferry', 'must give the bus here: { ferry: { bus: connect(env.BUS) } } in a Worker');
      this.#logger = makeLogger(config.logLevel ?? logLevel.INFO, config.logCreator, clientId);
      this.#bus = ferry.bus ? Promise.resolve(ferry.bus) : null;
      this.options = { name: 'kafka', ...ferry };
    }

    /** The bus, opened on first use. */
    bus() {
      this.#bus ??= Bus.open(this.options);
      return this.#bus;
    }

    logger() {
      return this.#logger;
    }

    producer(options = {}) {
      return new Producer(this, options);
    }

    consumer(options) {
      if (!options || typeof options.groupId !== 'string') throw refused('groupId', 'must be a string: kafka.consumer({ groupId })');
      return new Consumer(this, options);
    }

    admin() {
      return new Admin(this);
    }
  }

  /** `on(event, listener)` returning its remover, as KafkaJS's instrumentation events. */
  class Events {
    #listeners = new Map();

    on(type, listener) {
      if (!this.constructor.names.includes(type)) throw refused('event', `'${type}' is not one of ${this.constructor.names.join(', ')}`);
      const list = this.#listeners.get(type) ?? [];
      list.push(listener);
      this.#listeners.set(type, list);
      return () => this.#listeners.set(type, (this.#listeners.get(type) ?? []).filter((l) => l !== listener));
    }

    emit(type, payload = {}) {
      const event = { id: nextEventId++, type, timestamp: Date.now(), payload };
      for (const listener of this.#listeners.get(type) ?? []) listener(event);
    }
  }
  let nextEventId = 0;

  class Producer extends Events {
    static names = Object.values(PRODUCER_EVENTS);
    events = PRODUCER_EVENTS;
    #kafka;

    constructor(kafka, options) {
      super();
      this.#kafka = kafka;
      // `idempotent` and `transactionalId` are accepted: every send is atomic
      // already; transaction() itself is refused.
      void options;
    }

    async connect() {
      await this.#kafka.bus();
      this.emit(PRODUCER_EVENTS.CONNECT);
    }

    async disconnect() {
      this.emit(PRODUCER_EVENTS.DISCONNECT);
    }

    /** `send({ topic, messages, acks, timeout, compression })`: atomic, as ferry's send is. */
    async send(record) {
      if (!record || typeof record !== 'object') throw refused('record', 'must be an object { topic, messages }');
      const { topic, messages } = record;
      if (!Array.isArray(messages)) throw refused('messages', 'must be an array');
      const bus = await this.#kafka.bus();
      const sent = await bus.producer().send({ topic, messages: messages.map(ferryMessage) });
      return recordMetadata(sent);
    }

    /** `sendBatch({ topicMessages: [{ topic, messages }] })`: one send per topic. */
    async sendBatch({ topicMessages } = {}) {
      if (!Array.isArray(topicMessages)) throw refused('topicMessages', 'must be an array of { topic, messages }');
      const results = [];
      for (const record of topicMessages) results.push(...(await this.send(record)));
      return results;
    }

    transaction() {
      return Promise.reject(refused('transaction()', 'is not supported: ferry stores each send atomically, but a send together with the offsets of messages consumed is not one transaction yet'));
    }

    logger() {
      return this.#kafka.logger();
    }
  }

  /** A KafkaJS message as ferry's: keys and header values as strings, the value as it is. */
  function ferryMessage(m, i) {
    if (m === null || typeof m !== 'object') throw refused(`messages[${i}]`, 'must be an object { key, value }');
    const text = (v) => (v instanceof Uint8Array ? new TextDecoder().decode(v) : v);
    const headers = {};
    for (const [name, value] of Object.entries(m.headers ?? {})) {
      if (Array.isArray(value)) throw refused(`messages[${i}].headers.${name}`, 'holds a list: ferry keeps one value per header');
      headers[name] = text(value);
    }
    const out = { key: m.key == null ? null : text(m.key), value: m.value === undefined ? null : m.value, headers };
    if (m.partition !== undefined) out.partition = m.partition;
    return out;
  }

  /** ferry's metadata, one per message, as KafkaJS's RecordMetadata: one per topic partition. */
  function recordMetadata(sent) {
    const byPartition = new Map();
    for (const { topic, partition, offset, timestamp } of sent) {
      const key = `${topic}\u0000${partition}`;
      const first = byPartition.get(key);
      if (!first || offset < Number(first.baseOffset)) {
        byPartition.set(key, { topicName: topic, partition, errorCode: 0, baseOffset: String(offset), offset: String(offset), timestamp: String(timestamp), logAppendTime: '-1', logStartOffset: '0' });
      }
    }
    return [...byPartition.values()];
  }

  class Consumer extends Events {
    static names = Object.values(CONSUMER_EVENTS);
    events = CONSUMER_EVENTS;
    #kafka;
    #options;
    #subscriptions = [];
    #consumer = null;
    /** Pauses and resumes asked for before run, applied when it starts. */
    #pauses = [];
    /** Partition counts of the topics, for `paused()`. */
    #partitionCounts = new Map();

    constructor(kafka, options) {
      super();
      this.#kafka = kafka;
      this.#options = options;
    }

    async connect() {
      await this.#kafka.bus();
      this.emit(CONSUMER_EVENTS.CONNECT);
    }

    async disconnect() {
      await this.stop();
      this.emit(CONSUMER_EVENTS.DISCONNECT);
    }

    /** `subscribe({ topic | topics, fromBeginning })`; a RegExp matches the topics that exist now. */
    async subscribe({ topic, topics, fromBeginning = false } = {}) {
      const wanted = topics ?? [topic];
      if (!Array.isArray(wanted) || wanted.some((t) => typeof t !== 'string' && !(t instanceof RegExp))) {
        throw refused('topic', 'must be a string or a RegExp (topics: an array of them)');
      }
      const existing = wanted.some((t) => t instanceof RegExp) ? (await (await this.#kafka.bus()).topics()).map((t) => t.topic) : [];
      for (const t of wanted) {
        const names = t instanceof RegExp ? existing.filter((name) => t.test(name)) : [t];
        if (names.length === 0) throw refused('topic', `${t} matches no topic that exists`);
        for (const name of names) this.#subscriptions.push({ topic: name, fromBeginning });
      }
    }

    /** `run({ eachMessage | eachBatch, autoCommit, partitionsConsumedConcurrently, eachBatchAutoResolve })`. */
    async run({ eachMessage, eachBatch, autoCommit = true, partitionsConsumedConcurrently = 1, eachBatchAutoResolve = true } = {}) {
      if (autoCommit === false) throw refused('autoCommit: false', 'is not supported: ferry commits each message its handler resolved (at least once); commit by resolving');
      if (this.#consumer) throw refused('run', 'was called already');
      // API.md: a Worker's isolate lives for its requests, so it has no run loop.
      if (!Bus) throw refused('consumer.run()', 'is not supported in a Worker: read with connect(env.BUS).consumer({ groupId }).receive(), or over handleHttp');
      const bus = await this.#kafka.bus();
      const { groupId, sessionTimeout, heartbeatInterval, retry = {} } = this.#options;
      // KafkaJS's retry options, as ferry's backoff: `retries` more attempts after the first.
      const consumer = bus.consumer({
        groupId,
        concurrency: partitionsConsumedConcurrently,
        ...(sessionTimeout === undefined ? {} : { sessionTimeoutMs: sessionTimeout }),
        ...(heartbeatInterval === undefined ? {} : { heartbeatIntervalMs: heartbeatInterval }),
        retry: {
          maxAttempts: (retry.retries ?? 5) + 1,
          initialBackoffMs: retry.initialRetryTime ?? 300,
          maxBackoffMs: retry.maxRetryTime ?? 30_000,
          multiplier: retry.multiplier ?? 2,
        },
      });
      const bySubscription = new Map();
      for (const s of this.#subscriptions) bySubscription.set(s.fromBeginning, [...(bySubscription.get(s.fromBeginning) ?? []), s.topic]);
      for (const [fromBeginning, topics] of bySubscription) await consumer.subscribe({ topics, fromBeginning });
      // A handler's pause(): its partition is paused, and the returned function resumes it.
      const pause = (topic, partition) => () => {
        this.pause([{ topic, partitions: [partition] }]);
        return () => this.resume([{ topic, partitions: [partition] }]);
      };
      const heartbeat = async () => this.emit(CONSUMER_EVENTS.HEARTBEAT, { groupId, memberId: consumer.memberId });
      const handler = eachMessage
        ? { eachMessage: async ({ topic, partition, message }) => eachMessage({ topic, partition, message: kafkaMessage(message), heartbeat, pause: pause(topic, partition) }) }
        : {
            eachBatchAutoResolve,
            eachBatch: async (payload) => {
              const { batch } = payload;
              const messages = batch.messages.map(kafkaMessage);
              const last = messages.length ? messages[messages.length - 1].offset : String(batch.highWatermark - 1);
              const kafkaBatch = {
                topic: batch.topic,
                partition: batch.partition,
                highWatermark: String(batch.highWatermark),
                messages,
                isEmpty: () => messages.length === 0,
                firstOffset: () => (messages.length ? messages[0].offset : null),
                lastOffset: () => last,
                offsetLag: () => String(batch.highWatermark - 1 - Number(last)),
                offsetLagLow: () => String(batch.highWatermark - 1 - Number(messages[0]?.offset ?? last)),
              };
              this.emit(CONSUMER_EVENTS.START_BATCH_PROCESS, { topic: batch.topic, partition: batch.partition, batchSize: messages.length });
              await eachBatch({
                batch: kafkaBatch,
                resolveOffset: payload.resolveOffset,
                heartbeat: async () => {
                  await payload.heartbeat();
                  await heartbeat();
                },
                commitOffsetsIfNecessary: payload.commitOffsetsIfNecessary,
                uncommittedOffsets: () => ({ topics: [] }),
                isRunning: payload.isRunning,
                isStale: payload.isStale,
                pause: pause(batch.topic, batch.partition),
              });
              this.emit(CONSUMER_EVENTS.END_BATCH_PROCESS, { topic: batch.topic, partition: batch.partition, batchSize: messages.length });
            },
          };
      for (const [method, topics] of this.#pauses) consumer[method](topics);
      for (const { topic, partitions } of await bus.topics()) this.#partitionCounts.set(topic, partitions);
      this.emit(CONSUMER_EVENTS.REBALANCING, { groupId, memberId: consumer.memberId });
      try {
        await consumer.run(handler);
      } catch (error) {
        this.emit(CONSUMER_EVENTS.CRASH, { error, groupId, restart: false });
        throw error;
      }
      this.#consumer = consumer;
      this.emit(CONSUMER_EVENTS.GROUP_JOIN, { groupId, memberId: consumer.memberId, isLeader: false, leaderId: null, groupProtocol: 'ferry', memberAssignment: await this.#assignment(bus, consumer.memberId) });
    }

    /** The partitions this member holds, by topic. */
    async #assignment(bus, memberId) {
      const assignment = {};
      for (const group of (await bus.stats()).groups) {
        if (group.groupId !== this.#options.groupId) continue;
        assignment[group.topic] = group.partitions.filter((p) => p.owner === memberId).map((p) => p.partition);
      }
      return assignment;
    }

    /** `seek({ topic, partition, offset })`: the group goes on from there. */
    async seek({ topic, partition, offset }) {
      await this.#seeker().seek({ topic, partition, offset });
    }

    /** `commitOffsets([{ topic, partition, offset }])`: the next offsets to consume, as seeks. */
    async commitOffsets(offsets) {
      for (const { topic, partition, offset } of offsets) await this.#seeker().seek({ topic, partition, offset });
      this.emit(CONSUMER_EVENTS.COMMIT_OFFSETS, { groupId: this.#options.groupId, topics: offsets });
    }

    /** `pause([{ topic, partitions? }])`: the member keeps those partitions but takes nothing of them until `resume`. */
    pause(topics) {
      this.#pauses.push(['pause', topics]);
      this.#consumer?.pause(topics);
    }

    resume(topics) {
      this.#pauses.push(['resume', topics]);
      this.#consumer?.resume(topics);
    }

    /** `[{ topic, partitions }]`, as KafkaJS lists them. */
    paused() {
      return (this.#consumer?.paused() ?? []).map(({ topic, partitions, except }) => ({
        topic,
        partitions: partitions ?? Array.from({ length: this.#partitionCounts.get(topic) ?? 0 }, (_, p) => p).filter((p) => !except.includes(p)),
      }));
    }

    async stop() {
      if (!this.#consumer) return;
      const consumer = this.#consumer;
      this.#consumer = null;
      await consumer.stop();
      this.emit(CONSUMER_EVENTS.STOP);
    }

    /** The running consumer: KafkaJS seeks and commits only after run. */
    #seeker() {
      if (this.#consumer) return this.#consumer;
      throw refused('seek', 'must come after run, as KafkaJS requires');
    }

    logger() {
      return this.#kafka.logger();
    }
  }

  class Admin extends Events {
    static names = Object.values(ADMIN_EVENTS);
    events = ADMIN_EVENTS;
    #kafka;

    constructor(kafka) {
      super();
      this.#kafka = kafka;
    }

    async connect() {
      await this.#kafka.bus();
      this.emit(ADMIN_EVENTS.CONNECT);
    }

    async disconnect() {
      this.emit(ADMIN_EVENTS.DISCONNECT);
    }

    /** `createTopics({ topics: [{ topic, numPartitions }] })`: true when every one was created. */
    async createTopics({ topics } = {}) {
      if (!Array.isArray(topics)) throw refused('topics', 'must be an array of { topic, numPartitions }');
      const bus = await this.#kafka.bus();
      let created = true;
      for (const { topic, numPartitions, configEntries = [] } of topics) {
        // KafkaJS's -1 (the broker's default) is ferry's default, 1.
        const partitions = numPartitions === undefined || numPartitions === -1 ? 1 : numPartitions;
        // Kept for Kafka's default 7 days, or the topic's `retention.ms` (-1: for
        // ever, which is ferry's longest, 10 years), consumed or not, so that a new
        // group from the beginning reads them.
        const retention = configEntries.find((entry) => entry.name === 'retention.ms')?.value;
        const retentionMs = retention === undefined ? KAFKA_RETENTION_MS : Number(retention) < 0 ? RETENTION_MS_MAX : Number(retention);
        created = (await bus.createTopic(topic, { partitions, retentionMs })) && created;
      }
      return created;
    }

    async listTopics() {
      return (await (await this.#kafka.bus()).topics()).map((t) => t.topic);
    }

    async fetchTopicMetadata({ topics } = {}) {
      const all = await (await this.#kafka.bus()).topics();
      const chosen = topics === undefined || topics.length === 0 ? all : topics.map((name) => all.find((t) => t.topic === name) ?? unknownTopic(name));
      return {
        topics: chosen.map((t) => ({
          name: t.topic,
          partitions: Array.from({ length: t.partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0], offlineReplicas: [] })),
        })),
      };
    }

    /** `fetchTopicOffsets(topic)`: `[{ partition, offset, high, low }]`, offsets as strings. */
    async fetchTopicOffsets(topic) {
      const stats = (await (await this.#kafka.bus()).stats()).topics.find((t) => t.topic === topic) ?? unknownTopic(topic);
      return stats.partitions.map((p) => ({ partition: p.partition, offset: String(p.highOffset), high: String(p.highOffset), low: String(p.lowOffset) }));
    }

    /** `fetchOffsets({ groupId, topics })`: the group's committed offsets, `-1` where it has none. */
    async fetchOffsets({ groupId, topics } = {}) {
      const bus = await this.#kafka.bus();
      const stats = await bus.stats();
      const names = topics ?? [...new Set(stats.groups.filter((g) => g.groupId === groupId).map((g) => g.topic))];
      return names.map((topic) => {
        const partitions = stats.topics.find((t) => t.topic === topic)?.partitions ?? [];
        const group = stats.groups.find((g) => g.groupId === groupId && g.topic === topic);
        return {
          topic,
          partitions: partitions.map(({ partition }) => {
            const committed = group?.partitions.find((p) => p.partition === partition)?.committedOffset;
            return { partition, offset: committed === undefined ? '-1' : String(committed), metadata: null };
          }),
        };
      });
    }

    /** `resetOffsets({ groupId, topic, earliest })`: every partition to its start, or its end. */
    async resetOffsets({ groupId, topic, earliest = false } = {}) {
      const offsets = await this.fetchTopicOffsets(topic);
      await this.setOffsets({ groupId, topic, partitions: offsets.map((p) => ({ partition: p.partition, offset: earliest ? p.low : p.high })) });
    }

    /** `setOffsets({ groupId, topic, partitions: [{ partition, offset }] })`. */
    async setOffsets({ groupId, topic, partitions } = {}) {
      const consumer = (await this.#kafka.bus()).consumer({ groupId });
      for (const { partition, offset } of partitions) await consumer.seek({ topic, partition, offset });
    }

    async createPartitions() {
      throw refused('createPartitions()', "is not supported: a ferry topic's partition count is fixed when it is made (createTopics' numPartitions)");
    }

    async deleteTopics() {
      throw refused('deleteTopics()', 'is not supported: a ferry topic cannot be deleted yet (its groups and dead letters refer to it)');
    }

    /** `describeGroups(groupIds)`: each group's members, as the owners of its partitions. */
    async describeGroups(groupIds) {
      const stats = await (await this.#kafka.bus()).stats();
      return {
        groups: groupIds.map((groupId) => {
          const owners = new Set(stats.groups.filter((g) => g.groupId === groupId).flatMap((g) => g.partitions.map((p) => p.owner)).filter(Boolean));
          return {
            errorCode: 0,
            groupId,
            members: [...owners].map((memberId) => ({ memberId, clientId: memberId, clientHost: '', memberMetadata: null, memberAssignment: null })),
            protocol: owners.size ? 'ferry' : '',
            protocolType: 'consumer',
            state: owners.size ? 'Stable' : 'Empty',
          };
        }),
      };
    }

    async listGroups() {
      const stats = await (await this.#kafka.bus()).stats();
      return { groups: [...new Set(stats.groups.map((g) => g.groupId))].map((groupId) => ({ groupId, protocolType: 'consumer' })) };
    }

    logger() {
      return this.#kafka.logger();
    }
  }

  return { Kafka };
}

function unknownTopic(name) {
  throw new FerryError('UNKNOWN_TOPIC', `topic '${name}' does not exist`);
}

/** KafkaJS's logger: `logCreator(level)` gives the function each entry goes to. */
function makeLogger(level, logCreator, clientId, namespace = '') {
  const log = logCreator ? logCreator(level) : defaultLog;
  const at = (entryLevel, label) => (message, extra = {}) => {
    if (entryLevel > level || level === logLevel.NOTHING) return;
    log({ namespace, level: entryLevel, label, log: { timestamp: new Date().toISOString(), logger: 'kafkajs', message, clientId, ...extra } });
  };
  return {
    info: at(logLevel.INFO, 'INFO'),
    error: at(logLevel.ERROR, 'ERROR'),
    warn: at(logLevel.WARN, 'WARN'),
    debug: at(logLevel.DEBUG, 'DEBUG'),
    namespace: (name, levelOverride = level) => makeLogger(levelOverride, logCreator, clientId, name),
    setLogLevel: (newLevel) => {
      level = newLevel;
    },
  };
}

function defaultLog({ namespace, label, log }) {
  const { message, ...extra } = log;
  const write = label === 'ERROR' ? console.error : label === 'WARN' ? console.warn : console.log;
  write(JSON.stringify({ level: label, ...extra, message: namespace ? `[${namespace}] ${message}` : message }));
}
