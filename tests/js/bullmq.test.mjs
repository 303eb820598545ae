// `ferry/bullmq`: programs written as BullMQ's documentation writes them, with only
// the import pointing at ferry, in Node and in Chromium pages. Each test names the
// documentation page (docs.bullmq.io/...) whose calls and shapes it follows.
//
// Timing is checked from below only (a delay, a backoff, a rate limit is at least
// what was asked): a slow machine never fails a test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker, QueueEvents, FlowProducer, Job, UnrecoverableError, FerryError } from 'ferry/bullmq';
import { serve } from '../../www/serve.mjs';
import { launch, openTestPage } from './browsers.mjs';

let buses = 0;

/**
 * What one test's programs share: `options` for every Queue, Worker, QueueEvents and
 * FlowProducer of the test (a `connection` as programs pass it, ignored, and a bus of
 * the test's own, in memory), and `track(thing)`, which returns `thing` and closes it
 * when the test ends, passed or failed, the last made first (workers before queues).
 */
function setup(t) {
  const options = { connection: { host: 'localhost', port: 6379 }, ferry: { name: `bullmq-${process.pid}-${++buses}`, storage: 'memory' } };
  const open = [];
  t.after(async () => {
    for (const thing of open.reverse()) await thing.close();
  });
  return { options, track: (thing) => (open.push(thing), thing) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to `predicate()`'s first truthy value (it may be async); throws, naming `what`, after `timeoutMs`. */
async function until(predicate, what = 'the condition', timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves, once `worker` has emitted `completed` for `n` jobs, to `[job, returnvalue]` of each, in that order. */
function processed(worker, n, timeoutMs = 10_000) {
  const done = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${done.length} of ${n} jobs completed in ${timeoutMs} ms`)), timeoutMs);
    worker.on('completed', (job, returnvalue) => {
      done.push([job, returnvalue]);
      if (done.length === n) {
        clearTimeout(timer);
        resolve(done);
      }
    });
  });
}

const ids = (jobs) => jobs.map((job) => job.id);

/** The slot (ms since the epoch) of a repeatable job's instance: its id is `repeat:<key>:<slot>`. */
const slotOf = (id) => Number(id.slice(id.lastIndexOf(':') + 1));

/** A seeded generator (mulberry32): the same seed makes the same jobs, so a failing order can be replayed. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// docs.bullmq.io/readme-1 (Quick Start)
test('quick start: jobs added to a queue are processed by a worker, completed with the return value, which getJob keeps', async (t) => {
  const { options, track } = setup(t);
  const myQueue = track(new Queue('foo', options));
  const first = await myQueue.add('myJobName', { foo: 'bar' });
  const second = await myQueue.add('myJobName', { qux: 'baz' });
  assert.ok(first instanceof Job);
  assert.deepEqual([first.id, second.id], ['1', '2'], 'ids are strings counting up from 1');
  assert.equal(first.name, 'myJobName');
  assert.deepEqual(first.data, { foo: 'bar' });

  const seen = [];
  const worker = track(
    new Worker(
      'foo',
      async (job) => {
        seen.push(job.data);
        return { handled: job.id, fields: Object.keys(job.data) };
      },
      options,
    ),
  );
  const completed = await processed(worker, 2);
  assert.deepEqual(seen, [{ foo: 'bar' }, { qux: 'baz' }], 'in the order added');
  assert.deepEqual(
    completed.map(([job, returnvalue]) => [job.id, returnvalue]),
    [
      ['1', { handled: '1', fields: ['foo'] }],
      ['2', { handled: '2', fields: ['qux'] }],
    ],
  );

  const job = await myQueue.getJob('1');
  assert.deepEqual(job.returnvalue, { handled: '1', fields: ['foo'] });
  assert.equal(await job.getState(), 'completed');
  assert.equal(typeof job.timestamp, 'number');
  assert.ok(job.timestamp <= job.processedOn && job.processedOn <= job.finishedOn, 'added, then processed, then finished');
  assert.equal(job.failedReason ?? null, null);
});

// docs.bullmq.io/guide/workers/concurrency
test('workers: with concurrency 5 a worker runs five processors at once, never more', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('resize', options));
  await queue.addBulk(Array.from({ length: 12 }, (_, n) => ({ name: 'thumbnail', data: { n } })));
  let running = 0;
  let most = 0;
  const worker = track(
    new Worker(
      'resize',
      async (job) => {
        running++;
        most = Math.max(most, running);
        // The first ones wait for the fifth to start (or give up after a while, and
        // the test fails below); later ones go straight on.
        await until(() => most === 5, 'five processors at once', 2000).catch(() => {});
        await sleep(5);
        running--;
        return job.data.n;
      },
      { ...options, concurrency: 5 },
    ),
  );
  const done = await processed(worker, 12);
  assert.equal(most, 5);
  assert.deepEqual(done.map(([, n]) => n).sort((a, b) => a - b), [...Array(12).keys()]);
});

// docs.bullmq.io/guide/workers (progress, returning a value, events), guide/workers#autorun
test("workers: updateProgress with a number and an object, job.log rows read with getJobLogs, the worker's active, progress and completed events", async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('video', options));
  const worker = track(
    new Worker(
      'video',
      async (job) => {
        await job.updateProgress(42);
        await job.log(`transcoding ${job.data.file}`);
        await job.updateProgress({ stage: 'upload', percent: 90 });
        await job.log('uploaded');
        return 'some value';
      },
      { ...options, autorun: false },
    ),
  );
  const events = [];
  worker.on('active', (job) => events.push(['active', job.id]));
  worker.on('progress', (job, progress) => events.push(['progress', job.id, progress]));
  worker.on('completed', (job, returnvalue) => events.push(['completed', job.id, returnvalue]));
  const job = await queue.add('transcode', { file: 'holiday.mp4' });
  worker.run();
  await until(() => events.some(([name]) => name === 'completed'), 'the job to complete');
  assert.deepEqual(events, [
    ['active', job.id],
    ['progress', job.id, 42],
    ['progress', job.id, { stage: 'upload', percent: 90 }],
    ['completed', job.id, 'some value'],
  ]);
  assert.deepEqual(await queue.getJobLogs(job.id), { logs: ['transcoding holiday.mp4', 'uploaded'], count: 2 });
  const done = await queue.getJob(job.id);
  assert.deepEqual(done.progress, { stage: 'upload', percent: 90 });
  assert.equal(done.returnvalue, 'some value');
});

// docs.bullmq.io/guide/retrying-failing-jobs (exponential), guide/jobs/retrying-job
test('retrying: attempts 3 with exponential backoff waits 50 then 100 ms, fails with the last reason; job.retry() runs it again', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('payments', options));
  const starts = [];
  const failures = [];
  let gatewayUp = false;
  const worker = track(
    new Worker(
      'payments',
      async (job) => {
        starts.push({ at: Date.now(), attemptsMade: job.attemptsMade });
        if (!gatewayUp) throw new Error(`gateway timeout #${starts.length}`);
        return { charged: job.data.amount };
      },
      options,
    ),
  );
  worker.on('failed', (job, err) => failures.push([job.id, err.message]));
  const job = await queue.add('charge', { amount: 42 }, { attempts: 3, backoff: { type: 'exponential', delay: 50 } });
  assert.equal(job.opts.attempts, 3);
  assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 50 });

  await until(async () => (await job.getState()) === 'failed', 'the job to fail for good');
  assert.deepEqual(
    starts.map((s) => s.attemptsMade),
    [0, 1, 2],
    'three attempts, each seeing the ones made before',
  );
  assert.ok(starts[1].at - starts[0].at >= 50, `the 2nd attempt came ${starts[1].at - starts[0].at} ms after the 1st: at least delay`);
  assert.ok(starts[2].at - starts[1].at >= 100, `the 3rd attempt came ${starts[2].at - starts[1].at} ms after the 2nd: at least 2 * delay`);
  assert.deepEqual(
    failures,
    [1, 2, 3].map((n) => [job.id, `gateway timeout #${n}`]),
    "the worker's failed event comes on every failed attempt",
  );
  const failed = await queue.getJob(job.id);
  assert.equal(failed.attemptsMade, 3);
  assert.equal(failed.failedReason, 'gateway timeout #3');
  assert.equal(await queue.getFailedCount(), 1);

  gatewayUp = true;
  await failed.retry();
  await until(async () => (await failed.getState()) === 'completed', 'the retried job to complete');
  const retried = await queue.getJob(job.id);
  assert.deepEqual(retried.returnvalue, { charged: 42 });
  assert.equal(starts.length, 4);
  assert.deepEqual(await queue.getJobCounts('completed', 'failed'), { completed: 1, failed: 0 });
});

// docs.bullmq.io/patterns/stop-retrying-jobs
test('retrying: an UnrecoverableError fails the job at once, whatever its attempts', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('cards', options));
  let calls = 0;
  const errors = [];
  const worker = track(
    new Worker(
      'cards',
      async () => {
        calls++;
        throw new UnrecoverableError('card revoked');
      },
      options,
    ),
  );
  worker.on('failed', (job, err) => errors.push(err));
  const job = await queue.add('charge', { card: 'visa-1' }, { attempts: 5, backoff: 1000 });
  await until(async () => (await job.getState()) === 'failed', 'the job to fail');
  const failed = await queue.getJob(job.id);
  assert.equal(calls, 1, 'no retry');
  assert.equal(failed.attemptsMade, 1);
  assert.equal(failed.failedReason, 'card revoked');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof UnrecoverableError);
  assert.equal(errors[0].name, 'UnrecoverableError');
  assert.equal(await queue.getDelayedCount(), 0);
});

// docs.bullmq.io/guide/retrying-failing-jobs#custom-back-off-strategies
test("retrying: the worker's settings.backoffStrategy gets (attemptsMade, type, err, job) and sets the delay; -1 fails the job", async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('sync', options));
  const calls = [];
  const starts = [];
  const worker = track(
    new Worker(
      'sync',
      async (job) => {
        starts.push({ id: job.id, at: Date.now() });
        if (job.name === 'hopeless' || job.attemptsMade < 2) throw new Error(`not yet: ${job.name}`);
        return 'synced';
      },
      {
        ...options,
        settings: {
          backoffStrategy: (attemptsMade, type, err, job) => {
            calls.push({ attemptsMade, type, message: err.message, id: job.id });
            switch (type) {
              case 'linear':
                return attemptsMade * 60;
              case 'give-up':
                return -1;
              default:
                throw new Error('invalid type');
            }
          },
        },
      },
    ),
  );
  const linear = await queue.add('contacts', {}, { attempts: 3, backoff: { type: 'linear' } });
  const hopeless = await queue.add('hopeless', {}, { attempts: 5, backoff: { type: 'give-up' } });
  const states = async () => [await linear.getState(), await hopeless.getState()];
  await until(async () => `${await states()}` === 'completed,failed', 'linear to complete and hopeless to fail', 5000).catch(async (e) => {
    throw new Error(`${e.message}; [linear, hopeless] are ${await states()}; the strategy saw ${JSON.stringify(calls)}`);
  });

  assert.deepEqual(
    calls.filter((c) => c.id === linear.id),
    [
      { attemptsMade: 1, type: 'linear', message: 'not yet: contacts', id: linear.id },
      { attemptsMade: 2, type: 'linear', message: 'not yet: contacts', id: linear.id },
    ],
  );
  const at = starts.filter((s) => s.id === linear.id).map((s) => s.at);
  assert.equal(at.length, 3);
  assert.ok(at[1] - at[0] >= 60, `the 2nd attempt came ${at[1] - at[0]} ms after the 1st: at least 1 * 60`);
  assert.ok(at[2] - at[1] >= 120, `the 3rd attempt came ${at[2] - at[1]} ms after the 2nd: at least 2 * 60`);
  assert.equal((await queue.getJob(linear.id)).returnvalue, 'synced');

  assert.deepEqual(
    calls.filter((c) => c.id === hopeless.id),
    [{ attemptsMade: 1, type: 'give-up', message: 'not yet: hopeless', id: hopeless.id }],
  );
  assert.equal(starts.filter((s) => s.id === hopeless.id).length, 1, '-1: not retried');
  assert.equal((await queue.getJob(hopeless.id)).failedReason, 'not yet: hopeless');
});

// docs.bullmq.io/guide/jobs/delayed, guide/jobs/getters (job counts)
test('delayed jobs: not processed before their delay; getJobCounts shows them delayed, then completed; promote() runs one now', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('Paint', options));
  const started = new Map();
  const worker = track(
    new Worker(
      'Paint',
      async (job) => {
        started.set(job.id, Date.now());
        return job.data.color;
      },
      options,
    ),
  );
  const before = Date.now();
  const job = await queue.add('house', { color: 'white' }, { delay: 300 });
  assert.equal(await job.getState(), 'delayed');
  assert.deepEqual(await queue.getJobCounts('delayed', 'completed'), { delayed: 1, completed: 0 });
  await until(async () => (await job.getState()) === 'completed', 'the delayed job to complete');
  assert.ok(started.get(job.id) - before >= 300, `processed ${started.get(job.id) - before} ms after it was added: at least its delay`);
  assert.deepEqual(await queue.getJobCounts('delayed', 'completed'), { delayed: 0, completed: 1 });
  assert.equal((await queue.getJob(job.id)).opts.delay, 300);

  const later = await queue.add('house', { color: 'green' }, { delay: 60_000 });
  assert.equal(await queue.getDelayedCount(), 1);
  await later.promote();
  await until(async () => (await later.getState()) === 'completed', 'the promoted job to complete');
  assert.equal((await queue.getJob(later.id)).returnvalue, 'green');
  assert.equal(await queue.getDelayedCount(), 0);
});

// docs.bullmq.io/guide/jobs/prioritized
test('prioritized: 220 jobs waiting, 20 of them without priority: those first in the order added, then priority 1, 2, ..., each in the order added', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('render', options));
  const next = random(20240611);
  const plain = new Set();
  while (plain.size < 20) plain.add(Math.floor(next() * 220));
  const added = [];
  for (let seq = 0; seq < 220; seq++) {
    const priority = plain.has(seq) ? 0 : 1 + Math.floor(next() * 10);
    const job = await queue.add('frame', { seq }, priority ? { priority } : {});
    added.push({ seq, priority, id: job.id });
  }
  assert.deepEqual(await queue.getJobCounts('waiting', 'prioritized'), { waiting: 20, prioritized: 200 });
  assert.equal(await (await queue.getJob(added.find((a) => a.priority > 0).id)).getState(), 'prioritized');
  assert.equal(await (await queue.getJob(added.find((a) => a.priority === 0).id)).getState(), 'waiting');

  const order = [];
  const worker = track(
    new Worker(
      'render',
      async (job) => {
        order.push(job.data.seq);
      },
      { ...options, concurrency: 1, autorun: false },
    ),
  );
  const done = processed(worker, 220, 30_000);
  worker.run();
  await done;
  // Array.prototype.sort is stable: by priority (0 first), and in the order added within one.
  const expected = [...added].sort((a, b) => a.priority - b.priority).map((a) => a.seq);
  assert.deepEqual(order.slice(0, 20), expected.slice(0, 20), 'the jobs without priority first, in the order added');
  assert.deepEqual(order, expected);
});

// docs.bullmq.io/guide/jobs/lifo
test('lifo: a job added with lifo is taken before the jobs waiting, the last one added first', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('Paint', options));
  for (const color of ['red', 'green', 'blue']) await queue.add('wall', { color });
  await queue.add('wall', { color: 'pink' }, { lifo: true });
  await queue.add('wall', { color: 'black' }, { lifo: true });
  const worker = track(new Worker('Paint', async (job) => job.data.color, { ...options, autorun: false }));
  const done = processed(worker, 5);
  worker.run();
  assert.deepEqual((await done).map(([, color]) => color), ['black', 'pink', 'red', 'green', 'blue']);
});

// docs.bullmq.io/guide/jobs/job-ids, guide/queues/auto-removal-of-jobs
test('job ids: a jobId added twice is one job; removeOnComplete: 2 keeps the newest two, removeOnFail: true keeps none; a removed id may be added again', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('wall', options));
  const first = await queue.add('paint', { color: 'pink' }, { jobId: 'wall-7' });
  const again = await queue.add('paint', { color: 'green' }, { jobId: 'wall-7' });
  assert.deepEqual([first.id, again.id], ['wall-7', 'wall-7']);
  assert.equal(await queue.count(), 1, 'the second add was ignored');
  assert.deepEqual((await queue.getJob('wall-7')).data, { color: 'pink' });

  const runs = [];
  const worker = track(
    new Worker(
      'wall',
      async (job) => {
        runs.push(job.id);
        if (job.name === 'broken') throw new Error('no paint left');
        return job.data.color ?? null;
      },
      options,
    ),
  );
  await until(async () => (await queue.getCompletedCount()) === 1, 'wall-7 to complete');
  assert.deepEqual(runs, ['wall-7']);

  const kept = await queue.addBulk(['a', 'b', 'c', 'd', 'e'].map((color) => ({ name: 'paint', data: { color }, opts: { removeOnComplete: 2 } })));
  await until(async () => runs.length === 6, 'the five jobs to run');
  // Each completion trims the completed set as a whole to the newest two (wall-7 too).
  await until(async () => (await queue.getCompletedCount()) === 2, 'only two completed jobs to be kept');
  assert.deepEqual(ids(await queue.getJobs(['completed'])), [kept[4].id, kept[3].id], 'the newest two, newest first');
  assert.equal(await queue.getJob(kept[0].id), undefined);

  const failures = [];
  worker.on('failed', (job) => failures.push(job.id));
  const broken = await queue.add('broken', {}, { removeOnFail: true });
  await until(() => failures.length === 1, 'the broken job to fail');
  assert.equal(await queue.getJob(broken.id), undefined);
  assert.equal(await queue.getFailedCount(), 0);

  await queue.add('paint', { color: 'once' }, { jobId: 'welcome-mail', removeOnComplete: true });
  await until(() => runs.filter((id) => id === 'welcome-mail').length === 1, 'welcome-mail to run');
  await until(async () => (await queue.getJob('welcome-mail')) === undefined, 'welcome-mail to be removed');
  await queue.add('paint', { color: 'twice' }, { jobId: 'welcome-mail', removeOnComplete: true });
  await until(() => runs.filter((id) => id === 'welcome-mail').length === 2, 'welcome-mail, removed, to be added and run again');
});

// docs.bullmq.io/guide/jobs/repeatable (every, limit)
test('repeatable: every 200 ms with limit 3 runs exactly 3 times, each in its own slot, a multiple of 200 ms', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('birds', options));
  const runs = [];
  const worker = track(
    new Worker(
      'birds',
      async (job) => {
        runs.push({ id: job.id, at: Date.now(), name: job.name, data: job.data });
      },
      options,
    ),
  );
  const before = Date.now();
  const first = await queue.add('bird', { color: 'bird' }, { repeat: { every: 200, limit: 3 } });
  const added = Date.now();
  assert.equal(typeof first.repeatJobKey, 'string');
  assert.ok(first.id.startsWith(`repeat:${first.repeatJobKey}:`), `${first.id} is repeat:<key>:<slot>`);
  await until(() => runs.length === 3, 'three runs');
  await sleep(500); // two more slots: a fourth run would have come by now
  assert.equal(runs.length, 3, 'limit 3');
  assert.equal(runs[0].id, first.id, 'add returned the first instance');
  assert.ok(runs.every((r) => r.id.startsWith(`repeat:${first.repeatJobKey}:`) && r.name === 'bird' && r.data.color === 'bird'));
  const slots = runs.map((r) => slotOf(r.id));
  assert.equal(new Set(slots).size, 3, 'each a different slot');
  assert.ok(
    slots.every((slot) => slot % 200 === 0),
    `slots ${slots} are multiples of every`,
  );
  assert.deepEqual(
    slots,
    [slots[0], slots[0] + 200, slots[0] + 400],
    'one slot after another',
  );
  assert.ok(slots[0] > before && slots[0] <= added + 200, 'the first slot is the next multiple of 200 after the add');
  assert.ok(
    runs.every((r) => r.at >= slotOf(r.id)),
    'none runs before its slot',
  );
});

// docs.bullmq.io/guide/jobs/repeatable (same options, getRepeatableJobs, removeRepeatableByKey)
test('repeatable: the same repeatable added twice is one; removeRepeatableByKey removes it and its next instance, and a running one stops', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('reports', options));
  const repeat = { every: 60_000 };
  const one = await queue.add('daily', { format: 'pdf' }, { repeat });
  const two = await queue.add('daily', { format: 'pdf' }, { repeat });
  assert.equal(two.repeatJobKey, one.repeatJobKey);
  const listed = await queue.getRepeatableJobs();
  assert.equal(listed.length, 1);
  assert.equal(listed[0].key, one.repeatJobKey);
  assert.equal(listed[0].name, 'daily');
  assert.equal(listed[0].every, 60_000);
  assert.equal(listed[0].next, slotOf(one.id));
  assert.equal(await queue.getDelayedCount(), 1, 'one instance waits for its slot');
  assert.equal(await queue.removeRepeatableByKey(one.repeatJobKey), true);
  assert.deepEqual(await queue.getRepeatableJobs(), []);
  assert.equal(await queue.getDelayedCount(), 0);

  const runs = [];
  const worker = track(new Worker('reports', async (job) => void runs.push(job.id), options));
  const ticking = await queue.add('tick', {}, { repeat: { every: 200 } });
  await until(() => runs.length === 1, 'the first tick');
  await queue.removeRepeatableByKey(ticking.repeatJobKey);
  const atRemoval = runs.length;
  await sleep(700); // three more slots
  assert.ok(runs.length <= atRemoval + 1, `${runs.length - atRemoval} ticks after the removal: at most the one that may have been due then`);
  assert.deepEqual(await queue.getRepeatableJobs(), []);
});

// docs.bullmq.io/guide/jobs/repeatable (pattern), guide/job-schedulers/repeat-strategies (cron)
test('repeatable: a cron pattern (with seconds, in UTC) is accepted, and getRepeatableJobs lists its next time', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('Paint', options));
  /** The first 03:15:00 UTC after `ms`. */
  const nextQuarterPastThree = (ms) => {
    const day = new Date(ms);
    const today = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 3, 15, 0);
    return today > ms ? today : today + 24 * 3600 * 1000;
  };
  const beforeAdd = Date.now();
  const job = await queue.add('submarine', { color: 'yellow' }, { repeat: { pattern: '0 15 3 * * *' } });
  const afterAdd = Date.now();
  const [listed, ...others] = await queue.getRepeatableJobs();
  assert.deepEqual(others, []);
  assert.equal(listed.name, 'submarine');
  assert.equal(listed.pattern, '0 15 3 * * *');
  assert.ok([nextQuarterPastThree(beforeAdd), nextQuarterPastThree(afterAdd)].includes(listed.next), `next ${new Date(listed.next).toISOString()} is the next 03:15:00 UTC`);
  assert.equal(slotOf(job.id), listed.next);
  assert.equal(await job.getState(), 'delayed');
});

// docs.bullmq.io/guide/job-schedulers, guide/job-schedulers/repeat-options (limit)
test('job schedulers: upsertJobScheduler with every and limit makes jobs from its template; upserting it again makes no second one', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('my-repeatable-jobs', options));
  const template = { name: 'every-job', data: { jobData: 'data' }, opts: {} };
  const firstJob = await queue.upsertJobScheduler('repeat-every-150', { every: 150, limit: 2 }, template);
  assert.equal(firstJob.name, 'every-job');
  await queue.upsertJobScheduler('repeat-every-150', { every: 150, limit: 2 }, template);
  assert.equal((await queue.getRepeatableJobs()).length, 1);
  const runs = [];
  const worker = track(new Worker('my-repeatable-jobs', async (job) => void runs.push({ id: job.id, name: job.name, data: job.data }), options));
  await until(() => runs.length === 2, 'two jobs of the scheduler');
  await sleep(400); // two more slots: a third job would have come by now
  assert.equal(runs.length, 2, 'limit 2');
  assert.equal(new Set(runs.map((r) => r.id)).size, 2);
  assert.ok(runs.every((r) => r.name === 'every-job' && r.data.jobData === 'data'));
});

// docs.bullmq.io/guide/rate-limiting
test('rate limiting: limiter { max: 5, duration: 500 } starts at most 5 of 20 jobs in each window, and gets through them all', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('painter', options));
  await queue.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'car', data: { n } })));
  const starts = [];
  const worker = track(
    new Worker(
      'painter',
      async () => {
        starts.push(Date.now());
      },
      { ...options, concurrency: 10, limiter: { max: 5, duration: 500 } },
    ),
  );
  await processed(worker, 20, 20_000);
  starts.sort((a, b) => a - b);
  // A window opens at the first start after the last one closed (a limiter's window
  // opens with the first job it lets through), and lasts `duration`; the few ms
  // between a job being taken and its processor starting may differ from job to
  // job, so a window here is 50 ms shorter.
  const SLACK = 50;
  const windows = [];
  for (const at of starts) {
    const open = windows.at(-1);
    if (open && at < open.from + 500 - SLACK) open.count++;
    else windows.push({ from: at, count: 1 });
  }
  assert.ok(
    windows.every((w) => w.count <= 5),
    `starts per window: ${windows.map((w) => w.count)}`,
  );
  assert.ok(starts.at(-1) - starts[0] >= 3 * 500 - SLACK, `20 jobs at 5 a window took ${starts.at(-1) - starts[0]} ms: at least three windows after the first`);
  assert.equal(await queue.getCompletedCount(), 20);
});

// docs.bullmq.io/guide/events, readme-1 (QueueEvents)
test("events: QueueEvents hears added, waiting, active, progress, completed and failed with BullMQ's payloads", async (t) => {
  const { options, track } = setup(t);
  const queueEvents = track(new QueueEvents('Paint', options));
  await queueEvents.waitUntilReady();
  const heard = [];
  for (const event of ['added', 'waiting', 'active', 'progress', 'completed', 'failed']) {
    queueEvents.on(event, (args) => heard.push({ event, ...args }));
  }
  const queue = track(new Queue('Paint', options));
  track(
    new Worker(
      'Paint',
      async (job) => {
        if (job.name === 'ceiling') throw new Error('out of paint');
        await job.updateProgress(30);
        return { painted: job.data.color };
      },
      options,
    ),
  );
  const wall = await queue.add('wall', { color: 'pink' });
  const ceiling = await queue.add('ceiling', { color: 'white' });
  await until(() => heard.some((e) => e.event === 'completed') && heard.some((e) => e.event === 'failed'), 'completed and failed events');
  const of = (event, jobId, ...fields) => heard.filter((e) => e.event === event && e.jobId === jobId).map((e) => Object.fromEntries(fields.map((f) => [f, e[f]])));

  assert.deepEqual(of('added', wall.id, 'jobId', 'name'), [{ jobId: wall.id, name: 'wall' }]);
  assert.deepEqual(of('waiting', wall.id, 'jobId'), [{ jobId: wall.id }]);
  assert.deepEqual(of('active', wall.id, 'jobId', 'prev'), [{ jobId: wall.id, prev: 'waiting' }]);
  assert.deepEqual(of('progress', wall.id, 'jobId', 'data'), [{ jobId: wall.id, data: 30 }]);
  assert.deepEqual(of('completed', wall.id, 'jobId', 'returnvalue'), [{ jobId: wall.id, returnvalue: { painted: 'pink' } }]);
  assert.deepEqual(of('failed', ceiling.id, 'jobId', 'failedReason'), [{ jobId: ceiling.id, failedReason: 'out of paint' }]);
  assert.deepEqual(of('completed', ceiling.id, 'jobId'), []);
  const order = heard.filter((e) => e.jobId === wall.id).map((e) => e.event);
  assert.deepEqual(order, ['added', 'waiting', 'active', 'progress', 'completed'], 'in the order they happened');
});

// docs.bullmq.io/guide/flows
test('flows: a parent in one queue waits for its three children in another; then getChildrenValues gives each child its value by bull:<queue>:<id>', async (t) => {
  const { options, track } = setup(t);
  const flowProducer = track(new FlowProducer(options));
  const flow = await flowProducer.add({
    name: 'renovate-interior',
    queueName: 'renovate',
    data: { house: 12 },
    children: [
      { name: 'paint', data: { place: 'ceiling' }, queueName: 'steps' },
      { name: 'paint', data: { place: 'walls' }, queueName: 'steps' },
      { name: 'fix', data: { place: 'floor' }, queueName: 'steps' },
    ],
  });
  assert.equal(flow.job.name, 'renovate-interior');
  assert.deepEqual(
    flow.children.map((child) => [child.job.name, child.job.data.place]),
    [
      ['paint', 'ceiling'],
      ['paint', 'walls'],
      ['fix', 'floor'],
    ],
  );
  assert.equal(await flow.job.getState(), 'waiting-children');

  let stepsDone = 0;
  let parentSaw = null;
  const renovate = track(
    new Worker(
      'renovate',
      async (job) => {
        parentSaw = { stepsDone, childrenValues: await job.getChildrenValues() };
        return Object.values(parentSaw.childrenValues).reduce((sum, cost) => sum + cost, 0);
      },
      options,
    ),
  );
  const invoiced = processed(renovate, 1);
  track(
    new Worker(
      'steps',
      async (job) => {
        const cost = job.name === 'paint' ? 2500 : 1750;
        stepsDone++;
        return cost;
      },
      options,
    ),
  );
  const [[parent, total]] = await invoiced;
  assert.equal(parent.id, flow.job.id);
  assert.equal(parentSaw.stepsDone, 3, 'the parent ran after its three children');
  assert.deepEqual(parentSaw.childrenValues, {
    [`bull:steps:${flow.children[0].job.id}`]: 2500,
    [`bull:steps:${flow.children[1].job.id}`]: 2500,
    [`bull:steps:${flow.children[2].job.id}`]: 1750,
  });
  assert.equal(total, 6750);
});

// docs.bullmq.io/guide/workers/pausing-queues
test('pausing: a paused queue gives no worker new jobs until resumed; a paused worker takes none until resumed', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('Paint', options));
  const done = [];
  const worker = track(new Worker('Paint', async (job) => void done.push(job.data.n), options));
  await queue.pause();
  assert.equal(await queue.isPaused(), true);
  await queue.add('wall', { n: 1 });
  await queue.add('wall', { n: 2 });
  await sleep(300);
  assert.deepEqual(done, [], 'nothing taken while the queue is paused');
  assert.equal(await queue.count(), 2);
  await queue.resume();
  assert.equal(await queue.isPaused(), false);
  await until(() => done.length === 2, 'both jobs after resume');
  assert.deepEqual(done, [1, 2]);

  await worker.pause();
  await queue.add('wall', { n: 3 });
  await sleep(300);
  assert.deepEqual(done, [1, 2], 'nothing taken while the worker is paused');
  worker.resume();
  await until(() => done.length === 3, 'the job after the worker resumed');
});

// docs.bullmq.io/guide/jobs/getters, guide/queues/removing-jobs (drain, clean), guide/jobs/retrying-job (retryJobs)
test('queue management: getJobs order and pages, count, drain and drain(true), retryJobs, clean with a grace period', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('paint', options));
  await queue.addBulk([1, 2, 3].map((n) => ({ name: 'jobName', data: { n } })));
  const delayed = await queue.add('jobName', { n: 4 }, { delay: 60_000 });
  assert.deepEqual(ids(await queue.getJobs(['waiting'], 0, -1, true)), ['1', '2', '3'], 'ascending: in the order they will run');
  assert.deepEqual(ids(await queue.getJobs(['waiting'])), ['3', '2', '1'], 'newest first by default');
  assert.deepEqual(ids(await queue.getJobs(['waiting'], 0, 1, true)), ['1', '2'], 'start and end are inclusive');
  assert.deepEqual(ids(await queue.getJobs(['delayed'])), [delayed.id]);
  assert.equal(await queue.count(), 4);
  assert.equal(await queue.getWaitingCount(), 3);
  await queue.drain();
  assert.deepEqual(await queue.getJobCounts('waiting', 'delayed'), { waiting: 0, delayed: 1 }, 'drain keeps delayed jobs');
  await queue.drain(true);
  assert.deepEqual(await queue.getJobCounts('waiting', 'delayed'), { waiting: 0, delayed: 0 });
  assert.equal(await queue.count(), 0);

  let broken = true;
  const finished = [];
  track(
    new Worker(
      'paint',
      async (job) => {
        await sleep(3); // each finishes in a later millisecond than the one before
        if (broken) throw new Error('brush missing');
        finished.push(job.id);
        return job.data.n;
      },
      options,
    ),
  );
  await queue.addBulk([5, 6].map((n) => ({ name: 'jobName', data: { n } })));
  await until(async () => (await queue.getFailedCount()) === 2, 'both jobs to fail');
  broken = false;
  await queue.retryJobs({ state: 'failed' });
  await until(async () => (await queue.getCompletedCount()) === 2, 'the retried jobs to complete');
  await queue.add('jobName', { n: 7 });
  await until(async () => (await queue.getCompletedCount()) === 3, 'the last job to complete');
  assert.equal(finished.length, 3);
  assert.deepEqual(ids(await queue.getJobs(['completed'], 0, -1, true)), finished, 'ascending: in the order they finished');
  assert.deepEqual(ids(await queue.getJobs(['completed'])), [...finished].reverse(), 'newest first by default');
  assert.equal(await queue.getActiveCount(), 0);

  assert.deepEqual(await queue.clean(60_000, 100, 'completed'), [], 'all finished within the grace period');
  await sleep(5);
  assert.deepEqual((await queue.clean(0, 100, 'completed')).sort(), [...finished].sort());
  assert.equal(await queue.getCompletedCount(), 0);
});

// docs.bullmq.io/guide/queues/removing-jobs (obliterate), guide/jobs/removing-job, guide/queues (close)
test('queue management: job.remove(), obliterate refused while a job is active unless forced, then nothing is left; a closed queue adds nothing', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('paint', options));
  const unwanted = await queue.add('wall', { color: 1 });
  await unwanted.remove();
  assert.equal(await queue.getJob(unwanted.id), undefined);

  let release;
  const gate = new Promise((resolve) => (release = resolve));
  let started = false;
  let returned = false;
  const worker = track(
    new Worker(
      'paint',
      async () => {
        started = true;
        await gate;
        returned = true;
      },
      options,
    ),
  );
  worker.on('error', () => {}); // the job it holds is gone once the queue is obliterated
  const active = await queue.add('slow', {});
  await queue.add('waiting', {});
  await queue.add('later', {}, { delay: 60_000 });
  await queue.add('nightly', {}, { repeat: { pattern: '0 0 2 * * *' } });
  await until(() => started, 'the slow job to start');
  await assert.rejects(queue.obliterate(), 'a job is active');
  assert.equal(await queue.getActiveCount(), 1, 'a refused obliterate removes nothing');
  await queue.obliterate({ force: true });
  const counts = await queue.getJobCounts();
  assert.ok(
    Object.values(counts).every((n) => n === 0),
    `nothing left: ${JSON.stringify(counts)}`,
  );
  assert.equal(await queue.getJob(active.id), undefined);
  assert.deepEqual(await queue.getRepeatableJobs(), []);
  release();
  await until(() => returned, 'the processor to return');
  await worker.close();

  await queue.close();
  await assert.rejects(queue.add('late', {}), 'closed');
});

// docs.bullmq.io/guide/jobs/prioritized (1 to 2 097 152), guide/jobs/job-ids (integers refused), guide/retrying-failing-jobs (attempts), guide/queues/adding-bulks (all or none)
test('bad input is refused with FerryError INVALID_ARGUMENT naming the field, and adds nothing', async (t) => {
  const { options, track } = setup(t);
  const queue = track(new Queue('checks', options));
  const refused = (call, field) =>
    assert.rejects(call, (e) => {
      assert.ok(e instanceof FerryError, `${e} is a FerryError`);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, new RegExp(field));
      return true;
    });
  await refused(() => queue.add('job', {}, { priority: -1 }), 'priority');
  await refused(() => queue.add('job', {}, { priority: 3_000_000 }), 'priority');
  await refused(() => queue.add('job', {}, { attempts: 0 }), 'attempts');
  await refused(() => queue.add('job', {}, { jobId: '12' }), 'jobId');
  await refused(
    () =>
      queue.addBulk([
        { name: 'fine', data: {} },
        { name: 'bad', data: {}, opts: { priority: -1 } },
      ]),
    'priority',
  );
  const counts = await queue.getJobCounts();
  assert.ok(
    Object.values(counts).every((n) => n === 0),
    `nothing added: ${JSON.stringify(counts)}`,
  );
  assert.deepEqual(await queue.getJobs(), []);
  assert.equal((await queue.add('job', {}, { priority: 2_097_152, jobId: 'job-12' })).id, 'job-12', 'the bounds themselves are fine');
  // A bus of `ferry`'s build, which has no job queues, is refused by name.
  const { Bus } = await import('ferry');
  const topicsOnly = await Bus.open({ name: `bullmq-topics-only-${process.pid}`, storage: 'memory' });
  t.after(() => topicsOnly.close());
  await refused(async () => new Queue('checks', { ferry: { bus: topicsOnly } }).add('job', {}), 'ferry.bus');
});

// The browser tests' Chromium and file server, started by the first of them: the
// Node tests alone (run with --test-name-pattern) start no browser.
let server;
let browser;
async function startChromium() {
  server ??= await serve();
  browser ??= await launch('chromium');
}
after(async () => {
  await browser?.close();
  await server?.close();
});

// docs.bullmq.io/readme-1 and guide/retrying-failing-jobs, in a page: the bus is the origin's IndexedDB one.
test('in a Chromium page: a program adds jobs, and a Worker processes them, retrying those that fail', async () => {
  await startChromium();
  const page = await openTestPage(browser, server.url);
  const result = await page.evaluate(async (name) => {
    const { Queue, Worker } = await import('/pkg/entry/bullmq-browser.js');
    const ferry = { name };
    const queue = new Queue('emails', { ferry });
    const worker = new Worker(
      'emails',
      async (job) => {
        if (job.attemptsMade === 0) throw new Error(`smtp busy for ${job.data.to}`);
        return `sent to ${job.data.to}`;
      },
      { ferry, concurrency: 2 },
    );
    const failures = [];
    worker.on('failed', (job, err) => failures.push(err.message));
    const done = new Promise((resolve, reject) => {
      const completed = [];
      worker.on('completed', (job, returnvalue) => completed.push(returnvalue) === 3 && resolve(completed));
      setTimeout(() => reject(new Error(`timed out: ${completed.length} of 3 completed`)), 15_000);
    });
    const added = await queue.addBulk(['ada', 'alan', 'grace'].map((to) => ({ name: 'welcome', data: { to }, opts: { attempts: 3, backoff: { type: 'fixed', delay: 50 } } })));
    const completed = await done;
    const jobs = await Promise.all(added.map((job) => queue.getJob(job.id)));
    const states = await Promise.all(jobs.map((job) => job.getState()));
    await worker.close();
    await queue.close();
    return { ids: added.map((job) => job.id), completed: completed.sort(), failures: failures.sort(), returnvalues: jobs.map((job) => job.returnvalue), states };
  }, `bullmq-page-${process.pid}-${Date.now()}`);
  assert.deepEqual(result, {
    ids: ['1', '2', '3'],
    completed: ['sent to ada', 'sent to alan', 'sent to grace'],
    failures: ['smtp busy for ada', 'smtp busy for alan', 'smtp busy for grace'],
    returnvalues: ['sent to ada', 'sent to alan', 'sent to grace'],
    states: ['completed', 'completed', 'completed'],
  });
  await page.close();
});

// docs.bullmq.io/guide/jobs/repeatable ("Bull is smart enough not to add the same repeatable job if the repeat options are the same"), across tabs.
test('three tabs of one origin each add the same repeatable job (every 300 ms, limit 5): each of its 5 slots is processed once, in one of them', async (t) => {
  await startChromium();
  const context = await browser.newContext();
  t.after(() => context.close());
  const pages = await Promise.all([0, 1, 2].map(() => openTestPage(context, server.url)));
  const name = `bullmq-tabs-${process.pid}-${Date.now()}`;
  const added = await Promise.all(
    pages.map((page, tab) =>
      page.evaluate(
        async ({ name, tab }) => {
          const { Queue, Worker } = await import('/pkg/entry/bullmq-browser.js');
          const ferry = { name };
          window.processed = [];
          window.queue = new Queue('heartbeat', { ferry });
          window.worker = new Worker('heartbeat', async (job) => void window.processed.push(job.id), { ferry });
          const job = await window.queue.add('beat', { from: 'every tab' }, { repeat: { every: 300, limit: 5 } });
          return { tab, key: job.repeatJobKey };
        },
        { name, tab },
      ),
    ),
  );
  const perTab = () => Promise.all(pages.map((page) => page.evaluate(() => window.processed)));
  await until(async () => (await perTab()).flat().length >= 5, 'five runs across the tabs', 20_000);
  await sleep(900); // three more slots: a sixth run, or a slot run twice, would show by now
  const runs = (await perTab()).flat();
  assert.equal(runs.length, 5, `runs: ${runs}`);
  assert.equal(new Set(runs).size, 5, 'each slot once');
  const [{ key }] = added;
  assert.ok(
    added.every((tab) => tab.key === key),
    'one repeatable job in all three tabs',
  );
  assert.ok(
    runs.every((id) => id.startsWith(`repeat:${key}:`)),
    `runs: ${runs}`,
  );
  const slots = runs.map(slotOf).sort((a, b) => a - b);
  assert.ok(
    slots.every((slot, i) => slot % 300 === 0 && (i === 0 || slot === slots[i - 1] + 300)),
    `five slots one after another, multiples of 300: ${slots}`,
  );
  await Promise.all(
    pages.map((page) =>
      page.evaluate(async () => {
        await window.worker.close();
        await window.queue.close();
      }),
    ),
  );
});

// `ferry` and `ferry/bullmq` are two engine builds, the first without job queues
// (pkg/README.md, "Size"). A tab on `ferry` opens the bus first, so the writer is its
// SharedWorker, which cannot run job calls: it answers them unserved, and the tab on
// `ferry/bullmq` runs them itself on the shared IndexedDB. Topics and jobs then work
// side by side, and a later tab on `ferry` opens a store holding job records.
test('a tab on ferry and a tab on ferry/bullmq share one bus: jobs run while the writer is the ferry build, and ferry tabs keep the job records as stored', async (t) => {
  await startChromium();
  const context = await browser.newContext();
  t.after(() => context.close());
  const name = `bullmq-mixed-${process.pid}-${Date.now()}`;
  const [topicsTab, jobsTab] = [await openTestPage(context, server.url), await openTestPage(context, server.url)];
  await topicsTab.evaluate(async (name) => {
    const { Bus } = await import('/pkg/entry/browser.js');
    window.bus = await Bus.open({ name });
    await window.bus.createTopic('orders', { partitions: 2 });
    window.consumed = [];
    window.consumer = window.bus.consumer({ groupId: 'shipping' });
    await window.consumer.subscribe({ topic: 'orders', fromBeginning: true });
    window.consumer.run({ eachMessage: async ({ message }) => void window.consumed.push(message.value) });
  }, name);
  const jobs = jobsTab.evaluate(async (name) => {
    const { Queue, Worker, QueueEvents } = await import('/pkg/entry/bullmq-browser.js');
    const ferry = { name };
    const queue = new Queue('mail', { ferry });
    const events = new QueueEvents('mail', { ferry });
    const completed = [];
    events.on('completed', ({ jobId }) => completed.push(jobId));
    const tries = {};
    const worker = new Worker(
      'mail',
      async (job) => {
        tries[job.id] = (tries[job.id] ?? 0) + 1;
        if (job.data.n % 5 === 0 && tries[job.id] === 1) throw new Error('smtp timeout');
        return job.data.n * 2;
      },
      { ferry },
    );
    await queue.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'welcome', data: { n }, opts: { attempts: 2, backoff: { type: 'fixed', delay: 20 } } })));
    const deadline = Date.now() + 20_000;
    while ((await queue.getJobCounts('completed')).completed < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    const values = (await queue.getJobs(['completed'], 0, 19)).map((job) => job.returnvalue).sort((a, b) => a - b);
    while (completed.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await worker.close();
    await events.close();
    await queue.close();
    return { counts, values, heard: completed.length, retried: Object.values(tries).filter((n) => n === 2).length };
  }, name);
  await topicsTab.evaluate(async () => {
    for (let i = 0; i < 30; i++) await window.bus.publish('orders', `order-${i}`, { key: `k${i % 4}` });
  });
  const ran = await jobs;
  assert.deepEqual(ran.counts, { completed: 20, failed: 0, waiting: 0, active: 0 });
  assert.deepEqual(
    ran.values,
    Array.from({ length: 20 }, (_, n) => n * 2),
  );
  assert.equal(ran.heard, 20, 'QueueEvents heard every completion');
  assert.equal(ran.retried, 4, 'jobs 0, 5, 10 and 15 failed once and were retried');
  await until(async () => (await topicsTab.evaluate(() => window.consumed.length)) === 30, 'the ferry tab consumed its 30 orders', 20_000);
  const later = await openTestPage(context, server.url);
  const seen = await later.evaluate(async (name) => {
    const { Bus } = await import('/pkg/entry/browser.js');
    const bus = await Bus.open({ name });
    const stats = await bus.stats();
    await bus.close();
    const { Queue } = await import('/pkg/entry/bullmq-browser.js');
    const queue = new Queue('mail', { ferry: { name } });
    const counts = await queue.getJobCounts('completed');
    await queue.close();
    return { sent: stats.topics.find((entry) => entry.topic === 'orders')?.partitions.reduce((n, p) => n + p.highOffset, 0), counts };
  }, name);
  assert.deepEqual(seen, { sent: 30, counts: { completed: 20 } }, 'a ferry tab opened the store with its job records, and they are still there');
  await topicsTab.evaluate(async () => {
    await window.consumer.stop();
    await window.bus.close();
  });
});

// examples/sidekiq: the seed's Sidekiq mailer in BullMQ's shape runs as the README says.
test('examples/sidekiq runs: retries with growing waits, a dead letter, retried after the fix', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { stdout } = await promisify(execFile)(process.execPath, [new URL('../../examples/sidekiq/main.mjs', import.meta.url).pathname], { timeout: 60_000 });
  assert.match(stdout, /dead\s+job \d+ welcome-email/);
  assert.match(stdout, /after job\.retry\(\)/);
  assert.match(stdout, /"completed":4,"failed":0/);
});
