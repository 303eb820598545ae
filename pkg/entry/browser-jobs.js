// `ferry/bullmq` in pages, dedicated workers and service workers: the engine build with
// job queues (dist/jobs), fetched beside this file. Its bus is the origin's IndexedDB bus
// that `ferry` opens too; a writer of the `ferry` build leaves job calls to the context
// that made them (pkg/README.md, "Size").
import * as engine from '../dist/jobs/ferry_jobs.js';
import { busFor } from './shared.js';

export { FerryError } from './shared.js';

// The SharedWorker that writes the bus runs this build too (shared-worker-jobs.js);
// written out here so that bundlers see the worker and bundle it.
const startHost =
  typeof SharedWorker === 'function'
    ? (name) => new SharedWorker(new URL('./shared-worker-jobs.js', import.meta.url), { type: 'module', name: `ferry:${name}` })
    : undefined;

export const Bus = busFor(engine, async () => new URL('../dist/jobs/ferry_jobs_bg.wasm', import.meta.url), { startHost });
