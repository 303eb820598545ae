// `ferry/bullmq` in Node.js >= 20: the engine build with job queues, from the package folder.
import { readFile } from 'node:fs/promises';
import * as engine from '../dist/jobs/ferry_jobs.js';
import { busFor } from './shared.js';

export { FerryError } from './shared.js';
export const Bus = busFor(engine, () => readFile(new URL('../dist/jobs/ferry_jobs_bg.wasm', import.meta.url)));
