// Cloudflare Workers and workerd: they refuse to compile wasm from bytes at run time, so
// the engine is imported as a module, which workerd and wrangler hand over compiled.
import wasmModule from '../dist/engine/ferry_engine_bg.wasm';
import * as engine from '../dist/engine/ferry_engine.js';
import { busFor } from './shared.js';

export { FerryError } from './shared.js';
export const Bus = busFor(engine, async () => wasmModule);
