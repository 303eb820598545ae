// Types of the public API (API.md). Consumers arrive with the consumer runtime.

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
}

export interface TopicOptions {
  partitions?: number;
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
}

export interface Producer {
  send(record: { topic: string; messages: Message[] }): Promise<RecordMetadata[]>;
}

export declare class Bus {
  static open(options?: BusOptions): Promise<Bus>;
  createTopic(name: string, options?: TopicOptions): Promise<boolean>;
  topics(): Promise<TopicInfo[]>;
  producer(): Producer;
  publish(topic: string, value: MessageValue, options?: MessageOptions): Promise<RecordMetadata>;
  stats(): Promise<BusStats>;
  redrive(options: { from: string; limit?: number }): Promise<number>;
  close(): Promise<void>;
}
