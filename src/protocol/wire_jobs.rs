//! Job queue operations ([`JobOp`]) as bytes, inside a [`super::Call::Jobs`]:
//! how a context's `ferry/bullmq` calls cross to the writer of its bus.

use super::wire::{list, string};
use crate::core::codec::{Reader, Writer};
use crate::core::engine::{FlowNode, JobOp, Limiter, Settlement};
use crate::core::jobs::{put_spec, spec};
use crate::core::limits::{JOBS_BATCH_MAX, JOB_STACKTRACE_MAX};
use crate::core::{FerryError, Result};

fn put_strings(w: &mut Writer, list: &[String]) {
    w.u64(list.len() as u64);
    for s in list {
        w.str(s);
    }
}

fn strings(r: &mut Reader<'_>, max: usize) -> Result<Vec<String>> {
    list(r, max, string)
}

pub fn put_op(w: &mut Writer, op: &JobOp) {
    match op {
        JobOp::Add { jobs } => {
            w.u8(0);
            w.u64(jobs.len() as u64);
            for job in jobs {
                put_spec(w, job);
            }
        }
        JobOp::Flow { nodes } => {
            w.u8(1);
            w.u64(nodes.len() as u64);
            for node in nodes {
                w.str(&node.queue);
                put_spec(w, &node.spec);
                w.opt_u64(node.parent.map(|p| p as u64));
            }
        }
        JobOp::Work { token, settle, take, lease_ms, limiter } => {
            w.u8(2);
            w.str(token);
            w.u64(settle.len() as u64);
            for item in settle {
                match item {
                    Settlement::Complete { id, returnvalue } => {
                        w.u8(0);
                        w.str(id);
                        w.str(returnvalue);
                    }
                    Settlement::Fail { id, error, stacktrace, delay_ms, unrecoverable } => {
                        w.u8(1);
                        w.str(id);
                        w.str(error);
                        put_strings(w, stacktrace);
                        w.opt_u64(*delay_ms);
                        w.u8(u8::from(*unrecoverable));
                    }
                }
            }
            w.u64(u64::from(*take));
            w.u64(*lease_ms);
            w.opt_u64(limiter.map(|l| u64::from(l.max)));
            w.u64(limiter.map_or(0, |l| l.duration_ms));
        }
        JobOp::Extend { token, ids, lease_ms } => {
            w.u8(5);
            w.str(token);
            put_strings(w, ids);
            w.u64(*lease_ms);
        }
        JobOp::Progress { id, progress } => {
            w.u8(6);
            w.str(id);
            w.str(progress);
        }
        JobOp::Log { id, row } => {
            w.u8(7);
            w.str(id);
            w.str(row);
        }
        JobOp::Get { id } => {
            w.u8(8);
            w.str(id);
        }
        JobOp::Logs { id, start, end, asc } => {
            w.u8(9);
            w.str(id);
            w.u64(*start);
            w.opt_u64(*end);
            w.u8(u8::from(*asc));
        }
        JobOp::List { states, start, end, asc } => {
            w.u8(10);
            put_strings(w, states);
            w.u64(*start);
            w.opt_u64(*end);
            w.u8(u8::from(*asc));
        }
        JobOp::Counts { states } => {
            w.u8(11);
            put_strings(w, states);
        }
        JobOp::Pause => w.u8(12),
        JobOp::Resume => w.u8(13),
        JobOp::Drain { delayed } => {
            w.u8(14);
            w.u8(u8::from(*delayed));
        }
        JobOp::Obliterate { force } => {
            w.u8(15);
            w.u8(u8::from(*force));
        }
        JobOp::Clean { grace_ms, limit, state } => {
            w.u8(16);
            w.u64(*grace_ms);
            w.u64(*limit);
            w.str(state);
        }
        JobOp::Retry { id, state } => {
            w.u8(17);
            w.str(id);
            w.str(state);
        }
        JobOp::RetryAll { state, count } => {
            w.u8(18);
            w.str(state);
            w.u64(*count);
        }
        JobOp::Remove { id } => {
            w.u8(19);
            w.str(id);
        }
        JobOp::Promote { id } => {
            w.u8(20);
            w.str(id);
        }
        JobOp::Repeatables => w.u8(21),
        JobOp::RemoveRepeatable { key } => {
            w.u8(22);
            w.str(key);
        }
    }
}

pub fn op(r: &mut Reader<'_>) -> Result<JobOp> {
    let bounded = |r: &mut Reader<'_>| -> Result<usize> {
        let n = r.u64()?;
        if n > JOBS_BATCH_MAX as u64 {
            return Err(FerryError::storage(format!("a job call holds {n} jobs, more than {JOBS_BATCH_MAX}")));
        }
        Ok(n as usize)
    };
    Ok(match r.u8()? {
        0 => {
            let n = bounded(r)?;
            JobOp::Add { jobs: (0..n).map(|_| spec(r)).collect::<Result<_>>()? }
        }
        1 => {
            let n = bounded(r)?;
            let nodes = (0..n).map(|_| Ok(FlowNode { queue: string(r)?, spec: spec(r)?, parent: r.opt_u64()?.map(|p| p as usize) })).collect::<Result<_>>()?;
            JobOp::Flow { nodes }
        }
        2 => {
            let token = string(r)?;
            let n = bounded(r)?;
            let settle = (0..n)
                .map(|_| {
                    Ok(match r.u8()? {
                        0 => Settlement::Complete { id: string(r)?, returnvalue: string(r)? },
                        1 => Settlement::Fail {
                            id: string(r)?,
                            error: string(r)?,
                            stacktrace: strings(r, JOB_STACKTRACE_MAX)?,
                            delay_ms: r.opt_u64()?,
                            unrecoverable: r.u8()? != 0,
                        },
                        other => return Err(FerryError::storage(format!("unknown settlement {other}"))),
                    })
                })
                .collect::<Result<_>>()?;
            let take = r.u32()?;
            let lease_ms = r.u64()?;
            let limit = r.opt_u64()?;
            let duration_ms = r.u64()?;
            let limiter = limit.map(|max| Limiter { max: u32::try_from(max).unwrap_or(u32::MAX), duration_ms });
            JobOp::Work { token, settle, take, lease_ms, limiter }
        }
        5 => JobOp::Extend { token: string(r)?, ids: strings(r, JOBS_BATCH_MAX)?, lease_ms: r.u64()? },
        6 => JobOp::Progress { id: string(r)?, progress: string(r)? },
        7 => JobOp::Log { id: string(r)?, row: string(r)? },
        8 => JobOp::Get { id: string(r)? },
        9 => JobOp::Logs { id: string(r)?, start: r.u64()?, end: r.opt_u64()?, asc: r.u8()? != 0 },
        10 => JobOp::List { states: strings(r, 16)?, start: r.u64()?, end: r.opt_u64()?, asc: r.u8()? != 0 },
        11 => JobOp::Counts { states: strings(r, 16)? },
        12 => JobOp::Pause,
        13 => JobOp::Resume,
        14 => JobOp::Drain { delayed: r.u8()? != 0 },
        15 => JobOp::Obliterate { force: r.u8()? != 0 },
        16 => JobOp::Clean { grace_ms: r.u64()?, limit: r.u64()?, state: string(r)? },
        17 => JobOp::Retry { id: string(r)?, state: string(r)? },
        18 => JobOp::RetryAll { state: string(r)?, count: r.u64()? },
        19 => JobOp::Remove { id: string(r)? },
        20 => JobOp::Promote { id: string(r)? },
        21 => JobOp::Repeatables,
        22 => JobOp::RemoveRepeatable { key: string(r)? },
        other => return Err(FerryError::storage(format!("unknown job call {other}"))),
    })
}
