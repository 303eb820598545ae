// `ferry/bullmq` in pages and workers: queues on the origin's IndexedDB bus, shared
// by every tab and worker, with their events heard in all of them.
import { Bus } from './browser-jobs.js';
import { bullmqFace } from './bullmq.js';

export { FerryError } from './browser-jobs.js';
export { UnrecoverableError } from './bullmq.js';
export const { Queue, Worker, QueueEvents, FlowProducer, Job } = bullmqFace(Bus);
