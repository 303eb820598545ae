// The contract suite in each browser engine (tests/js/browsers.mjs), on IndexedDB:
// in a page, in a module service worker, and in a page whose buses are written by
// another page (writer "one": every call of the suite crosses to that writer).
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

/** In the writer page: opens, with writer "one", each bus the client page names. */
function hostBuses() {
  const channel = new BroadcastChannel('contract-writer');
  const opened = new Map();
  channel.onmessage = async ({ data }) => {
    if (!data.name) return;
    if (!opened.has(data.name)) opened.set(data.name, window.ferry.Bus.open({ name: data.name, writer: 'one' }));
    try {
      await opened.get(data.name);
      channel.postMessage({ hosted: data.name });
    } catch (e) {
      channel.postMessage({ hosted: data.name, error: String(e) });
    }
  };
}

const fail = (outcome) => {
  if (!outcome.ok) throw new Error(outcome.error);
};

for (const engine of ENGINES) {
  describe(engine, () => {
    let browser;
    let page;
    let client;

    before(async () => {
      browser = await launch(engine);
      page = await openTestPage(browser, server.url);
      await page.evaluate(async () => {
        await navigator.serviceWorker.register('/tests/browser/sw.js', { type: 'module', scope: '/tests/browser/' });
        await navigator.serviceWorker.ready;
      });
      const context = await browser.newContext();
      const writer = await openTestPage(context, server.url);
      await writer.evaluate(hostBuses);
      client = await openTestPage(context, server.url);
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

      test(`${engine} client page (its writer another page): ${name}`, async () => {
        const outcome = await client.evaluate(
          async ({ caseName, run }) => {
            const { cases } = await import('/tests/contract/suite.js');
            // The writer page opens each named bus first: it holds the writer's lock,
            // and this page's bus of that name is its client.
            const hosted = (name) =>
              new Promise((resolve, reject) => {
                const channel = new BroadcastChannel('contract-writer');
                channel.onmessage = ({ data }) => {
                  if (data.hosted !== name) return;
                  channel.close();
                  if (data.error) reject(new Error(`the writer page could not open ${name}: ${data.error}`));
                  else resolve();
                };
                channel.postMessage({ name });
              });
            const Bus = Object.create(window.ferry.Bus);
            Bus.open = async (options) => {
              if (typeof options?.name !== 'string') return window.ferry.Bus.open(options);
              await hosted(options.name);
              return window.ferry.Bus.open({ ...options, writer: 'one' });
            };
            try {
              await cases.find((c) => c.name === caseName).run({ ...window.ferry, Bus }, { name: (label) => `${label}-client-${run}` });
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
