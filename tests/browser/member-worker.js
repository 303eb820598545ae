// A dedicated worker that runs the requests of tests/browser/member.js for a page.
import { serveRequest } from './member.js';

self.onmessage = ({ data, ports: [port] }) => serveRequest(data, port);
