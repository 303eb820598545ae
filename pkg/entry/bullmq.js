// `ferry/bullmq`: BullMQ's API over a ferry bus, so that a BullMQ program runs by
// changing its import. Only shapes are mapped here: job state, priorities, delays,
// retries with backoff, stalled jobs, repeatable jobs, flows and the rate limiter
// are the engine's (src/core/engine/jobs.rs), and every call is one engine
// operation (`bus.__jobs`), stored before it resolves.
//
// What BullMQ has and ferry has not is accepted and ignored where ignoring it keeps
// the program's meaning (`connection`, `prefix` as a key prefix, `skipVersionCheck`,
// `stalledInterval`), and refused with a FerryError naming it where it would not
// (sandboxed processors given as a file, `repeat.tz` other than UTC).
import { FerryError } from './error.js';

// BullMQ's Worker defaults.
const LOCK_DURATION_MS = 30_000;
const DRAIN_DELAY_S = 5;

const refused = (field, message) => new FerryError('INVALID_ARGUMENT', `${field} ${message}`);

/** EventEmitter's methods, for contexts without node:events. */
class Emitter {
  #listeners = new Map();

  on(event, listener) {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener]);
    return this;
  }

  addListener(event, listener) {
    return this.on(event, listener);
  }

  once(event, listener) {
    const once = (...args) => {
      this.off(event, once);
      listener(...args);
    };
    once.listener = listener;
    return this.on(event, once);
  }

  off(event, listener) {
    this.#listeners.set(event, (this.#listeners.get(event) ?? []).filter((l) => l !== listener && l.listener !== listener));
    return this;
  }

  removeListener(event, listener) {
    return this.off(event, listener);
  }

  removeAllListeners(event) {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  listenerCount(event) {
    return (this.#listeners.get(event) ?? []).length;
  }

  emit(event, ...args) {
    const listeners = this.#listeners.get(event) ?? [];
    for (const listener of listeners) listener.apply(this, args);
    return listeners.length > 0;
  }
}

/** An error that fails a job for good, whatever attempts it has left. */
export class UnrecoverableError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnrecoverableError';
  }
}

/**
 * The buses of this context, by name: every Queue, Worker and QueueEvents naming
 * the same bus shares one, with one listener for its job events, and the bus is
 * closed when the last of them closes.
 */
const buses = new Map();

/**
 * Where a queue's events go in this context. Listeners get each event; wakers (an
 * idle Worker) only hear that their queue moved, which needs no parsing: most
 * commits are a Worker's own, with nobody listening.
 */
class Hub {
  listeners = new Map();
  wakers = new Map();

  static #add(map, queue, listener) {
    const list = map.get(queue) ?? new Set();
    list.add(listener);
    map.set(queue, list);
    return () => list.delete(listener);
  }

  listen(queue, listener) {
    return Hub.#add(this.listeners, queue, listener);
  }

  wake(queue, waker) {
    return Hub.#add(this.wakers, queue, waker);
  }

  hear(text) {
    // Only what brings work wakes a Worker: not its own jobs starting or ending.
    const work = text.includes('"event":"waiting"') || text.includes('"event":"resumed"');
    for (const [queue, wakers] of this.wakers) {
      if (work && wakers.size > 0 && text.includes(`"queue":${JSON.stringify(queue)}`)) for (const waker of wakers) waker();
    }
    if (![...this.listeners.values()].some((list) => list.size > 0)) return;
    for (const event of JSON.parse(text)) {
      for (const listener of this.listeners.get(event.queue) ?? []) listener(event);
    }
  }
}

export function bullmqFace(Bus) {
  /** Opens (or shares) the bus `opts.ferry` names: `{ bus }` uses one given, `{ name, ...Bus.open options }` opens one. */
  function attach(opts) {
    const { ferry = {} } = opts ?? {};
    if (ferry === null || typeof ferry !== 'object') throw refused('ferry', 'must be an object { name, storage } or { bus }');
    if (ferry.bus) {
      // A bus of `ferry`'s own build has no job queues (pkg/README.md, "Size").
      if (typeof ferry.bus.__jobs !== 'function') throw refused('ferry.bus', "has no job queues: a bus from 'ferry' is the build without them; give { name, storage } instead, and ferry/bullmq opens that bus with them");
      const hub = new Hub();
      ferry.bus.__onJobEvents?.((text) => hub.hear(text));
      return { bus: Promise.resolve(ferry.bus), hub, release: async () => {} };
    }
    if (!Bus) throw refused('ferry', 'must give the bus here: { ferry: { bus: connect(env.BUS) } } in a Worker');
    const name = ferry.name ?? opts.prefix ?? 'bull';
    let entry = buses.get(name);
    if (!entry) {
      const hub = new Hub();
      const bus = Bus.open({ ...ferry, name }).then((bus) => {
        bus.__onJobEvents((text) => hub.hear(text));
        return bus;
      });
      entry = { bus, hub, users: 0 };
      buses.set(name, entry);
      // A bus that failed to open is not shared: the next user tries again.
      bus.catch(() => buses.get(name) === entry && buses.delete(name));
    }
    entry.users += 1;
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      entry.users -= 1;
      if (entry.users > 0) return;
      if (buses.get(name) === entry) buses.delete(name);
      await (await entry.bus.catch(() => null))?.close();
    };
    return { bus: entry.bus, hub: entry.hub, release };
  }

  /** What Queue, Worker and QueueEvents share: their queue's name and bus. */
  class QueueBase extends Emitter {
    #attached;
    closing;

    constructor(name, opts = {}) {
      super();
      if (typeof name !== 'string' || name.length === 0) throw refused('queueName', 'must be a non-empty string');
      if (opts === null || typeof opts !== 'object') throw refused('opts', 'must be an object');
      this.name = name;
      this.opts = opts;
      this.qualifiedName = `${opts.prefix ?? 'bull'}:${name}`;
      this.#attached = attach(opts);
      // An open that fails rejects every call; as an 'error' event too, once heard.
      this.#attached.bus.then(
        (bus) => (this.#bus = bus),
        (error) => this.listenerCount('error') > 0 && this.emit('error', error),
      );
    }

    /** The bus once open: a call then reaches it in the same turn, so calls made together share a commit. */
    #bus;

    get hub() {
      return this.#attached.hub;
    }

    async waitUntilReady() {
      await this.#attached.bus;
      return this;
    }

    /** One job queue operation on this queue (or on `queue`). */
    async call(operation, queue = this.name) {
      const bus = this.#bus ?? (await this.#attached.bus);
      return bus.__jobs(queue, operation);
    }

    job(json) {
      return json ? Job.fromJSON(this, json) : undefined;
    }

    async close() {
      this.closing ??= this.#attached.release();
      await this.closing;
    }

    async disconnect() {
      await this.close();
    }
  }

  class Job {
    /** Builds a Job from what the engine answers; `worker` is set for a job it took. */
    static fromJSON(queue, json, worker) {
      const job = new Job(queue, json.name, json.data, json.opts, json.id);
      assign(job, json);
      job.worker = worker;
      return job;
    }

    static async create(queue, name, data, opts) {
      return queue.add(name, data, opts);
    }

    static async fromId(queue, id) {
      return queue.getJob(id);
    }

    constructor(queue, name, data, opts = {}, id) {
      this.queue = queue;
      this.queueName = queue.name;
      this.queueQualifiedName = queue.qualifiedName;
      this.name = name;
      this.data = data;
      this.opts = opts;
      this.id = id;
      this.progress = 0;
      this.attemptsMade = 0;
      this.attemptsStarted = 0;
      this.stalledCounter = 0;
      this.returnvalue = null;
      this.stacktrace = [];
      this.delay = opts.delay ?? 0;
      this.priority = opts.priority ?? 0;
      this.timestamp = opts.timestamp ?? Date.now();
    }

    async updateProgress(progress) {
      await this.queue.call({ op: 'progress', id: this.id, progress });
      this.progress = progress;
      this.worker?.emit('progress', this, progress);
    }

    /** Adds a row to the job's log; resolves to how many rows it keeps. */
    async log(row) {
      const { count } = await this.queue.call({ op: 'log', id: this.id, row: String(row) });
      return count;
    }

    async getState() {
      const { job } = await this.queue.call({ op: 'get', id: this.id });
      return job ? job.state : 'unknown';
    }

    /** A failed (or, with `'completed'`, completed) job waits again, its attempts counted anew. */
    async retry(state = 'failed') {
      const { job } = await this.queue.call({ op: 'retry', id: this.id, state });
      assign(this, job);
    }

    async remove() {
      await this.queue.call({ op: 'remove', id: this.id });
    }

    async promote() {
      const { job } = await this.queue.call({ op: 'promote', id: this.id });
      assign(this, job);
    }

    /** What each finished child returned, by its key (`bull:<queue>:<id>`). */
    async getChildrenValues() {
      const { job } = await this.queue.call({ op: 'get', id: this.id });
      return job?.childrenValues ?? {};
    }

    async isCompleted() {
      return (await this.getState()) === 'completed';
    }

    async isFailed() {
      return (await this.getState()) === 'failed';
    }

    async isActive() {
      return (await this.getState()) === 'active';
    }

    async isDelayed() {
      return (await this.getState()) === 'delayed';
    }

    async isWaiting() {
      return ['waiting', 'paused', 'prioritized'].includes(await this.getState());
    }

    async isWaitingChildren() {
      return (await this.getState()) === 'waiting-children';
    }

    /** Resolves to the job's return value once it completes; rejects with its failure. */
    async waitUntilFinished(queueEvents, ttl) {
      return new Promise((resolve, reject) => {
        let timer;
        const done = (settle) => (value) => {
          clearTimeout(timer);
          stop();
          settle(value);
        };
        const stop = queueEvents.hub.listen(this.queueName, (event) => {
          if (event.jobId !== this.id) return;
          if (event.event === 'completed') done(resolve)(event.returnvalue);
          if (event.event === 'failed') done(reject)(new Error(event.failedReason));
        });
        if (ttl) timer = setTimeout(() => done(reject)(new Error(`Job wait ${this.name} timed out before finishing, no finish notification arrived after ${ttl}ms (id=${this.id})`)), ttl);
        this.queue.call({ op: 'get', id: this.id }).then(({ job }) => {
          if (job?.state === 'completed') done(resolve)(job.returnvalue);
          else if (job?.state === 'failed') done(reject)(new Error(job.failedReason));
        }, done(reject));
      });
    }

    toJSON() {
      const { queue: _queue, worker: _worker, ...json } = this;
      return json;
    }

    asJSON() {
      return { ...this.toJSON(), data: JSON.stringify(this.data), opts: JSON.stringify(this.opts), returnvalue: JSON.stringify(this.returnvalue) };
    }
  }

  /**
   * Takes the engine's view of `job` (src/core/jobs.rs job_json): what it leaves
   * out is at its default, and BullMQ leaves what a job has not had (processedOn,
   * failedReason) undefined. Data, options and return value come only when the
   * caller does not hold them already.
   */
  const assign = (job, json) => {
    job.name = json.name;
    if ('data' in json) {
      job.data = json.data;
      job.opts = json.opts;
      job.returnvalue = json.returnvalue ?? null;
      job.childrenValues = json.childrenValues;
    }
    job.progress = json.progress ?? 0;
    job.delay = json.delay ?? 0;
    job.timestamp = json.timestamp;
    job.priority = json.priority ?? 0;
    job.attemptsMade = json.attemptsMade ?? 0;
    job.attemptsStarted = json.attemptsStarted ?? 0;
    job.stalledCounter = json.stalledCounter ?? 0;
    job.state = json.state;
    job.processedOn = json.processedOn;
    job.finishedOn = json.finishedOn;
    job.failedReason = json.failedReason;
    job.stacktrace = json.stacktrace ?? [];
    job.repeatJobKey = json.repeatJobKey;
    job.token = json.token;
    if (json.parent) {
      job.parent = { id: json.parent.id, queueKey: `${job.queueQualifiedName.split(':')[0]}:${json.parent.queue}` };
      job.parentKey = `${job.parent.queueKey}:${json.parent.id}`;
    }
  };

  /** What settling changed of a job the worker holds (src/core/jobs.rs settled_json). */
  const settledAs = (job, after) => {
    job.attemptsMade = after.attemptsMade;
    job.state = after.state;
    job.finishedOn = after.finishedOn ?? undefined;
    if (after.failedReason !== undefined) {
      job.failedReason = after.failedReason;
      job.stacktrace = after.stacktrace;
    }
  };

  /** `{ name, data, opts }` with the queue's `defaultJobOptions` under `opts`. */
  const withDefaults = (defaults, name, data, opts) => {
    if (typeof name !== 'string') throw refused('name', `must be a string, got ${typeof name}`);
    // No options: none to read, job by job.
    const none = opts === undefined && Object.keys(defaults).length === 0;
    return { name, data, opts: none ? undefined : { ...defaults, ...opts } };
  };

  class Queue extends QueueBase {
    constructor(name, opts = {}) {
      super(name, opts);
      this.defaultJobOptions = opts.defaultJobOptions ?? {};
    }

    /** `add(name, data, opts)`: the job, stored; a repeatable job's first instance. */
    async add(name, data, opts) {
      const [job] = await this.#add([withDefaults(this.defaultJobOptions, name, data, opts)]);
      if (job) this.emit('waiting', job);
      return job;
    }

    async addBulk(jobs) {
      if (!Array.isArray(jobs)) throw refused('jobs', 'must be an array of { name, data, opts }');
      // Without default options the jobs go as given: the engine reads and checks them.
      if (Object.keys(this.defaultJobOptions).length === 0) return this.#add(jobs);
      return this.#add(jobs.map((j) => withDefaults(this.defaultJobOptions, j?.name, j?.data, j?.opts)));
    }

    /** Adds `jobs`; a new Job is built from what was given and the id, state and time the engine gave it. */
    async #add(jobs) {
      const added = await this.call({ op: 'add', jobs });
      return added.jobs.map((json, i) => {
        if (!Array.isArray(json)) return this.job(json);
        const { name, data = {}, opts } = jobs[i];
        const [id, state, timestamp] = json;
        const job = new Job(this, name, data, opts, id);
        job.timestamp = timestamp;
        job.state = state;
        return job;
      });
    }

    async getJob(id) {
      return this.job((await this.call({ op: 'get', id: String(id) })).job);
    }

    /** Jobs in `types` (a state or a list of them; all when none), BullMQ's `start`/`end` inclusive. */
    async getJobs(types, start = 0, end = -1, asc = false) {
      const { jobs } = await this.call({ op: 'list', states: types === undefined ? [] : [types].flat().map(state), start, end, asc });
      return jobs.map((json) => this.job(json));
    }

    async getJobCounts(...types) {
      const { counts } = await this.call({ op: 'counts', states: types.flat().map(state) });
      return counts;
    }

    async getJobCountByTypes(...types) {
      return Object.values(await this.getJobCounts(...types)).reduce((a, b) => a + b, 0);
    }

    /** Jobs still to run: waiting, paused, prioritized, delayed or waiting for their children. */
    async count() {
      return this.getJobCountByTypes('waiting', 'paused', 'prioritized', 'delayed', 'waiting-children');
    }

    async getJobLogs(id, start = 0, end = -1, asc = true) {
      return this.call({ op: 'logs', id: String(id), start, end, asc });
    }

    async pause() {
      await this.call({ op: 'pause' });
      this.emit('paused');
    }

    async resume() {
      await this.call({ op: 'resume' });
      this.emit('resumed');
    }

    async isPaused() {
      return (await this.call({ op: 'counts', states: ['paused'] })).paused;
    }

    async drain(delayed = false) {
      await this.call({ op: 'drain', delayed });
    }

    async obliterate(opts = {}) {
      await this.call({ op: 'obliterate', force: opts.force ?? false });
    }

    /** Removes up to `limit` (0: all) jobs of `type` finished (or added) more than `grace` ms ago; resolves to their ids. */
    async clean(grace, limit = 0, type = 'completed') {
      const { ids } = await this.call({ op: 'clean', grace, limit, state: state(type) });
      this.emit('cleaned', ids, type);
      return ids;
    }

    async retryJobs(opts = {}) {
      await this.call({ op: 'retryAll', state: opts.state ?? 'failed', count: opts.count ?? 0 });
    }

    /** Removes a job not being processed; resolves to 1 if removed, else 0. */
    async remove(id) {
      const { removed } = await this.call({ op: 'remove', id: String(id) });
      return removed ? 1 : 0;
    }

    async getRepeatableJobs() {
      return (await this.call({ op: 'repeatables' })).repeatables;
    }

    async removeRepeatableByKey(key) {
      return (await this.call({ op: 'removeRepeatable', key })).removed;
    }

    /** `removeRepeatable(name, repeatOpts, jobId?)`: the repeatable job `add` made with these. */
    async removeRepeatable(name, repeatOpts = {}, jobId) {
      const schedule = repeatOpts.pattern ?? repeatOpts.cron ?? repeatOpts.every;
      const end = repeatOpts.endDate === undefined ? '' : new Date(repeatOpts.endDate).getTime();
      return this.removeRepeatableByKey(`${name}:${jobId ?? repeatOpts.jobId ?? ''}:${end}::${schedule}`);
    }

    /** A job scheduler: the repeatable job `id`, made or replaced with these settings. */
    async upsertJobScheduler(id, repeatOpts, template = {}) {
      const job = { name: template.name ?? id, data: template.data, opts: { ...this.defaultJobOptions, ...template.opts, repeat: repeatOpts }, schedulerId: id };
      return (await this.#add([job]))[0];
    }

    async getJobSchedulers() {
      return this.getRepeatableJobs();
    }

    async getJobScheduler(id) {
      return (await this.getRepeatableJobs()).find((r) => r.key === id);
    }

    async removeJobScheduler(id) {
      return this.removeRepeatableByKey(id);
    }

    async getWaiting(start, end) {
      return this.getJobs(['waiting'], start, end, true);
    }

    async getActive(start, end) {
      return this.getJobs(['active'], start, end, true);
    }

    async getDelayed(start, end) {
      return this.getJobs(['delayed'], start, end, true);
    }

    async getPrioritized(start, end) {
      return this.getJobs(['prioritized'], start, end, true);
    }

    async getCompleted(start, end) {
      return this.getJobs(['completed'], start, end, false);
    }

    async getFailed(start, end) {
      return this.getJobs(['failed'], start, end, false);
    }

    async getWaitingChildren(start, end) {
      return this.getJobs(['waiting-children'], start, end, true);
    }
  }

  // One count method per state, as BullMQ's Queue has them.
  for (const [method, type] of [
    ['getWaitingCount', 'waiting'],
    ['getActiveCount', 'active'],
    ['getDelayedCount', 'delayed'],
    ['getCompletedCount', 'completed'],
    ['getFailedCount', 'failed'],
    ['getPrioritizedCount', 'prioritized'],
    ['getWaitingChildrenCount', 'waiting-children'],
  ]) {
    Queue.prototype[method] = function count() {
      return this.getJobCountByTypes(type);
    };
  }

  class Worker extends QueueBase {
    #processor;
    #token = `${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
    /** Jobs taken and not settled yet, whose leases the worker renews. */
    #active = new Map();
    /** Processors running: what `concurrency` counts. */
    #slots = 0;
    /** Settlements for the next round: `{ item, settled(result) }`. */
    #settling = [];
    /** A round is in flight, or due at the end of this turn. */
    #inRound = false;
    #roundDue = false;
    #running = false;
    #paused = false;
    #closed = false;
    #idle;
    #renewal;
    #stopListening;
    #drained = true;
    /** Resolvers waiting for the worker to change (a round ended, a job settled). */
    #watchers = new Set();
    #stopped;

    /**
     * `new Worker(queueName, processor, { concurrency, limiter, autorun, lockDuration, settings })`.
     * The processor is `async (job, token) => result`; a file path (a sandboxed processor) is refused.
     */
    constructor(name, processor, opts = {}) {
      super(name, opts);
      if (typeof processor !== 'function' && processor !== undefined && processor !== null) {
        throw refused('processor', 'must be a function (job, token) => result: sandboxed processors given as a file are not supported');
      }
      this.#processor = processor;
      this.opts = { concurrency: 1, autorun: true, lockDuration: LOCK_DURATION_MS, drainDelay: DRAIN_DELAY_S, ...opts };
      this.#stopListening = this.hub.wake(name, () => this.#schedule());
      this.waitUntilReady().then(
        () => this.emit('ready'),
        () => {},
      );
      if (this.opts.autorun && this.#processor) this.run().catch((error) => this.emit('error', error));
    }

    get concurrency() {
      return this.opts.concurrency;
    }

    set concurrency(n) {
      this.opts.concurrency = n;
      this.#schedule();
    }

    isRunning() {
      return this.#running;
    }

    isPaused() {
      return this.#paused;
    }

    /** Takes no more jobs; resolves once those running are done, unless `doNotWaitActive`. */
    async pause(doNotWaitActive = false) {
      this.#paused = true;
      if (!doNotWaitActive) await this.#until(() => this.#active.size === 0);
      this.emit('paused');
    }

    resume() {
      this.#paused = false;
      this.emit('resumed');
      this.#schedule();
    }

    /** Runs until closed: resolves then. */
    async run() {
      if (this.#running) throw new Error('Worker is already running.');
      if (!this.#processor) throw refused('processor', 'is needed to run a worker');
      this.#running = true;
      await this.waitUntilReady();
      this.#renewal = setInterval(() => this.#renew(), Math.max(this.opts.lockDuration / 2, 10));
      const stopped = new Promise((resolve) => (this.#stopped = resolve));
      this.#schedule();
      await stopped;
    }

    /** Runs a round at the end of this turn: what settles in the same turn goes with it. */
    #schedule() {
      if (!this.#running || this.#roundDue) return;
      this.#roundDue = true;
      queueMicrotask(() => {
        this.#roundDue = false;
        if (!this.#inRound) this.#round();
      });
    }

    /**
     * One round: the jobs settled since the last one, and as many new jobs as
     * `concurrency` has room for, in one operation. With nothing to take it waits
     * for work: a job added or made waiting anywhere on the bus, its next delayed
     * job's time, or `drainDelay`.
     */
    async #round() {
      const settle = this.#settling.splice(0);
      const room = this.#paused || this.#closed ? 0 : this.opts.concurrency - this.#slots;
      if (settle.length === 0 && room <= 0) return;
      clearTimeout(this.#idle);
      this.#inRound = true;
      let reply;
      try {
        reply = await this.call({ op: 'work', token: this.#token, settle: settle.map((s) => s.item), take: Math.max(room, 0), leaseMs: this.opts.lockDuration, limiter: this.opts.limiter });
      } catch (error) {
        this.emit('error', error);
        // Given back to the next round, which a timer starts: the jobs stay leased meanwhile.
        this.#settling.unshift(...settle);
        this.#idle = setTimeout(() => this.#schedule(), 1000);
        return;
      } finally {
        this.#inRound = false;
      }
      reply.settled.forEach((result, i) => settle[i].settled(result));
      for (const json of reply.jobs) this.#process(json);
      if (reply.jobs.length > 0) this.#drained = false;
      else if (room > 0) {
        if (this.#active.size === 0 && !this.#drained) {
          this.#drained = true;
          this.emit('drained');
        }
        const waitMs = reply.nextMs === null ? this.opts.drainDelay * 1000 : Math.max(0, reply.nextMs - Date.now());
        this.#idle = setTimeout(() => this.#schedule(), waitMs);
      }
      this.#changed();
      if (this.#settling.length > 0) this.#schedule();
    }

    #changed() {
      for (const resolve of this.#watchers) resolve();
      this.#watchers.clear();
    }

    async #until(done) {
      while (!done()) await new Promise((resolve) => this.#watchers.add(resolve));
    }

    async #renew() {
      if (this.#active.size === 0) return;
      try {
        await this.call({ op: 'extend', token: this.#token, ids: [...this.#active.keys()], leaseMs: this.opts.lockDuration });
      } catch (error) {
        this.emit('error', error);
      }
    }

    /** Runs the processor on a job taken; its outcome goes with the next round. */
    async #process(json) {
      const job = Job.fromJSON(this, json, this);
      this.#active.set(job.id, job);
      this.#slots += 1;
      this.emit('active', job, 'waiting');
      let item;
      let settled;
      try {
        const result = await this.#processor(job, this.#token);
        item = { id: job.id, returnvalue: result };
        settled = ({ done, job: after }) => {
          if (after) settledAs(job, after);
          job.returnvalue = result;
          if (done) this.emit('completed', job, result, 'active');
          else this.emit('error', new Error(`Missing lock for job ${job.id}. moveToFinished`));
        };
      } catch (thrown) {
        let failure = thrown instanceof Error ? thrown : new Error(String(thrown));
        let unrecoverable = failure.name === 'UnrecoverableError';
        let delayMs;
        try {
          delayMs = unrecoverable ? undefined : await this.#customBackoff(job, failure);
        } catch (error) {
          // A strategy that throws (an unknown type) ends the job with its error.
          failure = error instanceof Error ? error : new Error(String(error));
          unrecoverable = true;
        }
        // -1 from a strategy: no more attempts.
        if (delayMs === -1) [delayMs, unrecoverable] = [undefined, true];
        item = { id: job.id, error: failure.message, stacktrace: String(failure.stack ?? '').split('\n'), delayMs, unrecoverable };
        settled = ({ done, job: after }) => {
          if (after) settledAs(job, after);
          if (done) this.emit('failed', job, failure, 'active');
          else this.emit('error', new Error(`Missing lock for job ${job.id}. moveToFailed`));
        };
      }
      this.#slots -= 1;
      this.#settling.push({
        item,
        settled: (result) => {
          this.#active.delete(job.id);
          settled(result);
        },
      });
      this.#schedule();
    }

    /**
     * A job whose backoff type is neither fixed nor exponential gets its delay from
     * the worker's strategy (`settings.backoffStrategy(attemptsMade, type, err, job)`),
     * asked only when an attempt is left.
     */
    async #customBackoff(job, error) {
      const backoff = job.opts.backoff;
      if (!backoff || backoff.type === 'fixed' || backoff.type === 'exponential' || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) return undefined;
      const strategy = this.opts.settings?.backoffStrategy;
      if (typeof strategy !== 'function') throw new Error(`Unknown backoff strategy ${backoff.type}: give it as the Worker's settings.backoffStrategy`);
      const delay = await strategy(job.attemptsMade + 1, backoff.type, error, job);
      return delay === -1 || (Number.isFinite(delay) && delay >= 0) ? Math.round(delay) : undefined;
    }

    /** Stops taking jobs; waits for those running to settle unless `force`. */
    async close(force = false) {
      if (this.#closed) return super.close();
      this.#closed = true;
      this.emit('closing', 'closing worker');
      this.#stopListening();
      clearTimeout(this.#idle);
      if (!force) await this.#until(() => this.#active.size === 0 && !this.#inRound);
      clearInterval(this.#renewal);
      this.#running = false;
      this.#stopped?.();
      await super.close();
      this.emit('closed');
    }
  }

  /** BullMQ's event payloads: `{ jobId, ...fields }`, and the event's id. */
  const payload = (event) => {
    const { queue: _queue, event: _name, ...fields } = event;
    return fields;
  };
  let eventId = 0;

  class QueueEvents extends QueueBase {
    #stop;

    /** Every job event of the queue, from every context of the bus (BroadcastChannel between a browser's contexts). */
    constructor(name, opts = {}) {
      super(name, opts);
      this.#stop = this.hub.listen(name, (event) => {
        const id = `${Date.now()}-${eventId++}`;
        if (['drained', 'paused', 'resumed'].includes(event.event)) this.emit(event.event, id);
        else this.emit(event.event, payload(event), id);
      });
      this.waitUntilReady().then(
        () => this.emit('ready'),
        () => {},
      );
    }

    async run() {
      await this.waitUntilReady();
    }

    async close() {
      this.#stop();
      await super.close();
    }
  }

  class FlowProducer extends Emitter {
    #queues = new Map();
    #opts;

    constructor(opts = {}) {
      super();
      this.#opts = opts;
      this.#base = new QueueBase('flows', opts);
    }

    #base;

    async waitUntilReady() {
      await this.#base.waitUntilReady();
      return this;
    }

    /** Adds a tree of jobs at once: each parent runs once all its children completed. */
    async add(flow) {
      const nodes = [];
      const visit = (node, parent) => {
        if (!node || typeof node.queueName !== 'string') throw refused('queueName', 'must be a string on every job of a flow');
        const index = nodes.length;
        nodes.push({ queueName: node.queueName, name: node.name, data: node.data, opts: node.opts, parent });
        for (const child of node.children ?? []) visit(child, index);
      };
      visit(flow, undefined);
      const { jobs } = await this.#base.call({ op: 'flow', nodes }, flow.queueName);
      const trees = nodes.map((node, i) => ({ job: Job.fromJSON(this.#queue(node.queueName), { ...jobs[i], data: node.data ?? {}, opts: node.opts ?? {} }) }));
      nodes.forEach((node, i) => {
        if (node.parent === undefined) return;
        const parent = trees[node.parent];
        (parent.children ??= []).push(trees[i]);
      });
      return trees[0];
    }

    async addBulk(flows) {
      const added = [];
      for (const flow of flows) added.push(await this.add(flow));
      return added;
    }

    /** A Queue of the flow's bus for the jobs of `name`. */
    #queue(name) {
      if (!this.#queues.has(name)) this.#queues.set(name, new Queue(name, this.#opts));
      return this.#queues.get(name);
    }

    async close() {
      await Promise.all([...this.#queues.values()].map((q) => q.close()));
      await this.#base.close();
    }

    async disconnect() {
      await this.close();
    }
  }

  return { Queue, Worker, QueueEvents, FlowProducer, Job };
}

/** BullMQ's state names: `wait` is `waiting`. */
const state = (type) => (type === 'wait' ? 'waiting' : type);
