// The SharedWorker that writes a bus for the pages of its origin that use `ferry/bullmq`
// (host.js): it runs the engine build with job queues, so it serves their job calls.
import { Bus } from './browser-jobs.js';
import { hostBus } from './host.js';

hostBus(Bus);
