// Types of `ferry/bullmq` (pkg/README.md, "BullMQ: ferry/bullmq"): BullMQ's own
// names and shapes, so that code typed against BullMQ compiles with the import
// changed. Options BullMQ has and ferry ignores are typed as BullMQ types them.
import type { FerryChoice } from './index.js';

export { FerryError } from './index.js';
export type { FerryChoice } from './index.js';

/** Accepted and ignored: ferry has no Redis. */
export type ConnectionOptions = Record<string, any>;

export interface QueueBaseOptions {
  connection?: ConnectionOptions;
  prefix?: string;
  skipVersionCheck?: boolean;
  /** The bus the queue lives on; opened with `name` `prefix`, else "bull", unless given. */
  ferry?: FerryChoice;
}

export interface KeepJobs {
  /** Seconds. */
  age?: number;
  count?: number;
}

export interface BackoffOptions {
  type: 'fixed' | 'exponential' | (string & {});
  delay?: number;
}

export interface RepeatOptions {
  pattern?: string;
  /** BullMQ 3's name for `pattern`. */
  cron?: string;
  every?: number;
  limit?: number;
  startDate?: Date | string | number;
  endDate?: Date | string | number;
  /** UTC only. */
  tz?: string;
  immediately?: boolean;
  jobId?: string;
}

export interface JobsOptions {
  delay?: number;
  attempts?: number;
  backoff?: number | BackoffOptions;
  jobId?: string;
  priority?: number;
  lifo?: boolean;
  removeOnComplete?: boolean | number | KeepJobs;
  removeOnFail?: boolean | number | KeepJobs;
  keepLogs?: number;
  timestamp?: number;
  repeat?: RepeatOptions;
  failParentOnFailure?: boolean;
  /** Accepted and ignored. */
  stackTraceLimit?: number;
  sizeLimit?: number;
}

export interface QueueOptions extends QueueBaseOptions {
  defaultJobOptions?: JobsOptions;
}

export type JobState = 'active' | 'completed' | 'delayed' | 'failed' | 'paused' | 'prioritized' | 'waiting' | 'waiting-children';
export type JobType = JobState | 'wait';

export interface JobJsonRaw {
  id: string;
  name: string;
  data: string;
  opts: string;
}

export class Job<DataType = any, ReturnType = any, NameType extends string = string> {
  constructor(queue: Queue<DataType, ReturnType, NameType>, name: NameType, data: DataType, opts?: JobsOptions, id?: string);
  static create<T = any, R = any, N extends string = string>(queue: Queue<T, R, N>, name: N, data: T, opts?: JobsOptions): Promise<Job<T, R, N>>;
  static fromId<T = any, R = any, N extends string = string>(queue: Queue<T, R, N>, jobId: string): Promise<Job<T, R, N> | undefined>;
  id?: string;
  name: NameType;
  data: DataType;
  opts: JobsOptions;
  queueName: string;
  queueQualifiedName: string;
  progress: number | object;
  delay: number;
  timestamp: number;
  priority: number;
  attemptsMade: number;
  attemptsStarted: number;
  stalledCounter: number;
  returnvalue: ReturnType;
  failedReason: string;
  stacktrace: string[];
  processedOn?: number;
  finishedOn?: number;
  repeatJobKey?: string;
  parent?: { id: string; queueKey: string };
  parentKey?: string;
  token?: string;
  updateProgress(progress: number | object): Promise<void>;
  log(row: string): Promise<number>;
  getState(): Promise<JobState | 'unknown'>;
  retry(state?: 'completed' | 'failed'): Promise<void>;
  remove(): Promise<void>;
  promote(): Promise<void>;
  getChildrenValues<CT = any>(): Promise<{ [jobKey: string]: CT }>;
  isCompleted(): Promise<boolean>;
  isFailed(): Promise<boolean>;
  isActive(): Promise<boolean>;
  isDelayed(): Promise<boolean>;
  isWaiting(): Promise<boolean>;
  isWaitingChildren(): Promise<boolean>;
  waitUntilFinished(queueEvents: QueueEvents, ttl?: number): Promise<ReturnType>;
  toJSON(): Record<string, any>;
  asJSON(): JobJsonRaw;
}

type Listener = (...args: any[]) => void;

declare class Emitter {
  on(event: string, listener: Listener): this;
  addListener(event: string, listener: Listener): this;
  once(event: string, listener: Listener): this;
  off(event: string, listener: Listener): this;
  removeListener(event: string, listener: Listener): this;
  removeAllListeners(event?: string): this;
  listenerCount(event: string): number;
  emit(event: string, ...args: any[]): boolean;
}

export interface RepeatableJob {
  key: string;
  name: string;
  id: string | null;
  endDate: number | null;
  tz: string | null;
  pattern: string | null;
  every: number | null;
  limit: number | null;
  count: number;
  next: number | null;
}

export class Queue<DataType = any, ResultType = any, NameType extends string = string> extends Emitter {
  constructor(name: string, opts?: QueueOptions);
  readonly name: string;
  readonly qualifiedName: string;
  opts: QueueOptions;
  defaultJobOptions: JobsOptions;
  waitUntilReady(): Promise<this>;
  add(name: NameType, data: DataType, opts?: JobsOptions): Promise<Job<DataType, ResultType, NameType>>;
  addBulk(jobs: { name: NameType; data: DataType; opts?: JobsOptions }[]): Promise<Job<DataType, ResultType, NameType>[]>;
  getJob(jobId: string): Promise<Job<DataType, ResultType, NameType> | undefined>;
  getJobs(types?: JobType | JobType[], start?: number, end?: number, asc?: boolean): Promise<Job<DataType, ResultType, NameType>[]>;
  getJobCounts(...types: JobType[]): Promise<{ [index: string]: number }>;
  getJobCountByTypes(...types: JobType[]): Promise<number>;
  count(): Promise<number>;
  getWaitingCount(): Promise<number>;
  getActiveCount(): Promise<number>;
  getDelayedCount(): Promise<number>;
  getCompletedCount(): Promise<number>;
  getFailedCount(): Promise<number>;
  getPrioritizedCount(): Promise<number>;
  getWaitingChildrenCount(): Promise<number>;
  getWaiting(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getActive(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getDelayed(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getPrioritized(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getCompleted(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getFailed(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getWaitingChildren(start?: number, end?: number): Promise<Job<DataType, ResultType, NameType>[]>;
  getJobLogs(jobId: string, start?: number, end?: number, asc?: boolean): Promise<{ logs: string[]; count: number }>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  isPaused(): Promise<boolean>;
  drain(delayed?: boolean): Promise<void>;
  obliterate(opts?: { force?: boolean; count?: number }): Promise<void>;
  clean(grace: number, limit: number, type?: JobType): Promise<string[]>;
  retryJobs(opts?: { state?: 'completed' | 'failed'; count?: number; timestamp?: number }): Promise<void>;
  remove(jobId: string, opts?: { removeChildren?: boolean }): Promise<number>;
  getRepeatableJobs(start?: number, end?: number, asc?: boolean): Promise<RepeatableJob[]>;
  removeRepeatable(name: NameType, repeatOpts: RepeatOptions, jobId?: string): Promise<boolean>;
  removeRepeatableByKey(key: string): Promise<boolean>;
  upsertJobScheduler(jobSchedulerId: string, repeatOpts: Omit<RepeatOptions, 'key'>, jobTemplate?: { name?: NameType; data?: DataType; opts?: JobsOptions }): Promise<Job<DataType, ResultType, NameType>>;
  getJobSchedulers(start?: number, end?: number, asc?: boolean): Promise<RepeatableJob[]>;
  getJobScheduler(id: string): Promise<RepeatableJob | undefined>;
  removeJobScheduler(jobSchedulerId: string): Promise<boolean>;
  close(): Promise<void>;
  disconnect(): Promise<void>;
}

export type Processor<DataType = any, ResultType = any, NameType extends string = string> = (job: Job<DataType, ResultType, NameType>, token?: string) => Promise<ResultType>;

export interface RateLimiterOptions {
  max: number;
  duration: number;
}

export type BackoffStrategy = (attemptsMade: number, type?: string, err?: Error, job?: Job) => Promise<number> | number;

export interface WorkerOptions extends QueueBaseOptions {
  concurrency?: number;
  limiter?: RateLimiterOptions;
  autorun?: boolean;
  /** ms a job's lease lasts without renewal; renewed every half of it. */
  lockDuration?: number;
  /** Seconds an idle worker waits before looking again when nothing told it of new work. */
  drainDelay?: number;
  settings?: { backoffStrategy?: BackoffStrategy };
  /** Accepted and ignored: stalled jobs are found when their lease runs out. */
  stalledInterval?: number;
  maxStalledCount?: number;
  removeOnComplete?: KeepJobs;
  removeOnFail?: KeepJobs;
}

export class Worker<DataType = any, ResultType = any, NameType extends string = string> extends Emitter {
  constructor(name: string, processor?: Processor<DataType, ResultType, NameType> | null, opts?: WorkerOptions);
  readonly name: string;
  opts: WorkerOptions;
  concurrency: number;
  waitUntilReady(): Promise<this>;
  run(): Promise<void>;
  isRunning(): boolean;
  isPaused(): boolean;
  pause(doNotWaitActive?: boolean): void;
  resume(): void;
  close(force?: boolean): Promise<void>;
  disconnect(): Promise<void>;
  on(event: 'active', listener: (job: Job<DataType, ResultType, NameType>, prev: string) => void): this;
  on(event: 'completed', listener: (job: Job<DataType, ResultType, NameType>, result: ResultType, prev: string) => void): this;
  on(event: 'failed', listener: (job: Job<DataType, ResultType, NameType> | undefined, error: Error, prev: string) => void): this;
  on(event: 'progress', listener: (job: Job<DataType, ResultType, NameType>, progress: number | object) => void): this;
  on(event: 'error', listener: (failedReason: Error) => void): this;
  on(event: 'drained' | 'ready' | 'closed' | 'paused' | 'resumed', listener: () => void): this;
  on(event: string, listener: Listener): this;
}

export interface QueueEventsOptions extends QueueBaseOptions {
  autorun?: boolean;
  lastEventId?: string;
  blockingTimeout?: number;
}

export class QueueEvents extends Emitter {
  constructor(name: string, opts?: QueueEventsOptions);
  readonly name: string;
  waitUntilReady(): Promise<this>;
  run(): Promise<void>;
  close(): Promise<void>;
  on(event: 'completed', listener: (args: { jobId: string; returnvalue: any; prev?: string }, id: string) => void): this;
  on(event: 'failed', listener: (args: { jobId: string; failedReason: string; prev?: string }, id: string) => void): this;
  on(event: 'progress', listener: (args: { jobId: string; data: number | object }, id: string) => void): this;
  on(event: 'waiting' | 'active', listener: (args: { jobId: string; prev?: string }, id: string) => void): this;
  on(event: 'added', listener: (args: { jobId: string; name: string }, id: string) => void): this;
  on(event: 'delayed', listener: (args: { jobId: string; delay: number }, id: string) => void): this;
  on(event: 'removed' | 'stalled' | 'duplicated' | 'retrying', listener: (args: { jobId: string }, id: string) => void): this;
  on(event: 'drained' | 'paused' | 'resumed', listener: (id: string) => void): this;
  on(event: string, listener: Listener): this;
}

export interface FlowJob {
  name: string;
  queueName: string;
  data?: any;
  prefix?: string;
  opts?: JobsOptions;
  children?: FlowJob[];
}

export interface JobNode {
  job: Job;
  children?: JobNode[];
}

export class FlowProducer extends Emitter {
  constructor(opts?: QueueBaseOptions);
  waitUntilReady(): Promise<this>;
  add(flow: FlowJob, opts?: object): Promise<JobNode>;
  addBulk(flows: FlowJob[]): Promise<JobNode[]>;
  close(): Promise<void>;
  disconnect(): Promise<void>;
}

/** Thrown by a processor: the job fails at once, whatever attempts it has left. */
export class UnrecoverableError extends Error {
  constructor(message?: string);
}
