// Pages, dedicated workers and service workers: the engine is fetched beside this file.
// This build has no job queues (ferry/bullmq loads the build with them, browser-jobs.js),
// so that a page that only uses topics does not download them.
import * as engine from '../dist/ferry.js';
import { busFor } from './shared.js';

export { FerryError } from './shared.js';

// A page starts the SharedWorker that writes its bus (shared-worker.js); written
// out here so that bundlers see the worker and bundle it.
const startHost =
  typeof SharedWorker === 'function'
    ? (name) => new SharedWorker(new URL('./shared-worker.js', import.meta.url), { type: 'module', name: `ferry:${name}` })
    : undefined;

export const Bus = busFor(engine, async () => new URL('../dist/ferry_bg.wasm', import.meta.url), startHost);
