// The outbox page: enqueues notes, pings the forwarder, shows what the server got.
import { Bus } from 'ferry';
import { enqueue, pending, startForwarder } from './outbox.js';

const BUS = 'ferry-outbox';
const SERVER = '/outbox';
const bus = await Bus.open({ name: BUS });
const log = document.querySelector('#log');
const say = (text) => log.insertAdjacentHTML('afterbegin', `<li>${new Date().toLocaleTimeString()}  ${text}</li>`);

// The service worker forwards; where there is no Background Sync to wake it after it
// was killed, this tab forwards too (the group shares the work either way).
const registration = await navigator.serviceWorker.register(`outbox-sw.js?bus=${BUS}`, { type: 'module' });
const hasSync = 'sync' in registration;
if (!hasSync) await startForwarder(bus, new URL(`${SERVER}/messages`, location.href).href);
say(`forwarder: the service worker${hasSync ? '' : ' and this tab'}`);

let written = 0;
document.querySelector('#note').onclick = async () => {
  const note = `note ${++written} from ${new Date().toLocaleTimeString()}`;
  const { partition, offset } = await enqueue(bus, { note });
  say(`${note}: stored in the outbox (partition ${partition}, offset ${offset})`);
  (await navigator.serviceWorker.ready).active?.postMessage('enqueued');
  if (hasSync) await registration.sync.register('ferry-outbox');
};
for (const state of ['online', 'offline']) {
  document.querySelector(`#${state}`).onclick = async () => {
    await fetch(`${SERVER}/${state}`, { method: 'POST' });
    say(`server: ${state}`);
  };
}

async function render() {
  const server = await (await fetch(`${SERVER}/messages`)).json();
  document.querySelector('#server').textContent = `${server.online ? 'online' : 'offline (answers 503)'}, ${server.messages.length} received, ${server.repeats} repeats dropped`;
  document.querySelector('#received tbody').innerHTML = server.messages
    .map((m) => `<tr><td>${m.value.note}</td><td>${m.id.slice(0, 8)}</td><td>${m.attempt}</td><td>${new Date(m.receivedAt).toLocaleTimeString()}</td></tr>`)
    .join('');
  document.querySelector('#pending').textContent = await pending(bus);
}
setInterval(render, 500);
render();
