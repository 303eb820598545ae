// `ferry/bullmq` in Cloudflare Workers: queues on a bus of Durable Objects, given as
// `{ ferry: { bus: connect(env.BUS) } }` (ferry/workers). The queues live in the
// bus's directory object; their repeatable and delayed jobs come due from its alarm.
import { bullmqFace } from './bullmq.js';

export { FerryError } from './workers.js';
export { UnrecoverableError } from './bullmq.js';
export const { Queue, Worker, QueueEvents, FlowProducer, Job } = bullmqFace(null);
