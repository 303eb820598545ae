// Types of `ferry/kafkajs` (pkg/README.md, "KafkaJS: ferry/kafkajs"): KafkaJS's own
// names and shapes, so that code typed against KafkaJS compiles with the import
// changed. Options Kafka has and ferry ignores are typed as KafkaJS types them.
import type { FerryChoice } from './index.js';

export { FerryError } from './index.js';

/**
 * A key, value or header value: a Buffer in Node, a Uint8Array whose toString() is
 * the text elsewhere. Typed without Node's types, which a Buffer satisfies.
 */
export interface KafkaBytes extends Uint8Array {
  toString(encoding?: 'utf8' | 'utf-8' | 'hex' | 'base64'): string;
}
type Bytes = KafkaBytes;

export declare const logLevel: { NOTHING: 0; ERROR: 1; WARN: 2; INFO: 4; DEBUG: 5 };
export type logLevel = 0 | 1 | 2 | 4 | 5;
export declare const CompressionTypes: { None: 0; GZIP: 1; Snappy: 2; LZ4: 3; ZSTD: 4 };
export type CompressionTypes = 0 | 1 | 2 | 3 | 4;
export type ICustomPartitioner = () => (args: { topic: string; partitionMetadata: unknown[]; message: Message }) => number | undefined;
/** Every one partitions as Kafka's Java client does (murmur2 of the key). */
export declare const Partitioners: { DefaultPartitioner: ICustomPartitioner; LegacyPartitioner: ICustomPartitioner; JavaCompatiblePartitioner: ICustomPartitioner };

export interface LogEntry {
  namespace: string;
  level: logLevel;
  label: string;
  log: { timestamp: string; message: string; [key: string]: any };
}
export type logCreator = (logLevel: logLevel) => (entry: LogEntry) => void;
export interface Logger {
  info(message: string, extra?: object): void;
  error(message: string, extra?: object): void;
  warn(message: string, extra?: object): void;
  debug(message: string, extra?: object): void;
  namespace(namespace: string, logLevel?: logLevel): Logger;
  setLogLevel(logLevel: logLevel): void;
}

export interface KafkaConfig {
  /** Accepted and ignored: the bus is ferry's (`ferry.name`, default "kafka"). */
  brokers: string[] | (() => string[] | Promise<string[]>);
  clientId?: string;
  ssl?: unknown;
  sasl?: unknown;
  connectionTimeout?: number;
  authenticationTimeout?: number;
  requestTimeout?: number;
  enforceRequestTimeout?: boolean;
  retry?: RetryOptions;
  logLevel?: logLevel;
  logCreator?: logCreator;
  /** The ferry bus this client uses: opened with `name` "kafka" unless given. */
  ferry?: FerryChoice;
}

export interface RetryOptions {
  maxRetryTime?: number;
  initialRetryTime?: number;
  factor?: number;
  multiplier?: number;
  retries?: number;
}

export interface IHeaders {
  [key: string]: Uint8Array | string | undefined;
}

export interface Message {
  key?: Uint8Array | string | null;
  value: Uint8Array | string | null;
  partition?: number;
  headers?: IHeaders;
  /** Accepted; ferry stamps a message when it is stored. */
  timestamp?: string;
}

export interface ProducerRecord {
  topic: string;
  messages: Message[];
  acks?: number;
  timeout?: number;
  compression?: CompressionTypes;
}

export interface TopicMessages {
  topic: string;
  messages: Message[];
}

export interface ProducerBatch {
  acks?: number;
  timeout?: number;
  compression?: CompressionTypes;
  topicMessages?: TopicMessages[];
}

export interface RecordMetadata {
  topicName: string;
  partition: number;
  errorCode: number;
  offset?: string;
  timestamp?: string;
  baseOffset?: string;
  logAppendTime?: string;
  logStartOffset?: string;
}

export interface InstrumentationEvent<T> {
  id: number;
  type: string;
  timestamp: number;
  payload: T;
}
export type RemoveInstrumentationEventListener = () => void;

export interface ProducerConfig {
  createPartitioner?: ICustomPartitioner;
  retry?: RetryOptions;
  metadataMaxAge?: number;
  allowAutoTopicCreation?: boolean;
  idempotent?: boolean;
  transactionalId?: string;
  transactionTimeout?: number;
  maxInFlightRequests?: number;
}

export interface Producer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;
  /** Rejects: a send and the offsets of what was consumed are not one transaction in ferry yet. */
  transaction(): Promise<never>;
  logger(): Logger;
  events: { CONNECT: 'producer.connect'; DISCONNECT: 'producer.disconnect'; REQUEST: 'producer.network.request' };
  on(eventName: string, listener: (event: InstrumentationEvent<any>) => void): RemoveInstrumentationEventListener;
}

export interface ConsumerConfig {
  groupId: string;
  partitionAssigners?: unknown[];
  metadataMaxAge?: number;
  sessionTimeout?: number;
  rebalanceTimeout?: number;
  heartbeatInterval?: number;
  maxBytesPerPartition?: number;
  minBytes?: number;
  maxBytes?: number;
  maxWaitTimeInMs?: number;
  retry?: RetryOptions & { restartOnFailure?: (err: Error) => Promise<boolean> };
  allowAutoTopicCreation?: boolean;
  maxInFlightRequests?: number;
  readUncommitted?: boolean;
  rackId?: string;
}

export interface KafkaMessage {
  key: Bytes | null;
  value: Bytes | null;
  timestamp: string;
  attributes: number;
  offset: string;
  size: number;
  headers?: { [key: string]: Bytes | undefined };
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: KafkaMessage;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

export interface Batch {
  topic: string;
  partition: number;
  highWatermark: string;
  messages: KafkaMessage[];
  isEmpty(): boolean;
  firstOffset(): string | null;
  lastOffset(): string;
  offsetLag(): string;
  offsetLagLow(): string;
}

export interface EachBatchPayload {
  batch: Batch;
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  pause(): () => void;
  commitOffsetsIfNecessary(offsets?: unknown): Promise<void>;
  uncommittedOffsets(): { topics: unknown[] };
  isRunning(): boolean;
  isStale(): boolean;
}

export interface ConsumerRunConfig {
  /** `false` is refused: ferry commits what a handler resolved. */
  autoCommit?: boolean;
  autoCommitInterval?: number | null;
  autoCommitThreshold?: number | null;
  eachBatchAutoResolve?: boolean;
  partitionsConsumedConcurrently?: number;
  eachBatch?: (payload: EachBatchPayload) => Promise<void>;
  eachMessage?: (payload: EachMessagePayload) => Promise<void>;
}

export interface ConsumerSubscribeTopics {
  topics: (string | RegExp)[];
  fromBeginning?: boolean;
}
export interface ConsumerSubscribeTopic {
  topic: string | RegExp;
  fromBeginning?: boolean;
}

export interface TopicPartitionOffsetAndMetadata {
  topic: string;
  partition: number;
  offset: string;
  metadata?: string | null;
}

export interface Consumer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  subscribe(subscription: ConsumerSubscribeTopics | ConsumerSubscribeTopic): Promise<void>;
  stop(): Promise<void>;
  run(config?: ConsumerRunConfig): Promise<void>;
  commitOffsets(topicPartitions: TopicPartitionOffsetAndMetadata[]): Promise<void>;
  seek(topicPartitionOffset: { topic: string; partition: number; offset: string }): Promise<void>;
  pause(topics: { topic: string; partitions?: number[] }[]): void;
  paused(): { topic: string; partitions: number[] }[];
  resume(topics: { topic: string; partitions?: number[] }[]): void;
  logger(): Logger;
  events: { [name in 'HEARTBEAT' | 'COMMIT_OFFSETS' | 'GROUP_JOIN' | 'FETCH_START' | 'FETCH' | 'START_BATCH_PROCESS' | 'END_BATCH_PROCESS' | 'CONNECT' | 'DISCONNECT' | 'STOP' | 'CRASH' | 'REBALANCING' | 'RECEIVED_UNSUBSCRIBED_TOPICS' | 'REQUEST' | 'REQUEST_TIMEOUT' | 'REQUEST_QUEUE_SIZE']: string };
  on(eventName: string, listener: (event: InstrumentationEvent<any>) => void): RemoveInstrumentationEventListener;
}

export interface ITopicConfig {
  topic: string;
  numPartitions?: number;
  replicationFactor?: number;
  replicaAssignment?: object[];
  /** `retention.ms` is honoured (default 7 days); the rest are accepted. */
  configEntries?: { name: string; value: string }[];
}

export interface PartitionMetadata {
  partitionErrorCode: number;
  partitionId: number;
  leader: number;
  replicas: number[];
  isr: number[];
  offlineReplicas?: number[];
}

export interface GroupDescription {
  errorCode: number;
  groupId: string;
  members: { memberId: string; clientId: string; clientHost: string; memberMetadata: Uint8Array | null; memberAssignment: Uint8Array | null }[];
  protocol: string;
  protocolType: string;
  state: string;
}

export interface Admin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  listTopics(): Promise<string[]>;
  createTopics(options: { validateOnly?: boolean; waitForLeaders?: boolean; timeout?: number; topics: ITopicConfig[] }): Promise<boolean>;
  /** Rejects: a ferry topic's partition count is fixed when it is made. */
  createPartitions(options: { validateOnly?: boolean; timeout?: number; topicPartitions: { topic: string; count: number; assignments?: number[][] }[] }): Promise<boolean>;
  /** Rejects: a ferry topic cannot be deleted yet. */
  deleteTopics(options: { topics: string[]; timeout?: number }): Promise<void>;
  fetchTopicMetadata(options?: { topics: string[] }): Promise<{ topics: Array<{ name: string; partitions: PartitionMetadata[] }> }>;
  fetchTopicOffsets(topic: string): Promise<Array<{ partition: number; offset: string; high: string; low: string }>>;
  fetchOffsets(options: { groupId: string; topics?: string[]; resolveOffsets?: boolean }): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null }> }>>;
  resetOffsets(options: { groupId: string; topic: string; earliest: boolean }): Promise<void>;
  setOffsets(options: { groupId: string; topic: string; partitions: Array<{ partition: number; offset: string }> }): Promise<void>;
  describeGroups(groupIds: string[]): Promise<{ groups: GroupDescription[] }>;
  listGroups(): Promise<{ groups: Array<{ groupId: string; protocolType: string }> }>;
  logger(): Logger;
  events: { CONNECT: 'admin.connect'; DISCONNECT: 'admin.disconnect'; REQUEST: 'admin.network.request' };
  on(eventName: string, listener: (event: InstrumentationEvent<any>) => void): RemoveInstrumentationEventListener;
}

export declare class Kafka {
  constructor(config: KafkaConfig);
  producer(config?: ProducerConfig): Producer;
  consumer(config: ConsumerConfig): Consumer;
  admin(config?: { retry?: RetryOptions }): Admin;
  logger(): Logger;
}
