// `ferry/kafkajs` in pages and workers: message keys, values and header values are
// KafkaBytes, a Uint8Array whose toString() is the text, as a Buffer's is.
import { Bus } from './browser.js';
import { kafkaFace, KafkaBytes } from './kafkajs.js';

export { FerryError } from './browser.js';
export { logLevel, CompressionTypes, Partitioners, KafkaBytes } from './kafkajs.js';
export const { Kafka } = kafkaFace(Bus, KafkaBytes.of);
