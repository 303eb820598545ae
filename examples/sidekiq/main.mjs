// The Sidekiq example of ferry's mission, written as a BullMQ program: a sign-up
// handler enqueues a welcome email and answers at once; a worker sends it through
// a flaky SMTP server; a failure is retried with exponentially longer waits, 5
// attempts in all, and a job that fails all 5 is parked as dead (BullMQ's
// "failed" state, ferry's dead letters) until someone fixes the cause and
// retries it. Only the import says ferry: the rest is BullMQ's API, on an
// in-memory bus in Node (IndexedDB in a page). `node examples/sidekiq/main.mjs`
//
// Sidekiq / ActiveJob (Ruby)                        BullMQ (this file)
// ------------------------------------------------  -------------------------------------------------
// class WelcomeMailer < ApplicationJob              const queue = new Queue('mailers', { connection })
//   queue_as :mailers
//   retry_on StandardError,                         { attempts: 5,         (any throw is retried)
//     wait: :exponentially_longer, attempts: 5        backoff: { type: 'exponential', delay: 100 } }
//   def perform(user)                               new Worker('mailers', async (job) => {
//     Mail.deliver(to: user.email, ...)               await smtp.send(users.get(job.data.userId))
//   end                                             }, { connection, concurrency: 5 })
// end
// WelcomeMailer.perform_later(user)                 await queue.add('welcome-email', { userId }, opts)
// bundle exec sidekiq -q mailers -c 5               (the Worker above, in this process)
// retries exhausted: the job lands in the Dead set  job.attemptsMade === 5, state 'failed'
// Sidekiq::DeadSet.new.each { |job| ... }           await queue.getJobs(['failed'])
// "Retry Now" in the Dead tab, or entry.retry       await job.retry()   (or queue.retryJobs({ state: 'failed' }))
// Sidekiq::Stats.new                                await queue.getJobCounts()
// discard_on SomeError (no retry at all)            throw new UnrecoverableError(...)   (not used here)
//
// Two differences in the numbers, not the shape: ActiveJob's :exponentially_longer
// waits executions**4 + 2 seconds (3 s, 18 s, 83 s, 258 s; Rails 7.1 calls it
// :polynomially_longer), BullMQ's exponential backoff waits delay * 2^(n-1), here
// 100, 200, 400, 800 ms so that the example takes seconds. And with ActiveJob on
// Sidekiq, the error that outlives retry_on's 5 attempts goes on to Sidekiq's own
// retries (sidekiq_options retry: 0 sends it straight to the Dead set); BullMQ has
// one retry policy, the job's.
import { Queue, Worker } from 'ferry/bullmq';

const started = performance.now();
const log = (who, what) => console.log(`${((performance.now() - started) / 1000).toFixed(3).padStart(6)}s  ${who.padEnd(7)} ${what}`);

// Redis would be here with BullMQ; ferry accepts the option and ignores it. `ferry`
// names the bus (in memory in Node, as storage: 'memory' would).
const connection = { host: 'localhost', port: 6379 };
const ferry = { name: 'sidekiq-example' };

const users = new Map([
  [1, { id: 1, email: 'ada@example.com' }],
  [2, { id: 2, email: 'grace@example.com' }],
  [3, { id: 3, email: 'linus@example.com' }],
  [4, { id: 4, email: 'ken@legacy.example' }],
]);

/** A fake SMTP server: busy (421) for some messages, and refusing one domain (550) until it is fixed. */
const smtp = {
  busyFor: new Map([[2, 2], [3, 1]]), // user id -> how many sends answer 421 first
  brokenDomain: 'legacy.example',
  sent: 0,
  async send(user) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const busy = this.busyFor.get(user.id) ?? 0;
    if (busy > 0) {
      this.busyFor.set(user.id, busy - 1);
      throw new Error('421 4.3.2 service busy, try again later');
    }
    if (this.brokenDomain && user.email.endsWith(`@${this.brokenDomain}`)) throw new Error(`550 5.7.1 relay denied for ${this.brokenDomain}`);
    return `250 2.0.0 ok, message ${++this.sent} queued`;
  },
};

const opts = { attempts: 5, backoff: { type: 'exponential', delay: 100 } };
const queue = new Queue('mailers', { connection, ferry });

/** The request handler: stores nothing slow, enqueues the email and answers. */
async function signUp(user) {
  const t0 = performance.now();
  const job = await queue.add('welcome-email', { userId: user.id }, opts); // WelcomeMailer.perform_later(user)
  log('web', `signed up ${user.email}: welcome email is job ${job.id}, answered in ${(performance.now() - t0).toFixed(1)} ms`);
}

// When each job's last attempt failed, to print how long its backoff was, and
// the jobs retried by hand.
const failedAt = new Map();
const retried = new Set();
const worker = new Worker(
  'mailers',
  async (job) => {
    const user = users.get(job.data.userId);
    const attempt = job.attemptsMade + 1;
    const waited = retried.has(job.id) ? ', after job.retry()' : failedAt.has(job.id) ? `, ${Math.round(performance.now() - failedAt.get(job.id))} ms after the last failure` : '';
    log('worker', `job ${job.id} ${job.name} to ${user.email}: attempt ${attempt} of ${job.opts.attempts}${waited}`);
    return smtp.send(user);
  },
  { connection, ferry, concurrency: 5 },
);

worker.on('completed', (job, reply) => log('worker', `job ${job.id} sent: ${reply}`));
worker.on('failed', (job, err) => {
  failedAt.set(job.id, performance.now());
  const left = job.opts.attempts - job.attemptsMade;
  const next = left > 0 ? `retry in ${job.opts.backoff.delay * 2 ** (job.attemptsMade - 1)} ms` : 'no attempts left: dead';
  log('worker', `job ${job.id} failed: ${err.message} (${next})`);
});

/** Polls getJobCounts until `done(counts)`, for at most 15 s. */
async function until(what, done) {
  const giveUpAt = Date.now() + 15_000;
  for (;;) {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    if (done(counts)) return counts;
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

try {
  await queue.waitUntilReady(); // the app boots: its bus is open before the first request
  for (const user of users.values()) await signUp(user);

  await until('3 sent and 1 dead', (c) => c.completed === 3 && c.failed === 1);
  const dead = await queue.getJobs(['failed']);
  for (const job of dead) {
    log('dead', `job ${job.id} ${job.name} ${JSON.stringify(job.data)}: ${job.attemptsMade} attempts, last error "${job.failedReason}"`);
  }

  log('ops', `the relay for ${smtp.brokenDomain} is fixed; retrying the dead jobs`);
  smtp.brokenDomain = null;
  for (const job of dead) {
    retried.add(job.id);
    await job.retry(); // "Retry Now" in Sidekiq's Dead tab
  }

  const counts = await until('every email sent', (c) => c.completed === 4 && c.failed === 0);
  log('stats', JSON.stringify(counts));
} finally {
  await worker.close();
  await queue.close();
}
