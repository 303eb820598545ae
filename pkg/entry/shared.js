// What the entries of `ferry` share: FerryError, and Bus.open loading the engine on first use
// (so no entry needs top-level await, which module service workers forbid).

export { FerryError } from './error.js';

/**
 * Builds the public `Bus` of one engine build (`engine`: the module wasm-bindgen wrote for
 * it, dist/ferry.js or dist/jobs/ferry_jobs.js) for an entry whose `loadWasm()` resolves
 * to what the build's `init` takes; `startHost(name)`, where given, starts the
 * SharedWorker that writes the bus `name`.
 */
export function busFor({ default: init, Bus: EngineBus, RemoteBus }, loadWasm, startHost) {
  let ready = null;
  const load = () => (ready ??= loadWasm().then((module_or_path) => init({ module_or_path })));
  // EngineBus is named outside the class body: esbuild renames it `Bus` in a bundle but
  // keeps the class's own name `Bus`, which inside the body would then mean the class
  // itself and make open() call itself forever (evanw/esbuild#4273).
  const openEngineBus = async (options) => {
    await load();
    return EngineBus.open(options, startHost);
  };
  return class Bus {
    /** Opens (or creates) the bus named `options.name`. */
    static open(options) {
      return openEngineBus(options);
    }

    /** A bus at the edge over HTTP (`handleHttp` of `ferry/workers`) at `options.url`. */
    static async remote(options) {
      await load();
      return new RemoteBus(options);
    }
  };
}
