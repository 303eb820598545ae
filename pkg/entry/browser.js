// Pages, dedicated workers and service workers. Their build (dist/ferry.js) is a client
// of the bus's writer, without the engine: a page whose SharedWorker writes (and the
// worker has the engine, shared-worker.js) never downloads it unless it takes over as the
// writer. A context that writes its bus itself (no SharedWorker, "each", memory) opens it
// in the engine's build (dist/engine), and so do a page's bridges; Bus.remote is that build's
// too. Its glue is imported here, not on demand, since module
// service workers cannot import() at run time; only its wasm waits.
// Neither build has the job queues (ferry/bullmq loads the build with them,
// browser-jobs.js), so that a page that only uses topics does not download them.
import * as client from '../dist/ferry.js';
import * as engine from '../dist/engine/ferry_engine.js';
import { busFor, engineHooks } from './shared.js';

export { FerryError } from './shared.js';

// A page starts the SharedWorker that writes its bus (shared-worker.js); written
// out here so that bundlers see the worker and bundle it.
const startHost =
  typeof SharedWorker === 'function'
    ? (name) => new SharedWorker(new URL('./shared-worker.js', import.meta.url), { type: 'module', name: `ferry:${name}` })
    : undefined;

const engineWasm = async () => new URL('../dist/engine/ferry_engine_bg.wasm', import.meta.url);

export const Bus = busFor(client, async () => new URL('../dist/ferry_bg.wasm', import.meta.url), { startHost, ...engineHooks(engine, engineWasm) });
