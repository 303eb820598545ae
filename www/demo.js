// The page: places orders, shows the bus's stats live, and starts the worker that
// handles the orders.
import { Bus } from 'ferry';

const BUS = 'ferry-demo';
const log = document.querySelector('#log');
const say = (text, kind = '') => {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  item.className = kind;
  log.prepend(item);
};

const bus = await Bus.open({ name: BUS });
await bus.createTopic('order.placed', { partitions: 4 });
const producer = bus.producer();

// Every open tab runs a worker whose consumers are members of both groups. Tabs
// tell each other which members are theirs, so the owner column names tabs.
const TAB = `tab ${Math.random().toString(36).slice(2, 5)}`;
document.querySelector('#tab').textContent = TAB;
const memberTabs = new Map();
const tabs = new BroadcastChannel(`${BUS}:tabs`);
let ownMembers = [];
const announce = () => tabs.postMessage({ tab: TAB, members: ownMembers });
tabs.onmessage = ({ data }) => {
  if (data === 'who') return announce();
  for (const member of data.members) memberTabs.set(member, data.tab);
};
tabs.postMessage('who');

const worker = new Worker('worker.js', { type: 'module' });
worker.onmessage = ({ data }) => {
  if (data.members) {
    ownMembers = data.members;
    for (const member of ownMembers) memberTabs.set(member, `${TAB} (this tab)`);
    announce();
  } else say(data.text, data.kind);
};

async function placeOrders(count) {
  const stats = await bus.stats();
  const placed = stats.topics.find((t) => t.topic === 'order.placed')?.partitions.reduce((n, p) => n + p.highOffset, 0) ?? 0;
  const orders = Array.from({ length: count }, (_, i) => ({ id: `order-${placed + i + 1}`, total: 5 + ((placed + i) % 7) * 3 }));
  const results = await producer.send({
    topic: 'order.placed',
    messages: orders.map((order) => ({ key: order.id, id: order.id, value: JSON.stringify(order) })),
  });
  results.forEach((r, i) => say(`shop: ${orders[i].id} placed -> partition ${r.partition}, offset ${r.offset}`));
}

document.querySelector('#place').onclick = () => placeOrders(1);
document.querySelector('#place10').onclick = () => placeOrders(10);
document.querySelector('#redrive').onclick = async () => {
  worker.postMessage('fix-payments');
  const moved = await bus.redrive({ from: 'order.placed.dlq' });
  say(`ops: the payment bug is fixed; ${moved} dead letter(s) moved back to order.placed`);
};
document.querySelector('#reset').onclick = async () => {
  worker.terminate();
  await bus.close();
  indexedDB.deleteDatabase(BUS).onsuccess = () => location.reload();
};

const cell = (text, className = '') => `<td class="${className}">${text}</td>`;
async function render() {
  const stats = await bus.stats();
  document.querySelector('#topics tbody').innerHTML = stats.topics
    .flatMap((t) => t.partitions.map((p) => `<tr>${cell(t.topic)}${cell(p.partition)}${cell(p.lowOffset)}${cell(p.highOffset)}${cell(p.depth)}</tr>`))
    .join('');
  document.querySelector('#groups tbody').innerHTML = stats.groups
    .flatMap((g) =>
      g.partitions.map(
        (p) =>
          `<tr>${cell(g.groupId)}${cell(g.topic)}${cell(p.partition)}${cell(p.committedOffset)}${cell(p.lag)}${cell(p.inFlight)}${cell(p.retrying)}${cell(g.deadLettered)}${cell(p.owner ? (memberTabs.get(p.owner) ?? p.owner) : '-', 'owner')}</tr>`,
      ),
    )
    .join('');
}
setInterval(render, 500);
render();
say('page: bus open on IndexedDB; the worker is starting');
