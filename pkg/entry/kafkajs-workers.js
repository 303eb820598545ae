// `ferry/kafkajs` in Cloudflare Workers: producers and admin on a bus of Durable
// Objects, given as `new Kafka({ ferry: { bus: connect(env.BUS) } })` (ferry/workers).
// A Worker reads with ferry's pull consumer (`receive`): consumer.run() is refused,
// as a Worker's isolate lives only for its requests.
import { kafkaFace, KafkaBytes } from './kafkajs.js';

export { FerryError } from './workers.js';
export { logLevel, CompressionTypes, Partitioners, KafkaBytes } from './kafkajs.js';
export const { Kafka } = kafkaFace(null, KafkaBytes.of);
