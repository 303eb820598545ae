//! Job queues (`ferry/bullmq`): adding, taking, finishing and retrying jobs,
//! priorities, delays, repeatable jobs, flows and the rate limiter.
//!
//! Each queue's jobs are records ([`Key::Job`], stored by page: [`Key::JobPage`]);
//! what the engine indexes of them is rebuilt from the records when they are
//! applied ([`Engine::write`] calls [`QueueState::set_job`]), so an undone commit
//! undoes the indexes too. Taking a job is a walk of the first entries of the waiting
//! index, never a scan: BullMQ's order is jobs without priority first (in the order
//! added, or last added first for `lifo`), then by priority, lower first.
//!
//! Every transition adds an event (BullMQ's `QueueEvents`) to a list the driver
//! takes after a stored commit ([`Engine::take_job_events`]) and tells every
//! context of the bus.

use std::fmt::Write as _;
use std::sync::Arc;

use super::*;
use crate::core::config::{check_name, check_range};
use crate::core::cron::Cron;
use crate::core::jobs::*;
use crate::core::json::string;
use crate::core::limits::*;

/// Ranks of jobs that wait in the order added count up from here, those of `lifo`
/// jobs down from it: a `lifo` job is taken before every job waiting at its priority.
const RANK_BASE: u64 = 1 << 62;

/// A queue's index of jobs: `(order, tiebreak, id)`, first first. Every index has
/// this one shape, so that the wasm builds hold one `BTreeSet`'s code, not one per
/// key type: the waiting jobs' key is `(priority, rank)`, the others' a time and 0.
type JobIndex = BTreeSet<(u64, u64, Name)>;

/// One queue's records and indexes.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) record: Option<QueueRecord>,
    pub(super) jobs: FxHashMap<Name, Arc<JobRecord>>,
    pub(super) repeats: VecMap<Name, RepeatRecord>,
    /// `(priority, rank, id)` of the waiting jobs: the first is taken next.
    waiting: JobIndex,
    /// `(until_ms, 0, id)`.
    delayed: JobIndex,
    /// `(lease_until_ms, 0, id)`.
    active: JobIndex,
    /// `(finished_on_ms, 0, id)`.
    completed: JobIndex,
    failed: JobIndex,
    /// `(0, 0, id)`.
    waiting_children: JobIndex,
    /// The ids of the jobs in each storage page ([`job_page`]), in order.
    pages: FxHashMap<u64, VecMap<Name, ()>>,
    fifo_next: u64,
    lifo_next: u64,
    /// The rate limiter's window: when it started and how many jobs it let start.
    /// Not stored: a new writer starts a new window.
    window: (u64, u32),
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            record: None,
            jobs: FxHashMap::default(),
            repeats: VecMap::new(),
            waiting: JobIndex::new(),
            delayed: JobIndex::new(),
            active: JobIndex::new(),
            completed: JobIndex::new(),
            failed: JobIndex::new(),
            waiting_children: JobIndex::new(),
            pages: FxHashMap::default(),
            fifo_next: RANK_BASE,
            lifo_next: RANK_BASE - 1,
            window: (0, 0),
        }
    }
}

impl QueueState {
    /// The index a job is in, and its key there.
    fn index_of(&mut self, id: &Name, job: &JobRecord) -> (&mut JobIndex, (u64, u64, Name)) {
        let id = id.clone();
        match &job.state {
            JobState::Waiting => (&mut self.waiting, (u64::from(job.priority), job.rank, id)),
            JobState::Delayed { until_ms } => (&mut self.delayed, (*until_ms, 0, id)),
            JobState::Active { lease_until_ms, .. } => (&mut self.active, (*lease_until_ms, 0, id)),
            JobState::Completed => (&mut self.completed, (job.finished_on_ms.unwrap_or(0), 0, id)),
            JobState::Failed => (&mut self.failed, (job.finished_on_ms.unwrap_or(0), 0, id)),
            JobState::WaitingChildren => (&mut self.waiting_children, (0, 0, id)),
        }
    }

    fn index(&mut self, id: &Name, job: &JobRecord) {
        let (index, key) = self.index_of(id, job);
        index.insert(key);
        if matches!(job.state, JobState::Waiting) {
            if job.rank >= RANK_BASE {
                self.fifo_next = self.fifo_next.max(job.rank + 1);
            } else {
                self.lifo_next = self.lifo_next.min(job.rank.saturating_sub(1));
            }
        }
    }

    fn unindex(&mut self, id: &Name, job: &JobRecord) {
        let (index, key) = self.index_of(id, job);
        index.remove(&key);
    }

    /// Stores (or with `None` removes) a job, keeping the indexes.
    fn set_job(&mut self, id: &Name, job: Option<Arc<JobRecord>>) {
        if let Some(old) = self.jobs.remove(id) {
            self.unindex(id, &old);
        }
        let page = job_page(id);
        match job {
            Some(job) => {
                self.index(id, &job);
                self.jobs.insert(id.clone(), job);
                self.pages.entry(page).or_default().insert(id.clone(), ());
            }
            None => {
                if let Some(ids) = self.pages.get_mut(&page) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.pages.remove(&page);
                    }
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.record.is_none() && self.jobs.is_empty() && self.repeats.is_empty()
    }

    fn paused(&self) -> bool {
        self.record.is_some_and(|r| r.paused)
    }

    /// The waiting jobs `state` lists: BullMQ lists those without priority as
    /// `paused` while the queue is paused, else as `waiting`, and the others as
    /// `prioritized`.
    fn waiting_in<'a>(&'a self, state: &str) -> impl Iterator<Item = &'a Name> + 'a {
        let paused = self.paused();
        let prioritized = state == "prioritized";
        let unprioritized = match state {
            "waiting" | "wait" => !paused,
            "paused" => paused,
            _ => false,
        };
        self.waiting.iter().filter(move |(p, _, _)| if prioritized { *p > 0 } else { unprioritized && *p == 0 }).map(|(_, _, id)| id)
    }

    /// The ids of jobs in `state` (a BullMQ state name), in the order `asc` says:
    /// waiting ones in the order they will be taken, the others by time.
    fn ids_in(&self, state: &str, asc: bool) -> Vec<Name> {
        let ordered: Vec<Name> = match state {
            "waiting" | "wait" | "paused" | "prioritized" => self.waiting_in(state).cloned().collect(),
            "delayed" => ids(&self.delayed),
            "active" => ids(&self.active),
            "completed" => ids(&self.completed).into_iter().rev().collect(),
            "failed" => ids(&self.failed).into_iter().rev().collect(),
            "waiting-children" => ids(&self.waiting_children),
            _ => Vec::new(),
        };
        // Finished jobs list newest first by default, as BullMQ's sorted sets do.
        let newest_first = matches!(state, "completed" | "failed");
        if asc == newest_first {
            ordered.into_iter().rev().collect()
        } else {
            ordered
        }
    }

    fn count_in(&self, state: &str) -> usize {
        match state {
            "waiting" | "wait" | "paused" | "prioritized" => self.waiting_in(state).count(),
            "delayed" => self.delayed.len(),
            "active" => self.active.len(),
            "completed" => self.completed.len(),
            "failed" => self.failed.len(),
            "waiting-children" => self.waiting_children.len(),
            _ => 0,
        }
    }
}

/// The ids an index holds, in its order.
fn ids(index: &JobIndex) -> Vec<Name> {
    index.iter().map(|(_, _, id)| id.clone()).collect()
}

/// The states `getJobCounts()` and `getJobs()` know, in BullMQ's order.
pub const JOB_STATES: [&str; 8] = ["active", "completed", "delayed", "failed", "paused", "prioritized", "waiting", "waiting-children"];

/// The rate limiter of a queue's workers (`limiter: { max, duration }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limiter {
    pub max: u32,
    pub duration_ms: u64,
}

/// One node of a flow (`FlowProducer.add`), flattened parents first: `parent` is
/// the index of its parent node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowNode {
    pub queue: String,
    pub spec: JobSpec,
    pub parent: Option<usize>,
}

/// What a worker made of a job it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The processor's result, as JSON text.
    Complete { id: String, returnvalue: String },
    /// A failed attempt; `delay_ms` overrides the job's backoff (a custom
    /// strategy); `unrecoverable` fails it for good.
    Fail { id: String, error: String, stacktrace: Vec<String>, delay_ms: Option<u64>, unrecoverable: bool },
}

/// A job queue operation ([`Engine::jobs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOp {
    /// `add`, `addBulk`: all or none.
    Add {
        jobs: Vec<JobSpec>,
    },
    /// `FlowProducer.add`: every node in one commit.
    Flow {
        nodes: Vec<FlowNode>,
    },
    /// A worker's round: settles jobs it holds (`token`), then leases it up to
    /// `take` waiting jobs, in one commit: the job finished and the next begun, as
    /// BullMQ's `moveToFinished` fetches the next job.
    Work {
        token: String,
        settle: Vec<Settlement>,
        take: u32,
        lease_ms: u64,
        limiter: Option<Limiter>,
    },
    /// Renews the leases of the worker's active jobs named.
    Extend {
        token: String,
        ids: Vec<String>,
        lease_ms: u64,
    },
    Progress {
        id: String,
        progress: String,
    },
    Log {
        id: String,
        row: String,
    },
    Get {
        id: String,
    },
    Logs {
        id: String,
        start: u64,
        end: Option<u64>,
        asc: bool,
    },
    List {
        states: Vec<String>,
        start: u64,
        end: Option<u64>,
        asc: bool,
    },
    Counts {
        states: Vec<String>,
    },
    Pause,
    Resume,
    /// Removes the waiting jobs, and the delayed ones with `delayed`.
    Drain {
        delayed: bool,
    },
    Obliterate {
        force: bool,
    },
    /// Removes up to `limit` (0: all) jobs in `state` older than `grace_ms`.
    Clean {
        grace_ms: u64,
        limit: u64,
        state: String,
    },
    /// `job.retry(state)`: a failed (or completed) job waits again.
    Retry {
        id: String,
        state: String,
    },
    /// `queue.retryJobs({ state, count })`.
    RetryAll {
        state: String,
        count: u64,
    },
    Remove {
        id: String,
    },
    Promote {
        id: String,
    },
    Repeatables,
    RemoveRepeatable {
        key: String,
    },
}

impl JobOp {
    /// Whether it changes nothing: the writer's reads.
    pub fn reads(&self) -> bool {
        matches!(self, JobOp::Get { .. } | JobOp::Logs { .. } | JobOp::List { .. } | JobOp::Counts { .. } | JobOp::Repeatables)
    }
}

fn missing(queue: &str, id: &str) -> FerryError {
    FerryError::invalid(format!("job '{id}' of queue '{queue}' does not exist"))
}

fn check_text(field: &str, text: &str) -> Result<()> {
    if text.len() > JOB_TEXT_BYTES_MAX {
        return Err(FerryError::invalid(format!("{field} must be at most {JOB_TEXT_BYTES_MAX} bytes, got {}", text.len())));
    }
    Ok(())
}

fn check_state(field: &str, state: &str) -> Result<()> {
    if state == "wait" || JOB_STATES.contains(&state) {
        return Ok(());
    }
    Err(FerryError::invalid(format!("{field} '{state}' is not a job state: one of {}", JOB_STATES.join(", "))))
}

/// `jobId`s the queue gives are numbers: a custom one may not look like them, or
/// hold the ':' that repeatable jobs' ids use.
fn check_job_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(FerryError::invalid("jobId must not be empty"));
    }
    check_text("jobId", id)?;
    if id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FerryError::invalid(format!("jobId '{id}' is an integer: custom ids cannot be integers, those are the ids the queue gives")));
    }
    if id.contains(':') {
        return Err(FerryError::invalid(format!("jobId '{id}' holds ':', which repeatable jobs' ids use")));
    }
    Ok(())
}

fn check_spec(spec: &JobSpec, max_bytes: u64) -> Result<()> {
    check_text("name", &spec.name)?;
    if spec.data.len() as u64 > max_bytes {
        return Err(FerryError::new(ErrorCode::MessageTooLarge, format!("data is {} bytes, more than maxMessageBytes ({max_bytes})", spec.data.len())));
    }
    if let Some(id) = &spec.id {
        check_job_id(id)?;
    }
    if spec.priority > JOB_PRIORITY_MAX {
        return Err(FerryError::invalid(format!("priority must be between 0 and {JOB_PRIORITY_MAX}, got {}", spec.priority)));
    }
    check_range("attempts", u64::from(spec.opts.attempts), 1, u64::from(ATTEMPTS_MAX))?;
    check_range("delay", spec.delay_ms, 0, DELAY_MS_MAX)?;
    if let Some(Backoff::Fixed(ms) | Backoff::Exponential(ms) | Backoff::Custom(_, ms)) = &spec.opts.backoff {
        check_range("backoff.delay", *ms, 0, BACKOFF_MS_MAX)?;
    }
    if let Some(repeat) = &spec.repeat {
        match &repeat.schedule {
            Schedule::Cron(pattern) => {
                Cron::parse(pattern).map_err(|e| FerryError::invalid(format!("repeat.pattern: {e}")))?;
            }
            Schedule::Every(ms) => check_range("repeat.every", *ms, 1, DELAY_MS_MAX)?,
        }
        if spec.delay_ms > 0 {
            return Err(FerryError::invalid("delay cannot be combined with repeat: use repeat.startDate"));
        }
        if let Some(key) = &repeat.key {
            check_text("job scheduler id", key)?;
        }
    }
    Ok(())
}

/// The next slot of `schedule` strictly after `after_ms`, within its end.
fn next_slot(repeat: &RepeatSpec, after_ms: u64) -> Option<u64> {
    let after_ms = match repeat.start_ms {
        Some(start) if start > after_ms => start - 1,
        _ => after_ms,
    };
    let slot = match &repeat.schedule {
        Schedule::Every(every) => (after_ms / every).checked_add(1)?.checked_mul(*every)?,
        Schedule::Cron(pattern) => Cron::parse(pattern).ok()?.next_after(after_ms)?,
    };
    repeat.end_ms.map_or(true, |end| slot <= end).then_some(slot)
}

/// BullMQ's key of a repeatable job: `name:jobId:endDate:tz:pattern|every`.
fn repeat_key(spec: &JobSpec, repeat: &RepeatSpec) -> String {
    if let Some(key) = &repeat.key {
        return key.clone();
    }
    let end = repeat.end_ms.map(|ms| ms.to_string()).unwrap_or_default();
    let schedule = match &repeat.schedule {
        Schedule::Cron(pattern) => pattern.clone(),
        Schedule::Every(ms) => ms.to_string(),
    };
    format!("{}:{}:{end}::{schedule}", spec.name, spec.id.as_deref().unwrap_or(""))
}

/// Appends an event: `{ queue, event, jobId, ...fields }`, fields given as JSON.
/// Appends an event to `out`, the events of this commit as the items of a JSON
/// array: one text for all, not one allocation per event.
fn event(out: &mut String, queue: &str, name: &str, id: &str, fields: &str) {
    out.push_str(if out.is_empty() { "{\"queue\":" } else { ",{\"queue\":" });
    string(out, queue);
    out.push_str(",\"event\":");
    string(out, name);
    out.push_str(",\"jobId\":");
    string(out, id);
    out.push_str(fields);
    out.push('}');
}

fn array(out: &mut String, items: impl IntoIterator<Item = String>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
}

impl Engine {
    fn queue(&self, queue: &str) -> Option<&QueueState> {
        self.queues.get(queue)
    }

    fn job(&self, queue: &str, id: &str) -> Option<&JobRecord> {
        self.queue(queue)?.jobs.get(id).map(|job| &**job)
    }

    fn put_job(&mut self, queue: &Name, id: &Name, job: Option<JobRecord>) {
        self.put(Key::Job(queue.clone(), id.clone()), job.map(|j| Record::Job(Arc::new(j))));
    }

    /// The job as JSON; without its data, options and children's values unless
    /// `whole` (the caller has them: it just added or processed the job).
    fn job_json(&self, queue: &str, id: &str, whole: bool) -> String {
        let mut out = String::new();
        match self.queue(queue).and_then(|q| q.jobs.get(id).map(|job| (q, job))) {
            Some((q, job)) => job_json(&mut out, queue, id, job, q.paused(), whole),
            None => out.push_str("null"),
        }
        out
    }

    /// Events of the transitions stored by the last commit, as a JSON array of
    /// objects, for the driver to tell every context; `None` when there were none.
    pub fn take_job_events(&mut self) -> Option<String> {
        let events = std::mem::take(&mut self.job_events);
        (!events.is_empty()).then(|| format!("[{events}]"))
    }

    /// A rank for a job starting to wait now.
    fn next_rank(&self, queue: &str, lifo: bool, priority: u32) -> u64 {
        let q = self.queue(queue);
        match (lifo && priority == 0, q) {
            (true, Some(q)) => q.lifo_next,
            (true, None) => RANK_BASE - 1,
            (false, Some(q)) => q.fifo_next,
            (false, None) => RANK_BASE,
        }
    }

    /// Moves a job to waiting (or to its parent's children, or delayed), with its event.
    fn make_waiting(&mut self, queue: &Name, id: &Name, mut job: JobRecord, prev: &str) {
        job.rank = self.next_rank(queue, job.opts.lifo, job.priority);
        job.state = JobState::Waiting;
        event(&mut self.job_events, queue, "waiting", id, &format!(",\"prev\":\"{prev}\""));
        self.put_job(queue, id, Some(job));
    }

    /// Runs one queue operation at `now_ms`; answers JSON for the face.
    pub fn jobs(&mut self, queue: &str, op: JobOp, now_ms: u64) -> Result<String> {
        check_name("queue name", queue)?;
        let q = Name::from(queue);
        if !op.reads() {
            self.expire_jobs_of(&q, now_ms);
        }
        let mut out = String::new();
        match op {
            JobOp::Add { jobs } => {
                if jobs.len() > JOBS_BATCH_MAX {
                    return Err(FerryError::invalid(format!("addBulk takes at most {JOBS_BATCH_MAX} jobs, got {}", jobs.len())));
                }
                for spec in &jobs {
                    check_spec(spec, self.config.max_message_bytes)?;
                }
                let added: Vec<(Name, bool)> = jobs.iter().map(|spec| self.add_job(&q, spec, now_ms)).collect();
                // A new job is what the caller gave plus its id, state and time: the
                // face builds it from those, given as `[id, state, timestamp]`;
                // another (a duplicate, a repeat's instance) comes whole.
                let paused = self.queue(queue).is_some_and(QueueState::paused);
                out.push_str("{\"jobs\":");
                array(
                    &mut out,
                    added.iter().map(|(id, fresh)| match self.job(queue, id).filter(|_| *fresh) {
                        Some(job) => {
                            let mut short = String::from("[");
                            string(&mut short, id);
                            let _ = write!(short, ",\"{}\",{}]", job.state_name(paused), job.timestamp_ms);
                            short
                        }
                        None => self.job_json(queue, id, true),
                    }),
                );
                out.push('}');
            }
            JobOp::Flow { nodes } => {
                let ids = self.add_flow(&nodes, now_ms)?;
                out.push_str("{\"jobs\":");
                array(&mut out, ids.iter().map(|(q, id)| self.job_json(q, id, false)));
                out.push('}');
            }
            JobOp::Work { token, settle, take, lease_ms, limiter } => {
                check_range("concurrency", u64::from(take), 0, u64::from(JOBS_TAKE_MAX))?;
                check_range("lockDuration", lease_ms, JOB_LEASE_MS_MIN, JOB_LEASE_MS_MAX)?;
                check_text("token", &token)?;
                if settle.len() > JOBS_BATCH_MAX {
                    return Err(FerryError::invalid(format!("a worker settles at most {JOBS_BATCH_MAX} jobs at once, got {}", settle.len())));
                }
                if let Some(l) = limiter {
                    check_range("limiter.max", u64::from(l.max), 1, u64::from(u32::MAX))?;
                    check_range("limiter.duration", l.duration_ms, 1, DELAY_MS_MAX)?;
                }
                out.push_str("{\"settled\":");
                let mut settled = Vec::with_capacity(settle.len());
                for item in settle {
                    let (id, done) = match item {
                        Settlement::Complete { id, returnvalue } => {
                            let done = self.complete_job(&q, &Name::from(id.as_str()), &token, returnvalue, now_ms);
                            (id, done)
                        }
                        Settlement::Fail { id, error, stacktrace, delay_ms, unrecoverable } => {
                            let done = self.fail_job(&q, &Name::from(id.as_str()), &token, error, stacktrace, delay_ms, unrecoverable, now_ms);
                            (id, done)
                        }
                    };
                    let mut one = format!("{{\"done\":{done},\"job\":");
                    match self.queue(queue).and_then(|s| s.jobs.get(id.as_str()).map(|job| (s, job))) {
                        Some((s, job)) => settled_json(&mut one, job, s.paused()),
                        None => one.push_str("null"),
                    }
                    one.push('}');
                    settled.push(one);
                }
                array(&mut out, settled);
                let (taken, limited_until) = if take > 0 { self.take_jobs(&q, &Name::from(token), take, lease_ms, limiter, now_ms) } else { (Vec::new(), None) };
                out.push_str(",\"jobs\":");
                array(&mut out, taken.iter().map(|id| self.job_json(queue, id, true)));
                out.push_str(",\"nextMs\":");
                let next = self.queue(queue).and_then(|s| s.delayed.first().map(|(due, _, _)| *due));
                let next = match (next, limited_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match next {
                    Some(ms) => {
                        let _ = write!(out, "{ms}");
                    }
                    None => out.push_str("null"),
                }
                let _ = write!(out, ",\"limited\":{}}}", limited_until.is_some());
            }
            JobOp::Extend { token, ids, lease_ms } => {
                check_range("lockDuration", lease_ms, JOB_LEASE_MS_MIN, JOB_LEASE_MS_MAX)?;
                let mut renewed = 0;
                for id in ids {
                    let id = Name::from(id.as_str());
                    let Some(mut job) = self.job(&q, &id).cloned() else { continue };
                    if let JobState::Active { token: held, .. } = &job.state {
                        if **held == *token {
                            job.state = JobState::Active { token: held.clone(), lease_until_ms: now_ms.saturating_add(lease_ms) };
                            self.put_job(&q, &id, Some(job));
                            renewed += 1;
                        }
                    }
                }
                let _ = write!(out, "{{\"count\":{renewed}}}");
            }
            JobOp::Progress { id, progress } => {
                check_text("progress", &progress)?;
                let id = Name::from(id.as_str());
                let mut job = self.job(&q, &id).cloned().ok_or_else(|| missing(queue, &id))?;
                event(&mut self.job_events, &q, "progress", &id, &format!(",\"data\":{progress}"));
                job.progress = Name::from(progress);
                self.put_job(&q, &id, Some(job));
                out.push_str("{\"done\":true}");
            }
            JobOp::Log { id, row } => {
                check_text("log row", &row)?;
                let id = Name::from(id.as_str());
                let mut job = self.job(&q, &id).cloned().ok_or_else(|| missing(queue, &id))?;
                job.logs.push(row);
                let keep = job.opts.keep_logs.unwrap_or(JOB_LOGS_MAX).min(JOB_LOGS_MAX) as usize;
                let over = job.logs.len().saturating_sub(keep);
                job.logs.drain(..over);
                let _ = write!(out, "{{\"count\":{}}}", job.logs.len());
                self.put_job(&q, &id, Some(job));
            }
            JobOp::Get { id } => {
                let _ = write!(out, "{{\"job\":{}}}", self.job_json(queue, &id, true));
            }
            JobOp::Logs { id, start, end, asc } => {
                let logs = self.job(queue, &id).map(|j| j.logs.clone()).unwrap_or_default();
                let count = logs.len();
                let ordered: Vec<String> = if asc { logs } else { logs.into_iter().rev().collect() };
                let end = end.map_or(count, |e| (e as usize).saturating_add(1).min(count));
                out.push_str("{\"logs\":");
                let mut rows = String::new();
                array(
                    &mut rows,
                    ordered.into_iter().take(end).skip(start as usize).map(|row| {
                        let mut s = String::new();
                        string(&mut s, &row);
                        s
                    }),
                );
                out.push_str(&rows);
                let _ = write!(out, ",\"count\":{count}}}");
            }
            JobOp::List { states, start, end, asc } => {
                let states = if states.is_empty() { JOB_STATES.iter().map(|s| s.to_string()).collect() } else { states };
                for s in &states {
                    check_state("state", s)?;
                }
                let ids: Vec<Name> = self.queue(queue).map(|qs| states.iter().flat_map(|s| qs.ids_in(s, asc)).collect()).unwrap_or_default();
                let end = end.map_or(ids.len(), |e| (e as usize).saturating_add(1).min(ids.len()));
                let picked: Vec<&Name> = ids.iter().take(end).skip(start as usize).take(JOBS_BATCH_MAX).collect();
                out.push_str("{\"jobs\":");
                array(&mut out, picked.iter().map(|id| self.job_json(queue, id, true)));
                out.push('}');
            }
            JobOp::Counts { states } => {
                let states = if states.is_empty() { JOB_STATES.iter().map(|s| s.to_string()).collect() } else { states };
                for s in &states {
                    check_state("state", s)?;
                }
                out.push_str("{\"counts\":{");
                for (i, s) in states.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(&mut out, s);
                    let _ = write!(out, ":{}", self.queue(queue).map_or(0, |qs| qs.count_in(s)));
                }
                let _ = write!(out, "}},\"paused\":{}}}", self.queue(queue).is_some_and(QueueState::paused));
            }
            JobOp::Pause | JobOp::Resume => {
                let paused = matches!(op, JobOp::Pause);
                let mut record = self.queue(queue).and_then(|s| s.record).unwrap_or_default();
                if record.paused != paused {
                    record.paused = paused;
                    self.put(Key::Queue(q.clone()), Some(Record::Queue(record)));
                    event(&mut self.job_events, &q, if paused { "paused" } else { "resumed" }, "", "");
                }
                let _ = write!(out, "{{\"paused\":{paused}}}");
            }
            JobOp::Drain { delayed } => {
                let ids: Vec<Name> = self.queue(queue).map_or_else(Vec::new, |s| {
                    let waiting = s.waiting.iter().map(|(_, _, id)| id.clone());
                    if delayed {
                        waiting.chain(s.delayed.iter().map(|(_, _, id)| id.clone())).collect()
                    } else {
                        waiting.collect()
                    }
                });
                for id in &ids {
                    self.remove_job(&q, id);
                }
                let _ = write!(out, "{{\"count\":{}}}", ids.len());
            }
            JobOp::Obliterate { force } => {
                let Some(state) = self.queue(queue) else {
                    out.push_str("{\"count\":0}");
                    return Ok(out);
                };
                if !force && !state.active.is_empty() {
                    return Err(FerryError::invalid(format!("queue '{queue}' has {} active jobs: obliterate({{ force: true }}) removes them too", state.active.len())));
                }
                let ids: Vec<Name> = state.jobs.keys().cloned().collect();
                let repeats: Vec<Name> = state.repeats.keys().cloned().collect();
                for id in &ids {
                    self.put_job(&q, id, None);
                }
                for key in repeats {
                    self.put(Key::Repeat(q.clone(), key), None);
                }
                self.put(Key::Queue(q.clone()), None);
                let _ = write!(out, "{{\"count\":{}}}", ids.len());
            }
            JobOp::Clean { grace_ms, limit, state } => {
                check_state("type", &state)?;
                let before = now_ms.saturating_sub(grace_ms);
                let ids: Vec<Name> = self
                    .queue(queue)
                    .map(|s| s.ids_in(&state, true))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|id| self.job(queue, id).is_some_and(|j| j.finished_on_ms.unwrap_or(j.timestamp_ms) <= before && !matches!(j.state, JobState::Active { .. })))
                    .take(if limit == 0 { usize::MAX } else { limit as usize })
                    .collect();
                for id in &ids {
                    self.remove_job(&q, id);
                }
                out.push_str("{\"ids\":");
                array(
                    &mut out,
                    ids.iter().map(|id| {
                        let mut s = String::new();
                        string(&mut s, id);
                        s
                    }),
                );
                out.push('}');
            }
            JobOp::Retry { id, state } => {
                let id = Name::from(id.as_str());
                let job = self.job(&q, &id).cloned().ok_or_else(|| missing(queue, &id))?;
                let finished = matches!((&job.state, state.as_str()), (JobState::Failed, "failed") | (JobState::Completed, "completed"));
                if !finished {
                    return Err(FerryError::invalid(format!("job '{id}' is {}, not {state}: only a {state} job can be retried", job.state_name(false))));
                }
                self.retry_job(&q, &id, job);
                let _ = write!(out, "{{\"job\":{}}}", self.job_json(queue, &id, false));
            }
            JobOp::RetryAll { state, count } => {
                if state != "failed" && state != "completed" {
                    return Err(FerryError::invalid(format!("state '{state}': retryJobs retries failed or completed jobs")));
                }
                let ids: Vec<Name> = self.queue(queue).map(|s| s.ids_in(&state, true)).unwrap_or_default();
                let n = if count == 0 { ids.len() } else { ids.len().min(count as usize) };
                for id in &ids[..n] {
                    if let Some(job) = self.job(&q, id).cloned() {
                        self.retry_job(&q, id, job);
                    }
                }
                let _ = write!(out, "{{\"count\":{n}}}");
            }
            JobOp::Remove { id } => {
                let id = Name::from(id.as_str());
                let removed = match self.job(&q, &id) {
                    None => false,
                    Some(JobRecord { state: JobState::Active { .. }, .. }) => {
                        return Err(FerryError::invalid(format!("job '{id}' is active: a job being processed cannot be removed")));
                    }
                    Some(_) => {
                        self.remove_job(&q, &id);
                        true
                    }
                };
                let _ = write!(out, "{{\"removed\":{removed}}}");
            }
            JobOp::Promote { id } => {
                let id = Name::from(id.as_str());
                let job = self.job(&q, &id).cloned().ok_or_else(|| missing(queue, &id))?;
                if !matches!(job.state, JobState::Delayed { .. }) {
                    return Err(FerryError::invalid(format!("job '{id}' is {}, not delayed: only a delayed job can be promoted", job.state_name(false))));
                }
                self.make_waiting(&q, &id, job, "delayed");
                let _ = write!(out, "{{\"job\":{}}}", self.job_json(queue, &id, false));
            }
            JobOp::Repeatables => {
                out.push_str("{\"repeatables\":");
                let list: Vec<String> = self.queue(queue).map_or_else(Vec::new, |s| {
                    s.repeats
                        .iter()
                        .map(|(key, r)| {
                            let mut one = String::new();
                            repeat_json(&mut one, key, r);
                            one
                        })
                        .collect()
                });
                array(&mut out, list);
                out.push('}');
            }
            JobOp::RemoveRepeatable { key } => {
                let key = Name::from(key.as_str());
                let removed = self.remove_repeat(&q, &key);
                let _ = write!(out, "{{\"removed\":{removed}}}");
            }
        }
        Ok(out)
    }

    /// Adds one checked job (or repeatable job) and returns its id, and whether it
    /// is a new job made of `spec` alone; a job of the same id already there is
    /// kept as it is.
    fn add_job(&mut self, q: &Name, spec: &JobSpec, now_ms: u64) -> (Name, bool) {
        if let Some(repeat) = &spec.repeat {
            return (self.add_repeat(q, spec, repeat, now_ms), false);
        }
        let id = match &spec.id {
            Some(id) => Name::from(id.as_str()),
            None => self.new_job_id(q),
        };
        if self.job(q, &id).is_some() {
            event(&mut self.job_events, q, "duplicated", &id, "");
            return (id, false);
        }
        self.place_new(q, &id, JobRecord::new(spec, now_ms), now_ms);
        (id, true)
    }

    fn new_job_id(&mut self, q: &Name) -> Name {
        let mut record = self.queue(q).and_then(|s| s.record).unwrap_or_default();
        record.last_id += 1;
        self.put(Key::Queue(q.clone()), Some(Record::Queue(record)));
        Name::from(record.last_id.to_string())
    }

    /// Stores a new job where it starts: waiting for its children, delayed, or waiting.
    fn place_new(&mut self, q: &Name, id: &Name, mut job: JobRecord, now_ms: u64) {
        let mut fields = String::from(",\"name\":");
        string(&mut fields, &job.name);
        event(&mut self.job_events, q, "added", id, &fields);
        if !job.children_pending.is_empty() {
            job.state = JobState::WaitingChildren;
            self.put_job(q, id, Some(job));
        } else if job.delay_ms > 0 {
            let until_ms = now_ms.saturating_add(job.delay_ms);
            job.state = JobState::Delayed { until_ms };
            event(&mut self.job_events, q, "delayed", id, &format!(",\"delay\":{until_ms}"));
            self.put_job(q, id, Some(job));
        } else {
            self.make_waiting(q, id, job, "added");
        }
    }

    fn add_flow(&mut self, nodes: &[FlowNode], now_ms: u64) -> Result<Vec<(Name, Name)>> {
        if nodes.len() > JOBS_BATCH_MAX {
            return Err(FerryError::invalid(format!("a flow holds at most {JOBS_BATCH_MAX} jobs, got {}", nodes.len())));
        }
        for (i, node) in nodes.iter().enumerate() {
            check_name("queueName", &node.queue)?;
            check_spec(&node.spec, self.config.max_message_bytes)?;
            if node.spec.repeat.is_some() {
                return Err(FerryError::invalid("a job of a flow cannot repeat"));
            }
            if node.parent.is_some_and(|p| p >= i) {
                return Err(FerryError::storage("a flow's node comes before its parent"));
            }
        }
        let mut ids: Vec<(Name, Name)> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let q = Name::from(node.queue.as_str());
            let id = match &node.spec.id {
                Some(id) => Name::from(id.as_str()),
                None => self.new_job_id(&q),
            };
            if self.job(&q, &id).is_some() {
                return Err(FerryError::invalid(format!("job '{id}' of queue '{q}' already exists: a flow's jobs are new")));
            }
            ids.push((q, id));
        }
        // Children before parents are stored: a parent is placed knowing its children.
        for (i, node) in nodes.iter().enumerate().rev() {
            let (q, id) = ids[i].clone();
            let mut job = JobRecord::new(&node.spec, now_ms);
            job.parent = node.parent.map(|p| ids[p].clone());
            job.children_pending = nodes.iter().enumerate().filter(|(_, n)| n.parent == Some(i)).map(|(c, _)| ids[c].clone()).collect();
            self.place_new(&q, &id, job, now_ms);
        }
        Ok(ids)
    }

    fn add_repeat(&mut self, q: &Name, spec: &JobSpec, repeat: &RepeatSpec, now_ms: u64) -> Name {
        let key = Name::from(repeat_key(spec, repeat));
        if let Some(existing) = self.queue(q).and_then(|s| s.repeats.get(&key)) {
            if existing.spec == *spec {
                let next = existing.next_ms.map(|slot| format!("repeat:{key}:{slot}"));
                return Name::from(next.unwrap_or_default());
            }
            // A scheduler upserted with new settings starts over from its next slot.
            self.remove_repeat(q, &key);
        }
        let record = RepeatRecord { spec: spec.clone(), count: 0, next_ms: None };
        self.schedule_repeat(q, &key, record, now_ms, now_ms)
    }

    /// Makes the repeatable job's instance for its next slot after `after_ms`, if
    /// it has one, and stores the repeatable job; returns the instance's id.
    fn schedule_repeat(&mut self, q: &Name, key: &Name, mut record: RepeatRecord, after_ms: u64, now_ms: u64) -> Name {
        let Some(repeat) = record.spec.repeat.clone() else { return Name::from("") };
        let slot = next_slot(&repeat, after_ms).filter(|_| repeat.limit.map_or(true, |limit| record.count < limit));
        record.next_ms = slot;
        let id = match slot {
            Some(slot) => {
                record.count += 1;
                let id = Name::from(format!("repeat:{key}:{slot}"));
                let mut job = JobRecord::new(&JobSpec { repeat: None, id: None, ..record.spec.clone() }, now_ms);
                job.timestamp_ms = now_ms;
                job.repeat_key = Some(key.clone());
                job.delay_ms = slot.saturating_sub(now_ms);
                if self.job(q, &id).is_none() {
                    self.place_new(q, &id, job, now_ms);
                }
                id
            }
            None => Name::from(""),
        };
        self.put(Key::Repeat(q.clone(), key.clone()), Some(Record::Repeat(Box::new(record))));
        id
    }

    fn remove_repeat(&mut self, q: &Name, key: &Name) -> bool {
        let Some(record) = self.queue(q).and_then(|s| s.repeats.get(key)).cloned() else { return false };
        if let Some(slot) = record.next_ms {
            let id = Name::from(format!("repeat:{key}:{slot}"));
            if self.job(q, &id).is_some_and(|j| matches!(j.state, JobState::Delayed { .. })) {
                self.remove_job(q, &id);
            }
        }
        self.put(Key::Repeat(q.clone(), key.clone()), None);
        true
    }

    /// Leases the first waiting jobs, as many as `max` and the limiter allow.
    fn take_jobs(&mut self, q: &Name, token: &Name, max: u32, lease_ms: u64, limiter: Option<Limiter>, now_ms: u64) -> (Vec<Name>, Option<u64>) {
        let Some(state) = self.queues.get_mut(q) else { return (Vec::new(), None) };
        if state.paused() {
            return (Vec::new(), None);
        }
        let mut allowed = max;
        let mut limited_until = None;
        if let Some(l) = limiter {
            if now_ms >= state.window.0.saturating_add(l.duration_ms) || now_ms < state.window.0 {
                state.window = (now_ms, 0);
            }
            allowed = allowed.min(l.max.saturating_sub(state.window.1));
            if allowed == 0 && !state.waiting.is_empty() {
                limited_until = Some(state.window.0.saturating_add(l.duration_ms));
            }
        }
        let ids: Vec<Name> = state.waiting.iter().take(allowed as usize).map(|(_, _, id)| id.clone()).collect();
        if limiter.is_some() {
            state.window.1 = state.window.1.saturating_add(ids.len() as u32);
        }
        for id in &ids {
            let Some(mut job) = self.job(q, id).cloned() else { continue };
            job.state = JobState::Active { token: token.clone(), lease_until_ms: now_ms.saturating_add(lease_ms) };
            job.attempts_started += 1;
            job.processed_on_ms = Some(now_ms);
            event(&mut self.job_events, q, "active", id, ",\"prev\":\"waiting\"");
            self.put_job(q, id, Some(job));
        }
        if !ids.is_empty() && self.queue(q).is_some_and(|s| s.waiting.is_empty()) {
            event(&mut self.job_events, q, "drained", "", "");
        }
        (ids, limited_until)
    }

    /// The job, when `token` holds it.
    fn held_job(&self, q: &Name, id: &Name, token: &str) -> Option<JobRecord> {
        self.job(q, id).filter(|j| matches!(&j.state, JobState::Active { token: held, .. } if **held == *token)).cloned()
    }

    fn complete_job(&mut self, q: &Name, id: &Name, token: &str, returnvalue: String, now_ms: u64) -> bool {
        let Some(mut job) = self.held_job(q, id, token) else { return false };
        // BullMQ counts the attempt that completed too.
        job.attempts_made += 1;
        job.state = JobState::Completed;
        job.finished_on_ms = Some(now_ms);
        event(&mut self.job_events, q, "completed", id, &format!(",\"returnvalue\":{returnvalue},\"prev\":\"active\""));
        job.returnvalue = Some(Name::from(returnvalue.as_str()));
        let parent = job.parent.clone();
        let keep = job.opts.remove_on_complete;
        self.put_job(q, id, Some(job));
        if let Some((pq, pid)) = parent {
            self.child_completed(&pq, &pid, q, id, returnvalue);
        }
        self.keep_finished(q, keep, true, now_ms);
        true
    }

    /// A child finished: its parent keeps its value, and waits once it has no
    /// child left to wait for.
    fn child_completed(&mut self, pq: &Name, pid: &Name, q: &Name, id: &Name, value: String) {
        let Some(mut parent) = self.job(pq, pid).cloned() else { return };
        parent.children_pending.retain(|(cq, cid)| !(cq == q && cid == id));
        parent.children_values.push((format!("bull:{q}:{id}"), value));
        if parent.children_pending.is_empty() && parent.state == JobState::WaitingChildren {
            self.make_waiting(pq, pid, parent, "waiting-children");
        } else {
            self.put_job(pq, pid, Some(parent));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fail_job(
        &mut self,
        q: &Name,
        id: &Name,
        token: &str,
        error: String,
        mut stacktrace: Vec<String>,
        delay_ms: Option<u64>,
        unrecoverable: bool,
        now_ms: u64,
    ) -> bool {
        let Some(mut job) = self.held_job(q, id, token) else { return false };
        job.attempts_made += 1;
        let reason: String = error.chars().take(JOB_TEXT_BYTES_MAX).collect();
        job.failed_reason = Some(reason.clone());
        stacktrace.truncate(JOB_STACKTRACE_MAX);
        job.stacktrace = stacktrace;
        if !unrecoverable && job.attempts_made < job.opts.attempts {
            let delay = delay_ms.unwrap_or_else(|| job.opts.backoff.as_ref().map_or(0, |b| b.delay_ms(job.attempts_made))).min(BACKOFF_MS_MAX);
            let mut fields = String::from(",\"failedReason\":");
            string(&mut fields, &reason);
            event(&mut self.job_events, q, "retrying", id, &fields);
            if delay > 0 {
                let until_ms = now_ms.saturating_add(delay);
                job.state = JobState::Delayed { until_ms };
                event(&mut self.job_events, q, "delayed", id, &format!(",\"delay\":{until_ms}"));
                self.put_job(q, id, Some(job));
            } else {
                self.make_waiting(q, id, job, "failed");
            }
            return true;
        }
        self.fail_for_good(q, id, job, now_ms);
        true
    }

    /// Ends a job as failed, and its parent too when it asked for that.
    fn fail_for_good(&mut self, q: &Name, id: &Name, mut job: JobRecord, now_ms: u64) {
        job.state = JobState::Failed;
        job.finished_on_ms = Some(now_ms);
        let mut fields = String::from(",\"failedReason\":");
        string(&mut fields, job.failed_reason.as_deref().unwrap_or(""));
        fields.push_str(",\"prev\":\"active\"");
        event(&mut self.job_events, q, "failed", id, &fields);
        let keep = job.opts.remove_on_fail;
        let parent = job.parent.clone().filter(|_| job.opts.fail_parent_on_failure);
        self.put_job(q, id, Some(job));
        if let Some((pq, pid)) = parent {
            if let Some(mut parent) = self.job(&pq, &pid).cloned().filter(|p| p.state == JobState::WaitingChildren) {
                parent.failed_reason = Some(format!("child bull:{q}:{id} failed"));
                self.fail_for_good(&pq, &pid, parent, now_ms);
            }
        }
        self.keep_finished(q, keep, false, now_ms);
    }

    /// Removes the finished jobs past what `keep` keeps.
    fn keep_finished(&mut self, q: &Name, keep: Keep, completed: bool, now_ms: u64) {
        let Some(state) = self.queue(q) else { return };
        let index = if completed { &state.completed } else { &state.failed };
        let (count, age_ms) = match keep {
            Keep::All => return,
            Keep::Count(n) => (Some(n as usize), None),
            Keep::Age { age_ms, count } => (count.map(|n| n as usize), Some(age_ms)),
        };
        let newest_first = index.iter().rev();
        let doomed: Vec<Name> = newest_first
            .enumerate()
            .filter(|(i, (finished, _, _))| count.is_some_and(|n| *i >= n) || age_ms.is_some_and(|age| finished.saturating_add(age) < now_ms))
            .map(|(_, (_, _, id))| id.clone())
            .collect();
        for id in doomed {
            self.remove_job(q, &id);
        }
    }

    /// A finished job waits again. Its attempts stay counted, as BullMQ's do: a
    /// failed job retried has the attempts it had left, at least one.
    fn retry_job(&mut self, q: &Name, id: &Name, mut job: JobRecord) {
        job.stalled = 0;
        job.failed_reason = None;
        job.stacktrace.clear();
        job.returnvalue = None;
        job.finished_on_ms = None;
        job.processed_on_ms = None;
        let prev = job.state_name(false);
        self.make_waiting(q, id, job, prev);
    }

    fn remove_job(&mut self, q: &Name, id: &Name) {
        event(&mut self.job_events, q, "removed", id, "");
        self.put_job(q, id, None);
    }

    /// Housekeeping of every queue ([`Engine::tick`]).
    pub(super) fn expire_jobs(&mut self, now_ms: u64) {
        let queues: Vec<Name> = self.queues.keys().cloned().collect();
        for q in queues {
            self.expire_jobs_of(&q, now_ms);
        }
    }

    /// Delayed jobs come due (a repeatable job's next slot is made then), and
    /// active jobs whose lease ran out stall: they wait again, or fail once they
    /// stalled more than [`JOB_STALLED_MAX`] times.
    fn expire_jobs_of(&mut self, q: &Name, now_ms: u64) {
        let Some(state) = self.queue(q) else { return };
        let due: Vec<Name> = state.delayed.iter().take_while(|(until, _, _)| *until <= now_ms).map(|(_, _, id)| id.clone()).collect();
        let stalled: Vec<Name> = state.active.iter().take_while(|(until, _, _)| *until <= now_ms).map(|(_, _, id)| id.clone()).collect();
        for id in due {
            let Some(job) = self.job(q, &id).cloned() else { continue };
            let repeat = job.repeat_key.clone();
            self.make_waiting(q, &id, job, "delayed");
            let record = repeat.and_then(|key| self.queue(q)?.repeats.get(&key).cloned().map(|r| (key, r)));
            if let Some((key, record)) = record.filter(|(key, r)| r.next_ms.is_some_and(|slot| *id == *format!("repeat:{key}:{slot}"))) {
                let after = record.next_ms.unwrap_or(now_ms).max(now_ms);
                self.schedule_repeat(q, &key, record, after, now_ms);
            }
        }
        for id in stalled {
            let Some(mut job) = self.job(q, &id).cloned() else { continue };
            job.stalled += 1;
            event(&mut self.job_events, q, "stalled", &id, "");
            if job.stalled > JOB_STALLED_MAX {
                job.failed_reason = Some("job stalled more than allowable limit".into());
                self.fail_for_good(q, &id, job, now_ms);
            } else {
                self.make_waiting(q, &id, job, "active");
            }
        }
    }

    /// When queues next have housekeeping: a delayed job due, a lease running out.
    pub(super) fn offer_job_times(&self, due: &mut Earliest) {
        for state in self.queues.values() {
            if let Some((until, _, _)) = state.delayed.first() {
                due.offer(*until);
            }
            if let Some((until, _, _)) = state.active.first() {
                due.offer(*until);
            }
        }
    }

    /// Applies a job queue record ([`Engine::write`]).
    pub(super) fn write_queue_record(&mut self, key: &Key, record: Option<Record>) -> Result<()> {
        let mismatch = || FerryError::storage(format!("record of the wrong kind under a key of kind {}", key.to_parts().0));
        let q = match key {
            Key::Queue(q) | Key::Job(q, _) | Key::JobPage(q, _) | Key::Repeat(q, _) => q,
            _ => return Err(mismatch()),
        };
        let state = self.queues.get_or_default(q.clone());
        match (key, record) {
            (Key::Queue(_), Some(Record::Queue(r))) => state.record = Some(r),
            (Key::Queue(_), None) => state.record = None,
            (Key::Job(_, id), record) => match record {
                Some(Record::Job(job)) => state.set_job(id, Some(job)),
                None => state.set_job(id, None),
                Some(_) => return Err(mismatch()),
            },
            (Key::JobPage(_, page), record) => {
                let mut stored: FxHashMap<Name, Arc<JobRecord>> = match record {
                    Some(Record::JobPage(jobs)) => jobs.into_iter().collect(),
                    None => FxHashMap::default(),
                    Some(_) => return Err(mismatch()),
                };
                let held: Vec<Name> = state.pages.get(page).map(|ids| ids.keys().cloned().collect()).unwrap_or_default();
                for id in held {
                    let job = stored.remove(&id);
                    state.set_job(&id, job);
                }
                for (id, job) in stored {
                    state.set_job(&id, Some(job));
                }
            }
            (Key::Repeat(_, k), Some(Record::Repeat(r))) => {
                state.repeats.insert(k.clone(), *r);
            }
            (Key::Repeat(_, k), None) => {
                state.repeats.remove(k);
            }
            _ => return Err(mismatch()),
        }
        if state.is_empty() {
            self.queues.remove(q);
        }
        Ok(())
    }

    /// The record under a job queue key ([`Engine::record`]).
    pub(super) fn queue_record(&self, key: &Key) -> Option<Record> {
        match key {
            Key::Queue(q) => self.queue(q)?.record.map(Record::Queue),
            Key::Job(q, id) => self.queue(q)?.jobs.get(&**id).cloned().map(Record::Job),
            Key::JobPage(q, page) => {
                let state = self.queue(q)?;
                let jobs: Vec<(Name, Arc<JobRecord>)> = state.pages.get(page)?.keys().filter_map(|id| Some((id.clone(), state.jobs.get(id)?.clone()))).collect();
                (!jobs.is_empty()).then_some(Record::JobPage(jobs))
            }
            Key::Repeat(q, k) => self.queue(q)?.repeats.get(k).cloned().map(|r| Record::Repeat(Box::new(r))),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
