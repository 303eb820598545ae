// Node.js >= 20: the engine's bytes come from the package folder.
import { readFile } from 'node:fs/promises';
import * as engine from '../dist/engine/ferry_engine.js';
import { busFor } from './shared.js';

export { FerryError } from './shared.js';
export const Bus = busFor(engine, () => readFile(new URL('../dist/engine/ferry_engine_bg.wasm', import.meta.url)));
