// The contract suite in each browser engine (tests/js/browsers.mjs), on IndexedDB:
// in a page, and in a module service worker.
import { describe, test, before, after } from 'node:test';
import { serve } from '../../www/serve.mjs';
import { ENGINES, launch, openTestPage } from './browsers.mjs';
import { cases } from '../contract/suite.js';

const run = `${process.pid}-${Date.now()}`;
let server;

before(async () => {
  server = await serve();
});

after(() => server?.close());

const fail = (outcome) => {
  if (!outcome.ok) throw new Error(outcome.error);
};

for (const engine of ENGINES) {
  describe(engine, () => {
    let browser;
    let page;

    before(async () => {
      browser = await launch(engine);
      page = await openTestPage(browser, server.url);
      await page.evaluate(async () => {
        await navigator.serviceWorker.register('/tests/browser/sw.js', { type: 'module', scope: '/tests/browser/' });
        await navigator.serviceWorker.ready;
      });
    });

    after(() => browser?.close());

    for (const { name } of cases) {
      test(`${engine} page: ${name}`, async () => {
        const outcome = await page.evaluate(
          async ({ caseName, run }) => {
            const { cases } = await import('/tests/contract/suite.js');
            try {
              await cases.find((c) => c.name === caseName).run(window.ferry, { name: (label) => `${label}-page-${run}` });
              return { ok: true };
            } catch (e) {
              return { ok: false, error: String(e?.stack ?? e) };
            }
          },
          { caseName: name, run },
        );
        fail(outcome);
      });

      test(`${engine} service worker: ${name}`, async () => {
        const outcome = await page.evaluate(
          ({ caseName, run }) =>
            new Promise((resolve) => {
              const channel = new MessageChannel();
              channel.port1.onmessage = (event) => resolve(event.data);
              navigator.serviceWorker.ready.then((registration) => registration.active.postMessage({ caseName, run }, [channel.port2]));
            }),
          { caseName: name, run },
        );
        fail(outcome);
      });
    }
  });
}
