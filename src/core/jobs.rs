//! Jobs: the records of BullMQ-shaped queues (`ferry/bullmq`), kept by the engine
//! beside the log.
//!
//! A queue is a table of job records keyed by job id, plus its repeatable jobs and
//! whether it is paused. The engine indexes the table in memory (waiting jobs by
//! priority and rank, delayed jobs by due time, active jobs by lease, finished jobs
//! by when they finished) and rebuilds the indexes from the records, as it does
//! everything else ([`crate::core::Engine::open`]). See `engine/jobs.rs` for the
//! operations.

use std::fmt::Write as _;

use super::codec::{Reader, Writer};
use super::error::{FerryError, Result};
use super::json::{opt_number, string};
use super::limits::{JOB_CUSTOM_PAGES, JOB_PAGE_JOBS};
use super::message::Name;

/// How many finished jobs of one kind a queue keeps (`removeOnComplete`,
/// `removeOnFail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// `false`, or not given: every one.
    #[default]
    All,
    /// `true` (0) or a number: the newest `n`.
    Count(u32),
    /// `{ age, count }`: those finished within `age_ms`, at most `count` of them.
    Age { age_ms: u64, count: Option<u32> },
}

/// The delay before a failed job's next attempt (`backoff`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backoff {
    Fixed(u64),
    /// `delay * 2^(attemptsMade - 1)`.
    Exponential(u64),
    /// A strategy of the worker's (`settings.backoffStrategy`) by its type name,
    /// which gives each failed attempt its delay; `delay` when it gives none.
    Custom(String, u64),
}

impl Backoff {
    /// The delay after the `attempts_made`-th failed attempt.
    pub fn delay_ms(&self, attempts_made: u32) -> u64 {
        match *self {
            Backoff::Fixed(ms) | Backoff::Custom(_, ms) => ms,
            Backoff::Exponential(ms) => ms.saturating_mul(1u64.checked_shl(attempts_made.saturating_sub(1)).unwrap_or(u64::MAX)),
        }
        .min(super::limits::BACKOFF_MS_MAX)
    }
}

/// The options a job keeps (`opts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOpts {
    /// Attempts in all, the first included (BullMQ's default is 1: no retry).
    pub attempts: u32,
    pub backoff: Option<Backoff>,
    /// Taken before the waiting jobs of its priority (`lifo`).
    pub lifo: bool,
    pub remove_on_complete: Keep,
    pub remove_on_fail: Keep,
    /// Log rows kept, the newest (`keepLogs`); `None`: up to [`super::limits::JOB_LOGS_MAX`].
    pub keep_logs: Option<u32>,
    /// A parent fails when this child fails for good (`failParentOnFailure`).
    pub fail_parent_on_failure: bool,
}

impl Default for JobOpts {
    fn default() -> Self {
        JobOpts { attempts: 1, backoff: None, lifo: false, remove_on_complete: Keep::All, remove_on_fail: Keep::All, keep_logs: None, fail_parent_on_failure: false }
    }
}

/// Where a job is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to be taken: BullMQ's `waiting`, `prioritized` or `paused`.
    Waiting,
    /// Not to be taken before `until_ms` (a delay, a backoff, a repeat's slot).
    Delayed {
        until_ms: u64,
    },
    /// Taken by the worker holding `token`, leased until `lease_until_ms`.
    Active {
        token: Name,
        lease_until_ms: u64,
    },
    Completed,
    Failed,
    /// A parent waiting for its children (`FlowProducer`).
    WaitingChildren,
}

/// One job, as stored under [`super::records::Key::Job`].
#[derive(Clone, Debug, PartialEq, Eq)]
/// Its texts are shared (`Name`): a job is cloned whole for every commit that
/// stores its page, and its data is the bulk of it.
pub struct JobRecord {
    pub name: Name,
    /// The job's data as JSON text, as given.
    pub data: Name,
    pub opts: JobOpts,
    /// 0: none (taken first); else lower runs first.
    pub priority: u32,
    /// The delay it was added with (`job.delay`).
    pub delay_ms: u64,
    pub timestamp_ms: u64,
    pub state: JobState,
    /// Its place among the waiting jobs of its priority, given when it last
    /// started waiting: ascending is the order they are taken in.
    pub rank: u64,
    pub attempts_made: u32,
    pub attempts_started: u32,
    /// Times its lease ran out while active (`stalledCounter`).
    pub stalled: u32,
    /// JSON text (`job.progress`).
    pub progress: Name,
    pub logs: Vec<String>,
    /// JSON text of the processor's result.
    pub returnvalue: Option<Name>,
    pub failed_reason: Option<String>,
    pub stacktrace: Vec<String>,
    pub processed_on_ms: Option<u64>,
    pub finished_on_ms: Option<u64>,
    /// `(queue, id)` of its parent.
    pub parent: Option<(Name, Name)>,
    /// Its children not finished yet, by `(queue, id)`.
    pub children_pending: Vec<(Name, Name)>,
    /// What its finished children returned, by their key (`bull:{queue}:{id}`):
    /// `job.getChildrenValues()`.
    pub children_values: Vec<(String, String)>,
    /// The key of the repeatable job it is an instance of.
    pub repeat_key: Option<Name>,
}

impl JobRecord {
    /// A new job of `spec`'s, not placed yet.
    pub fn new(spec: &JobSpec, now_ms: u64) -> JobRecord {
        JobRecord {
            name: spec.name.clone(),
            data: spec.data.clone(),
            opts: spec.opts.clone(),
            priority: spec.priority,
            delay_ms: spec.delay_ms,
            timestamp_ms: spec.timestamp_ms.unwrap_or(now_ms),
            state: JobState::Waiting,
            rank: 0,
            attempts_made: 0,
            attempts_started: 0,
            stalled: 0,
            progress: Name::from("0"),
            logs: Vec::new(),
            returnvalue: None,
            failed_reason: None,
            stacktrace: Vec::new(),
            processed_on_ms: None,
            finished_on_ms: None,
            parent: None,
            children_pending: Vec::new(),
            children_values: Vec::new(),
            repeat_key: None,
        }
    }

    /// The state's name as BullMQ's `job.getState()` gives it.
    pub fn state_name(&self, queue_paused: bool) -> &'static str {
        match self.state {
            JobState::Waiting if self.priority > 0 => "prioritized",
            JobState::Waiting if queue_paused => "paused",
            JobState::Waiting => "waiting",
            JobState::Delayed { .. } => "delayed",
            JobState::Active { .. } => "active",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::WaitingChildren => "waiting-children",
        }
    }
}

/// A job to add (`queue.add(name, data, opts)`), checked by whoever built it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// Shared with the records made from it: adding a job copies no text.
    pub name: Name,
    pub data: Name,
    /// `jobId`: a job of this id already in the queue is returned instead.
    pub id: Option<String>,
    pub opts: JobOpts,
    pub priority: u32,
    pub delay_ms: u64,
    /// `timestamp`: when it was created, if not now.
    pub timestamp_ms: Option<u64>,
    pub repeat: Option<RepeatSpec>,
}

/// When a repeatable job fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A cron pattern ([`super::cron::Cron`]), in UTC.
    Cron(String),
    /// Every `n` ms, on the multiples of `n` since the epoch.
    Every(u64),
}

/// `repeat: { pattern | every, limit, endDate, startDate }`, or a job scheduler's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatSpec {
    pub schedule: Schedule,
    pub limit: Option<u32>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    /// The scheduler id (`upsertJobScheduler`), else the key is made from the
    /// name and schedule as BullMQ makes it.
    pub key: Option<String>,
}

/// A repeatable job: the job it makes in each slot, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatRecord {
    pub spec: JobSpec,
    /// Instances made so far.
    pub count: u32,
    /// The slot of the instance waiting for its time, if any.
    pub next_ms: Option<u64>,
}

/// A queue's own record: what is not one job's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueRecord {
    pub paused: bool,
    /// The number of the last job given an id by the queue.
    pub last_id: u64,
}

/// The page a job is stored in ([`super::records::Key::JobPage`]): jobs the queue
/// numbered by their number, so jobs added together share pages; others by a
/// hash of their id, in pages after every numbered one.
pub fn job_page(id: &str) -> u64 {
    use std::hash::Hasher;
    match id.parse::<u64>() {
        Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => n / JOB_PAGE_JOBS,
        _ => {
            let mut hasher = super::fxhash::FxHasher::default();
            hasher.write(id.as_bytes());
            u64::MAX - hasher.finish() % JOB_CUSTOM_PAGES
        }
    }
}

fn put_keep(w: &mut Writer, keep: Keep) {
    match keep {
        Keep::All => w.u8(0),
        Keep::Count(n) => {
            w.u8(1);
            w.u64(u64::from(n));
        }
        Keep::Age { age_ms, count } => {
            w.u8(2);
            w.u64(age_ms);
            w.opt_u64(count.map(u64::from));
        }
    }
}

fn keep(r: &mut Reader<'_>) -> Result<Keep> {
    Ok(match r.u8()? {
        0 => Keep::All,
        1 => Keep::Count(r.u32()?),
        2 => Keep::Age { age_ms: r.u64()?, count: r.opt_u64()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)) },
        tag => return Err(FerryError::storage(format!("corrupt record: keep {tag}"))),
    })
}

pub(crate) fn put_opts(w: &mut Writer, o: &JobOpts) {
    w.u64(u64::from(o.attempts));
    match &o.backoff {
        None => w.u8(0),
        Some(Backoff::Fixed(ms)) => {
            w.u8(1);
            w.u64(*ms);
        }
        Some(Backoff::Exponential(ms)) => {
            w.u8(2);
            w.u64(*ms);
        }
        Some(Backoff::Custom(kind, ms)) => {
            w.u8(3);
            w.str(kind);
            w.u64(*ms);
        }
    }
    w.u8(u8::from(o.lifo) | u8::from(o.fail_parent_on_failure) << 1);
    put_keep(w, o.remove_on_complete);
    put_keep(w, o.remove_on_fail);
    w.opt_u64(o.keep_logs.map(u64::from));
}

pub(crate) fn opts(r: &mut Reader<'_>) -> Result<JobOpts> {
    let attempts = r.u32()?;
    let backoff = match r.u8()? {
        0 => None,
        1 => Some(Backoff::Fixed(r.u64()?)),
        2 => Some(Backoff::Exponential(r.u64()?)),
        3 => Some(Backoff::Custom(r.str()?.to_owned(), r.u64()?)),
        tag => return Err(FerryError::storage(format!("corrupt record: backoff {tag}"))),
    };
    let flags = r.u8()?;
    Ok(JobOpts {
        attempts,
        backoff,
        lifo: flags & 1 != 0,
        fail_parent_on_failure: flags & 2 != 0,
        remove_on_complete: keep(r)?,
        remove_on_fail: keep(r)?,
        keep_logs: r.opt_u64()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    })
}

fn put_strings(w: &mut Writer, list: &[String]) {
    w.u64(list.len() as u64);
    for s in list {
        w.str(s);
    }
}

fn strings(r: &mut Reader<'_>) -> Result<Vec<String>> {
    let n = r.u64()?;
    // Each string takes a byte at least: a count past what is left is corrupt.
    if n > r.remaining() as u64 {
        return Err(FerryError::storage("corrupt record: a list longer than its bytes"));
    }
    (0..n).map(|_| Ok(r.str()?.to_owned())).collect()
}

fn put_refs(w: &mut Writer, list: &[(Name, Name)]) {
    w.u64(list.len() as u64);
    for (queue, id) in list {
        w.str(queue);
        w.str(id);
    }
}

fn refs(r: &mut Reader<'_>) -> Result<Vec<(Name, Name)>> {
    let n = r.u64()?;
    if n > r.remaining() as u64 {
        return Err(FerryError::storage("corrupt record: a list longer than its bytes"));
    }
    (0..n).map(|_| Ok((Name::from(r.str()?), Name::from(r.str()?)))).collect()
}

pub(crate) fn put_spec(w: &mut Writer, s: &JobSpec) {
    w.str(&s.name);
    w.str(&s.data);
    w.opt_str(s.id.as_deref());
    put_opts(w, &s.opts);
    w.u64(u64::from(s.priority));
    w.u64(s.delay_ms);
    w.opt_u64(s.timestamp_ms);
    match &s.repeat {
        None => w.u8(0),
        Some(repeat) => {
            match &repeat.schedule {
                Schedule::Cron(pattern) => {
                    w.u8(1);
                    w.str(pattern);
                }
                Schedule::Every(ms) => {
                    w.u8(2);
                    w.u64(*ms);
                }
            }
            w.opt_u64(repeat.limit.map(u64::from));
            w.opt_u64(repeat.start_ms);
            w.opt_u64(repeat.end_ms);
            w.opt_str(repeat.key.as_deref());
        }
    }
}

pub(crate) fn spec(r: &mut Reader<'_>) -> Result<JobSpec> {
    let name = r.str()?.to_owned();
    let data = r.str()?.to_owned();
    let id = r.opt_str()?.map(str::to_owned);
    let opts = opts(r)?;
    let priority = r.u32()?;
    let delay_ms = r.u64()?;
    let timestamp_ms = r.opt_u64()?;
    let schedule = match r.u8()? {
        0 => None,
        1 => Some(Schedule::Cron(r.str()?.to_owned())),
        2 => Some(Schedule::Every(r.u64()?)),
        tag => return Err(FerryError::storage(format!("corrupt record: schedule {tag}"))),
    };
    let repeat = match schedule {
        None => None,
        Some(schedule) => Some(RepeatSpec {
            schedule,
            limit: r.opt_u64()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            start_ms: r.opt_u64()?,
            end_ms: r.opt_u64()?,
            key: r.opt_str()?.map(str::to_owned),
        }),
    };
    Ok(JobSpec { name: name.into(), data: data.into(), id, opts, priority, delay_ms, timestamp_ms, repeat })
}

impl JobRecord {
    pub fn encode(&self, w: &mut Writer) {
        w.str(&self.name);
        w.str(&self.data);
        put_opts(w, &self.opts);
        w.u64(u64::from(self.priority));
        w.u64(self.delay_ms);
        w.u64(self.timestamp_ms);
        match &self.state {
            JobState::Waiting => w.u8(0),
            JobState::Delayed { until_ms } => {
                w.u8(1);
                w.u64(*until_ms);
            }
            JobState::Active { token, lease_until_ms } => {
                w.u8(2);
                w.str(token);
                w.u64(*lease_until_ms);
            }
            JobState::Completed => w.u8(3),
            JobState::Failed => w.u8(4),
            JobState::WaitingChildren => w.u8(5),
        }
        w.u64(self.rank);
        w.u64(u64::from(self.attempts_made));
        w.u64(u64::from(self.attempts_started));
        w.u64(u64::from(self.stalled));
        w.str(&self.progress);
        put_strings(w, &self.logs);
        w.opt_str(self.returnvalue.as_deref());
        w.opt_str(self.failed_reason.as_deref());
        put_strings(w, &self.stacktrace);
        w.opt_u64(self.processed_on_ms);
        w.opt_u64(self.finished_on_ms);
        match &self.parent {
            None => w.u8(0),
            Some((queue, id)) => {
                w.u8(1);
                w.str(queue);
                w.str(id);
            }
        }
        put_refs(w, &self.children_pending);
        w.u64(self.children_values.len() as u64);
        for (key, value) in &self.children_values {
            w.str(key);
            w.str(value);
        }
        w.opt_str(self.repeat_key.as_deref());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<JobRecord> {
        let name = Name::from(r.str()?);
        let data = Name::from(r.str()?);
        let opts = opts(r)?;
        let priority = r.u32()?;
        let delay_ms = r.u64()?;
        let timestamp_ms = r.u64()?;
        let state = match r.u8()? {
            0 => JobState::Waiting,
            1 => JobState::Delayed { until_ms: r.u64()? },
            2 => JobState::Active { token: Name::from(r.str()?), lease_until_ms: r.u64()? },
            3 => JobState::Completed,
            4 => JobState::Failed,
            5 => JobState::WaitingChildren,
            tag => return Err(FerryError::storage(format!("corrupt record: job state {tag}"))),
        };
        let rank = r.u64()?;
        let attempts_made = r.u32()?;
        let attempts_started = r.u32()?;
        let stalled = r.u32()?;
        let progress = Name::from(r.str()?);
        let logs = strings(r)?;
        let returnvalue = r.opt_str()?.map(Name::from);
        let failed_reason = r.opt_str()?.map(str::to_owned);
        let stacktrace = strings(r)?;
        let processed_on_ms = r.opt_u64()?;
        let finished_on_ms = r.opt_u64()?;
        let parent = match r.u8()? {
            0 => None,
            _ => Some((Name::from(r.str()?), Name::from(r.str()?))),
        };
        let children_pending = refs(r)?;
        let n = r.u64()?;
        if n > r.remaining() as u64 {
            return Err(FerryError::storage("corrupt record: a list longer than its bytes"));
        }
        let children_values = (0..n).map(|_| Ok((r.str()?.to_owned(), r.str()?.to_owned()))).collect::<Result<_>>()?;
        let repeat_key = r.opt_str()?.map(Name::from);
        Ok(JobRecord {
            name,
            data,
            opts,
            priority,
            delay_ms,
            timestamp_ms,
            state,
            rank,
            attempts_made,
            attempts_started,
            stalled,
            progress,
            logs,
            returnvalue,
            failed_reason,
            stacktrace,
            processed_on_ms,
            finished_on_ms,
            parent,
            children_pending,
            children_values,
            repeat_key,
        })
    }
}

fn keep_json(out: &mut String, keep: Keep) {
    match keep {
        Keep::All => out.push_str("false"),
        Keep::Count(0) => out.push_str("true"),
        Keep::Count(n) => {
            let _ = write!(out, "{n}");
        }
        Keep::Age { age_ms, count } => {
            // BullMQ gives `age` in seconds.
            let _ = write!(out, "{{\"age\":{}", age_ms / 1000);
            if let Some(count) = count {
                let _ = write!(out, ",\"count\":{count}");
            }
            out.push('}');
        }
    }
}

fn strings_json(out: &mut String, list: &[String]) {
    out.push('[');
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, s);
    }
    out.push(']');
}

/// Appends the job as the JSON the face builds a BullMQ `Job` from; its data,
/// options, return value and children's values only when `whole`. Fields at
/// their defaults (0, none, empty) are left out: the face fills them in, and a
/// worker's round parses less.
pub fn job_json(out: &mut String, queue: &str, id: &str, job: &JobRecord, queue_paused: bool, whole: bool) {
    out.push_str("{\"id\":");
    string(out, id);
    out.push_str(",\"queueName\":");
    string(out, queue);
    out.push_str(",\"name\":");
    string(out, &job.name);
    if whole {
        whole_job_json(out, job);
    }
    if &*job.progress != "0" {
        out.push_str(",\"progress\":");
        out.push_str(&job.progress);
    }
    let _ = write!(out, ",\"timestamp\":{},\"state\":\"{}\"", job.timestamp_ms, job.state_name(queue_paused));
    for (field, n) in [
        ("delay", job.delay_ms),
        ("priority", u64::from(job.priority)),
        ("attemptsMade", u64::from(job.attempts_made)),
        ("attemptsStarted", u64::from(job.attempts_started)),
        ("stalledCounter", u64::from(job.stalled)),
    ] {
        if n > 0 {
            let _ = write!(out, ",\"{field}\":{n}");
        }
    }
    for (field, ms) in [("processedOn", job.processed_on_ms), ("finishedOn", job.finished_on_ms)] {
        if let Some(ms) = ms {
            let _ = write!(out, ",\"{field}\":{ms}");
        }
    }
    if let Some(reason) = &job.failed_reason {
        out.push_str(",\"failedReason\":");
        string(out, reason);
    }
    if !job.stacktrace.is_empty() {
        out.push_str(",\"stacktrace\":");
        strings_json(out, &job.stacktrace);
    }
    if let Some((queue, id)) = &job.parent {
        out.push_str(",\"parent\":{\"queue\":");
        string(out, queue);
        out.push_str(",\"id\":");
        string(out, id);
        out.push('}');
    }
    if let Some(key) = &job.repeat_key {
        out.push_str(",\"repeatJobKey\":");
        string(out, key);
    }
    if let JobState::Active { token, .. } = &job.state {
        out.push_str(",\"token\":");
        string(out, token);
    }
    out.push('}');
}

/// Appends what a settlement changed of a job: the face has the rest.
pub fn settled_json(out: &mut String, job: &JobRecord, queue_paused: bool) {
    let _ = write!(out, "{{\"attemptsMade\":{},\"state\":\"{}\",\"finishedOn\":", job.attempts_made, job.state_name(queue_paused));
    opt_number(out, job.finished_on_ms);
    if let Some(reason) = &job.failed_reason {
        out.push_str(",\"failedReason\":");
        string(out, reason);
        out.push_str(",\"stacktrace\":");
        strings_json(out, &job.stacktrace);
    }
    out.push('}');
}

/// What [`job_json`] adds for a whole job.
fn whole_job_json(out: &mut String, job: &JobRecord) {
    out.push_str(",\"data\":");
    out.push_str(&job.data);
    let _ = write!(out, ",\"opts\":{{\"attempts\":{},\"delay\":{},\"priority\":{},\"lifo\":{}", job.opts.attempts, job.delay_ms, job.priority, job.opts.lifo);
    if let Some(backoff) = &job.opts.backoff {
        let (kind, delay) = match backoff {
            Backoff::Fixed(ms) => ("fixed", ms),
            Backoff::Exponential(ms) => ("exponential", ms),
            Backoff::Custom(kind, ms) => (kind.as_str(), ms),
        };
        out.push_str(",\"backoff\":{\"type\":");
        string(out, kind);
        let _ = write!(out, ",\"delay\":{delay}}}");
    }
    out.push_str(",\"removeOnComplete\":");
    keep_json(out, job.opts.remove_on_complete);
    out.push_str(",\"removeOnFail\":");
    keep_json(out, job.opts.remove_on_fail);
    if let Some(n) = job.opts.keep_logs {
        let _ = write!(out, ",\"keepLogs\":{n}");
    }
    if job.opts.fail_parent_on_failure {
        out.push_str(",\"failParentOnFailure\":true");
    }
    out.push('}');
    out.push_str(",\"returnvalue\":");
    out.push_str(job.returnvalue.as_deref().unwrap_or("null"));
    out.push_str(",\"childrenValues\":{");
    for (i, (key, value)) in job.children_values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, key);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
}

/// Appends a repeatable job as `getRepeatableJobs()` lists it.
pub fn repeat_json(out: &mut String, key: &str, repeat: &RepeatRecord) {
    out.push_str("{\"key\":");
    string(out, key);
    out.push_str(",\"name\":");
    string(out, &repeat.spec.name);
    out.push_str(",\"id\":");
    match &repeat.spec.id {
        Some(id) => string(out, id),
        None => out.push_str("null"),
    }
    let Some(r) = &repeat.spec.repeat else {
        out.push('}');
        return;
    };
    match &r.schedule {
        Schedule::Cron(pattern) => {
            out.push_str(",\"pattern\":");
            string(out, pattern);
            out.push_str(",\"every\":null");
        }
        Schedule::Every(ms) => {
            let _ = write!(out, ",\"pattern\":null,\"every\":{ms}");
        }
    }
    out.push_str(",\"endDate\":");
    opt_number(out, r.end_ms);
    out.push_str(",\"limit\":");
    opt_number(out, r.limit.map(u64::from));
    let _ = write!(out, ",\"count\":{},\"tz\":null,\"next\":", repeat.count);
    opt_number(out, repeat.next_ms);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_record_round_trips() {
        let spec = JobSpec {
            name: "email".into(),
            data: "{\"to\":\"a@b\"}".into(),
            id: None,
            opts: JobOpts {
                attempts: 5,
                backoff: Some(Backoff::Exponential(1000)),
                lifo: true,
                remove_on_complete: Keep::Age { age_ms: 3_600_000, count: Some(10) },
                remove_on_fail: Keep::Count(0),
                keep_logs: Some(3),
                fail_parent_on_failure: true,
            },
            priority: 7,
            delay_ms: 50,
            timestamp_ms: None,
            repeat: None,
        };
        let mut job = JobRecord::new(&spec, 1_000);
        job.state = JobState::Active { token: Name::from("w-1"), lease_until_ms: 31_000 };
        job.logs = vec!["one".into(), "two".into()];
        job.returnvalue = Some("42".into());
        job.parent = Some((Name::from("parents"), Name::from("p1")));
        job.children_pending = vec![(Name::from("kids"), Name::from("c1"))];
        job.children_values = vec![("bull:kids:c0".into(), "\"ok\"".into())];
        job.repeat_key = Some(Name::from("email::::5000"));
        let mut w = Writer::default();
        job.encode(&mut w);
        let mut r = Reader::new(&w.buf);
        assert_eq!(JobRecord::decode(&mut r), Ok(job));
        assert!(r.is_empty());
    }

    #[test]
    fn exponential_backoff_doubles_from_its_delay() {
        let b = Backoff::Exponential(1000);
        assert_eq!(Backoff::Custom("linear".into(), 5).delay_ms(3), 5);
        assert_eq!([1, 2, 3, 4].map(|n| b.delay_ms(n)), [1000, 2000, 4000, 8000]);
        assert_eq!(b.delay_ms(200), super::super::limits::BACKOFF_MS_MAX);
        assert_eq!(Backoff::Fixed(300).delay_ms(9), 300);
    }
}
