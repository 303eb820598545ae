// A module service worker that runs contract cases on request: the package loads
// here with one static import and no init call, like in any other context.
import * as ferry from '/pkg/entry/browser.js';
import { cases } from '/tests/contract/suite.js';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('message', (event) => {
  const [port] = event.ports;
  const { caseName, run } = event.data;
  event.waitUntil(
    (async () => {
      const found = cases.find((c) => c.name === caseName);
      try {
        await found.run(ferry, { name: (label) => `${label}-sw-${run}` });
        port.postMessage({ ok: true });
      } catch (e) {
        port.postMessage({ ok: false, error: String(e?.stack ?? e) });
      }
    })(),
  );
});
