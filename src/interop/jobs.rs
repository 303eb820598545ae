//! `ferry/bullmq`'s calls as the engine takes them ([`JobOp`]): each a plain
//! object `{ op, ... }` from pkg/entry/bullmq.js, with BullMQ's job options read
//! and checked here, so that a wrong one is refused naming its field.

use js_sys::{Date, Object, JSON};
use wasm_bindgen::{JsCast, JsValue};

use super::args::{self, get, integer, opt_bool, opt_integer, opt_string, options, string};
use crate::core::engine::{FlowNode, JobOp, Limiter, Settlement};
use crate::core::jobs::{Backoff, JobOpts, JobSpec, Keep, RepeatSpec, Schedule};
use crate::core::limits::*;
use crate::core::message::Name;
use crate::core::{FerryError, Result};

/// `value` as JSON text; `undefined` as `when_undefined`.
fn json(value: &JsValue, field: &str, when_undefined: &str) -> Result<String> {
    if value.is_undefined() {
        return Ok(when_undefined.into());
    }
    JSON::stringify(value).ok().and_then(|s| s.as_string()).ok_or_else(|| FerryError::invalid(format!("{field} must be serialisable with JSON.stringify")))
}

/// A time: a number of ms since the epoch, a `Date`, or a date string.
fn opt_time(value: &JsValue, field: &str) -> Result<Option<u64>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let ms = if let Some(date) = value.dyn_ref::<Date>() {
        date.get_time()
    } else if let Some(text) = value.as_string() {
        Date::parse(&text)
    } else {
        return opt_integer(value, field, 0, SAFE_INTEGER_MAX);
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(FerryError::invalid(format!("{field} must be a date, got {}", value.as_string().unwrap_or_default())));
    }
    Ok(Some(ms as u64))
}

/// `removeOnComplete` / `removeOnFail`: a boolean, a count, or `{ age, count }`.
fn keep(value: &JsValue, field: &str) -> Result<Keep> {
    if value.is_undefined() || value.is_null() {
        return Ok(Keep::All);
    }
    if let Some(remove) = value.as_bool() {
        return Ok(if remove { Keep::Count(0) } else { Keep::All });
    }
    if value.as_f64().is_some() {
        return Ok(Keep::Count(integer(value, field, 0, u64::from(u32::MAX))? as u32));
    }
    let o = options(value, field)?;
    let age_s = opt_integer(&get(o.as_ref(), "age")?, &format!("{field}.age"), 0, SAFE_INTEGER_MAX / 1000)?;
    let count = opt_integer(&get(o.as_ref(), "count")?, &format!("{field}.count"), 0, u64::from(u32::MAX))?.map(|n| n as u32);
    Ok(match age_s {
        Some(age) => Keep::Age { age_ms: age * 1000, count },
        None => count.map_or(Keep::All, Keep::Count),
    })
}

fn backoff(value: &JsValue) -> Result<Option<Backoff>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if value.as_f64().is_some() {
        return Ok(Some(Backoff::Fixed(integer(value, "backoff", 0, BACKOFF_MS_MAX)?)));
    }
    let o = options(value, "backoff")?;
    let delay = opt_integer(&get(o.as_ref(), "delay")?, "backoff.delay", 0, BACKOFF_MS_MAX)?.unwrap_or(0);
    Ok(Some(match opt_string(&get(o.as_ref(), "type")?, "backoff.type")?.as_deref() {
        Some("fixed") => Backoff::Fixed(delay),
        Some("exponential") => Backoff::Exponential(delay),
        Some(kind) => {
            if kind.len() > JOB_TEXT_BYTES_MAX {
                return Err(FerryError::invalid(format!("backoff.type must be at most {JOB_TEXT_BYTES_MAX} bytes")));
            }
            Backoff::Custom(kind.to_owned(), delay)
        }
        None => return Err(FerryError::invalid("backoff.type must be 'fixed', 'exponential' or a worker's custom strategy")),
    }))
}

fn repeat(value: &JsValue, key: Option<String>) -> Result<Option<RepeatSpec>> {
    let Some(o) = options(value, "repeat")? else { return Ok(None) };
    let o = Some(&o);
    let pattern = match opt_string(&get(o, "pattern")?, "repeat.pattern")? {
        Some(p) => Some(p),
        None => opt_string(&get(o, "cron")?, "repeat.cron")?,
    };
    let every = opt_integer(&get(o, "every")?, "repeat.every", 1, DELAY_MS_MAX)?;
    let schedule = match (pattern, every) {
        (Some(_), Some(_)) => return Err(FerryError::invalid("repeat takes pattern or every, not both")),
        (Some(p), None) => Schedule::Cron(p),
        (None, Some(ms)) => Schedule::Every(ms),
        (None, None) => return Err(FerryError::invalid("repeat needs pattern (a cron pattern) or every (ms)")),
    };
    if let Some(tz) = opt_string(&get(o, "tz")?, "repeat.tz")? {
        if !matches!(tz.as_str(), "UTC" | "Etc/UTC" | "GMT" | "Z") {
            return Err(FerryError::invalid(format!("repeat.tz '{tz}': ferry evaluates cron patterns in UTC only")));
        }
    }
    let limit = opt_integer(&get(o, "limit")?, "repeat.limit", 1, u64::from(u32::MAX))?.map(|n| n as u32);
    Ok(Some(RepeatSpec {
        schedule,
        limit,
        start_ms: opt_time(&get(o, "startDate")?, "repeat.startDate")?,
        end_ms: opt_time(&get(o, "endDate")?, "repeat.endDate")?,
        key,
    }))
}

/// The name of the last job read, kept: the jobs of one `addBulk` mostly share
/// theirs, and comparing two JavaScript strings costs less than copying one in.
type LastName = Option<(JsValue, Name)>;

/// A job to add: `{ name, data, opts, schedulerId? }` with BullMQ's `opts`.
fn spec(value: &JsValue, field: &str, last_name: &mut LastName) -> Result<JobSpec> {
    let job = options(value, field)?;
    let job = job.as_ref();
    let js_name = get(job, "name")?;
    let name = match last_name {
        Some((js, name)) if *js == js_name => name.clone(),
        _ => {
            let name = Name::from(string(&js_name, "name")?);
            *last_name = Some((js_name, name.clone()));
            name
        }
    };
    let data = Name::from(json(&get(job, "data")?, "data", "{}")?);
    let Some(o) = options(&get(job, "opts")?, "opts")? else {
        // No options (most jobs): none to read, each read a call out of wasm.
        return Ok(JobSpec { name, data, id: None, opts: JobOpts::default(), priority: 0, delay_ms: 0, timestamp_ms: None, repeat: None });
    };
    let o = Some(&o);
    let opts = JobOpts {
        attempts: opt_integer(&get(o, "attempts")?, "attempts", 1, u64::from(ATTEMPTS_MAX))?.map_or(1, |n| n as u32),
        backoff: backoff(&get(o, "backoff")?)?,
        lifo: opt_bool(&get(o, "lifo")?, "lifo")?.unwrap_or(false),
        remove_on_complete: keep(&get(o, "removeOnComplete")?, "removeOnComplete")?,
        remove_on_fail: keep(&get(o, "removeOnFail")?, "removeOnFail")?,
        keep_logs: opt_integer(&get(o, "keepLogs")?, "keepLogs", 0, u64::from(JOB_LOGS_MAX))?.map(|n| n as u32),
        fail_parent_on_failure: opt_bool(&get(o, "failParentOnFailure")?, "failParentOnFailure")?.unwrap_or(false),
    };
    let id = match get(o, "jobId")? {
        id if id.as_f64().is_some() => Some(args::js_text(&id)),
        id => opt_string(&id, "jobId")?,
    };
    Ok(JobSpec {
        name,
        data,
        id,
        opts,
        priority: opt_integer(&get(o, "priority")?, "priority", 0, u64::from(JOB_PRIORITY_MAX))?.map_or(0, |n| n as u32),
        delay_ms: opt_integer(&get(o, "delay")?, "delay", 0, DELAY_MS_MAX)?.unwrap_or(0),
        timestamp_ms: opt_integer(&get(o, "timestamp")?, "timestamp", 0, SAFE_INTEGER_MAX)?,
        repeat: repeat(&get(o, "repeat")?, opt_string(&get(job, "schedulerId")?, "job scheduler id")?)?,
    })
}

fn strings(value: &JsValue, field: &str) -> Result<Vec<String>> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    if let Some(one) = value.as_string() {
        return Ok(vec![one]);
    }
    args::array(value, field)?.iter().map(|v| string(&v, field)).collect()
}

/// `end` as BullMQ takes it: -1 (or none) for the last.
fn end(value: &JsValue) -> Result<Option<u64>> {
    if value.as_f64().is_some_and(|n| n < 0.0) {
        return Ok(None);
    }
    opt_integer(value, "end", 0, SAFE_INTEGER_MAX)
}

fn list_of(value: &JsValue, field: &str) -> Result<js_sys::Array> {
    let list = args::array(value, field)?;
    if list.length() as usize > JOBS_BATCH_MAX {
        return Err(FerryError::invalid(format!("{field} holds {} jobs, more than {JOBS_BATCH_MAX}", list.length())));
    }
    Ok(list)
}

/// `{ id, returnvalue }` (completed) or `{ id, error, stacktrace, delayMs, unrecoverable }` (a failed attempt).
fn settlement(value: &JsValue) -> Result<Settlement> {
    let o = options(value, "settlement")?;
    let o = o.as_ref();
    let id = string(&get(o, "id")?, "id")?;
    let error = get(o, "error")?;
    if error.is_undefined() {
        return Ok(Settlement::Complete { id, returnvalue: json(&get(o, "returnvalue")?, "returnvalue", "null")? });
    }
    Ok(Settlement::Fail {
        id,
        error: string(&error, "error")?,
        stacktrace: strings(&get(o, "stacktrace")?, "stacktrace")?.into_iter().take(JOB_STACKTRACE_MAX).collect(),
        delay_ms: opt_integer(&get(o, "delayMs")?, "backoff delay", 0, BACKOFF_MS_MAX)?,
        unrecoverable: opt_bool(&get(o, "unrecoverable")?, "unrecoverable")?.unwrap_or(false),
    })
}

/// The operation `{ op, ... }` names.
pub fn job_op(value: &JsValue) -> Result<JobOp> {
    let o: Option<Object> = options(value, "operation")?;
    let o = o.as_ref();
    let field = |key: &'static str| get(o, key);
    let text = |key: &'static str| -> Result<String> { string(&get(o, key)?, key) };
    let id = || text("id");
    Ok(match text("op")?.as_str() {
        "add" => {
            let mut last_name = None;
            JobOp::Add { jobs: list_of(&field("jobs")?, "jobs")?.iter().map(|job| spec(&job, "job", &mut last_name)).collect::<Result<_>>()? }
        }
        "flow" => {
            let nodes = list_of(&field("nodes")?, "nodes")?;
            let nodes = nodes
                .iter()
                .map(|node| {
                    let n = options(&node, "flow job")?;
                    Ok(FlowNode {
                        queue: string(&get(n.as_ref(), "queueName")?, "queueName")?,
                        spec: spec(&node, "flow job", &mut None)?,
                        parent: opt_integer(&get(n.as_ref(), "parent")?, "parent", 0, JOBS_BATCH_MAX as u64)?.map(|p| p as usize),
                    })
                })
                .collect::<Result<_>>()?;
            JobOp::Flow { nodes }
        }
        "work" => {
            let limiter = options(&field("limiter")?, "limiter")?;
            let limiter = match limiter {
                Some(l) => Some(Limiter {
                    max: integer(&get(Some(&l), "max")?, "limiter.max", 1, u64::from(u32::MAX))? as u32,
                    duration_ms: integer(&get(Some(&l), "duration")?, "limiter.duration", 1, DELAY_MS_MAX)?,
                }),
                None => None,
            };
            let settle = match field("settle")? {
                none if none.is_undefined() => Vec::new(),
                list => list_of(&list, "settle")?.iter().map(|item| settlement(&item)).collect::<Result<_>>()?,
            };
            JobOp::Work {
                token: text("token")?,
                settle,
                take: integer(&field("take")?, "concurrency", 0, u64::from(JOBS_TAKE_MAX))? as u32,
                lease_ms: integer(&field("leaseMs")?, "lockDuration", JOB_LEASE_MS_MIN, JOB_LEASE_MS_MAX)?,
                limiter,
            }
        }
        "extend" => JobOp::Extend {
            token: text("token")?,
            ids: strings(&field("ids")?, "ids")?,
            lease_ms: integer(&field("leaseMs")?, "lockDuration", JOB_LEASE_MS_MIN, JOB_LEASE_MS_MAX)?,
        },
        "progress" => JobOp::Progress { id: id()?, progress: json(&field("progress")?, "progress", "0")? },
        "log" => JobOp::Log { id: id()?, row: text("row")? },
        "get" => JobOp::Get { id: id()? },
        "logs" => JobOp::Logs {
            id: id()?,
            start: opt_integer(&field("start")?, "start", 0, SAFE_INTEGER_MAX)?.unwrap_or(0),
            end: end(&field("end")?)?,
            asc: opt_bool(&field("asc")?, "asc")?.unwrap_or(true),
        },
        "list" => JobOp::List {
            states: strings(&field("states")?, "types")?,
            start: opt_integer(&field("start")?, "start", 0, SAFE_INTEGER_MAX)?.unwrap_or(0),
            end: end(&field("end")?)?,
            asc: opt_bool(&field("asc")?, "asc")?.unwrap_or(false),
        },
        "counts" => JobOp::Counts { states: strings(&field("states")?, "types")? },
        "pause" => JobOp::Pause,
        "resume" => JobOp::Resume,
        "drain" => JobOp::Drain { delayed: opt_bool(&field("delayed")?, "delayed")?.unwrap_or(false) },
        "obliterate" => JobOp::Obliterate { force: opt_bool(&field("force")?, "force")?.unwrap_or(false) },
        "clean" => JobOp::Clean {
            grace_ms: integer(&field("grace")?, "grace", 0, SAFE_INTEGER_MAX)?,
            limit: opt_integer(&field("limit")?, "limit", 0, SAFE_INTEGER_MAX)?.unwrap_or(0),
            state: opt_string(&field("state")?, "type")?.unwrap_or_else(|| "completed".into()),
        },
        "retry" => JobOp::Retry { id: id()?, state: opt_string(&field("state")?, "state")?.unwrap_or_else(|| "failed".into()) },
        "retryAll" => JobOp::RetryAll {
            state: opt_string(&field("state")?, "state")?.unwrap_or_else(|| "failed".into()),
            count: opt_integer(&field("count")?, "count", 0, SAFE_INTEGER_MAX)?.unwrap_or(0),
        },
        "remove" => JobOp::Remove { id: id()? },
        "promote" => JobOp::Promote { id: id()? },
        "repeatables" => JobOp::Repeatables,
        "removeRepeatable" => JobOp::RemoveRepeatable { key: text("key")? },
        other => return Err(FerryError::invalid(format!("'{other}' is not a job queue operation"))),
    })
}
