// A static file server on 127.0.0.1 for the demo and the browser tests: serves the
// repository, so pages import the package from /pkg/. With `edge`, also the demo's
// edge (www/edge.mjs: examples/workers in local workerd) at /edge/.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEdge } from './edge.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css',
};

/** Starts the server on `port` (0: a free one); resolves to `{ url, edge, close() }`. */
export async function serve(port = 0, { edge: withEdge = false } = {}) {
  const edge = withEdge ? await startEdge() : null;
  const server = createServer(async (request, response) => {
    if (edge?.handles(request.url)) return edge.handle(request, response);
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://x').pathname));
    const file = join(ROOT, path.endsWith('/') ? join(path, 'index.html') : path);
    if (!file.startsWith(ROOT)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      response.end(body);
    } catch {
      response.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  // Closing drops the browsers' open connections, which would otherwise hold it open.
  const close = async () => {
    await new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
    await edge?.dispose();
  };
  return { url: `http://127.0.0.1:${server.address().port}`, edge, close };
}

// `node www/serve.mjs [port]`: serves the demo and prints where to look.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { url } = await serve(Number(process.argv[2] ?? 8080), { edge: true });
  console.log(`ferry demo: open ${url}/www/ (Ctrl-C to stop)`);
  console.log(`  the offline-first order page: ${url}/examples/offline-first/ (its edge, examples/workers in local workerd, at ${url}/edge/)`);
  console.log(`  the inspector, the demo's bus beside the edge's: ${url}/www/inspector.html?bus=ferry-demo&edge=/edge&token=ferry-demo-token`);
}
