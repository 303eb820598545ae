// Compiled with `tsc --strict --noEmit`: the declarations of `ferry/workers` type
// every name of its pkg/README.md section, without @cloudflare/workers-types.
import {
  FerryObject,
  FerryError,
  connect,
  handleHttp,
  type BusStats,
  type ConnectOptions,
  type FerryClient,
  type FerryNamespace,
  type HttpOptions,
  type PullConsumer,
  type ReceivedMessage,
  type RecordMetadata,
  type TopicInfo,
} from 'ferry/workers';
import { FerryError as FerryErrorOfBus } from 'ferry';

interface Env {
  BUS: FerryNamespace;
  FERRY_TOKEN: string;
}

interface Order {
  id: string;
  items: string[];
}

// The class a wrangler binding names.
export class Bus extends FerryObject {}

// A subclass may use the object's state and env, and run more on its alarm.
export class AuditedBus extends FerryObject<Env> {
  async alarm(): Promise<void> {
    await super.alarm();
    const token: string = this.env.FERRY_TOKEN;
    void [token, this.ctx.storage];
  }
}

declare function fulfil(order: Order): Promise<void>;

// the contract's example, typed.
const worker = {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (new URL(request.url).pathname.startsWith('/v1/')) return handleHttp(request, env.BUS, { token: env.FERRY_TOKEN });
    const order: Order = await request.json();
    const bus = connect(env.BUS, { name: 'shop' });
    await bus.publish('order.placed', order, { key: order.id, id: order.id });
    const consumer = bus.consumer({ groupId: 'fulfilment', retry: { maxAttempts: 5 } });
    await consumer.subscribe({ topic: 'order.placed' });
    for (const m of await consumer.receive({ max: 10 })) {
      try {
        await fulfil(m.value);
        await m.ack();
      } catch (e) {
        await m.retry({ error: String(e) });
      }
    }
    return Response.json(await bus.stats());
  },
};

async function everyName(env: Env, request: Request): Promise<void> {
  const options: ConnectOptions = { name: 'shop', autoCreateTopics: false, maxMessageBytes: 1024 };
  const bus: FerryClient = connect(env.BUS, options);
  const byDefault: FerryClient = connect(env.BUS);
  const created: boolean = await bus.createTopic('t', { partitions: 4, retentionMs: null, maxDepth: 100, dedupWindowMs: 0 });
  const topics: TopicInfo[] = await bus.topics();
  const sent: RecordMetadata[] = await bus.producer().send({
    topic: 't',
    messages: [{ key: 'k', value: new Uint8Array([1]), headers: { a: 'b' }, id: 'x', delayMs: 5, partition: 0 }],
  });
  const meta: RecordMetadata = await bus.publish('t', { any: 'json' }, { key: null, id: 'y' });
  const consumer: PullConsumer = bus.consumer({
    groupId: 'g',
    retry: { maxAttempts: 5, initialBackoffMs: 1000, multiplier: 2, maxBackoffMs: 60000, jitter: true },
    deadLetterTopic: 't.dlq',
    ackTimeoutMs: 30000,
    ordering: 'none',
  });
  await consumer.subscribe({ topic: 't', fromBeginning: true });
  await consumer.subscribe({ topics: ['u', 'v'] });
  const received: ReceivedMessage[] = await consumer.receive({ max: 100 });
  const more: ReceivedMessage[] = await consumer.receive();
  for (const m of received) {
    const topic: string = m.topic;
    const partition: number = m.partition;
    const offset: number = m.offset;
    const key: string | null = m.key;
    const headers: Record<string, string> = m.headers;
    const timestamp: number = m.timestamp;
    const id: string | null = m.id;
    const attempt: number = m.attempt;
    void [topic, partition, offset, key, m.value, headers, timestamp, id, attempt];
    const acked: boolean = await m.ack();
    const retried: boolean = await m.retry({ delayMs: 1000, error: 'later' });
    const retriedWithBackoff: boolean = await m.retry();
    void [acked, retried, retriedWithBackoff];
  }
  const stats: BusStats = await bus.stats();
  const lag: number = stats.groups[0].partitions[0].lag;
  const moved: number = await bus.redrive({ from: 't.dlq', limit: 10 });
  const http: HttpOptions = { token: 'secret', name: 'shop', maxBodyBytes: 4096, autoCreateTopics: false, maxMessageBytes: 2048 };
  const response: Response = await handleHttp(request, env.BUS, http);
  try {
    await bus.createTopic('bad name!');
  } catch (e) {
    if (e instanceof FerryError) {
      const code: 'INVALID_ARGUMENT' | string = e.code;
      void code;
    }
  }
  // One FerryError class for both entries.
  const same: typeof FerryErrorOfBus = FerryError;
  void [byDefault, created, topics, sent, meta, more, lag, moved, response, same];
}

// A DurableObjectNamespace-like binding is a namespace; its stub type does not matter.
declare const typedNamespace: {
  idFromName(name: string): { toString(): string };
  get(id: { toString(): string }, options?: { locationHint?: string }): { call(...args: unknown[]): Promise<unknown> };
};
connect(typedNamespace, { name: 'shop' });

async function mistakesAreTypeErrors(env: Env, bus: FerryClient, request: Request, m: ReceivedMessage): Promise<void> {
  const consumer = bus.consumer({ groupId: 'g' });
  // @ts-expect-error max is a number
  await consumer.receive({ max: '10' });
  // @ts-expect-error groupId is required
  bus.consumer({});
  // @ts-expect-error subscribe names a topic or topics
  await consumer.subscribe({ fromBeginning: true });
  // @ts-expect-error a pull consumer has no run loop
  await consumer.run({ eachMessage: async () => {} });
  // @ts-expect-error retry's delayMs is a number
  await m.retry({ delayMs: '1s' });
  // @ts-expect-error ack takes nothing
  await m.ack(true);
  // @ts-expect-error handleHttp needs its token
  await handleHttp(request, env.BUS, {});
  // @ts-expect-error handleHttp needs its options
  await handleHttp(request, env.BUS);
  // @ts-expect-error a namespace, not its name
  connect('BUS');
  // @ts-expect-error connect's name is a string
  connect(env.BUS, { name: 42 });
  // @ts-expect-error the client is not closed: the object lives on
  await bus.close();
  // @ts-expect-error headers hold strings
  await bus.publish('t', 'v', { headers: { a: 1 } });
}

void worker;
void everyName;
void mistakesAreTypeErrors;
