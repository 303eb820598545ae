// The inspector page: <ferry-inspector> on the bus ?bus=NAME of this browser (the
// orders demo's, ferry-demo, by default) and, with ?edge=URL&token=T, a second one on
// that edge's handleHttp (relative to this page: the demo serves its edge at /edge).
const params = new URLSearchParams(location.search);
const local = document.querySelector('ferry-inspector');
const name = params.get('bus') || 'ferry-demo';
// Set before the element is defined, so that it opens this bus and never the default.
local.setAttribute('bus', name);
document.querySelector('#bus-name').textContent = name;
if (params.has('interval')) local.setAttribute('interval', params.get('interval'));

const edge = params.get('edge');
if (edge) {
  const remote = document.createElement('ferry-inspector');
  remote.setAttribute('url', new URL(edge, location.href).href);
  if (params.has('token')) remote.setAttribute('token', params.get('token'));
  if (params.has('interval')) remote.setAttribute('interval', params.get('interval'));
  document.querySelector('#inspectors').append(remote);
}

await import('ferry/inspector');
