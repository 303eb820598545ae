//! What the parts of one bus say to each other: named calls and replies, the same
//! whether they come from a Worker's client or another Durable Object of a split
//! bus ([`crate::edge`]), or from a browser context to the one that writes the
//! bus. They cross as bytes ([`wire`]); the edge face (`edge/face.rs`) converts
//! them from and to the JavaScript values that cross Durable Object RPC, in one
//! place.

pub mod wire;
#[cfg(feature = "jobs")]
mod wire_jobs;

use crate::core::config::ConsumerConfig;
#[cfg(feature = "jobs")]
use crate::core::engine::JobOp;
use crate::core::engine::{Browsed, Pause, Wait};
use crate::core::message::{Chunk, OutgoingMessage};
use crate::core::{BusConfig, Delivery, Engine, FerryError, PollLimit, Receipt, RecordMetadata, Result, SeekTo, Stats, Subscription, TopicConfig, TopicInfo};

/// What a call brings besides its arguments: the calling client's options
/// (`autoCreateTopics`, `maxMessageBytes`), and the settings of topics the call
/// needs where it runs (a partition's own topic, where a redrive may send).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub config: BusConfig,
    pub topics: Vec<(String, TopicConfig)>,
}

#[derive(Clone, Debug)]
pub enum Call {
    // The directory's.
    CreateTopic {
        name: String,
        config: TopicConfig,
    },
    Topics,
    /// A topic's settings. A missing topic is created with `partitions` when
    /// given (a dead-letter topic made on demand), else as `autoCreateTopics` says
    /// when `create`; without `create` nothing is made and a topic that would be
    /// is described as missing, for a send that may yet be refused.
    Topic {
        name: String,
        partitions: Option<u32>,
        create: bool,
    },
    /// Every topic's settings.
    Settings,
    // A partition's; the directory takes `Redrive` too, to check it.
    /// A send coordinated by this partition: each message says its partition.
    Send {
        topic: String,
        messages: Vec<OutgoingMessage>,
    },
    Stats,
    /// Dead letters moved back: those at `offsets` (`(partition, offset)`), or
    /// when none are given up to `limit` of them.
    Redrive {
        from: String,
        limit: Option<u64>,
        offsets: Vec<(u32, u64)>,
    },
    /// Every retained message of a dead-letter topic removed.
    Purge {
        topic: String,
    },
    /// Up to `max` messages of a partition from `offset`, read without leasing
    /// them; with `group`, the attempts it made of each.
    Browse {
        topic: String,
        partition: u32,
        offset: u64,
        max: u64,
        group: Option<String>,
    },
    /// Joins `group` here (as the pull member) and leases up to `max` messages
    /// (0: only joins).
    Receive {
        group: String,
        config: ConsumerConfig,
        subscriptions: Vec<Subscription>,
        max: usize,
    },
    /// Acks and retries in one commit; a malformed item is refused alone.
    Settle {
        items: Vec<Result<SettleItem>>,
    },
    Seek {
        group: String,
        topic: String,
        partition: u32,
        to: SeekTo,
    },
    /// Messages another object forwards here ([`crate::core::Engine::accept`]).
    Accept {
        source: String,
        send: bool,
        chunk: Chunk,
    },
    /// `QUEUE_FULL` when `added` more messages would pass this partition's `maxDepth`.
    CheckRoom {
        added: u64,
    },
    // A browser consumer's, run where its bus is written (`writer: "one"`).
    Join {
        group: String,
        member: String,
        subscriptions: Vec<Subscription>,
        config: ConsumerConfig,
    },
    /// One round of the member's loop ([`Engine::consume_round`]). With
    /// `wait_ms`, a writer serving another context holds a round that leases
    /// nothing until something may change that, or `wait_ms` passes: the loop
    /// waits there instead of at home.
    Round {
        group: String,
        member: String,
        subscriptions: Vec<Subscription>,
        config: ConsumerConfig,
        heartbeat: bool,
        limit: PollLimit,
        wait_ms: u64,
        /// Partitions the member does not take for now (`consumer.pause`).
        paused: Vec<Pause>,
    },
    /// A run's acks, then how it ended, in one commit.
    SettleRun {
        group: String,
        member: String,
        acks: Vec<(Receipt, u64)>,
        end: Option<RunEnd>,
    },
    Heartbeat {
        group: String,
        member: String,
    },
    /// [`Engine::retry_now`]: a bridge's network came back.
    RetryNow {
        group: String,
    },
    /// [`Engine::leave`], or [`Engine::evict`] of a member seen gone.
    Leave {
        group: String,
        member: String,
        evicted: bool,
    },
    /// A job queue operation (`ferry/bullmq`, [`Engine::jobs`]).
    #[cfg(feature = "jobs")]
    Jobs {
        queue: String,
        op: JobOp,
    },
    /// A job queue operation reaching a writer whose build leaves the job queues
    /// out (the browser's `ferry`, without feature `jobs`): it answers
    /// [`Reply::Unserved`].
    #[cfg(not(feature = "jobs"))]
    Unserved,
}

/// What ends a run's settlements, after its acks ([`Call::SettleRun`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    /// A failed attempt: the handler's error, when it ended, and when the
    /// message is handed out again (the backoff, a delay, or never: dead-lettered).
    Fail { receipt: Receipt, error: String, finished_ms: u64, wait: Wait },
    /// A message whose handler never started, given back with the rest of its run.
    Release(Receipt),
    /// The run (from its first message not acked) refused as a whole: each
    /// dead-lettered with `error` ([`Engine::refuse_run`]).
    Refuse { receipts: Vec<Receipt>, error: String, finished_ms: u64 },
}

/// One ack (`retry: None`) or failed attempt of [`Call::Settle`].
#[derive(Clone, Debug)]
pub struct SettleItem {
    pub group: String,
    pub receipt: Receipt,
    /// A failed attempt's error, and its own delay instead of the backoff.
    pub retry: Option<(String, Option<u64>)>,
}

#[derive(Clone, Debug)]
pub enum Reply {
    Done,
    Bool(bool),
    Count(u64),
    Topics(Vec<TopicInfo>),
    Topic {
        name: String,
        config: TopicConfig,
        missing: bool,
    },
    Settings(Vec<(String, TopicConfig)>),
    Metadata(Vec<RecordMetadata>),
    Stats(Box<Stats>),
    Browsed(Box<Browsed>),
    Deliveries(Vec<Delivery>),
    /// Per item: `false` when its lease had run out, `true` when settled.
    Settled(Vec<std::result::Result<bool, FerryError>>),
    /// How many of a forwarded chunk were taken before, and where the others landed.
    Accepted {
        skipped: u64,
        results: Vec<RecordMetadata>,
    },
    /// A [`Call::Round`]'s leases, the high offset of each partition they come
    /// from (`eachBatch`'s `highWatermark`), and the group's members (whose Web
    /// Locks the member watches).
    Round {
        deliveries: Vec<Delivery>,
        high_offsets: Vec<(String, u32, u64)>,
        members: Vec<String>,
    },
    /// A result as JSON text, for the face that asked ([`Call::Jobs`]).
    #[cfg(feature = "jobs")]
    Json(String),
    /// The writer's build leaves out what the call needs (the job queues): the
    /// context that made it runs it itself, on the bus as stored. Storage is
    /// shared, and each commit first reads what others stored, so that is as
    /// correct as the writer running it.
    Unserved,
}

impl Call {
    /// Its name as the transport and errors say it.
    pub fn method(&self) -> &'static str {
        match self {
            Call::CreateTopic { .. } => "createTopic",
            Call::Topics => "topics",
            Call::Topic { .. } => "topic",
            Call::Settings => "settings",
            Call::Send { .. } => "send",
            Call::Stats => "stats",
            Call::Redrive { .. } => "redrive",
            Call::Purge { .. } => "purge",
            Call::Browse { .. } => "browse",
            Call::Receive { .. } => "receive",
            Call::Settle { .. } => "settle",
            Call::Seek { .. } => "seek",
            Call::Accept { .. } => "accept",
            Call::CheckRoom { .. } => "checkRoom",
            Call::Join { .. } => "join",
            Call::Round { .. } => "round",
            Call::SettleRun { .. } => "settleRun",
            Call::Heartbeat { .. } => "heartbeat",
            Call::RetryNow { .. } => "retryNow",
            Call::Leave { .. } => "leave",
            #[cfg(feature = "jobs")]
            Call::Jobs { .. } => "jobs",
            #[cfg(not(feature = "jobs"))]
            Call::Unserved => "jobs",
        }
    }

    /// Whether the directory serves it (else a partition does).
    pub fn for_directory(&self) -> bool {
        // A bus split over objects keeps its job queues in the directory.
        self.is_job_call() || matches!(self, Call::CreateTopic { .. } | Call::Topics | Call::Topic { .. } | Call::Settings)
    }

    /// A copy of a [`Call::Round`] (`None` for any other call), for a round that is
    /// held to run again: copying only this variant keeps the clone of every call
    /// out of the browser's wasm.
    pub fn round_copy(&self) -> Option<Call> {
        match self {
            Call::Round { group, member, subscriptions, config, heartbeat, limit, wait_ms, paused } => Some(Call::Round {
                group: group.clone(),
                member: member.clone(),
                subscriptions: subscriptions.clone(),
                config: config.clone(),
                heartbeat: *heartbeat,
                limit: *limit,
                wait_ms: *wait_ms,
                paused: paused.clone(),
            }),
            _ => None,
        }
    }

    /// A job queue operation: [`Call::Jobs`], or [`Call::Unserved`] in a build
    /// without job queues.
    pub fn is_job_call(&self) -> bool {
        #[cfg(feature = "jobs")]
        let job_call = matches!(self, Call::Jobs { .. });
        #[cfg(not(feature = "jobs"))]
        let job_call = matches!(self, Call::Unserved);
        job_call
    }

    /// Calls that may leave messages for other partitions (dead letters,
    /// redriven messages, a send's other parts) and answer once those are
    /// forwarded. The others never wait for a forward: objects forwarding to
    /// each other would wait on each other for ever.
    pub fn forwards(&self) -> bool {
        matches!(self, Call::Send { .. } | Call::Redrive { .. } | Call::Receive { .. } | Call::Settle { .. })
    }

    /// Whether running it twice would change the bus twice (a send stored twice,
    /// a topic created, then found): the writer stores its reply with the commit
    /// that runs it ([`Engine::store_reply`]).
    pub fn stores_reply(&self) -> bool {
        #[cfg(feature = "jobs")]
        if let Call::Jobs { op, .. } = self {
            return !op.reads();
        }
        matches!(self, Call::CreateTopic { .. } | Call::Send { .. } | Call::Redrive { .. } | Call::Purge { .. })
    }
}

/// A call that crossed to the writer of a bus (`writer: "one"`): the context that
/// made it, its id there, and the id below which that context had every call
/// answered.
#[derive(Clone, Debug)]
pub struct CallId {
    pub context: String,
    pub id: u64,
    pub answered_below: u64,
}

/// [`serve`], and for a call from another context (`caller`): one whose reply is
/// stored (an earlier writer ran it) gets that reply and runs no more; one that
/// [`Call::stores_reply`] stores its reply in the same commit.
pub fn serve_once(engine: &mut Engine, call: Call, caller: Option<&CallId>, now_ms: u64) -> Result<Reply> {
    let Some(caller) = caller.filter(|_| call.stores_reply()) else {
        return serve(engine, call, now_ms);
    };
    if let Some(stored) = engine.stored_reply(&caller.context, caller.id) {
        return wire::decode_reply(stored);
    }
    let reply = serve(engine, call, now_ms);
    if reply.is_ok() {
        engine.store_reply(&caller.context, caller.id, wire::encode_reply(&reply), caller.answered_below, now_ms);
    }
    reply
}

/// Runs one of the calls any engine holding a topic serves alike, whole bus or one
/// partition: `createTopic`, `topics`, `send`, `stats`, `redrive`, `purge`, `browse` and `seek`, and
/// those of a browser consumer's loop, on a whole bus. The caller commits. Any
/// other call is refused: it needs the place it runs in.
pub fn serve(engine: &mut Engine, call: Call, now_ms: u64) -> Result<Reply> {
    Ok(match call {
        Call::CreateTopic { name, config } => Reply::Bool(engine.create_topic(&name, config)?),
        Call::Topics => Reply::Topics(engine.topics()),
        Call::Send { topic, messages } => Reply::Metadata(engine.send(&topic, &messages, now_ms)?),
        Call::Stats => {
            engine.trim_settled();
            Reply::Stats(Box::new(engine.stats()))
        }
        Call::Redrive { from, limit, offsets } => Reply::Count(engine.redrive(&from, limit, &offsets, now_ms)?),
        Call::Purge { topic } => Reply::Count(engine.purge(&topic, now_ms)?),
        Call::Browse { topic, partition, offset, max, group } => Reply::Browsed(Box::new(engine.browse(&topic, partition, offset, max, group.as_deref())?)),
        Call::Seek { group, topic, partition, to } => Reply::Count(engine.seek(&group, &topic, partition, to)?),
        Call::Join { group, member, subscriptions, config } => {
            engine.join(&group, &member, &subscriptions, &config, now_ms)?;
            Reply::Done
        }
        Call::Round { group, member, subscriptions, config, heartbeat, limit, paused, .. } => {
            let deliveries = engine.consume_round(&group, &member, &subscriptions, &config, heartbeat, limit, &paused, now_ms)?;
            round(engine, &group, deliveries)
        }
        Call::SettleRun { group, member, acks, end } => {
            for (receipt, finished_ms) in &acks {
                engine.ack(&group, &member, receipt, *finished_ms);
            }
            match end {
                Some(RunEnd::Fail { receipt, error, finished_ms, wait }) => engine.fail_with(&group, &member, &receipt, &error, wait, finished_ms),
                Some(RunEnd::Release(receipt)) => engine.release(&group, &member, &receipt, now_ms),
                Some(RunEnd::Refuse { receipts, error, finished_ms }) => engine.refuse_run(&group, &member, &receipts, &error, finished_ms) > 0,
                None => true,
            };
            Reply::Done
        }
        Call::Heartbeat { group, member } => Reply::Bool(engine.heartbeat(&group, &member, now_ms)),
        Call::RetryNow { group } => Reply::Count(engine.retry_now(&group, now_ms)),
        #[cfg(feature = "jobs")]
        Call::Jobs { queue, op } => Reply::Json(engine.jobs(&queue, op, now_ms)?),
        #[cfg(not(feature = "jobs"))]
        Call::Unserved => Reply::Unserved,
        Call::Leave { group, member, evicted } => {
            if evicted {
                engine.evict(&group, &member, now_ms);
            } else {
                engine.leave(&group, &member, now_ms);
            }
            Reply::Done
        }
        other => return Err(FerryError::invalid(format!("{} is not served here", other.method()))),
    })
}

/// A round's reply: its leases, with what the member's loop reads besides them.
fn round(engine: &Engine, group: &str, deliveries: Vec<Delivery>) -> Reply {
    let mut high_offsets: Vec<(String, u32, u64)> = Vec::new();
    for d in &deliveries {
        if !high_offsets.iter().any(|(t, p, _)| *t == *d.topic && *p == d.partition) {
            let high = engine.high_offset(&d.topic, d.partition).unwrap_or(d.message.offset + 1);
            high_offsets.push((d.topic.to_string(), d.partition, high));
        }
    }
    let members = engine.members(group).iter().map(|m| m.to_string()).collect();
    Reply::Round { deliveries, high_offsets, members }
}
