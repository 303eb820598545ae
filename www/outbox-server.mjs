// The receiving end of the outbox for the demo and the tests: takes posted
// messages, keeps the first of each id (repeats are counted, not stored), and can
// play "offline" (503) to show retries. Cross-origin posts are allowed.

/** A request handler for `POST /messages`, `GET /messages` and `POST /online|/offline`, under `prefix`. */
export function outboxReceiver(prefix = '') {
  const received = new Map();
  const state = { online: true, repeats: 0 };
  const handle = async (request, response) => {
    const path = new URL(request.url, 'http://x').pathname.slice(prefix.length);
    const send = (status, body) => {
      response.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type' });
      response.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (request.method === 'OPTIONS') return send(204);
    if (request.method === 'GET' && path === '/messages') return send(200, { online: state.online, repeats: state.repeats, messages: [...received.values()] });
    if (request.method === 'POST' && (path === '/online' || path === '/offline')) {
      state.online = path === '/online';
      return send(200, { online: state.online });
    }
    if (request.method === 'POST' && path === '/messages') {
      if (!state.online) return send(503, { error: 'offline' });
      let message;
      try {
        message = JSON.parse(await readBody(request));
      } catch {
        return send(400, { error: 'the body is not JSON' });
      }
      if (typeof message?.id !== 'string') return send(400, { error: 'a message needs a string id' });
      if (received.has(message.id)) state.repeats += 1;
      else received.set(message.id, { ...message, receivedAt: Date.now() });
      return send(204);
    }
    send(404, { error: 'not found' });
  };
  return {
    handle,
    received,
    get repeats() {
      return state.repeats;
    },
  };
}

async function readBody(request) {
  let body = '';
  for await (const chunk of request) body += chunk;
  return body;
}
