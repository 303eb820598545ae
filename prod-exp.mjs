import { serve } from './www/serve.mjs';
import { launch } from './tests/js/browsers.mjs';
const call = (page, name, ...args) => page.evaluate(([name, args]) => window.contexts[name](...args), [name, args]);
const server = await serve();
const browser = await launch();
const context = await browser.newContext();
const pages = [];
for (let i = 0; i < 4; i++) { const p = await context.newPage(); await p.goto(`${server.url}/www/bench-contexts.html`); await p.waitForFunction(() => document.title === 'ready'); pages.push(p); }
const n = Number(process.argv[2] ?? 4);
for (let run = 0; run < 3; run++) {
  const name = 'prod' + Date.now();
  for (const p of pages) await p.evaluate(() => { globalThis.__trace = []; });
  const clk = await pages[0].evaluate(() => window.contexts.clock());
  const startAt = clk + 500;
  const spans = await Promise.all(pages.slice(0, n).map((page) => call(page, 'produce', name, 'one', 1000, startAt)));
  const ms = Math.max(...spans.map((s) => s.ended)) - Math.min(...spans.map((s) => s.started));
  console.log(`run ${run}: ${n} pages ${ms.toFixed(1)} ms, ${(n * 1000 * 1000 / ms).toFixed(0)} msg/s; spans`, spans.map((s) => [(s.started - startAt).toFixed(1), (s.ended - startAt).toFixed(1)]));
  for (const [i, p] of pages.entries()) {
    const tr = await p.evaluate((startAt) => (globalThis.__trace ?? []).map(([w, t, k]) => [w, t + performance.timeOrigin - startAt, k]), startAt);
    if (tr.length) console.log(' page', i, tr.map(([w, t, k]) => `${w}@${t.toFixed(1)}${k ? '(' + k + ')' : ''}`).join(' '));
  }
  for (const page of pages) await call(page, 'reset');
}
await browser.close(); await server.close();
