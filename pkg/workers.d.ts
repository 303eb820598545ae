// Types of `ferry/workers` (pkg/README.md, "Cloudflare Workers: ferry/workers").
//
// They do not depend on @cloudflare/workers-types: FerryObject is declared against
// the small part of a Durable Object it uses, and a namespace is anything with
// `idFromName` and `get` (a `DurableObjectNamespace` is one).
import type { Bus, ConsumerOptions, DeliveredMessage, SeekTarget } from './index.js';

export { FerryError } from './index.js';
export type {
  BusStats,
  ConsumerOptions,
  DeliveredMessage,
  FerryErrorCode,
  Message,
  MessageOptions,
  MessageValue,
  Producer,
  RecordMetadata,
  RetryOptions,
  TopicInfo,
  TopicOptions,
} from './index.js';

/**
 * A Durable Object holding part of a bus, on its SQLite storage: a bus's directory
 * of topics (named after the bus) or one topic partition (`bus/topic/partition`).
 * Extend it and bind the subclass as a SQLite-backed class (`new_sqlite_classes` in
 * wrangler): `export class Bus extends FerryObject {}`. The binding must be in
 * `env`: the objects of a bus reach each other through it.
 */
export declare class FerryObject<Env = unknown> {
  constructor(ctx: any, env: Env);
  /** The object's state (`DurableObjectState`): its storage holds the bus. */
  protected ctx: any;
  protected env: Env;
  /** Runs what is due (expired leases, retention, forwards to try again) and sets the next alarm. */
  alarm(): Promise<void>;
  /**
   * The RPC that `connect()` clients and the bus's other objects make: `method` of
   * the object `name` with `args`. Errors come back as data
   * (`{ error: { code, message } }`) so their codes cross RPC.
   * @internal Call the bus through `connect()`; do not override.
   */
  call(request: {
    name: string;
    options?: ConnectOptions;
    topics?: unknown[];
    method: string;
    args?: unknown[];
  }): Promise<{ value?: unknown; error?: { code: string; message: string } }>;
}

/** A Durable Object namespace binding (`env.BUS`); a `DurableObjectNamespace` is one. */
export interface FerryNamespace {
  idFromName(name: string): unknown;
  get(id: any): unknown;
}

export interface ConnectOptions {
  /** The bus: a directory object of this name and one object per topic partition. Default `"ferry"`. */
  name?: string;
  /** Default true. Each client's options apply to its own calls. */
  autoCreateTopics?: boolean;
  /** Default 1048576 (1 MiB), at most 16 MiB. */
  maxMessageBytes?: number;
}

export type SubscribeOptions =
  | { topic: string; fromBeginning?: boolean }
  | { topics: string[]; fromBeginning?: boolean };

/** A message `receive` leased to the group; settle it with `ack` or `retry` within `ackTimeoutMs`. */
export interface ReceivedMessage extends DeliveredMessage {
  topic: string;
  partition: number;
  /**
   * Acks it: the group's committed offset moves past it. `false` when its lease had run out.
   * Acks and retries made together (`Promise.all`) reach each partition in one call.
   */
  ack(): Promise<boolean>;
  /**
   * A failed attempt: redelivered after `delayMs`, else the consumer's backoff; dead-lettered
   * after `retry.maxAttempts` with `error` in `ferry-dlq-error`. `false` when its lease had run out.
   */
  retry(options?: { delayMs?: number; error?: string }): Promise<boolean>;
}

/** A consumer that pulls: there is no `run` loop in a Worker. */
export interface PullConsumer {
  /** Before `receive`. A group with no committed position starts at the end unless `fromBeginning`. */
  subscribe(options: SubscribeOptions): Promise<void>;
  /**
   * Leases up to `max` (1 to 100, default 10) messages the group may handle now. Under
   * "partition" ordering they come as runs, in offset order per partition: settle a
   * partition's messages in order, and after a `retry` leave the rest of its run
   * (their `ack()` resolves `false`; they come again after the retried one).
   */
  receive(options?: { max?: number }): Promise<ReceivedMessage[]>;
  /**
   * As `Consumer.seek` in the browser: moves the group's position in one partition. Messages of
   * that partition received before it and not settled are abandoned (their `ack()` resolves `false`).
   */
  seek(target: SeekTarget): Promise<number>;
}

/** The bus in Durable Objects, seen from a Worker: the `Bus` methods without `open` and `close`, with consumers that pull. */
export interface FerryClient extends Omit<Bus, 'close' | 'consumer'> {
  consumer(options: ConsumerOptions): PullConsumer;
}

/** A client for the bus `name` held by the Durable Object namespace `namespace`. */
export declare function connect(namespace: FerryNamespace, options?: ConnectOptions): FerryClient;

/** `name`, `autoCreateTopics` and `maxMessageBytes` are `connect`'s. */
export interface HttpOptions extends ConnectOptions {
  /** Requests must carry `Authorization: Bearer <token>`; with no token every request is refused. */
  token: string;
  /** Larger bodies are refused with 413. Default 1048576. */
  maxBodyBytes?: number;
  /** Origins whose pages may call (CORS: a browser's `bus.bridge`): `"*"` or a list such as `["https://app.example"]`. Default none. */
  allowOrigins?: '*' | string[];
}

/**
 * Serves the bus over HTTP: `POST /v1/topics/{topic}/messages` with
 * `{ "messages": [...] }`, `GET /v1/stats`, and for consumers elsewhere
 * (`Bus.remote` in a page) `POST /v1/topics/{topic}/receive` with
 * `{ "group", "max"?, ...consumer options }` and `POST /v1/acks` with
 * `{ "receipts": [{ "receipt", "retry"? }] }`; errors are
 * `{ "error": { "code", "message" } }` with 400, 401, 404, 405 or 413.
 */
export declare function handleHttp(request: Request, namespace: FerryNamespace, options: HttpOptions): Promise<Response>;
