// The ferry inspector (`ferry/inspector`): <ferry-inspector>, a custom element that shows
// one bus — its topics, groups, messages, dead letters and members — and lets an operator
// redrive and purge dead letters; and the two sources it reads from: localSource(bus), a
// bus of this browser, and edgeSource({ url, token }), an edge's handleHttp. The element
// only renders what its source answers (stats, browse, redrive, purge): it never reads
// storage itself, so it shows a browser bus and an edge bus alike.
//
// Plain DOM in a shadow root, no framework: the element is the whole dependency.
import { Bus } from './browser.js';
import { FerryError } from './error.js';

/** Refreshes are at least this far apart, whatever wakes them: at most 4 a second. */
const MIN_GAP_MS = 250;
const DEFAULT_INTERVAL_MS = 1000;
/** Points of each chart. */
const SAMPLES = 60;
const DEFAULT_LIMIT = 20;
/** Dead letters listed per partition; redrive and purge still take them all. */
const DEAD_LETTER_LIMIT = 100;
/** Dead letters are read again when their offsets change, after an action, and at least this often (another context may redrive them). */
const DEAD_LETTER_MAX_AGE_MS = 10_000;
const PREVIEW_CHARS = 120;
/** A column's head, shortened where its section is narrow. */
const head = (long, short, cls = '') => `<th${cls ? ` class="${cls}"` : ''}><span class="long">${long}</span><span class="short" title="${long}">${short}</span></th>`;
const PARTITION_HEAD = head('partition', 'part.', 'p');

const CONTEXTS = {
  page: 'page',
  worker: 'worker',
  'shared-worker': 'shared worker',
  'service-worker': 'service worker',
  node: 'Node',
  'edge-pull': 'edge pull',
  unknown: 'unknown',
};

/** Line colours of the lag chart, one per group in turn. */
const PALETTE = ['#2f6feb', '#c2410c', '#15803d', '#7c3aed', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

// ---------------------------------------------------------------------------------------
// Sources

/**
 * A source over a bus of this browser (`Bus.open`). `name` is the bus's name: the
 * writer posts on the BroadcastChannel `ferry:{name}` after each commit, which wakes
 * the inspector; without a name it polls only.
 */
export function localSource(bus, name = bus?.name) {
  if (!bus || typeof bus.stats !== 'function') throw new FerryError('INVALID_ARGUMENT', 'localSource(bus): bus must be a Bus (from Bus.open)');
  const source = {
    label: `${name ?? 'bus'} (this browser)`,
    stats: () => bus.stats(),
    browse: (options) => bus.browse(options),
    redrive: (options) => bus.redrive(options),
    purge: (options) => bus.purge(options),
  };
  if (name != null && typeof BroadcastChannel === 'function') {
    source.onWake = (callback) => {
      const channel = new BroadcastChannel(`ferry:${name}`);
      channel.onmessage = () => callback();
      return () => channel.close();
    };
  }
  return source;
}

/**
 * A source over an edge's handleHttp at `url` (relative to the page's location where
 * there is one): `GET /v1/stats`, `GET /v1/topics/{topic}/messages`, `POST
 * /v1/topics/{topic}/redrive` and `/purge`, each with `Authorization: Bearer {token}`
 * and `headers` (an object, or a function resolving to one, for a token that changes).
 * It has no wake-ups: the inspector polls it.
 */
export function edgeSource({ url, token, headers } = {}) {
  if (typeof url !== 'string' || url === '') throw new FerryError('INVALID_ARGUMENT', 'edgeSource: url must be the base URL of the edge (handleHttp)');
  let base;
  try {
    base = new URL(url, globalThis.location?.href).href.replace(/\/+$/, '');
  } catch {
    throw new FerryError('INVALID_ARGUMENT', `edgeSource: url ${JSON.stringify(url)} is not a URL`);
  }

  async function call(method, path, body) {
    const extra = typeof headers === 'function' ? await headers() : headers;
    const init = { method, headers: { ...(extra ?? {}) } };
    if (token) init.headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${base}${path}`, init);
    } catch (error) {
      throw new FerryError('STORAGE', `network error: ${error?.message ?? error}`);
    }
    const text = await response.text();
    let json;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const error = json?.error;
      if (error && typeof error.code === 'string' && typeof error.message === 'string') throw new FerryError(error.code, error.message);
      throw new FerryError('STORAGE', `the edge answered ${response.status} ${response.statusText}`.trim());
    }
    if (json === undefined) throw new FerryError('STORAGE', 'the edge answered with a body that is not JSON');
    return json;
  }

  const topicPath = (topic) => `/v1/topics/${encodeURIComponent(topic)}`;
  return {
    label: base,
    stats: () => call('GET', '/v1/stats'),
    async browse({ topic, partition, offset, limit, groupId } = {}) {
      const query = new URLSearchParams();
      for (const [name, value] of Object.entries({ partition, offset, limit, groupId })) if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
      const page = await call('GET', `${topicPath(topic)}/messages?${query}`);
      // Bytes cross HTTP as base64 with a header saying so; the element gets them as a
      // local bus gives them, a Uint8Array.
      page.messages = (page.messages ?? []).map(decodeBytes);
      return page;
    },
    async redrive({ from, limit, offsets } = {}) {
      const body = {};
      if (limit !== undefined) body.limit = limit;
      if (offsets !== undefined) body.offsets = offsets;
      return (await call('POST', `${topicPath(from)}/redrive`, body)).redriven;
    },
    async purge({ topic } = {}) {
      return (await call('POST', `${topicPath(topic)}/purge`, {})).purged;
    },
  };
}

const VALUE_ENCODING = 'ferry-value-encoding';

function decodeBytes(message) {
  if (message?.headers?.[VALUE_ENCODING] !== 'base64' || typeof message.value !== 'string') return message;
  const { [VALUE_ENCODING]: _, ...headers } = message.headers;
  const binary = atob(message.value);
  const value = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return { ...message, value, headers };
}

// ---------------------------------------------------------------------------------------
// Formatting

const esc = (value) =>
  String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const num = (n) => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US') : '—');
const rate = (r) => (typeof r !== 'number' ? '—' : r >= 100 ? String(Math.round(r)) : r.toFixed(1));
const seconds = (ms) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

/** A cell carrying its raw number for tests and scripts: `data-field`, `data-value` and where it is. */
function numCell(field, value, where = {}) {
  const attrs = Object.entries(where)
    .map(([name, v]) => ` data-${name}="${esc(v)}"`)
    .join('');
  const raw = typeof value === 'number' ? ` data-value="${value}"` : '';
  return `<td class="n" data-field="${field}"${raw}${attrs}>${num(value)}</td>`;
}

function ago(ms) {
  if (typeof ms !== 'number') return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function time(ms) {
  if (typeof ms !== 'number') return '—';
  const date = new Date(ms);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

/** The value as text: a string as it is, bytes as hex, anything else as JSON. */
function valueText(value) {
  if (value instanceof Uint8Array) {
    const hex = Array.from(value.subarray(0, 64), (b) => b.toString(16).padStart(2, '0')).join(' ');
    return `bytes(${value.length}) ${hex}${value.length > 64 ? ' …' : ''}`;
  }
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** A value's preview (~120 characters), the whole of it in the title and, when cut, behind "more". */
function valueView(value) {
  const text = valueText(value);
  if (text.length <= PREVIEW_CHARS) return `<div class="value" title="${esc(text)}">${esc(text)}</div>`;
  let full = text;
  if (typeof value === 'string') {
    try {
      full = JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      // Not JSON: shown as it is.
    }
  } else if (!(value instanceof Uint8Array)) full = JSON.stringify(value, null, 2);
  return `<details class="value" title="${esc(text.slice(0, 2000))}"><summary>${esc(text.slice(0, PREVIEW_CHARS))}…</summary><pre>${esc(full)}</pre></details>`;
}

/** Text cut to `max` characters, the whole of it in the title. */
function clipped(text, max, tag = 'span', attrs = '') {
  const whole = String(text);
  const shown = whole.length > max ? `${whole.slice(0, max)}…` : whole;
  return `<${tag}${attrs}${whole.length > max ? ` title="${esc(whole.slice(0, 2000))}"` : ''}>${esc(shown)}</${tag}>`;
}

const headerChips = (headers) => (headers.length ? `<div class="headers">${headers.map(([k, v]) => clipped(`${k}: ${v}`, 80)).join('')}</div>` : '');

const keyView = (key) => (key == null ? '<code>—</code>' : clipped(key, 60, 'code'));

const isDeadLetterTopic = (t) => (typeof t.deadLetter === 'boolean' ? t.deadLetter : t.topic.endsWith('.dlq'));

/** The tail that tells members apart: a member id is `{group}-{kind}-{tail}` or made elsewhere. */
function shortMember(id, groupId) {
  // The kind is shown under it (the member's context): its tail tells it apart.
  const rest = id.startsWith(`${groupId}-`) ? (id.slice(groupId.length + 1).split('-').at(-1) ?? id) : id;
  return rest.length > 14 ? `…${rest.slice(-12)}` : rest;
}

/** An inline SVG chart: one polyline per series, scaled to the largest value, newest on the right. */
function chart(series, { width = 240, height = 36, label = '', big = false } = {}) {
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const step = width / (SAMPLES - 1);
  const lines = series
    .map(({ values, color, cls = '' }) => {
      if (values.length === 0) return '';
      const points = values
        .map((v, i) => `${(width - (values.length - 1 - i) * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
        .join(' ');
      const stroke = color ? ` stroke="${color}"` : '';
      return `<polyline class="${cls}"${stroke} points="${points}" vector-effect="non-scaling-stroke"/>`;
    })
    .join('');
  return `<svg class="chart${big ? ' big' : ''}" viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${esc(label)}"><line class="base" x1="0" y1="${height - 0.5}" x2="${width}" y2="${height - 0.5}" vector-effect="non-scaling-stroke"/>${lines}</svg>`;
}

const push = (list, value) => {
  list.push(value);
  if (list.length > SAMPLES) list.splice(0, list.length - SAMPLES);
};

// ---------------------------------------------------------------------------------------
// The element

const STYLE = `
:host { display: block; min-width: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
:host([hidden]) { display: none; }
* { box-sizing: border-box; min-width: 0; }
[hidden] { display: none !important; }
.root { display: grid; gap: 12px; }
header { display: grid; gap: 2px; padding: 10px 12px; border: 1px solid #dfe3ea; border-radius: 8px; background: #fff; }
.title { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 10px; }
.label { font-weight: 600; font-size: 15px; overflow-wrap: anywhere; }
.status { font-size: 12px; color: #6a7280; }
.status::before { content: ""; display: inline-block; width: 7px; height: 7px; border-radius: 50%; margin-right: 5px; background: #9aa3b2; vertical-align: 1px; }
.status[data-state="live"]::before { background: #1d8a4a; }
.status[data-state="error"]::before { background: #b4391c; }
.load { font-size: 12px; color: #6a7280; overflow-wrap: anywhere; }
.error { color: #9f2d12; background: #fdf0ec; border: 1px solid #f3c9bc; border-radius: 4px; padding: 4px 8px; font-size: 12px; overflow-wrap: anywhere; }
.sections { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(min(100%, 460px), 1fr)); align-items: start; }
section { border: 1px solid #dfe3ea; border-radius: 8px; background: #fff; padding: 10px 12px 12px; display: grid; gap: 8px; }
section.wide { grid-column: 1 / -1; }
h3 { margin: 0; font-size: 12px; font-weight: 600; letter-spacing: .04em; text-transform: uppercase; color: #4b5363; }
.empty, .note { color: #6a7280; font-size: 12px; margin: 0; overflow-wrap: anywhere; }
.cards { display: grid; gap: 10px; }
.card { border-top: 1px solid #eef0f4; padding-top: 8px; display: grid; gap: 4px; }
.card:first-child { border-top: 0; padding-top: 0; }
.card-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 8px; }
.name { font-weight: 600; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.badge { font-size: 11px; padding: 0 6px; border-radius: 9px; background: #eef1f5; color: #4b5363; white-space: nowrap; }
.badge.dead { background: #fdf0ec; color: #9f2d12; }
.rates { margin-left: auto; font-size: 12px; color: #4b5363; font-variant-numeric: tabular-nums; white-space: nowrap; }
.rates .in { color: #2f6feb; font-weight: 600; }
.rates .out { color: #15803d; font-weight: 600; }
.chart { display: block; width: 100%; height: 36px; }
.chart.big { height: 64px; }
.chart polyline { fill: none; stroke-width: 1.5; stroke-linejoin: round; }
.chart polyline.in { stroke: #2f6feb; }
.chart polyline.out { stroke: #15803d; }
.chart .base { stroke: #e3e7ee; stroke-width: 1; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; font-variant-numeric: tabular-nums; font-size: 12px; }
th, td { padding: 2px 6px; border-bottom: 1px solid #eef0f4; text-align: right; vertical-align: top; overflow-wrap: anywhere; }
th { font-weight: 500; color: #6a7280; font-size: 11px; border-bottom-color: #dfe3ea; }
th.l, td.l { text-align: left; }
td.p, th.p { width: 5.5em; text-align: left; }
tfoot td { color: #4b5363; border-bottom: 0; }
.ell { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
th.member { text-align: center; }
th.member .ctx { display: block; font-size: 10px; color: #9aa3b2; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
td.cell { text-align: center; color: #c5cbd5; }
td.cell[data-owned="true"] { color: #2f6feb; font-weight: 700; }
.group { display: grid; gap: 4px; border-top: 1px solid #eef0f4; padding-top: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 12px; font-size: 12px; color: #4b5363; }
.legend span { overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: 3px; border-radius: 1px; }
form.controls { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: end; margin: 0; }
form.controls label { display: grid; gap: 1px; font-size: 11px; color: #6a7280; }
select, input[type="number"] { font: inherit; font-size: 12px; padding: 2px 4px; border: 1px solid #c9cfd9; border-radius: 4px; background: #fff; max-width: 100%; }
select[data-control="topic"], select[data-control="group"] { max-width: 14em; }
input[type="number"] { width: 6.5em; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border: 1px solid #b7bfcc; background: #f7f8fa; border-radius: 4px; cursor: pointer; color: #1d2330; white-space: nowrap; }
button:hover:not(:disabled) { background: #e9edf3; }
button:disabled { color: #9aa3b2; cursor: default; }
button.danger { border-color: #e2a493; color: #9f2d12; }
button.danger.confirm { background: #b4391c; border-color: #b4391c; color: #fff; }
.buttons { display: flex; flex-wrap: wrap; gap: 6px; }
.pageinfo { font-size: 12px; color: #6a7280; overflow-wrap: anywhere; }
ol.list, ul.list { list-style: none; margin: 0; padding: 0; display: grid; }
.msg { display: grid; gap: 2px; padding: 5px 0; border-bottom: 1px solid #eef0f4; }
.meta { display: flex; flex-wrap: wrap; gap: 0 10px; font-size: 11px; color: #6a7280; }
.meta > * { overflow-wrap: anywhere; }
.meta b { color: #1d2330; font-weight: 600; }
.value { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; white-space: pre-wrap; }
details.value summary { cursor: pointer; list-style: none; }
details.value summary::-webkit-details-marker { display: none; }
details.value summary::after { content: " more"; color: #2f6feb; font: 11px system-ui, sans-serif; }
details.value[open] summary::after { content: " less"; }
details.value pre { margin: 4px 0 0; padding: 6px; background: #f5f6f8; border-radius: 4px; white-space: pre-wrap; overflow-wrap: anywhere; font: inherit; }
.headers { display: flex; flex-wrap: wrap; gap: 2px 4px; }
.headers span { font-size: 11px; background: #eef1f5; border-radius: 3px; padding: 0 4px; overflow-wrap: anywhere; }
.dlq { display: grid; gap: 6px; border-top: 1px solid #eef0f4; padding-top: 8px; }
.dlq:first-child { border-top: 0; padding-top: 0; }
.dlq-head { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 10px; }
.result { font-size: 12px; color: #15803d; overflow-wrap: anywhere; }
.result.failed { color: #9f2d12; }
.dl { display: grid; grid-template-columns: 1.6em minmax(0, 1fr); gap: 0 6px; padding: 5px 0; border-bottom: 1px solid #eef0f4; }
.dl input { margin: 2px 0 0; width: 14px; height: 14px; align-self: start; justify-self: center; }
.dl .reason { color: #9f2d12; overflow-wrap: anywhere; }
.dl[data-redriven="true"] { color: #6a7280; }
.dl[data-redriven="true"] .reason { color: #6a7280; }
.tag { font-size: 10px; color: #15803d; border: 1px solid #a7d7b8; border-radius: 3px; padding: 0 3px; white-space: nowrap; justify-self: start; align-self: start; }
.dl .done { color: #15803d; text-align: center; }
section { container-type: inline-size; }
.short { display: none; }
@container (max-width: 440px) {
  th, td { padding: 2px 3px; }
  th { font-size: 10px; }
  td.p, th.p { width: 3.2em; }
  .long { display: none; }
  .short { display: inline; }
}
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 11px; overflow-wrap: anywhere; }
`;

const TEMPLATE = `
<style>${STYLE}</style>
<div class="root">
  <header>
    <div class="title"><span class="label" data-field="label"></span><span class="status" data-part="status" data-state="idle">starting</span></div>
    <div class="load" data-field="load"></div>
    <div class="error" data-part="error" hidden></div>
  </header>
  <div class="sections">
    <section data-part="topics"><h3>Topics</h3><div class="cards" data-body></div></section>
    <section data-part="groups"><h3>Groups</h3><div data-lag></div><div class="cards" data-body></div></section>
    <section data-part="messages">
      <h3>Messages</h3>
      <form class="controls">
        <label>topic <select data-control="topic"></select></label>
        <label>partition <select data-control="partition"></select></label>
        <label>offset <input type="number" min="0" step="1" data-control="offset"></label>
        <label>limit <input type="number" min="1" max="1000" step="1" value="${DEFAULT_LIMIT}" data-control="limit"></label>
        <label>attempts of group <select data-control="group"><option value="">none</option></select></label>
        <div class="buttons">
          <button type="button" data-action="older">older</button>
          <button type="submit" data-action="from">from offset</button>
          <button type="button" data-action="newer">newer</button>
        </div>
      </form>
      <div class="pageinfo" data-field="page-info"></div>
      <ol class="list" data-body></ol>
    </section>
    <section data-part="dead-letters"><h3>Dead letters</h3><div data-body></div></section>
    <section data-part="members" class="wide"><h3>Members</h3><div data-body></div></section>
  </div>
</div>`;

const Base = globalThis.HTMLElement ?? class {};

/**
 * `<ferry-inspector bus="NAME">` (a bus of this browser, opened by the element),
 * `<ferry-inspector url="…" token="…">` (an edge), or any source set as `el.source`;
 * `interval` is the ms between stats polls (default 1000, at least 250).
 */
export class FerryInspector extends Base {
  static observedAttributes = ['bus', 'url', 'token', 'interval'];

  #root;
  #connected = false;
  #given = null;
  #source = null;
  /** The bus the element opened from its `bus` attribute, closed when it goes. */
  #ownBus = null;
  /** Bumped on every start and stop: what an older run answers late is dropped. */
  #generation = 0;
  #running = false;
  #timer = null;
  #timerAt = Infinity;
  #inFlight = false;
  #pending = false;
  #lastStart = -Infinity;
  #unwake = null;
  /** Every call to the source goes through this chain: one request in flight at a time. */
  #chain = Promise.resolve();
  #stats = null;
  #previous = null;
  #rates = new Map();
  #lags = new Map();
  #groupColors = new Map();
  #view = null;
  #dead = new Map();
  #selected = new Map();
  #confirming = null;
  #results = new Map();
  #busy = false;
  #deadRendered = false;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    this.#root.innerHTML = TEMPLATE;
    this.#root.addEventListener('click', (event) => this.#onClick(event));
    this.#root.addEventListener('change', (event) => this.#onChange(event));
    this.#root.querySelector('form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.#page('from');
    });
  }

  /** The source shown: the one given, else the one made from the attributes. */
  get source() {
    return this.#given ?? this.#source;
  }

  set source(value) {
    this.#given = value ?? null;
    if (this.#connected) this.#restart();
  }

  /** Ms between stats polls. */
  get interval() {
    const value = Number(this.getAttribute('interval') ?? DEFAULT_INTERVAL_MS);
    return Number.isFinite(value) ? Math.max(MIN_GAP_MS, value) : DEFAULT_INTERVAL_MS;
  }

  set interval(value) {
    this.setAttribute('interval', String(value));
  }

  /** Asks for a refresh now (coalesced with the others). */
  refresh() {
    this.#request(0);
  }

  connectedCallback() {
    this.#connected = true;
    this.#start();
  }

  disconnectedCallback() {
    this.#connected = false;
    this.#stop();
  }

  // Attributes set before the element is connected (parsed or upgraded) are read by
  // connectedCallback once: only later changes restart it.
  attributeChangedCallback(name, before, after) {
    if (before === after || !this.#connected) return;
    if (name === 'interval') {
      this.#showLoad();
      if (this.#running && !this.#inFlight) this.#request(this.interval);
      return;
    }
    if (!this.#given) this.#restart();
  }

  #restart() {
    this.#stop();
    this.#start();
  }

  async #start() {
    if (this.#running) return;
    this.#running = true;
    const generation = ++this.#generation;
    this.#reset();
    try {
      const source = this.#given ?? (await this.#sourceFromAttributes(generation));
      if (generation !== this.#generation) return;
      if (!source) {
        this.#field('label').textContent = 'ferry inspector';
        this.#showError(new Error('No bus to show: give the element bus="NAME", or url="…" and token="…", or set its source.'));
        return;
      }
      this.#source = source;
      this.#field('label').textContent = source.label ?? 'bus';
      if (typeof source.onWake === 'function') this.#unwake = source.onWake(() => this.#request(0));
      this.#showLoad();
      this.#request(0);
    } catch (error) {
      if (generation === this.#generation) this.#showError(error);
    }
  }

  async #sourceFromAttributes(generation) {
    const url = this.getAttribute('url');
    if (url) return edgeSource({ url, token: this.getAttribute('token') ?? undefined });
    const name = this.getAttribute('bus');
    if (!name) return null;
    this.#field('label').textContent = `${name} (this browser)`;
    const bus = await Bus.open({ name });
    if (generation !== this.#generation) {
      bus.close().catch(() => {});
      return null;
    }
    this.#ownBus = bus;
    return localSource(bus, name);
  }

  #stop() {
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    this.#unwake?.();
    this.#unwake = null;
    this.#ownBus?.close().catch(() => {});
    this.#ownBus = null;
    this.#source = null;
  }

  #reset() {
    this.#stats = null;
    this.#previous = null;
    this.#rates = new Map();
    this.#lags = new Map();
    this.#groupColors = new Map();
    this.#view = null;
    this.#dead = new Map();
    this.#selected = new Map();
    this.#confirming = null;
    this.#results = new Map();
    this.#busy = false;
    this.#deadRendered = false;
    this.#inFlight = false;
    this.#pending = false;
    this.#chain = Promise.resolve();
    for (const part of ['topics', 'groups', 'dead-letters', 'members']) this.#body(part).innerHTML = '';
    this.#body('messages').innerHTML = '';
    this.#root.querySelector('[data-lag]').innerHTML = '';
    this.#field('page-info').textContent = '';
    this.#root.querySelector('[data-part="error"]').hidden = true;
    this.#status('idle', 'starting');
  }

  // --- scheduling -------------------------------------------------------------------

  /**
   * A refresh in `delay` ms, but never sooner than MIN_GAP_MS after the last one
   * started and never while one runs (it is then run again once that one ends): wake-ups
   * of a busy bus make at most 4 refreshes a second, one request at a time.
   */
  #request(delay) {
    if (!this.#running || !this.#source) return;
    if (this.#inFlight) {
      if (delay === 0) this.#pending = true;
      return;
    }
    const at = Math.max(Date.now() + delay, this.#lastStart + MIN_GAP_MS);
    if (this.#timer !== null && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#run();
    }, at - Date.now());
  }

  async #run() {
    if (!this.#running || this.#inFlight) return;
    const generation = this.#generation;
    this.#inFlight = true;
    this.#lastStart = Date.now();
    try {
      await this.#refresh(generation);
    } catch (error) {
      if (generation === this.#generation) this.#showError(error);
    } finally {
      if (generation === this.#generation) {
        this.#inFlight = false;
        const again = this.#pending;
        this.#pending = false;
        this.#request(again ? 0 : this.interval);
      }
    }
  }

  /** Calls the source through the chain: one request in flight at a time. */
  #call(fn) {
    const result = this.#chain.then(fn);
    this.#chain = result.catch(() => {});
    return result;
  }

  async #refresh(generation) {
    const source = this.#source;
    const stats = normalize(await this.#call(() => source.stats()));
    if (generation !== this.#generation) return;
    this.#stats = stats;
    this.#sample(stats);
    this.#renderTopics(stats);
    this.#renderGroups(stats);
    this.#renderMembers(stats);
    this.#syncControls(stats);
    this.#root.querySelector('[data-part="error"]').hidden = true;
    this.#status('live', `updated ${new Date().toLocaleTimeString()}`);
    await this.#refreshDeadLetters(stats, generation);
    await this.#followTail(stats, generation);
  }

  // --- samples ----------------------------------------------------------------------

  /** Takes a chart sample about once per poll interval (wake-ups in between do not). */
  #sample(stats) {
    const now = performance.now();
    const highs = new Map();
    const commits = new Map();
    for (const t of stats.topics) for (const p of t.partitions) highs.set(`${t.topic}\n${p.partition}`, p.highOffset);
    for (const g of stats.groups) for (const p of g.partitions) commits.set(`${g.groupId}\n${g.topic}\n${p.partition}`, p.committedOffset);
    const previous = this.#previous;
    if (previous && now - previous.at < this.interval * 0.9) return;
    this.#previous = { at: now, highs, commits };
    for (const g of stats.groups) {
      if (!this.#groupColors.has(g.groupId)) this.#groupColors.set(g.groupId, PALETTE[this.#groupColors.size % PALETTE.length]);
    }
    const lagOf = new Map();
    for (const g of stats.groups) lagOf.set(g.groupId, (lagOf.get(g.groupId) ?? 0) + g.partitions.reduce((n, p) => n + p.lag, 0));
    for (const [group, lag] of lagOf) {
      if (!this.#lags.has(group)) this.#lags.set(group, []);
      push(this.#lags.get(group), lag);
    }
    if (!previous) return;
    const elapsed = (now - previous.at) / 1000;
    // Deltas of what both samples have, never below 0: a new group or a topic made
    // anew is no burst of traffic.
    const delta = (value, before) => (before === undefined ? 0 : Math.max(0, value - before));
    for (const t of stats.topics) {
      let into = 0;
      for (const p of t.partitions) into += delta(p.highOffset, previous.highs.get(`${t.topic}\n${p.partition}`));
      let out = 0;
      for (const g of stats.groups.filter((g) => g.topic === t.topic)) {
        for (const p of g.partitions) out += delta(p.committedOffset, previous.commits.get(`${g.groupId}\n${g.topic}\n${p.partition}`));
      }
      if (!this.#rates.has(t.topic)) this.#rates.set(t.topic, { in: [], out: [] });
      const r = this.#rates.get(t.topic);
      push(r.in, into / elapsed);
      push(r.out, out / elapsed);
    }
  }

  // --- sections ---------------------------------------------------------------------

  #renderTopics(stats) {
    const body = this.#body('topics');
    if (stats.topics.length === 0) {
      body.innerHTML = '<p class="empty">No topics yet.</p>';
      return;
    }
    body.innerHTML = stats.topics
      .map((t) => {
        const dead = isDeadLetterTopic(t);
        const r = this.#rates.get(t.topic) ?? { in: [], out: [] };
        const rows = t.partitions
          .map((p) => {
            const at = { topic: t.topic, partition: p.partition };
            return `<tr data-topic="${esc(t.topic)}" data-partition="${p.partition}"><td class="p">${p.partition}</td>${numCell('low', p.lowOffset, at)}${numCell('high', p.highOffset, at)}${numCell('depth', p.depth, at)}${numCell('expired', p.expired, at)}</tr>`;
          })
          .join('');
        const sum = (field) => t.partitions.reduce((n, p) => n + (typeof p[field] === 'number' ? p[field] : 0), 0);
        const foot =
          t.partitions.length > 1
            ? `<tfoot><tr><td class="p">all</td><td></td><td class="n">${num(sum('highOffset'))}</td><td class="n">${num(sum('depth'))}</td><td class="n">${num(sum('expired'))}</td></tr></tfoot>`
            : '';
        const badge = dead ? '<span class="badge dead">dead letters</span>' : '';
        const inRate = r.in.at(-1);
        const outRate = r.out.at(-1);
        const value = (v) => (typeof v === 'number' ? ` data-value="${v}"` : '');
        return `<div class="card" data-topic-card data-topic="${esc(t.topic)}" data-dead-letter-topic="${dead}">
          <div class="card-head"><span class="name">${esc(t.topic)}</span>${badge}
            <span class="rates" title="messages in (sent) and out (committed, summed over the topic's groups) per second"><span class="in" data-field="in-rate"${value(inRate)} data-topic="${esc(t.topic)}">${rate(inRate)}</span> in/s · <span class="out" data-field="out-rate"${value(outRate)} data-topic="${esc(t.topic)}">${rate(outRate)}</span> out/s</span></div>
          ${chart([{ values: r.in, cls: 'in' }, { values: r.out, cls: 'out' }], { label: `${t.topic}: messages in and out per second, last ${SAMPLES} samples` })}
          <table><thead><tr>${PARTITION_HEAD}<th>low</th><th>high</th><th>depth</th><th>expired</th></tr></thead><tbody>${rows}</tbody>${foot}</table>
        </div>`;
      })
      .join('');
  }

  /** Each group's member ids: those `members` lists, then any owner it does not. */
  #membersOf(stats, groupId) {
    const ids = [];
    for (const m of stats.members ?? []) if (m.groupId === groupId && !ids.includes(m.memberId)) ids.push(m.memberId);
    for (const g of stats.groups) {
      if (g.groupId !== groupId) continue;
      for (const p of g.partitions) if (p.owner && !ids.includes(p.owner)) ids.push(p.owner);
    }
    return ids;
  }

  #renderGroups(stats) {
    const lag = this.#root.querySelector('[data-lag]');
    const body = this.#body('groups');
    if (stats.groups.length === 0) {
      lag.innerHTML = '';
      body.innerHTML = '<p class="empty">No consumer groups yet.</p>';
      return;
    }
    const groups = [...new Set(stats.groups.map((g) => g.groupId))];
    const series = groups.map((id) => ({ values: this.#lags.get(id) ?? [], color: this.#groupColors.get(id) ?? PALETTE[0] }));
    const legend = groups
      .map((id) => {
        const total = stats.groups.filter((g) => g.groupId === id).reduce((n, g) => n + g.partitions.reduce((m, p) => m + p.lag, 0), 0);
        return `<span><i class="swatch" style="background:${this.#groupColors.get(id) ?? PALETTE[0]}"></i>${esc(id)} <b data-field="lag-total" data-group="${esc(id)}" data-value="${total}">${num(total)}</b></span>`;
      })
      .join('');
    lag.innerHTML = `<div class="legend" title="lag summed over each group's partitions, last ${SAMPLES} samples">lag: ${legend}</div>${chart(series, { height: 64, big: true, label: `lag per group, last ${SAMPLES} samples` })}`;

    body.innerHTML = stats.groups
      .map((g) => {
        const members = this.#membersOf(stats, g.groupId);
        const contexts = new Map((stats.members ?? []).filter((m) => m.groupId === g.groupId).map((m) => [m.memberId, m.context]));
        const heads = members.length
          ? members
              .map(
                (id) =>
                  `<th class="member" title="${esc(id)}" data-member="${esc(id)}"><span class="ell">${esc(shortMember(id, g.groupId))}</span><span class="ctx">${esc(CONTEXTS[contexts.get(id)] ?? contexts.get(id) ?? '—')}</span></th>`,
              )
              .join('')
          : '<th class="member">owner</th>';
        const at = (p) => ({ group: g.groupId, topic: g.topic, partition: p.partition });
        const rows = g.partitions
          .map((p) => {
            const cells = members.length
              ? members
                  .map((id) =>
                    p.owner === id
                      ? `<td class="cell" data-member="${esc(id)}" data-owned="true" title="${esc(id)} owns partition ${p.partition}">●</td>`
                      : `<td class="cell" data-member="${esc(id)}" data-owned="false">·</td>`,
                  )
                  .join('')
              : '<td class="cell">—</td>';
            return `<tr data-group="${esc(g.groupId)}" data-topic="${esc(g.topic)}" data-partition="${p.partition}" data-owner="${esc(p.owner ?? '')}"><td class="p">${p.partition}</td>${cells}${numCell('committed', p.committedOffset, at(p))}${numCell('lag', p.lag, at(p))}${numCell('in-flight', p.inFlight, at(p))}${numCell('retrying', p.retrying, at(p))}</tr>`;
          })
          .join('');
        const unowned = g.partitions.filter((p) => !p.owner).length;
        return `<div class="group" data-group="${esc(g.groupId)}" data-topic="${esc(g.topic)}">
          <div class="card-head"><span class="name">${esc(g.groupId)}</span><span class="note">on <code>${esc(g.topic)}</code></span>
            <span class="rates">dead-lettered <b data-field="dead-lettered" data-group="${esc(g.groupId)}" data-topic="${esc(g.topic)}" data-value="${g.deadLettered}">${num(g.deadLettered)}</b></span></div>
          <table><thead><tr>${PARTITION_HEAD}${heads}${head('committed', 'commit')}<th>lag</th>${head('in flight', 'flight')}${head('retrying', 'retry')}</tr></thead><tbody>${rows}</tbody></table>
          ${unowned ? `<p class="note">${unowned} partition(s) without an owner: no member of ${esc(g.groupId)} holds them.</p>` : ''}
        </div>`;
      })
      .join('');
  }

  #renderMembers(stats) {
    const body = this.#body('members');
    const owned = new Map();
    for (const g of stats.groups) for (const p of g.partitions) if (p.owner) owned.set(`${g.groupId}\n${p.owner}`, (owned.get(`${g.groupId}\n${p.owner}`) ?? 0) + 1);
    // A bus that does not list members still names the owners of partitions.
    const listed = stats.members !== undefined;
    const members = listed
      ? [...stats.members]
      : [...owned.keys()].map((key) => {
          const [groupId, memberId] = key.split('\n');
          return { groupId, memberId };
        });
    for (const key of owned.keys()) {
      const [groupId, memberId] = key.split('\n');
      if (!members.some((m) => m.groupId === groupId && m.memberId === memberId)) members.push({ groupId, memberId });
    }
    if (members.length === 0) {
      body.innerHTML = `<p class="empty">No members${listed ? '' : ' own a partition (this bus does not list its members)'}.</p>`;
      return;
    }
    members.sort((a, b) => a.groupId.localeCompare(b.groupId) || a.memberId.localeCompare(b.memberId));
    const rows = members
      .map((m) => {
        const count = owned.get(`${m.groupId}\n${m.memberId}`) ?? 0;
        const context = m.context === undefined ? '—' : (CONTEXTS[m.context] ?? m.context);
        const seen = typeof m.lastSeenMs === 'number' ? ` data-value="${m.lastSeenMs}" title="${esc(new Date(m.lastSeenMs).toISOString())}"` : '';
        return `<tr data-group="${esc(m.groupId)}" data-member="${esc(m.memberId)}"><td class="l">${esc(m.groupId)}</td><td class="l"><code>${esc(m.memberId)}</code></td><td class="l" data-field="context" data-value="${esc(m.context ?? '')}">${esc(context)}</td><td data-field="last-seen"${seen}>${esc(ago(m.lastSeenMs))}</td><td class="n" data-field="owned" data-value="${count}">${count}</td></tr>`;
      })
      .join('');
    body.innerHTML = `<table><thead><tr><th class="l">group</th><th class="l" style="width:34%">member</th><th class="l">context</th><th>last seen</th><th>partitions</th></tr></thead><tbody>${rows}</tbody></table>${
      listed ? '' : '<p class="note">This bus does not list its members: these are the owners of partitions.</p>'
    }`;
  }

  // --- messages ---------------------------------------------------------------------

  #control(name) {
    return this.#root.querySelector(`[data-control="${name}"]`);
  }

  /** Keeps the topic, partition and group choices in step with the bus, keeping what is chosen. */
  #syncControls(stats) {
    const topicSelect = this.#control('topic');
    const names = stats.topics.map((t) => t.topic);
    this.#root.querySelector('form.controls').hidden = names.length === 0;
    if (names.length === 0) this.#field('page-info').textContent = 'No topics yet.';
    const had = [...topicSelect.options].map((o) => o.value);
    if (had.join('\n') !== names.join('\n')) {
      const chosen = topicSelect.value;
      topicSelect.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
      if (names.includes(chosen)) topicSelect.value = chosen;
    }
    if (!this.#view && names.length > 0) {
      // First look: the first partition holding messages of a topic that is not a
      // dead-letter one (else the first topic's first), from its first retained message.
      const topics = [...stats.topics.filter((t) => !isDeadLetterTopic(t)), ...stats.topics.filter(isDeadLetterTopic)];
      const held = topics.flatMap((t) => t.partitions.filter((p) => p.depth > 0).map((p) => [t, p]));
      const [first, partition] = held[0] ?? [topics[0], topics[0].partitions[0]];
      topicSelect.value = first.topic;
      this.#syncTopicChoices(stats);
      this.#control('partition').value = String(partition?.partition ?? 0);
      this.#view = { topic: first.topic, partition: partition?.partition ?? 0, offset: partition?.lowOffset ?? 0, page: null };
      this.#control('offset').value = String(this.#view.offset);
      this.#browse();
      return;
    }
    this.#syncTopicChoices(stats);
  }

  #syncTopicChoices(stats) {
    const topic = stats.topics.find((t) => t.topic === this.#control('topic').value);
    const partitionSelect = this.#control('partition');
    const count = topic?.partitions.length ?? 0;
    if (partitionSelect.options.length !== count) {
      const chosen = partitionSelect.value;
      partitionSelect.innerHTML = (topic?.partitions ?? []).map((p) => `<option value="${p.partition}">${p.partition}</option>`).join('');
      if (chosen !== '' && Number(chosen) < count) partitionSelect.value = chosen;
    }
    const groupSelect = this.#control('group');
    const groups = stats.groups.filter((g) => g.topic === topic?.topic).map((g) => g.groupId);
    const had = [...groupSelect.options].slice(1).map((o) => o.value);
    if (had.join('\n') !== groups.join('\n')) {
      const chosen = groupSelect.value;
      groupSelect.innerHTML = `<option value="">none</option>${groups.map((g) => `<option value="${esc(g)}">${esc(g)}</option>`).join('')}`;
      if (groups.includes(chosen)) groupSelect.value = chosen;
    }
  }

  #limit() {
    const limit = Math.trunc(Number(this.#control('limit').value));
    return Number.isFinite(limit) && limit >= 1 ? Math.min(limit, 1000) : DEFAULT_LIMIT;
  }

  /** Paging: "older" goes back a limit from the page's start, "newer" to its nextOffset, "from" to the offset typed. */
  #page(direction) {
    const topic = this.#control('topic').value;
    if (!topic) return;
    const partition = Number(this.#control('partition').value || 0);
    const limit = this.#limit();
    const page = this.#view?.page;
    const same = this.#view && this.#view.topic === topic && this.#view.partition === partition;
    let offset;
    if (direction === 'newer' && same && page) offset = page.nextOffset;
    else if (direction === 'older' && same && page) offset = Math.max(page.lowOffset, this.#view.offset - limit);
    else {
      const typed = Math.trunc(Number(this.#control('offset').value));
      offset = Number.isFinite(typed) && typed >= 0 ? typed : 0;
    }
    this.#view = { topic, partition, offset, page: same ? page : null };
    this.#control('offset').value = String(offset);
    this.#browse();
  }

  async #browse() {
    const view = this.#view;
    const source = this.#source;
    if (!view || !source) return;
    const generation = this.#generation;
    const groupId = this.#control('group').value || undefined;
    const limit = this.#limit();
    const info = this.#field('page-info');
    try {
      const page = await this.#call(() => source.browse({ topic: view.topic, partition: view.partition, offset: view.offset, limit, groupId }));
      if (generation !== this.#generation || view !== this.#view) return;
      view.page = page;
      view.groupId = groupId;
      view.limit = limit;
      this.#renderMessages(view);
    } catch (error) {
      if (generation !== this.#generation || view !== this.#view) return;
      info.textContent = `Could not read ${view.topic} partition ${view.partition}: ${error?.message ?? error}`;
    }
  }

  /** A page that is not full shows the tail: it is read again when the partition changes. */
  async #followTail(stats, generation) {
    const view = this.#view;
    if (!view?.page || generation !== this.#generation) return;
    const p = stats.topics.find((t) => t.topic === view.topic)?.partitions.find((p) => p.partition === view.partition);
    if (!p) return;
    const page = view.page;
    const moved = p.highOffset !== page.highOffset || p.lowOffset !== page.lowOffset;
    if (moved && page.messages.length < (view.limit ?? DEFAULT_LIMIT)) await this.#browse();
  }

  #renderMessages(view) {
    const { page } = view;
    const first = page.messages[0]?.offset;
    const last = page.messages.at(-1)?.offset;
    const shown = page.messages.length ? `offsets ${first}–${last}` : 'no messages here';
    this.#field('page-info').innerHTML = `<code>${esc(view.topic)}</code> partition ${view.partition}: ${shown} · low <span data-field="low-offset" data-value="${page.lowOffset}">${num(page.lowOffset)}</span> · high <span data-field="high-offset" data-value="${page.highOffset}">${num(page.highOffset)}</span> · next <span data-field="next-offset" data-value="${page.nextOffset}">${num(page.nextOffset)}</span>${view.groupId ? ` · attempts of ${esc(view.groupId)}` : ''}`;
    this.#root.querySelector('[data-action="older"]').disabled = view.offset <= page.lowOffset;
    this.#root.querySelector('[data-action="newer"]').disabled = page.nextOffset >= page.highOffset;
    const body = this.#body('messages');
    body.setAttribute('data-topic', view.topic);
    body.setAttribute('data-partition', String(view.partition));
    body.innerHTML = page.messages
      .map((m) => {
        const chips = headerChips(Object.entries(m.headers ?? {}));
        return `<li class="msg" data-message data-partition="${view.partition}" data-offset="${m.offset}">
          <div class="meta"><b>#${m.offset}</b><span>key ${keyView(m.key)}</span><span title="${esc(new Date(m.timestamp).toISOString())}">${esc(time(m.timestamp))}</span><span data-field="attempt" data-value="${m.attempt}">attempt ${view.groupId ? m.attempt : '—'}</span>${m.id != null ? `<span>id ${clipped(m.id, 60, 'code')}</span>` : ''}${m.redriven ? '<span class="tag">redriven</span>' : ''}</div>
          ${valueView(m.value)}${chips}
        </li>`;
      })
      .join('');
  }

  // --- dead letters -----------------------------------------------------------------

  async #refreshDeadLetters(stats, generation) {
    const source = this.#source;
    const topics = stats.topics.filter(isDeadLetterTopic);
    let changed = this.#dead.size === 0 && !this.#deadRendered;
    for (const t of topics) {
      const signature = t.partitions.map((p) => `${p.lowOffset}-${p.highOffset}`).join(',');
      const cached = this.#dead.get(t.topic);
      if (cached && cached.signature === signature && !cached.stale && Date.now() - cached.at < DEAD_LETTER_MAX_AGE_MS) continue;
      const messages = [];
      let more = 0;
      for (const p of t.partitions) {
        if (p.highOffset <= p.lowOffset) continue;
        const page = await this.#call(() => source.browse({ topic: t.topic, partition: p.partition, offset: p.lowOffset, limit: DEAD_LETTER_LIMIT }));
        if (generation !== this.#generation) return;
        for (const m of page.messages) messages.push({ ...m, partition: p.partition });
        more += Math.max(0, page.highOffset - page.nextOffset);
      }
      const fresh = { signature, at: Date.now(), messages, more, stale: false };
      if (!cached || cached.signature !== signature || !sameLetters(cached, fresh)) changed = true;
      this.#dead.set(t.topic, fresh);
      // What was chosen and has gone (purged, or redriven elsewhere) is no longer chosen.
      const chosen = this.#selected.get(t.topic);
      if (chosen) for (const key of chosen) if (!messages.some((m) => `${m.partition}:${m.offset}` === key && !m.redriven)) chosen.delete(key);
    }
    for (const topic of [...this.#dead.keys()]) {
      if (!topics.some((t) => t.topic === topic)) {
        this.#dead.delete(topic);
        changed = true;
      }
    }
    if (changed) this.#renderDeadLetters();
  }

  #renderDeadLetters() {
    this.#deadRendered = true;
    const body = this.#body('dead-letters');
    const stats = this.#stats;
    const topics = (stats?.topics ?? []).filter(isDeadLetterTopic);
    if (topics.length === 0) {
      body.innerHTML = '<p class="empty">No dead-letter topics: nothing was dead-lettered.</p>';
      return;
    }
    body.innerHTML = topics
      .map((t) => {
        const cached = this.#dead.get(t.topic) ?? { messages: [], more: 0 };
        const depth = t.partitions.reduce((n, p) => n + p.depth, 0);
        const chosen = this.#selected.get(t.topic) ?? new Set();
        const waiting = cached.messages.filter((m) => !m.redriven).length;
        const items = cached.messages
          .map((m) => {
            const h = m.headers ?? {};
            const key = `${m.partition}:${m.offset}`;
            const pick = m.redriven
              ? '<span class="done" title="moved back by redrive already">✓</span>'
              : `<input type="checkbox" data-select="${key}" aria-label="select dead letter ${key}"${chosen.has(key) ? ' checked' : ''}>`;
            const user = Object.entries(h).filter(([k]) => !k.startsWith('ferry-dlq-'));
            return `<li class="dl" data-dead-letter data-partition="${m.partition}" data-offset="${m.offset}" data-redriven="${Boolean(m.redriven)}">
              ${pick}
              <div class="msg">
                ${clipped(h['ferry-dlq-error'] ?? '(no reason recorded)', 300, 'div', ' class="reason" data-field="error"')}
                <div class="meta"><span>from <code>${esc(h['ferry-dlq-topic'] ?? '—')}</code> p${esc(h['ferry-dlq-partition'] ?? '—')} #${esc(h['ferry-dlq-offset'] ?? '—')}</span><span>group <code>${esc(h['ferry-dlq-group'] ?? '—')}</code></span><span data-field="attempts" data-value="${esc(h['ferry-dlq-attempts'] ?? '')}">${esc(h['ferry-dlq-attempts'] ?? '—')} attempts</span><span>key ${keyView(m.key)}</span><span>here p${m.partition} #${m.offset}</span>${m.redriven ? '<span class="tag">redriven</span>' : ''}<span title="${esc(new Date(m.timestamp).toISOString())}">${esc(time(m.timestamp))}</span></div>
                ${valueView(m.value)}${headerChips(user)}
              </div>
            </li>`;
          })
          .join('');
        const more = cached.more > 0 ? `<p class="note">and ${num(cached.more)} more not listed ("Redrive all" and "Purge" take them too).</p>` : '';
        return `<div class="dlq" data-dlq="${esc(t.topic)}">
          <div class="dlq-head"><span class="name">${esc(t.topic)}</span><span class="note"><span data-field="dlq-depth" data-value="${depth}">${num(depth)}</span> stored · <span data-field="dlq-waiting" data-value="${waiting}">${num(waiting)}</span> listed to redrive</span></div>
          <div class="buttons" data-actions>${this.#actions(t.topic, depth, chosen.size)}</div>
          ${items ? `<ul class="list">${items}</ul>` : '<p class="empty">Empty.</p>'}${more}
        </div>`;
      })
      .join('');
  }

  #actions(topic, depth, chosenCount) {
    const t = esc(topic);
    const result = this.#results.get(topic);
    const shown = result
      ? `<span class="result${result.failed ? ' failed' : ''}" data-field="result" data-kind="${result.kind}"${result.failed ? '' : ` data-value="${result.count}"`}>${esc(result.text)}</span>`
      : '';
    const busy = this.#busy ? ' disabled' : '';
    if (this.#confirming === topic) {
      return `<span class="note">Purge ${num(depth)} message(s) of <code>${t}</code>? They cannot be brought back.</span>
        <button type="button" class="danger confirm" data-action="purge-confirm" data-topic="${t}"${busy}>Confirm</button>
        <button type="button" data-action="purge-cancel" data-topic="${t}">Cancel</button>${shown}`;
    }
    return `<button type="button" data-action="redrive-selected" data-topic="${t}"${chosenCount === 0 || this.#busy ? ' disabled' : ''}>Redrive selected (${chosenCount})</button>
      <button type="button" data-action="redrive-all" data-topic="${t}"${busy}>Redrive all</button>
      <button type="button" class="danger" data-action="purge" data-topic="${t}"${busy}>Purge</button>${shown}`;
  }

  #renderActions(topic) {
    const block = [...this.#root.querySelectorAll('[data-dlq]')].find((el) => el.dataset.dlq === topic);
    if (!block) return;
    const depth = (this.#stats?.topics.find((t) => t.topic === topic)?.partitions ?? []).reduce((n, p) => n + p.depth, 0);
    block.querySelector('[data-actions]').innerHTML = this.#actions(topic, depth, this.#selected.get(topic)?.size ?? 0);
  }

  async #act(topic, kind) {
    const source = this.#source;
    if (!source || this.#busy) return;
    const generation = this.#generation;
    this.#busy = true;
    this.#confirming = null;
    this.#results.delete(topic);
    this.#renderActions(topic);
    let result;
    try {
      if (kind === 'purge') {
        const count = await this.#call(() => source.purge({ topic }));
        result = { kind, count, text: `${num(count)} purged` };
      } else {
        const chosen = [...(this.#selected.get(topic) ?? [])];
        const options = { from: topic };
        if (kind === 'redrive-selected') {
          options.offsets = chosen.map((key) => {
            const [partition, offset] = key.split(':').map(Number);
            return { partition, offset };
          });
        }
        const count = await this.#call(() => source.redrive(options));
        if (kind === 'redrive-selected') this.#selected.delete(topic);
        result = { kind: 'redrive', count, text: `${num(count)} moved back` };
      }
    } catch (error) {
      result = { kind: kind === 'purge' ? 'purge' : 'redrive', failed: true, text: error?.message ?? String(error) };
    }
    if (generation !== this.#generation) return;
    this.#busy = false;
    this.#results.set(topic, result);
    const cached = this.#dead.get(topic);
    if (cached) cached.stale = true;
    this.#renderDeadLetters();
    this.#request(0);
  }

  // --- events -----------------------------------------------------------------------

  #onClick(event) {
    const button = event.target.closest?.('button[data-action]');
    if (!button || button.disabled) return;
    const { action, topic } = button.dataset;
    switch (action) {
      case 'older':
      case 'newer':
        this.#page(action);
        break;
      case 'from':
        event.preventDefault();
        this.#page('from');
        break;
      case 'redrive-selected':
      case 'redrive-all':
        this.#act(topic, action);
        break;
      case 'purge':
        this.#confirming = topic;
        this.#renderActions(topic);
        break;
      case 'purge-confirm':
        this.#act(topic, 'purge');
        break;
      case 'purge-cancel':
        this.#confirming = null;
        this.#renderActions(topic);
        break;
    }
  }

  #onChange(event) {
    const target = event.target;
    if (target.matches?.('input[data-select]')) {
      const topic = target.closest('[data-dlq]').dataset.dlq;
      if (!this.#selected.has(topic)) this.#selected.set(topic, new Set());
      const chosen = this.#selected.get(topic);
      if (target.checked) chosen.add(target.dataset.select);
      else chosen.delete(target.dataset.select);
      this.#renderActions(topic);
      return;
    }
    const control = target.dataset?.control;
    if (control === 'topic' && this.#stats) {
      // Another topic: its first partition from its first retained message.
      this.#syncTopicChoices(this.#stats);
      this.#control('partition').value = '0';
      const topic = this.#stats.topics.find((t) => t.topic === target.value);
      this.#control('offset').value = String(topic?.partitions[0]?.lowOffset ?? 0);
      this.#page('from');
    } else if (control === 'partition' && this.#stats) {
      const topic = this.#stats.topics.find((t) => t.topic === this.#control('topic').value);
      const p = topic?.partitions.find((p) => p.partition === Number(target.value));
      this.#control('offset').value = String(p?.lowOffset ?? 0);
      this.#page('from');
    } else if (control === 'group' || control === 'limit') {
      if (this.#view) {
        this.#control('offset').value = String(this.#view.offset);
        this.#page('from');
      }
    }
  }

  // --- bits -------------------------------------------------------------------------

  #body(part) {
    return this.#root.querySelector(`[data-part="${part}"] [data-body]`);
  }

  #field(name) {
    return this.#root.querySelector(`[data-field="${name}"]`);
  }

  #status(state, text) {
    const status = this.#root.querySelector('[data-part="status"]');
    status.dataset.state = state;
    status.textContent = text;
  }

  #showLoad() {
    const wakes = typeof this.#source?.onWake === 'function';
    const polls = `stats every ${seconds(this.interval)}`;
    this.#field('load').textContent = wakes
      ? `${polls}; wake-ups at most ${1000 / MIN_GAP_MS}/s; dead letters read when they change; one request at a time`
      : `${polls} (polls only); dead letters read when they change; one request at a time`;
  }

  #showError(error) {
    const box = this.#root.querySelector('[data-part="error"]');
    box.hidden = false;
    box.textContent = error?.message ?? String(error);
    if (error?.code) box.dataset.code = error.code;
    else delete box.dataset.code;
    this.#status('error', 'not answering');
  }
}

/** Stats with every list there (`members` stays absent when the bus does not report it). */
function normalize(stats) {
  const topics = (stats?.topics ?? []).map((t) => ({ ...t, partitions: t.partitions ?? [] }));
  const groups = (stats?.groups ?? []).map((g) => ({ ...g, partitions: g.partitions ?? [] }));
  const out = { topics, groups };
  if (Array.isArray(stats?.members)) out.members = stats.members;
  return out;
}

function sameLetters(a, b) {
  if (a.more !== b.more || a.messages.length !== b.messages.length) return false;
  return a.messages.every((m, i) => m.partition === b.messages[i].partition && m.offset === b.messages[i].offset && m.redriven === b.messages[i].redriven);
}

if (globalThis.customElements && !customElements.get('ferry-inspector')) customElements.define('ferry-inspector', FerryInspector);
