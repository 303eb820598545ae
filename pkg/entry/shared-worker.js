// The SharedWorker that writes a bus for the pages of its origin that use `ferry`
// (host.js): it runs the engine's build, which the pages' own build leaves out.
import * as engine from '../dist/engine/ferry_engine.js';
import { busFor } from './shared.js';
import { hostBus } from './host.js';

hostBus(busFor(engine, async () => new URL('../dist/engine/ferry_engine_bg.wasm', import.meta.url)));
