// Runs www/bench.html in headless Chromium and prints its figures beside their
// baselines, then the package's size beside its neighbours'. `make bench`.
import { serve } from '../www/serve.mjs';
import { launch } from '../tests/js/browsers.mjs';
import { measureSizes } from '../tools/size-report.mjs';

const server = await serve();
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/www/bench.html`);
  await page.waitForFunction(() => window.benchResults, null, { timeout: 600_000 });
  const r = await page.evaluate(() => window.benchResults);
  if (r.error) throw new Error(r.error);
  const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(10);
  const ratio = (n, base) => `${(n / base).toFixed(2)}x`;
  console.log(`ferry in headless Chromium, 256-byte values, median of ${r.runs} runs`);
  console.log(`  raw IndexedDB, one record per message, one transaction  ${fmt(r.rawIndexedDb)} msg/s  (baseline)`);
  console.log(`  send, batches of 100                                    ${fmt(r.sendBatches100)} msg/s  ${ratio(r.sendBatches100, r.rawIndexedDb)}`);
  console.log(`  1,000 concurrent single-message sends (group commit)    ${fmt(r.concurrentSends1000)} msg/s  ${ratio(r.concurrentSends1000, r.rawIndexedDb)}`);
  console.log(`  consume + ack, one consumer (ordering none, 100 at once) ${fmt(r.consumeAck)} msg/s`);
  const count = r.consumeMessages.toLocaleString('en-US');
  console.log(`  consume + ack, one page, ${count} messages on ${r.consumePartitions} partitions (each line a fresh copy of the same messages)`);
  const consumeLine = (label, key, note) => {
    const repeats = r[`${key}Repeats`] ? `  (${r[`${key}Repeats`]} repeated deliveries)` : '';
    console.log(`    ${label.padEnd(55)}${fmt(r[key])} msg/s  ${note}${repeats}`);
  };
  consumeLine('ordering "none", concurrency 100, eachMessage', 'consumeNone8', '(baseline)');
  consumeLine('ordering "partition", concurrency 8, eachMessage', 'consumePartition8', `${ratio(r.consumePartition8, r.consumeNone8)} (floor >= 0.70x)`);
  consumeLine('ordering "partition", concurrency 8, eachBatch', 'consumeBatch8', `${ratio(r.consumeBatch8, r.consumeNone8)}  (${r.consumeBatch8PerBatch.toFixed(1)} messages per batch)`);
  console.log(`  import to open bus                                      ${r.importToOpenMs.toFixed(1).padStart(10)} ms`);
  const { app, browser: pageWasm, js, engine } = measureSizes();
  const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
  console.log(
    `bundle: import { Bus } from 'ferry' ${kb(app.gzip)} gzipped (the page's wasm ${kb(pageWasm.gzip)} + JS ${kb(js.gzip)}; target 60 KB, goal 40 KB); its SharedWorker's engine ${kb(engine.gzip)}`,
  );
  console.log('neighbours (esbuild --minify, gzip -9): idb 1.4 KB, workbox-background-sync 3.0 KB, broadcast-channel 5.3 KB, Dexie 32.7 KB');
} finally {
  await browser.close();
  await server.close();
}
