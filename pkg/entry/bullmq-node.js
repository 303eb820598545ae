// `ferry/bullmq` in Node.js: queues on the Node bus (in memory unless told otherwise).
import { Bus } from './node-jobs.js';
import { bullmqFace } from './bullmq.js';

export { FerryError } from './node-jobs.js';
export { UnrecoverableError } from './bullmq.js';
export const { Queue, Worker, QueueEvents, FlowProducer, Job } = bullmqFace(Bus);
