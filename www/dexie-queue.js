// A job queue on Dexie (IndexedDB) shared by the pages of an origin: the neighbour
// benches/contexts.mjs measures ferry's consumers against, written the way one would
// by hand without a bus. One table of jobs with a status index; add() stores jobs
// 'ready'; a worker claims up to `batch` ready jobs in one readwrite transaction
// (marking them 'taken' by its owner, so no other page gets them), handles them at
// once and deletes them in a second transaction; pages wake each other through a
// BroadcastChannel. It keeps no order, retries nothing and has no lease expiry: a
// job taken by a page that dies stays taken, and a handler that throws stops its
// worker (the bench's handlers do not throw).
import Dexie from 'dexie';

// A worker that heard no wake-up looks again after this long anyway.
const LOOK_AGAIN_MS = 1000;

export class DexieQueue {
  static async open(name) {
    const queue = new DexieQueue(name);
    await queue.db.open();
    return queue;
  }

  constructor(name) {
    this.name = name;
    // The durability ferry's transactions ask for by default, so both commit alike.
    this.db = new Dexie(name, { chromeTransactionDurability: 'relaxed' });
    this.db.version(1).stores({ jobs: '++id, status' });
    this.wake = new BroadcastChannel(`${name}.wake`);
    this.workers = [];
  }

  /** Stores `payloads` as ready jobs in one transaction, then wakes the workers of every page. */
  async add(payloads) {
    await this.db.jobs.bulkAdd(payloads.map((payload) => ({ status: 'ready', owner: null, payload })));
    this.wake.postMessage('added');
  }

  /** Up to `max` ready jobs, marked taken by `owner` in the same transaction. */
  claim(owner, max) {
    return this.db.transaction('rw', this.db.jobs, async () => {
      const jobs = await this.db.jobs.where('status').equals('ready').limit(max).toArray();
      await this.db.jobs.bulkUpdate(jobs.map((job) => ({ key: job.id, changes: { status: 'taken', owner } })));
      return jobs;
    });
  }

  /** Hands jobs to `handle(payload)` as they come, up to `batch` at once, until close(). */
  work(owner, handle, { batch = 100 } = {}) {
    const worker = { running: true, woken: false, wakeUp: () => {} };
    // A channel of its own: a BroadcastChannel does not hear itself, and this page may add jobs too.
    const channel = new BroadcastChannel(`${this.name}.wake`);
    channel.onmessage = () => {
      worker.woken = true;
      worker.wakeUp();
    };
    worker.stop = () => {
      worker.running = false;
      channel.close();
      worker.wakeUp();
    };
    worker.done = (async () => {
      while (worker.running) {
        // Cleared before claiming, so a wake-up during the claim is not missed.
        worker.woken = false;
        const jobs = await this.claim(owner, batch);
        if (jobs.length === 0) {
          await idle(worker);
          continue;
        }
        await Promise.all(jobs.map((job) => handle(job.payload)));
        await this.db.jobs.bulkDelete(jobs.map((job) => job.id));
      }
    })();
    this.workers.push(worker);
    return worker;
  }

  async close() {
    for (const worker of this.workers) worker.stop();
    await Promise.all(this.workers.map((worker) => worker.done));
    this.wake.close();
    this.db.close();
  }
}

/** Resolves at the worker's next wake-up, its stop, or LOOK_AGAIN_MS, whichever comes first. */
function idle(worker) {
  if (worker.woken || !worker.running) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, LOOK_AGAIN_MS);
    worker.wakeUp = () => {
      clearTimeout(timer);
      worker.wakeUp = () => {};
      resolve();
    };
  });
}
