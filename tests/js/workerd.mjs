// Bundles Workers for the workerd tests the way wrangler does, as Miniflare modules.
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';

export const root = fileURLToPath(new URL('../..', import.meta.url));

// Like wrangler: .wasm imports stay separate modules, named by their file, which
// workerd hands to the importer compiled (a WebAssembly.Module).
function wasmModules(found) {
  return {
    name: 'wasm-modules',
    setup(build) {
      build.onResolve({ filter: /\.wasm$/ }, (args) => {
        const path = resolve(args.resolveDir, args.path);
        found.set(basename(path), path);
        return { path: `./${basename(path)}`, external: true };
      });
    },
  };
}

/**
 * The Worker `source` with `ferry` bundled under wrangler's conditions: resolves to
 * `{ modules, inputs }`, Miniflare modules rooted at `root` and the bundled files.
 */
export async function bundleWorker(source) {
  const wasm = new Map();
  const result = await build({
    stdin: { contents: source, resolveDir: root, sourcefile: 'worker.js' },
    bundle: true,
    format: 'esm',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['cloudflare:*'],
    plugins: [wasmModules(wasm)],
    metafile: true,
    write: false,
    outfile: 'worker.js',
    logLevel: 'silent',
  });
  // Module names are paths relative to modulesRoot: the worker and the engine side by side.
  const modules = [{ type: 'ESModule', path: join(root, 'worker.js'), contents: result.outputFiles[0].text }];
  for (const [name, path] of wasm) modules.push({ type: 'CompiledWasm', path: join(root, name), contents: await readFile(path) });
  return { modules, inputs: Object.keys(result.metafile.inputs) };
}

/**
 * Miniflare running the Worker `source` with `Bus` (its FerryObject subclass) bound
 * as `BUS`, a SQLite-backed Durable Object. `durableObjects` adds classes, `bindings`
 * variables; `persistTo` keeps Durable Object storage in a folder across instances,
 * and `port` (0: any free one) lets a later instance listen where an earlier one did.
 */
export async function startWorker(source, options = {}) {
  return startModules((await bundleWorker(source)).modules, options);
}

/** As startWorker, for modules bundleWorker gave: a Worker restarted often is bundled once. */
export function startModules(modules, { durableObjects = {}, bindings = {}, persistTo = false, port = 0 } = {}) {
  return new Miniflare({
    modules,
    modulesRoot: root,
    compatibilityDate: '2025-09-01',
    durableObjects: { BUS: { className: 'Bus', useSQLite: true }, ...durableObjects },
    bindings,
    durableObjectsPersist: persistTo,
    port,
  });
}

/**
 * The source of a Worker whose /v1/ paths are handleHttp of the bus `name`, open
 * to pages of any origin (CORS), with its token in `env.FERRY_TOKEN`. `routes` is
 * the code that serves its other paths, with `request`, `env`, `url` and `bus`
 * (connect()'s client of that bus) in scope.
 */
export function edgeWorker(name, routes) {
  return `
import { FerryObject, connect, handleHttp } from 'ferry/workers';

export class Bus extends FerryObject {}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/v1/')) return handleHttp(request, env.BUS, { token: env.FERRY_TOKEN, name: '${name}', allowOrigins: '*' });
    const bus = connect(env.BUS, { name: '${name}' });
${routes}
  },
};
`;
}
