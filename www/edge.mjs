// The demo's edge: examples/workers (its worker.js, bundled as wrangler bundles it)
// in local workerd through Miniflare, reached by pages at /edge/ on the demo's own
// origin, so they need no CORS. The offline switch (POST /edge-switch?offline=1)
// makes /edge/ drop every connection, as an edge out of reach looks to a page,
// until it is switched back (?offline=0).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorker, root, startModules } from '../tests/js/workerd.mjs';

/** The bearer token of the demo's edge: a real deployment keeps its own as a secret. */
export const DEMO_TOKEN = 'ferry-demo-token';

/** Starts the edge; resolves to `{ handles(url), handle(request, response), offline, dispose() }`. */
export async function startEdge() {
  const source = await readFile(join(root, 'examples', 'workers', 'worker.js'), 'utf8');
  const mf = startModules((await bundleWorker(source)).modules, { bindings: { FERRY_TOKEN: DEMO_TOKEN } });
  await mf.ready;
  const edge = {
    offline: false,
    /** Whether `url` (a request's path and query) is the edge's. */
    handles: (url) => url.startsWith('/edge/') || url.startsWith('/edge-switch'),
    async handle(request, response) {
      const url = new URL(request.url, 'http://demo');
      if (url.pathname === '/edge-switch') {
        if (request.method === 'POST') edge.offline = url.searchParams.get('offline') === '1';
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ offline: edge.offline }));
        return;
      }
      // Out of reach: the connection drops, and the page's fetch rejects.
      if (edge.offline) return request.socket.destroy();
      const chunks = [];
      for await (const chunk of request) chunks.push(chunk);
      const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)));
      const answer = await mf.dispatchFetch(`http://edge${url.pathname.slice('/edge'.length)}${url.search}`, {
        method: request.method,
        headers,
        body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
      });
      response.writeHead(answer.status, Object.fromEntries(answer.headers));
      response.end(Buffer.from(await answer.arrayBuffer()));
    },
    dispose: () => mf.dispose(),
  };
  return edge;
}
