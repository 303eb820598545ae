// `ferry/kafkajs` in pages and workers: message keys, values and header values are
// KafkaBytes, a Uint8Array whose toString() is the text, as a Buffer's is.
import { Bus } from './browser.js';
import { kafkaFace } from './kafkajs.js';

export { FerryError } from './browser.js';
export { logLevel, CompressionTypes, Partitioners } from './kafkajs.js';

export class KafkaBytes extends Uint8Array {
  /** The bytes as text (UTF-8; `'hex'` and `'base64'` as Buffer gives them too). */
  toString(encoding = 'utf8') {
    if (encoding === 'hex') return Array.from(this, (b) => b.toString(16).padStart(2, '0')).join('');
    if (encoding === 'base64') return btoa(String.fromCharCode(...this));
    return new TextDecoder().decode(this);
  }

  toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
  }
}

const bytes = (value) => (typeof value === 'string' ? new KafkaBytes(new TextEncoder().encode(value)) : new KafkaBytes(value));
export const { Kafka } = kafkaFace(Bus, bytes);
