// The package as a Vite user gets it: `import { Bus } from 'ferry'` (and `ferry/bullmq`),
// no init() call, bundled by Vite's build() and run from the built files in headless
// Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';
import { launch } from './browsers.mjs';

const PKG = fileURLToPath(new URL('../../pkg/', import.meta.url));

const INDEX_HTML = `<!doctype html>
<meta charset="utf-8">
<title>ferry bundle</title>
<script type="module" src="./main.js"></script>
`;

// Runs once in the page and leaves what it saw in window.result for the test to read.
const MAIN_JS = `import { Bus, FerryError } from 'ferry';

async function run() {
  const name = 'bundle-' + crypto.randomUUID();
  const topic = 'greetings';
  const bus = await Bus.open({ name });
  const created = await bus.createTopic(topic);
  const [sent] = await bus.producer().send({ topic, messages: [{ key: 'k', value: { n: 1 } }] });
  const consumer = bus.consumer({ groupId: 'g' });
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = await new Promise((resolve) =>
    consumer.run({ eachMessage: async ({ message }) => resolve({ key: message.key, value: message.value }) }),
  );
  await consumer.stop();
  const rejected = await bus.createTopic('bad name!').then(
    () => null,
    (e) => ({ isFerryError: e instanceof FerryError, code: e.code }),
  );
  await bus.close();
  // The default storage in a page is IndexedDB: the bus is a database of that name.
  const inIndexedDB = (await indexedDB.databases()).some((db) => db.name === name);
  return { created, offset: sent.offset, received, rejected, inIndexedDB };
}

run().then(
  (result) => (window.result = result),
  (error) => (window.result = { error: String(error?.stack ?? error) }),
);
`;

/** Installs the package the way npm does from the registry: a real folder holding package.json and its `files`. */
async function installPackage(appDir) {
  const target = join(appDir, 'node_modules', 'ferry');
  const { files } = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8'));
  for (const entry of ['package.json', ...files]) {
    await cp(join(PKG, entry), join(target, entry), { recursive: true });
  }
}

// A BullMQ program: `ferry/bullmq` brings the engine build with job queues, and only it.
const BULLMQ_MAIN_JS = `import { Queue, Worker } from 'ferry/bullmq';

async function run() {
  const ferry = { name: 'bundle-jobs-' + crypto.randomUUID() };
  const queue = new Queue('mail', { ferry });
  const done = new Promise((resolve) => {
    const worker = new Worker('mail', async (job) => job.data.to.toUpperCase(), { ferry });
    worker.on('completed', (job, value) => worker.close().then(() => resolve(value)));
  });
  await queue.add('welcome', { to: 'ada' });
  const value = await done;
  const counts = await queue.getJobCounts('completed');
  await queue.close();
  return { value, counts };
}

run().then(
  (result) => (window.result = result),
  (error) => (window.result = { error: String(error?.stack ?? error) }),
);
`;

/** Writes the app (its main.js is `mainJs`) and the package into `appDir`, builds it with Vite, and returns the output folder. */
async function buildApp(appDir, mainJs) {
  await writeFile(join(appDir, 'index.html'), INDEX_HTML);
  await writeFile(join(appDir, 'main.js'), mainJs);
  await installPackage(appDir);
  const outDir = join(appDir, 'dist');
  // configFile: false so no vite.config of the repository leaks in; the default
  // client conditions (browser, module) pick the package's browser entry.
  await build({ root: appDir, configFile: false, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  return outDir;
}

/** The built assets by kind, with their gzipped sizes. */
async function assetSizes(outDir) {
  const assetsDir = join(outDir, 'assets');
  const assets = await readdir(assetsDir);
  const gzipped = async (file) => gzipSync(await readFile(join(assetsDir, file))).length;
  const sizesOf = (ext) => Promise.all(assets.filter((f) => extname(f) === ext).map(gzipped));
  return { js: await sizesOf('.js'), wasm: await sizesOf('.wasm'), wasmFiles: assets.filter((f) => extname(f) === '.wasm') };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm' };

/** A static server for `dir` on 127.0.0.1; .wasm goes out as application/wasm so instantiateStreaming takes it. */
async function serveDir(dir) {
  const server = createServer(async (request, response) => {
    // Normalising an absolute path never climbs above '/', so the file stays inside dir.
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://x').pathname));
    const file = join(dir, path.endsWith('/') ? join(path, 'index.html') : path);
    try {
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      response.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

/** Opens the built app and resolves to what its main.js reports; an uncaught page error fails at once. */
async function runInChromium(browser, url) {
  const page = await browser.newPage();
  const pageError = new Promise((_, reject) => page.on('pageerror', reject));
  await page.goto(url);
  await Promise.race([page.waitForFunction(() => window.result, null, { timeout: 15000 }), pageError]);
  // The page's own fetches (its workers' are their own).
  const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => new URL(r.name).pathname.split('/').pop()));
  return { result: await page.evaluate(() => window.result), fetched };
}

const kb = (bytes) => (bytes.reduce((a, b) => a + b, 0) / 1024).toFixed(1);

/** Builds an app of `mainJs` with Vite, serves it and runs it in Chromium: its assets' `sizes` and what its main.js reported; nothing of it is left after. */
async function buildAndRun(mainJs) {
  const appDir = await mkdtemp(join(tmpdir(), 'ferry-vite-'));
  let server;
  let browser;
  try {
    const outDir = await buildApp(appDir, mainJs);
    const sizes = await assetSizes(outDir);
    server = await serveDir(outDir);
    browser = await launch();
    return { sizes, ...(await runInChromium(browser, server.url)) };
  } finally {
    await browser?.close();
    await server?.close();
    await rm(appDir, { recursive: true, force: true });
  }
}

test('a Vite build of `import { Bus } from "ferry"` runs in a page with no init() call', async () => {
  const { sizes, result, fetched } = await buildAndRun(MAIN_JS);
  // Vite turned each new URL('../dist/...wasm', import.meta.url) into one hashed asset:
  // the pages' build, and the engine's, which their SharedWorker runs.
  assert.deepEqual(
    sizes.wasmFiles.map((f) => f.replace(/-.*/, '')).sort(),
    ['ferry_bg', 'ferry_engine_bg'],
    `the pages' build and the engine's, once each, neither with job queues: ${sizes.wasmFiles}`,
  );
  const wasmFetched = fetched.filter((f) => f.endsWith('.wasm')).map((f) => f.replace(/-.*/, ''));
  assert.deepEqual(wasmFetched, ['ferry_bg'], `the page fetched its own build alone, the SharedWorker the engine: ${fetched}`);
  const pageWasm = sizes.wasm.filter((_, i) => sizes.wasmFiles[i].startsWith('ferry_bg'));
  console.log(`vite bundle: ${kb(sizes.js)} KB JS + ${kb(sizes.wasm)} KB wasm gzipped, of which the page fetches ${kb(pageWasm)} KB`);
  assert.deepEqual(result, {
    created: true,
    offset: 0,
    received: { key: 'k', value: { n: 1 } },
    rejected: { isFerryError: true, code: 'INVALID_ARGUMENT' },
    inIndexedDB: true,
  });
});

test('a Vite build of a ferry/bullmq program holds the build with job queues alone, and runs a job in a page', async () => {
  const { sizes, result } = await buildAndRun(BULLMQ_MAIN_JS);
  assert.equal(sizes.wasm.length, 1, `one engine for the page and its SharedWorker: ${sizes.wasmFiles}`);
  assert.match(sizes.wasmFiles[0], /^ferry_jobs_bg/, 'the build with job queues');
  console.log(`vite bundle (ferry/bullmq): ${kb(sizes.js)} KB JS + ${kb(sizes.wasm)} KB wasm gzipped`);
  assert.deepEqual(result, { value: 'ADA', counts: { completed: 1 } });
});
