// ferry/inspector as pkg/README.md uses it: the element by tag, and the sources.
import { Bus } from 'ferry';
import { FerryInspector, edgeSource, localSource, type InspectorSource } from 'ferry/inspector';

const bus = await Bus.open({ name: 'shop' });
const local: FerryInspector = document.createElement('ferry-inspector');
local.source = localSource(bus, 'shop');
local.interval = 2000;
document.body.append(local);

const edge = document.createElement('ferry-inspector');
edge.source = edgeSource({ url: 'https://shop.example.workers.dev', headers: async () => ({ authorization: 'Bearer t' }) });
edge.refresh();

// Any object of the shape is a source.
const fixed: InspectorSource = {
  label: 'fixed',
  stats: async () => ({ topics: [], groups: [] }),
  browse: async () => ({ lowOffset: 0, highOffset: 0, nextOffset: 0, messages: [] }),
  redrive: async () => 0,
  purge: async () => 0,
};
edge.source = fixed;
