// A module service worker that runs the requests of tests/browser/member.js for a
// page; each request keeps it alive until the request is over (a member: until it
// is stopped).
import { serveRequest } from './member.js';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('message', (event) => event.waitUntil(serveRequest(event.data, event.ports[0])));
