// Pages, dedicated workers and service workers: the engine is fetched beside this file.
import { busFor } from './shared.js';

export { FerryError } from './shared.js';
export const Bus = busFor(async () => new URL('../dist/ferry_bg.wasm', import.meta.url));
