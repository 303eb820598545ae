// Start-up in headless Chromium: import('ferry') to a bus open on IndexedDB (its writer
// a SharedWorker), each run in a fresh browser context so that nothing of the engine is
// compiled or cached yet. Two ways a page gets the package: its modules as published,
// each fetched in turn (pkg/entry/browser.js and what it imports), and an app's esbuild
// bundle of them, as apps ship it. Median of 10 runs each. `make bench`.
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { serve } from '../www/serve.mjs';
import { launch } from '../tests/js/browsers.mjs';

const RUNS = 10;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ROOT = fileURLToPath(new URL('..', import.meta.url));
// The bundled app lives in a copy of the package, so that the bundle's relative URLs
// (the wasm, the SharedWorker) resolve as they do beside a bundle in an app.
const APP = `${ROOT}target/startup/`;

/** The page's script: import to open, left in window.importToOpenMs. */
const measure = (importFerry) => `
const start = performance.now();
const { Bus } = await ${importFerry};
const bus = await Bus.open({ name: 'startup-' + crypto.randomUUID() });
window.importToOpenMs = performance.now() - start;
await bus.close();
`;

async function bundledApp() {
  await rm(APP, { recursive: true, force: true });
  await mkdir(APP, { recursive: true });
  await cp(`${ROOT}pkg`, `${APP}pkg`, { recursive: true });
  await writeFile(`${APP}pkg/entry/app-source.js`, measure("import('./browser.js')"));
  await build({ entryPoints: [`${APP}pkg/entry/app-source.js`], outfile: `${APP}pkg/entry/app.js`, bundle: true, minify: true, format: 'esm', platform: 'browser', logLevel: 'error' });
  await writeFile(`${APP}index.html`, '<!doctype html><meta charset="utf-8"><script type="module" src="pkg/entry/app.js"></script>');
}

async function runs(browser, url) {
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.importToOpenMs !== undefined, null, { timeout: 60_000 });
    samples.push(await page.evaluate(() => window.importToOpenMs));
    await context.close();
  }
  return `${median(samples).toFixed(1).padStart(7)} ms  (runs ${Math.min(...samples).toFixed(0)}–${Math.max(...samples).toFixed(0)} ms)`;
}

await bundledApp();
await writeFile(`${APP}modules.html`, `<!doctype html><meta charset="utf-8"><script type="module">${measure("import('/pkg/entry/browser.js')")}</script>`);
const server = await serve();
const browser = await launch();
try {
  console.log(`start-up in headless Chromium: import('ferry') -> Bus.open resolved, a fresh context per run, median of ${RUNS} (floor <= 100 ms, goal <= 50 ms)`);
  console.log(`  the package's modules as published, fetched in turn  ${await runs(browser, `${server.url}/target/startup/modules.html`)}`);
  console.log(`  an app's esbuild bundle of them                       ${await runs(browser, `${server.url}/target/startup/index.html`)}`);
} finally {
  await browser.close();
  await server.close();
}
