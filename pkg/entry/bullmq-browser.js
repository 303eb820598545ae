// `ferry/bullmq` in pages and workers: queues on the origin's IndexedDB bus, shared
// by every tab and worker, with their events heard in all of them.
import { Bus } from './browser.js';
import { bullmqFace } from './bullmq.js';

export { FerryError } from './browser.js';
export { UnrecoverableError } from './bullmq.js';
export const { Queue, Worker, QueueEvents, FlowProducer, Job } = bullmqFace(Bus);
