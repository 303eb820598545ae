// Code typed as KafkaJS's documentation writes it, compiled against ferry/kafkajs.
import { Kafka, logLevel, CompressionTypes, Partitioners, type EachMessagePayload, type RecordMetadata } from 'ferry/kafkajs';

async function gettingStarted(): Promise<void> {
  const kafka = new Kafka({ clientId: 'my-app', brokers: ['kafka1:9092', 'kafka2:9092'], logLevel: logLevel.ERROR });
  const producer = kafka.producer({ createPartitioner: Partitioners.LegacyPartitioner });
  await producer.connect();
  const sent: RecordMetadata[] = await producer.send({ topic: 'test-topic', compression: CompressionTypes.GZIP, messages: [{ key: 'key1', value: 'Hello KafkaJS user!', headers: { 'correlation-id': '2bfb68bb' } }] });
  await producer.sendBatch({ topicMessages: [{ topic: 'a', messages: [{ value: 'x' }] }] });
  const consumer = kafka.consumer({ groupId: 'test-group', sessionTimeout: 30000, retry: { retries: 3 } });
  await consumer.connect();
  await consumer.subscribe({ topics: ['test-topic', /test-.*/i], fromBeginning: true });
  const remove = consumer.on(consumer.events.GROUP_JOIN, (e) => void e.payload);
  await consumer.run({
    partitionsConsumedConcurrently: 3,
    eachMessage: async ({ topic, partition, message, heartbeat }: EachMessagePayload) => {
      console.log({ topic, partition, offset: message.offset, value: message.value?.toString(), header: message.headers?.['correlation-id']?.toString() });
      await heartbeat();
    },
  });
  await consumer.run({ eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => { for (const m of batch.messages) { if (!isRunning() || isStale()) break; resolveOffset(m.offset); } } });
  await consumer.seek({ topic: 'test-topic', partition: 0, offset: '12' });
  remove();
  const admin = kafka.admin();
  await admin.connect();
  const created: boolean = await admin.createTopics({ topics: [{ topic: 'x', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '-1' }] }] });
  const offsets = await admin.fetchTopicOffsets('x');
  const high: string = offsets[0].high;
  await admin.resetOffsets({ groupId: 'test-group', topic: 'x', earliest: true });
  kafka.logger().info('done', { created, high, sent });
  await Promise.all([producer.disconnect(), consumer.disconnect(), admin.disconnect()]);
}
void gettingStarted;
