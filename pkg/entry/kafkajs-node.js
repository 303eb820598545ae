// `ferry/kafkajs` in Node.js: message keys, values and header values are Buffers.
import { Bus } from './node.js';
import { kafkaFace } from './kafkajs.js';

export { FerryError } from './node.js';
export { logLevel, CompressionTypes, Partitioners } from './kafkajs.js';
export const { Kafka } = kafkaFace(Bus, (value) => Buffer.from(value));
