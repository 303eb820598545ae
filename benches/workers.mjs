// Runs ferry/workers in local workerd (Miniflare; SQLite-backed Durable Objects
// persisted to a temporary directory) and prints its figures beside baselines
// measured in the same run: the same work done with raw `ctx.storage.sql` in one
// Durable Object. Figures only: nothing here fails on timing; it fails only when
// a call errs or a message is lost, duplicated, altered, misplaced or (under
// "partition" ordering) delivered out of order.
// `node benches/workers.mjs` after `make pkg` (which builds pkg/dist/edge).
//
// Each scenario is three requests to one Worker: `prepare` (a fresh object, its
// topic or table, any messages to consume), `run` (the timed loop: every call one
// RPC to the object, as a Worker in production makes them) and `verify`. `run`
// returns the loop's elapsed time measured inside the Worker with Date.now();
// workerd only advances Date.now() across I/O, and every call here is I/O, so
// the clock moves. Node also times the `run` request around dispatchFetch; that
// figure is printed too when the two differ by more than 10%.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from '../tests/js/workerd.mjs';

const RUNS = 5;
const WARM_UP_BATCHES = 5;
const BATCH = 100;
const BATCHES = 50; // 5,000 messages per scenario and run
const VALUE_BYTES = 256;
// Keys 'key-0'..'key-63' of the keyed scenarios: 4 to 11 of them on each of 8 partitions.
const KEYS = 64;
// Concurrent senders of the partition scenarios (one per partition of 8).
const SENDERS = 8;

const worker = `
import { DurableObject } from 'cloudflare:workers';
import { FerryObject, connect } from 'ferry/workers';
// The engine module ferry/workers loads (the bundle holds it once): counted below.
import { EdgeObject, EdgeClient } from './pkg/dist/edge/ferry_edge.js';

export class Bus extends FerryObject {}

/**
 * Calls from JavaScript into the engine (methods and getters of its two classes),
 * by side: what each crossing costs is the same, so fewer is faster.
 */
const crossings = { object: 0, client: 0 };
/** Crossings by object instance, for the busiest: the object that coordinates a send. */
const byObject = new Map();
for (const [side, engineClass] of [['object', EdgeObject], ['client', EdgeClient]]) {
  for (const [name, property] of Object.entries(Object.getOwnPropertyDescriptors(engineClass.prototype))) {
    if (name === 'constructor') continue;
    const counted = (f) =>
      function (...args) {
        crossings[side]++;
        if (side === 'object') byObject.set(this, (byObject.get(this) ?? 0) + 1);
        return f.apply(this, args);
      };
    if (typeof property.value === 'function') property.value = counted(property.value);
    if (property.get) property.get = counted(property.get);
    Object.defineProperty(engineClass.prototype, name, property);
  }
}

// The baseline: one table; one transaction per call, as ferry commits each call.
export class RawObject extends DurableObject {
  setup() {
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS raw (k INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  }
  insert(rows) {
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      for (const [k, v] of rows) sql.exec('INSERT INTO raw (k, v) VALUES (?, ?)', k, v);
    });
    return rows.length;
  }
  /** Up to max rows after key 'after', oldest first. */
  read(after, max) {
    return this.ctx.storage.sql.exec('SELECT k, v FROM raw WHERE k > ? ORDER BY k LIMIT ?', after, max).toArray();
  }
  delete(ks) {
    this.ctx.storage.transactionSync(() => {
      for (const k of ks) this.ctx.storage.sql.exec('DELETE FROM raw WHERE k = ?', k);
    });
  }
  count() {
    return this.ctx.storage.sql.exec('SELECT count(*) AS n, count(DISTINCT v) AS d, min(length(v)) AS lo, max(length(v)) AS hi FROM raw').one();
  }
}

const BATCH = ${BATCH};
const VALUE_BYTES = ${VALUE_BYTES};
const KEYS = ${KEYS};
/** A VALUE_BYTES-character ASCII string (so VALUE_BYTES bytes) naming message i. */
const value = (i) => ('m' + i + '-').padEnd(VALUE_BYTES, 'x');

function fail(message) {
  throw new Error(message);
}

/**
 * Sends 'batches' batches of BATCH to 'bench' from 'senders' concurrent loops:
 * [elapsed ms, every send's results]. Messages are keyed (KEYS keys, so a batch
 * spans every partition), or pinned to the sender's own partition, or neither.
 */
async function sendBatches(bus, batches, { keyed = false, pinned = false, senders = 1 } = {}) {
  const results = [];
  const start = Date.now();
  await Promise.all(
    Array.from({ length: senders }, async (_, sender) => {
      for (let b = sender, i = sender * BATCH; b < batches; b += senders, i += senders * BATCH) {
        const messages = [];
        for (let j = 0; j < BATCH; j++) {
          const n = i + j;
          messages.push(keyed ? { key: 'key-' + (n % KEYS), value: value(n) } : pinned ? { partition: sender, value: value(n) } : { value: value(n) });
        }
        results.push(await bus.producer().send({ topic: 'bench', messages }));
      }
    }),
  );
  return [Date.now() - start, results];
}

/** Messages per partition, after checking every send's results: one per message, each partition's offsets 0 to n-1 once each. */
function checkSent(results) {
  const offsets = {};
  for (const batch of results) {
    if (batch.length !== BATCH) fail('a send of ' + BATCH + ' returned ' + batch.length + ' results');
    for (const r of batch) {
      if (r.topic !== 'bench' || r.duplicate) fail('send result ' + JSON.stringify(r));
      (offsets[r.partition] ??= []).push(r.offset);
    }
  }
  const counts = {};
  for (const [p, list] of Object.entries(offsets)) {
    list.sort((a, b) => a - b);
    if (list.some((o, i) => o !== i)) fail('partition ' + p + ' has offsets with gaps or repeats');
    counts[p] = list.length;
  }
  return counts;
}

async function depth(bus) {
  return (await bus.stats()).topics.find((t) => t.topic === 'bench').partitions.reduce((n, p) => n + p.depth, 0);
}

const rawStub = (env, p) => env.RAW.get(env.RAW.idFromName(p.get('name')));
const ferry = (env, p) => connect(env.BUS, { name: p.get('name') });
const consumerOf = async (bus, ordering) => {
  const consumer = bus.consumer({ groupId: 'bench', ordering });
  await consumer.subscribe({ topic: 'bench', fromBeginning: true });
  return consumer;
};

const scenarios = {
  // Ferry's send, batches of BATCH: 1. unkeyed on 1 partition; 4. keyed or pinned, 1 or 8 partitions, 8 senders.
  send: {
    prepare: (env, p) => ferry(env, p).createTopic('bench', { partitions: Number(p.get('partitions')) }),
    async run(env, p) {
      const how = { keyed: p.get('keyed') === '1', pinned: p.get('pinned') === '1', senders: Number(p.get('senders') ?? 1) };
      const [ms, results] = await sendBatches(ferry(env, p), Number(p.get('batches')), how);
      return { ms, n: results.length * BATCH, partitions: checkSent(results) };
    },
    async verify(env, p) {
      return { stored: await depth(ferry(env, p)) };
    },
  },
  // 2. receive({ max: BATCH }) + ack() of each, one by one or all at once, ordering "none" or "partition", from a topic filled in prepare.
  consume: {
    async prepare(env, p) {
      const bus = ferry(env, p);
      await bus.createTopic('bench', { partitions: 1 });
      checkSent((await sendBatches(bus, Number(p.get('batches'))))[1]);
    },
    async run(env, p) {
      const n = Number(p.get('batches')) * BATCH;
      const together = p.get('together') === '1';
      const ordering = p.get('ordering');
      const consumer = await consumerOf(ferry(env, p), ordering);
      const seen = new Set();
      let receives = 0;
      let short = 0;
      const start = Date.now();
      while (seen.size < n) {
        const received = await consumer.receive({ max: BATCH });
        receives++;
        if (received.length === 0) fail('receive returned nothing after ' + seen.size + ' of ' + n + ' messages');
        // Not wrong, but what runs are for: a receive should fill up while BATCH more wait.
        if (received.length < BATCH && seen.size + received.length < n) short++;
        for (const m of received) {
          if (seen.has(m.offset)) fail('offset ' + m.offset + ' delivered twice (attempt ' + m.attempt + ')');
          if (m.value !== value(m.offset) || m.attempt !== 1) fail('offset ' + m.offset + ': attempt ' + m.attempt + ', value ' + String(m.value).slice(0, 20));
          // With every message acked, each one of the partition comes after the one before it.
          if (ordering === 'partition' && m.offset !== seen.size) fail('ordering "partition": offset ' + m.offset + ' delivered after ' + seen.size + ' messages');
          seen.add(m.offset);
          if (!together) await m.ack();
        }
        if (together && (await Promise.all(received.map((m) => m.ack()))).some((acked) => !acked)) fail('an ack found its lease gone');
      }
      return { ms: Date.now() - start, n: seen.size, receives, short };
    },
    async verify(env, p) {
      const bus = ferry(env, p);
      const again = (await (await consumerOf(bus, p.get('ordering'))).receive({ max: BATCH })).length;
      const [partition] = (await bus.stats()).groups.find((g) => g.groupId === 'bench').partitions;
      return { again, partition };
    },
  },
  // Crossings into the engine of one keyed send of BATCH spanning the 8 partitions, once warm.
  crossings: {
    prepare: (env, p) => ferry(env, p).createTopic('bench', { partitions: 8 }),
    async run(env, p) {
      const bus = ferry(env, p);
      await sendBatches(bus, 1, { keyed: true });
      crossings.object = crossings.client = 0;
      byObject.clear();
      const [ms] = await sendBatches(bus, 1, { keyed: true });
      return { ms, n: BATCH, ...crossings, objects: byObject.size, coordinating: Math.max(...byObject.values()) };
    },
    verify: async (env, p) => ({ stored: await depth(ferry(env, p)) }),
  },
  // 3. the baseline of send: the same rows, BATCH per call, raw ctx.storage.sql.
  rawInsert: {
    prepare: (env, p) => rawStub(env, p).setup(),
    async run(env, p) {
      const stub = rawStub(env, p);
      const batches = Number(p.get('batches'));
      let i = 0;
      const start = Date.now();
      for (let b = 0; b < batches; b++) {
        const rows = [];
        for (let j = 0; j < BATCH; j++, i++) rows.push([i, value(i)]);
        if ((await stub.insert(rows)) !== BATCH) fail('raw insert');
      }
      return { ms: Date.now() - start, n: i };
    },
    verify: (env, p) => rawStub(env, p).count(),
  },
  // The baselines of consume: read BATCH rows per call, then delete them one call per row, or all in one call.
  rawConsume: {
    async prepare(env, p) {
      const stub = rawStub(env, p);
      await stub.setup();
      for (let b = 0, i = 0; b < Number(p.get('batches')); b++) {
        const rows = [];
        for (let j = 0; j < BATCH; j++, i++) rows.push([i, value(i)]);
        await stub.insert(rows);
      }
    },
    async run(env, p) {
      const stub = rawStub(env, p);
      const n = Number(p.get('batches')) * BATCH;
      const together = p.get('together') === '1';
      let seen = 0;
      let after = -1;
      const start = Date.now();
      while (seen < n) {
        const rows = await stub.read(after, BATCH);
        if (rows.length === 0) fail('raw read returned nothing after ' + seen);
        for (const row of rows) {
          if (row.v !== value(row.k)) fail('raw row ' + row.k);
          if (!together) await stub.delete([row.k]);
          after = row.k;
          seen++;
        }
        if (together) await stub.delete(rows.map((row) => row.k));
      }
      return { ms: Date.now() - start, n: seen };
    },
    verify: (env, p) => rawStub(env, p).count(),
  },
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, scenario, phase] = url.pathname.split('/');
    try {
      return Response.json((await scenarios[scenario][phase](env, url.searchParams)) ?? null);
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), to check where keyed messages went. */
function murmur2(data) {
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ data.length;
  const tail = data.length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    h = Math.imul(h, m) ^ Math.imul(k, m);
  }
  switch (data.length & 3) {
    case 3: h ^= data[tail + 2] << 16; // falls through
    case 2: h ^= data[tail + 1] << 8; // falls through
    case 1: h = Math.imul(h ^ data[tail], m);
  }
  h = Math.imul(h ^ (h >>> 13), m);
  return (h ^ (h >>> 15)) | 0;
}

/** Messages per partition that Kafka's partitioner gives the keyed scenarios' messages. */
function keyedSpread(messages, partitions) {
  const spread = {};
  for (let i = 0; i < messages; i++) {
    const p = (murmur2(Buffer.from(`key-${i % KEYS}`)) & 0x7fffffff) % partitions;
    spread[p] = (spread[p] ?? 0) + 1;
  }
  return spread;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
let fresh = 0;

const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-workers-'));
const mf = await startWorker(worker, { durableObjects: { RAW: { className: 'RawObject', useSQLite: true } }, persistTo: dir });

async function step(path, query) {
  const response = await mf.dispatchFetch(`http://bench.test/${path}?${query}`, { signal: AbortSignal.timeout(120_000) });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${path}?${query}: ${response.status}\n${body}`);
  return JSON.parse(body);
}

/** One run of `scenario` on a fresh object: { ms inside the Worker, nodeMs around the run request, ...checks }. */
async function measure(scenario, params, check) {
  const query = new URLSearchParams({ name: `bench-${scenario}-${process.pid}-${fresh++}`, ...params });
  await step(`${scenario}/prepare`, query);
  const t0 = performance.now();
  const result = await step(`${scenario}/run`, query);
  const nodeMs = performance.now() - t0;
  check(result, await step(`${scenario}/verify`, query));
  return { ...result, nodeMs };
}

function expect(what, actual, expected) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) throw new Error(`${what}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

/** The consume scenario with `params`, checked to have delivered each message once and left nothing behind. */
function consume(batches, params) {
  const what = `consume ${JSON.stringify(params)}`;
  return measure('consume', { batches, ...params }, (run, { again, partition }) => {
    const n = batches * BATCH;
    expect(`${what}: received`, run.n, n);
    expect(`${what}: a receive after acking everything`, again, 0);
    expect(`${what}: group after acking everything`, [partition.committedOffset, partition.lag, partition.inFlight, partition.retrying], [n, 0, 0, 0]);
  });
}

const kinds = {
  rawInsert: (batches) =>
    measure('rawInsert', { batches }, (_, count) => expect('raw rows after the inserts', count, { n: batches * BATCH, d: batches * BATCH, lo: VALUE_BYTES, hi: VALUE_BYTES })),
  send: (batches) =>
    measure('send', { batches, partitions: 1 }, (run, verify) => {
      expect('unkeyed send: messages per partition', run.partitions, { 0: batches * BATCH });
      expect('unkeyed send: depth in stats', verify.stored, batches * BATCH);
    }),
  rawConsume: (batches) => measure('rawConsume', { batches }, (_, count) => expect('raw rows after consuming', count.n, 0)),
  consume: (batches) => consume(batches, { ordering: 'none' }),
  rawConsumeTogether: (batches) => measure('rawConsume', { batches, together: 1 }, (_, count) => expect('raw rows after consuming', count.n, 0)),
  consumeTogether: (batches) => consume(batches, { ordering: 'none', together: 1 }),
  consumeRuns: (batches) => consume(batches, { ordering: 'partition', together: 1 }),
  keyed1: (batches) =>
    measure('send', { batches, partitions: 1, keyed: 1, senders: SENDERS }, (run, verify) => {
      expect('keyed send, 1 partition: messages per partition', run.partitions, keyedSpread(batches * BATCH, 1));
      expect('keyed send, 1 partition: depth in stats', verify.stored, batches * BATCH);
    }),
  keyed8: (batches) =>
    measure('send', { batches, partitions: 8, keyed: 1, senders: SENDERS }, (run, verify) => {
      expect('keyed send, 8 partitions: messages per partition', run.partitions, keyedSpread(batches * BATCH, 8));
      expect('keyed send, 8 partitions: depth in stats', verify.stored, batches * BATCH);
    }),
  pinned8: (batches) =>
    measure('send', { batches, partitions: 8, pinned: 1, senders: SENDERS }, (run, verify) => {
      // Sender p sends batches p, p + SENDERS, ... to partition p.
      const each = Object.fromEntries(Array.from({ length: Math.min(SENDERS, batches) }, (_, p) => [p, Math.ceil((batches - p) / SENDERS) * BATCH]));
      expect('pinned send, 8 partitions: messages per partition', run.partitions, each);
      expect('pinned send, 8 partitions: depth in stats', verify.stored, batches * BATCH);
    }),
};

const started = performance.now();
try {
  // One small untimed round first: compiles the engine and warms up both sides.
  for (const run of Object.values(kinds)) await run(WARM_UP_BATCHES);
  const samples = Object.fromEntries(Object.keys(kinds).map((kind) => [kind, []]));
  // Scenarios interleaved run by run, so drift over the whole run hits all of them alike.
  for (let r = 0; r < RUNS; r++) {
    for (const [kind, run] of Object.entries(kinds)) samples[kind].push(await run(BATCHES));
  }

  const rate = (kind, clock) => median(samples[kind].map((s) => (s.n * 1000) / s[clock]));
  const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(8);
  const ratio = (n, base) => `${(n / base).toFixed(2)}x`;
  /** One figure, msg/s timed inside the Worker; Node's figure too when it differs by more than 10%. */
  const line = (label, kind, note = () => '') => {
    const inside = rate(kind, 'ms');
    const outside = rate(kind, 'nodeMs');
    const node = Math.abs(outside / inside - 1) > 0.1 ? `  (timed from Node around dispatchFetch: ${fmt(outside).trim()} msg/s)` : '';
    console.log(`  ${label.padEnd(75)}${fmt(inside)} msg/s${note(inside)}${node}`);
    return inside;
  };

  console.log(
    `ferry/workers in local workerd (Miniflare, SQLite Durable Objects on disk), ${VALUE_BYTES}-byte string values, ` +
      `${(BATCH * BATCHES).toLocaleString('en-US')} messages per run, median of ${RUNS} runs, every call one RPC to the object`,
  );
  const rawInsert = line('raw ctx.storage.sql, 100-row insert per call, one object', 'rawInsert', () => '  (baseline)');
  line('send through connect, batches of 100, 1 partition', 'send', (n) => `  ${ratio(n, rawInsert)} (target >= 0.50x)`);
  const rawConsume = line('raw ctx.storage.sql, read 100 per call + delete 1 per call', 'rawConsume', () => '  (baseline)');
  /** Messages per receive over every run of `kind`, and the receives short of 100 while 100 more waited. */
  const perReceive = (kind) => {
    const [n, receives, short] = ['n', 'receives', 'short'].map((field) => samples[kind].reduce((total, s) => total + s[field], 0));
    return `  (${(n / receives).toFixed(1)} messages per receive; ${short} of ${receives} receives short of 100 while more waited)`;
  };
  line('receive({ max: 100 }) + ack() of each, ordering "none"', 'consume', (n) => `  ${ratio(n, rawConsume)}${perReceive('consume')}`);
  const rawTogether = line('raw ctx.storage.sql, read 100, then delete them in one call', 'rawConsumeTogether', () => '  (baseline)');
  line('receive({ max: 100 }) + Promise.all of their ack()s, ordering "none"', 'consumeTogether', (n) => `  ${ratio(n, rawTogether)}${perReceive('consumeTogether')}`);
  line('receive({ max: 100 }) + Promise.all of their ack()s, ordering "partition"', 'consumeRuns', (n) => `  ${ratio(n, rawTogether)} (floor >= 0.40x)${perReceive('consumeRuns')}`);
  const one = line(`send, keyed, ${SENDERS} senders, batches of 100, 1-partition topic`, 'keyed1');
  line(`send, keyed, ${SENDERS} senders, batches of 100, 8-partition topic`, 'keyed8', (n) => `  ${ratio(n, one)} of 1 partition`);
  line(`send, ${SENDERS} senders each on its own partition of 8`, 'pinned8', (n) => `  ${ratio(n, one)} of 1 partition`);
  console.log('  (each partition is its own Durable Object: a keyed batch spans all 8, so the object of its first message stores it');
  console.log('   and forwards the rest, 8 transactions in all; local workerd runs every object on one thread and one disk, so 8');
  console.log('   objects add no throughput here: on Cloudflare the objects of a topic spread over machines)');
  const counted = await measure('crossings', {}, (_, verify) => expect('crossings: depth after two keyed sends', verify.stored, 2 * BATCH));
  console.log(
    `  JS<->wasm crossings of one keyed send of 100 over 8 partitions: ${counted.coordinating} in the object that stores it and forwards the rest, ` +
      `${counted.object} in all ${counted.objects} objects, ${counted.client} in the client`,
  );
  console.log('  (the consume cases read one partition; under "partition" a receive leases a run of up to 100 consecutive messages,');
  console.log('   each in flight once the one before it is acked, and acks made together reach the partition in one call)');
  console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
} finally {
  await mf.dispose();
  await rm(dir, { recursive: true, force: true });
}
