// A module service worker that runs the requests of tests/browser/member.js for a
// page; each request keeps it alive until the request is over (a member: until it
// is stopped). Firefox, though, ends a service worker 60 s after its last event
// whatever it still waits on, so a page running a member here also sends
// 'keep-alive' messages: each is an event, and starts those 60 s again.
import { serveRequest } from './member.js';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('message', (event) => {
  if (event.data !== 'keep-alive') event.waitUntil(serveRequest(event.data, event.ports[0]));
});
