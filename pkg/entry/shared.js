// What the entries of `ferry` share: FerryError, and Bus.open loading the engine on first use
// (so no entry needs top-level await, which module service workers forbid).

export { FerryError } from './error.js';

/** Loads a build's wasm once: `init` of its wasm-bindgen module, given what `loadWasm()` resolves to. */
const loader = (init, loadWasm) => {
  let ready = null;
  return () => (ready ??= loadWasm().then((module_or_path) => init({ module_or_path })));
};

/** `f`, called once `load()` loaded its build. */
const afterLoad = (load, f) => async (...args) => {
  await load();
  return f(...args);
};

/**
 * Builds the public `Bus` of one engine build (`build`: the module wasm-bindgen wrote for
 * it, dist/ferry.js, dist/engine/ferry_engine.js or dist/jobs/ferry_jobs.js) for an entry
 * whose `loadWasm()` resolves to what the build's `init` takes. `entry.startHost(name)`,
 * where given, starts the SharedWorker that writes the bus `name`; `engineHooks` gives the
 * build without the engine what loads it, and `Bus.remote` from it (that build has none).
 */
export function busFor({ default: init, Bus: EngineBus, RemoteBus }, loadWasm, entry = {}) {
  const load = loader(init, loadWasm);
  // EngineBus is named outside the class body: esbuild renames it `Bus` in a bundle but
  // keeps the class's own name `Bus`, which inside the body would then mean the class
  // itself and make open() call itself forever (evanw/esbuild#4273).
  const openEngineBus = afterLoad(load, (options) => EngineBus.open(options, entry));
  const openRemote = entry.remote ?? afterLoad(load, (options) => new RemoteBus(options));
  return class Bus {
    /** Opens (or creates) the bus named `options.name`. */
    static open(options) {
      return openEngineBus(options);
    }

    /** A bus at the edge over HTTP (`handleHttp` of `ferry/workers`) at `options.url`. */
    static remote(options) {
      return openRemote(options);
    }
  };
}

/**
 * What the build without the engine is given to load it (the engine's build `build`, its
 * wasm from `loadWasm()`, on first use): `openEngineBus(options, entry)` opens a bus in it,
 * for a context that writes its bus itself and for a page's bridges (bridge_bus.rs);
 * `openHost(...)` lends its engine to a page that takes over as the writer; `remote` is
 * its `Bus.remote`.
 */
export function engineHooks({ default: init, Bus: EngineBus, EngineHost, RemoteBus }, loadWasm) {
  const load = loader(init, loadWasm);
  return {
    openEngineBus: afterLoad(load, (options, entry) => EngineBus.open(options, entry)),
    remote: afterLoad(load, (options) => new RemoteBus(options)),
    openHost: afterLoad(load, (...args) => EngineHost.open(...args)),
  };
}
