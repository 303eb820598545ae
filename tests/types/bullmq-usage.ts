// Code typed as BullMQ's documentation writes it, compiled against ferry/bullmq.
import { Queue, Worker, QueueEvents, FlowProducer, Job, UnrecoverableError, type JobsOptions, type Processor } from 'ferry/bullmq';

interface Mail {
  to: string;
}

async function quickStart(): Promise<void> {
  const connection = { host: 'localhost', port: 6379 };
  const queue = new Queue<Mail, { sent: boolean }>('mailers', { connection, defaultJobOptions: { attempts: 3 } });
  const opts: JobsOptions = { delay: 100, attempts: 5, backoff: { type: 'exponential', delay: 1000 }, priority: 2, removeOnComplete: true, removeOnFail: { age: 3600, count: 10 }, jobId: 'welcome-ada' };
  const job: Job<Mail, { sent: boolean }> = await queue.add('welcome', { to: 'ada@example.com' }, opts);
  await queue.addBulk([{ name: 'welcome', data: { to: 'b@example.com' } }]);
  await queue.add('digest', { to: 'c@example.com' }, { repeat: { pattern: '0 15 3 * * *', limit: 10 } });
  await queue.upsertJobScheduler('every-10s', { every: 10_000 }, { name: 'tick', data: { to: 'd@example.com' } });
  const processor: Processor<Mail, { sent: boolean }> = async (j) => {
    await j.updateProgress(50);
    await j.log(`sending to ${j.data.to}`);
    if (!j.data.to) throw new UnrecoverableError('no address');
    return { sent: true };
  };
  const worker = new Worker<Mail, { sent: boolean }>('mailers', processor, { connection, concurrency: 5, limiter: { max: 10, duration: 1000 } });
  worker.on('completed', (done, result) => console.log(done.id, result.sent));
  worker.on('failed', (failed, err) => console.log(failed?.attemptsMade, err.message));
  const events = new QueueEvents('mailers', { connection });
  events.on('completed', ({ jobId, returnvalue }) => console.log(jobId, returnvalue));
  events.on('progress', ({ jobId, data }) => console.log(jobId, data));
  const counts: { [state: string]: number } = await queue.getJobCounts('waiting', 'active', 'completed', 'failed');
  const failed: Job[] = await queue.getJobs(['failed'], 0, 10, true);
  for (const f of failed) await f.retry();
  const state: string = await job.getState();
  const result: { sent: boolean } = await job.waitUntilFinished(events);
  const flow = new FlowProducer({ connection });
  const tree = await flow.add({ name: 'renovate', queueName: 'renovate', children: [{ name: 'paint', queueName: 'steps', data: { place: 'ceiling' } }] });
  const values = await tree.job.getChildrenValues<string>();
  console.log(counts, state, result, values);
  await Promise.all([worker.close(), events.close(), queue.close(), flow.close()]);
}

void quickStart;
