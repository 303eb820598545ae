// Types of the public API (pkg/README.md).

export type FerryErrorCode =
  | 'INVALID_ARGUMENT'
  | 'TOPIC_CONFLICT'
  | 'UNKNOWN_TOPIC'
  | 'MESSAGE_TOO_LARGE'
  | 'QUEUE_FULL'
  | 'QUOTA_EXCEEDED'
  | 'STORAGE'
  | 'INCOMPATIBLE_STORAGE'
  | 'CLOSED';

export declare class FerryError extends Error {
  readonly name: 'FerryError';
  readonly code: FerryErrorCode;
  constructor(code: FerryErrorCode, message: string);
}

export interface BusOptions {
  name?: string;
  storage?: 'indexeddb' | 'memory';
  autoCreateTopics?: boolean;
  maxMessageBytes?: number;
  durability?: 'relaxed' | 'strict';
  /**
   * `"one"` (default): the context holding the Web Lock `ferry:{name}:writer`
   * writes the bus's IndexedDB for every context of the origin that opens it: the
   * other contexts' calls and their consumers' work (handlers still run where the
   * consumer is) reach it over a BroadcastChannel. `"each"`: every context writes
   * (also what a context without Web Locks does).
   */
  writer?: 'one' | 'each';
  /**
   * With `writer: "one"`: `true` (default) has a page start a SharedWorker
   * (`entry/shared-worker.js`, one per bus name) that writes the bus while any page
   * of the origin is open, where the browser has SharedWorker; pages, dedicated and
   * service workers take over if it dies. `false`: the first context to open the
   * bus writes, until it goes.
   */
  sharedWorker?: boolean;
}

/**
 * The bus of a ferry/kafkajs or ferry/bullmq client (their `ferry` option): one
 * opened with Bus.open's options, or one given (`bus`: in a Worker,
 * `connect(env.BUS)` of ferry/workers).
 */
export type FerryChoice = (BusOptions & { bus?: undefined }) | { bus: object };

export interface TopicOptions {
  partitions?: number;
  /** `null` (default): kept until every group committed past; a number: kept until that old, consumed or not (Kafka's rule). */
  retentionMs?: number | null;
  maxDepth?: number | null;
  dedupWindowMs?: number;
}

export interface TopicInfo {
  topic: string;
  partitions: number;
  retentionMs: number | null;
  maxDepth: number | null;
}

export type MessageValue = string | Uint8Array | unknown;

export interface MessageOptions {
  key?: string | null;
  headers?: Record<string, string>;
  id?: string;
  delayMs?: number;
  partition?: number;
}

export interface Message extends MessageOptions {
  value: MessageValue;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  duplicate: boolean;
}

export interface BusStats {
  topics: Array<{
    topic: string;
    /** Dead letters were written to it: `redrive` and `purge` take it. */
    deadLetter: boolean;
    partitions: Array<{ partition: number; lowOffset: number; highOffset: number; depth: number; expired: number }>;
  }>;
  groups: Array<{
    groupId: string;
    topic: string;
    deadLettered: number;
    partitions: Array<{
      partition: number;
      committedOffset: number;
      lag: number;
      inFlight: number;
      retrying: number;
      owner: string | null;
    }>;
  }>;
  /** Every group's members: the ids `owner` names, where each runs, and its last heartbeat. */
  members: MemberStats[];
  /** The bridges this context started (`bus.bridge`); absent when it started none. */
  bridges?: BridgeStats[];
}

export interface MemberStats {
  groupId: string;
  memberId: string;
  /** The kind of context the member runs in; "edge-pull" is an edge's pulls (`receive`, HTTP). */
  context: 'page' | 'worker' | 'shared-worker' | 'service-worker' | 'node' | 'edge-pull' | 'unknown';
  /** When it last heartbeat (or joined), in ms since the epoch. */
  lastSeenMs: number;
}

export interface Producer {
  send(record: { topic: string; messages: Message[] }): Promise<RecordMetadata[]>;
}

export interface RetryOptions {
  /** Deliveries before the message is dead-lettered (1 to 1000). Default 5. */
  maxAttempts?: number;
  /** Delay before the 2nd attempt. Default 1000. */
  initialBackoffMs?: number;
  /** Delay before attempt n+1 is min(maxBackoffMs, initialBackoffMs * multiplier^(n-1)). Default 2. */
  multiplier?: number;
  /** Default 60000. */
  maxBackoffMs?: number;
  /** Delay uniform in [d/2, d] when true (default), exactly d when false. */
  jitter?: boolean;
}

export interface ConsumerOptions {
  groupId: string;
  retry?: RetryOptions;
  /** Default `${topic}.dlq`. */
  deadLetterTopic?: string;
  ackTimeoutMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  ordering?: 'partition' | 'none';
  concurrency?: number;
  /**
   * Under "partition" ordering, the most consecutive messages of one partition a
   * consumer leases at a time (a run, one `eachBatch` batch): 1 to 1000. Default 500.
   */
  maxBatchSize?: number;
}

export interface DeliveredMessage {
  key: string | null;
  value: any;
  headers: Record<string, string>;
  offset: number;
  timestamp: number;
  id: string | null;
  /** Counts from 1. */
  attempt: number;
}

export interface RedriveOptions {
  /** The dead-letter topic. */
  from: string;
  /** 1 to 10,000 (the default): how many to move, in order, when no `offsets` are given. */
  limit?: number;
  /** The dead letters to move (up to 10,000); one moved already is passed over. */
  offsets?: { partition: number; offset: number }[];
}

export interface BrowseOptions {
  topic: string;
  /** Default 0. */
  partition?: number;
  /** Default 0; the first retained message if that one is gone. */
  offset?: number;
  /** 1 to 1,000; default 100. */
  limit?: number;
  /** Whose attempts each message shows. */
  groupId?: string;
}

export interface BrowsedMessage extends Omit<DeliveredMessage, 'attempt'> {
  /** Deliveries the `groupId` asked about made of it while unsettled there; 0: none. */
  attempt: number;
  /** A dead letter moved back by `redrive` already. */
  redriven: boolean;
}

export interface BrowsedPage {
  lowOffset: number;
  highOffset: number;
  /** Where the next page starts. */
  nextOffset: number;
  messages: BrowsedMessage[];
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: DeliveredMessage;
}

/** A run of consecutive messages of one partition, in offset order (KafkaJS's `Batch`). */
export interface Batch {
  topic: string;
  partition: number;
  messages: DeliveredMessage[];
  /** The partition's next offset to be written. */
  highWatermark: number;
  isEmpty(): boolean;
  firstOffset(): number | null;
  lastOffset(): number;
}

export interface EachBatchPayload {
  batch: Batch;
  /** Acks every message of the batch up to and including `offset`, in order. */
  resolveOffset(offset: number | string): void;
  /** Renews the member's session; resolves once stored. */
  heartbeat(): Promise<void>;
  /** Stores what `resolveOffset` acked so far (the same as `heartbeat`). */
  commitOffsetsIfNecessary(): Promise<void>;
  /** False once the consumer is stopping: end the batch early. */
  isRunning(): boolean;
  /** True once the partition moved to another member or the batch passed its ack timeout. */
  isStale(): boolean;
}

export type RunOptions =
  | { eachMessage: (payload: EachMessagePayload) => Promise<void> | void }
  | {
      eachBatch: (payload: EachBatchPayload) => Promise<void> | void;
      /** Ack the whole batch when `eachBatch` resolves. Default true; when false, what is left unresolved comes back. */
      eachBatchAutoResolve?: boolean;
    };

export interface Consumer {
  /** This member's id in its group: the `owner` that `bus.stats()` shows for its partitions. */
  readonly memberId: string;
  subscribe(options: { topic: string; fromBeginning?: boolean } | { topics: string[]; fromBeginning?: boolean }): Promise<void>;
  /** Resolves once the consumer joined its group. Takes exactly one of `eachMessage` and `eachBatch`. */
  run(options: RunOptions): Promise<void>;
  /**
   * Moves the group's position in one partition (KafkaJS's `seek`, stored when it resolves, to
   * the offset the group consumes next). An offset below `lowOffset` goes to `lowOffset`; one
   * past `highOffset` is refused. `timestamp` (ms) goes to the first message sent at or after
   * it, or to the end. Before `run` or while running: the partition's deliveries in flight are
   * abandoned, no attempt counted. Offsets may be numbers or KafkaJS's decimal strings.
   */
  seek(target: SeekTarget): Promise<number>;
  /** Keeps those partitions (all of the topic's without `partitions`) but takes nothing more of them until `resume`. */
  pause(topics: Array<{ topic: string; partitions?: number[] }>): void;
  resume(topics: Array<{ topic: string; partitions?: number[] }>): void;
  /** `{ topic, partitions }`, or `{ topic, except }` for a topic paused whole but those partitions. */
  paused(): Array<{ topic: string; partitions?: number[]; except?: number[] }>;
  stop(): Promise<void>;
}

export type SeekTarget =
  | { topic: string; partition: number; offset: number | string }
  | { topic: string; partition: number; timestamp: number | string };

/**
 * `bus.bridge(options)`: drains local topics to a remote ferry's `handleHttp`
 * (`POST {url}/v1/topics/{topic}/messages`), as a consumer group of its own; the
 * consumer's options (`retry`, `ackTimeoutMs`, `concurrency`, ...) apply too.
 */
export interface BridgeOptions extends Partial<Omit<ConsumerOptions, 'maxBatchSize'>> {
  /** The remote bus's base URL (`handleHttp` serves `/v1/...` under it). */
  url: string;
  /** Local topic names (forwarded under the same names), or local -> remote names. */
  topics: string[] | Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** More headers for each request (a token that changes); may return a promise. */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
  /** Messages per request, one partition's in order: default 100. */
  batchSize?: number;
  /** Prefixes the ids derived for messages without an `id` (`{source}/{topic}/{partition}/{offset}`): default `"ferry"`; give each device its own where several forward to one edge topic. */
  source?: string;
  /** Default `"ferry-bridge"`. */
  groupId?: string;
  /**
   * What to forward of each message: `{ value, key?, headers? }` (what it leaves out
   * stays as it was; the id stays), or `null` to forward nothing of it (it counts as
   * forwarded). A throw is a failed attempt, retried with the backoff.
   */
  transform?: (payload: EachMessagePayload) => BridgedMessage | null | Promise<BridgedMessage | null>;
}

/** What a bridge's `transform` forwards of a message. */
export interface BridgedMessage {
  value?: MessageValue;
  key?: string | null;
  headers?: Record<string, string>;
}

/** Where a remote bus is: its `handleHttp` (`ferry/workers`), and how to be let in. */
export interface RemoteOptions {
  /** The base URL: its `/v1/...` paths are `handleHttp`'s. */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** More headers for each request (a token that changes); may return a promise. */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
}

/** A remote consumer's options: a local consumer's, and how often an idle one asks. */
export interface RemoteConsumerOptions extends ConsumerOptions {
  /** After a receive that leased nothing, the wait before the next, in ms. Default 1000. */
  pollIntervalMs?: number;
}

/**
 * A consumer of topics at the edge, over HTTP: the same handlers as a local consumer.
 * A lease lasts `ackTimeoutMs` (`heartbeat()` does not renew it); backoff and dead
 * letters are the edge's, by these options.
 */
export interface RemoteConsumer {
  subscribe(options: { topic: string; fromBeginning?: boolean } | { topics: string[]; fromBeginning?: boolean }): Promise<void>;
  /** Resolves once the loop started. A refusal of the edge (a wrong token) ends the loop. */
  run(options: RunOptions): Promise<void>;
  /** Resolves once the round in hand is handled and settled. */
  stop(): Promise<void>;
}

/** A bus at the edge seen from a page, worker or Node: `Bus.remote(options)`. */
export interface RemoteBus {
  consumer(options: RemoteConsumerOptions): RemoteConsumer;
  /** `GET /v1/stats` of the edge bus. */
  stats(): Promise<BusStats>;
}

/** A batch a bridge posted: `bridge.on('forwarded' | 'failed', listener)`. */
export interface BridgeBatch {
  topic: string;
  remoteTopic: string;
  partition: number;
  count: number;
  firstOffset: number;
  lastOffset: number;
}

/** A batch that failed: `refused` ones are dead-lettered, the others tried again after `retryInMs` (`null`: the backoff's). */
export interface BridgeFailure extends BridgeBatch {
  error: string;
  refused: boolean;
  retryInMs: number | null;
}

/** `bus.bridge()`'s consumer, with its events and `drained()`. */
export interface Bridge extends Consumer {
  on(event: 'forwarded', listener: (batch: BridgeBatch) => void): void;
  on(event: 'failed', listener: (failure: BridgeFailure) => void): void;
  off(event: 'forwarded' | 'failed', listener: (...args: any[]) => void): void;
  /** Resolves once the bridge's group has nothing left to forward; rejects when a post of this context fails first. */
  drained(): Promise<void>;
}

/** A bridge in `bus.stats().bridges`: `pending`, `failing` and `deadLettered` are its group's, the rest this context's. */
export interface BridgeStats {
  groupId: string;
  url: string;
  /** Local topic -> remote topic. */
  topics: Record<string, string>;
  running: boolean;
  forwarded: number;
  pending: number;
  failing: number;
  deadLettered: number;
  lastForwardedAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

export declare class Bus {
  static open(options?: BusOptions): Promise<Bus>;
  /** A bus at the edge over HTTP (`handleHttp` of `ferry/workers`). */
  static remote(options: RemoteOptions): Promise<RemoteBus>;
  createTopic(name: string, options?: TopicOptions): Promise<boolean>;
  topics(): Promise<TopicInfo[]>;
  producer(): Producer;
  consumer(options: ConsumerOptions): Consumer;
  /** Forwards local topics to a remote bus; resolves to the bridge (a consumer: `stop()` ends it) once it joined its group. */
  bridge(options: BridgeOptions): Promise<Bridge>;
  publish(topic: string, value: MessageValue, options?: MessageOptions): Promise<RecordMetadata>;
  stats(): Promise<BusStats>;
  /** Moves dead letters back: those at `offsets`, or the first `limit` of `from`; resolves to how many moved. */
  redrive(options: RedriveOptions): Promise<number>;
  /** Removes every message of the dead-letter topic `topic`; resolves to how many. */
  purge(options: { topic: string }): Promise<number>;
  /** Reads a partition's messages from `offset` without leasing them: no group moves. */
  browse(options: BrowseOptions): Promise<BrowsedPage>;
  close(): Promise<void>;
}
