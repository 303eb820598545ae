// Compiled with `tsc --strict --noEmit`: the declarations type every name of pkg/README.md,
// and the KafkaJS example of pkg/README.md type-checks unchanged.
import { Bus, FerryError, type BusStats, type RecordMetadata } from 'ferry';

interface Order {
  id: string;
  total: number;
}

async function kafkaJsPort(order: Order, schedule: (o: Order) => void): Promise<void> {
  const bus = await Bus.open({ name: 'shop' });
  const producer = bus.producer();
  const consumer = bus.consumer({ groupId: 'order-service' });
  await producer.send({ topic: 'order.placed', messages: [{ key: order.id, value: JSON.stringify(order) }] });
  await consumer.subscribe({ topic: 'order.placed', fromBeginning: false });
  await consumer.run({ eachMessage: async ({ message }) => schedule(JSON.parse(message.value.toString())) });
}

async function everyName(): Promise<void> {
  const bus = await Bus.open({ storage: 'memory', autoCreateTopics: false, maxMessageBytes: 1024, durability: 'strict' });
  const created: boolean = await bus.createTopic('t', { partitions: 4, retentionMs: null, maxDepth: 100, dedupWindowMs: 0 });
  const topics = await bus.topics();
  const partitions: number = topics[0].partitions;
  const meta: RecordMetadata = await bus.publish('t', new Uint8Array([1]), { key: null, headers: { a: 'b' }, id: 'x', delayMs: 5, partition: 0 });
  const offset: number = meta.offset;
  const consumer = bus.consumer({
    groupId: 'g',
    retry: { maxAttempts: 5, initialBackoffMs: 1000, multiplier: 2, maxBackoffMs: 60000, jitter: true },
    deadLetterTopic: 't.dlq',
    ackTimeoutMs: 30000,
    sessionTimeoutMs: 10000,
    heartbeatIntervalMs: 3000,
    ordering: 'none',
    concurrency: 4,
    maxBatchSize: 100,
  });
  await consumer.subscribe({ topics: ['t'], fromBeginning: true });
  await consumer.run({
    eachMessage: ({ topic, partition, message }) => {
      const attempt: number = message.attempt;
      const key: string | null = message.key;
      void [topic, partition, attempt, key, message.headers['a'], message.offset, message.timestamp, message.id];
    },
  });
  await consumer.stop();
  const batches = bus.consumer({ groupId: 'b' });
  await batches.subscribe({ topic: 't' });
  await batches.run({
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
      for (const message of batch.messages) {
        if (!isRunning() || isStale()) break;
        resolveOffset(message.offset);
        await heartbeat();
      }
      await commitOffsetsIfNecessary();
      const high: number = batch.highWatermark;
      const first: number | null = batch.firstOffset();
      void [high, first, batch.lastOffset(), batch.isEmpty(), batch.topic, batch.partition];
    },
  });
  const stats: BusStats = await bus.stats();
  const owner: string | null = stats.groups[0].partitions[0].owner;
  const mine: boolean = owner === consumer.memberId;
  const moved: number = await bus.redrive({ from: 't.dlq', limit: 10 });
  await bus.close();
  try {
    await bus.publish('t', 'v');
  } catch (e) {
    if (e instanceof FerryError) {
      const code: 'CLOSED' | string = e.code;
      void code;
    }
  }
  void [created, partitions, offset, owner, mine, moved];
}

async function mistakesAreTypeErrors(bus: Bus): Promise<void> {
  // @ts-expect-error groupId is required
  bus.consumer({});
  // @ts-expect-error ordering is "partition" or "none"
  bus.consumer({ groupId: 'g', ordering: 'random' });
  // @ts-expect-error headers hold strings
  await bus.publish('t', 'v', { headers: { a: 1 } });
  // @ts-expect-error storage is "indexeddb" or "memory"
  await Bus.open({ storage: 'disk' });
  // @ts-expect-error run takes eachMessage or eachBatch
  await bus.consumer({ groupId: 'g' }).run({ eachBatchAutoResolve: true });
  // @ts-expect-error memberId is read-only
  bus.consumer({ groupId: 'g' }).memberId = 'someone-else';
}

void kafkaJsPort;
void mistakesAreTypeErrors;
void everyName;

// Bus.remote: the same handlers on a topic at the edge.
async function remoteConsumer(): Promise<void> {
  const remote = await Bus.remote({ url: 'https://edge.example', token: 't', headers: async () => ({ 'x-device': 'd1' }) });
  const consumer = remote.consumer({ groupId: 'status', pollIntervalMs: 500, retry: { maxAttempts: 3 } });
  await consumer.subscribe({ topic: 'order.status', fromBeginning: true });
  await consumer.run({ eachMessage: async ({ topic, partition, message }) => void [topic, partition, message.value, message.attempt] });
  const lag: number = (await remote.stats()).groups[0].partitions[0].lag;
  await consumer.stop();
  // @ts-expect-error url is required
  await Bus.remote({ token: 't' });
  void lag;
}
void remoteConsumer;

// bus.bridge: events, drained() and its stats.
async function bridgeProgress(bus: Bus): Promise<void> {
  const bridge = await bus.bridge({ url: 'https://edge.example', topics: { orders: 'order.placed' }, token: 't' });
  bridge.on('forwarded', ({ count, remoteTopic }) => void [count, remoteTopic]);
  bridge.on('failed', ({ error, refused, retryInMs }) => void [error, refused, retryInMs]);
  await bridge.drained();
  const pending: number | undefined = (await bus.stats()).bridges?.[0].pending;
  // @ts-expect-error a bridge's events are "forwarded" and "failed"
  bridge.on('done', () => {});
  await bridge.stop();
  void pending;
}
void bridgeProgress;

// bus.bridge's transform: rewrite or leave out.
async function bridgeTransform(bus: Bus): Promise<void> {
  await bus.bridge({
    url: 'https://edge.example',
    topics: ['orders'],
    transform: ({ message }) => (message.key === 'internal' ? null : { value: { order: message.value }, headers: { ...message.headers, via: 'bridge' } }),
  });
  // @ts-expect-error headers hold strings
  await bus.bridge({ url: 'https://edge.example', topics: ['orders'], transform: () => ({ headers: { n: 1 } }) });
}
void bridgeTransform;
