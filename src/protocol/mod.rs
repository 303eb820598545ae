//! What the parts of one bus say to each other: named calls and replies, the same
//! whether they come from a Worker's client or another Durable Object of a split
//! bus ([`crate::edge`]), or from a browser context to the one that writes the
//! bus. They cross as bytes ([`wire`]); the edge face (`edge/face.rs`) converts
//! them from and to the JavaScript values that cross Durable Object RPC, in one
//! place.

pub mod wire;

use crate::core::config::ConsumerConfig;
use crate::core::message::{Chunk, OutgoingMessage};
use crate::core::{BusConfig, Delivery, Engine, FerryError, Receipt, RecordMetadata, Result, SeekTo, Stats, Subscription, TopicConfig, TopicInfo};

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
    Redrive {
        from: String,
        limit: Option<u64>,
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
    Deliveries(Vec<Delivery>),
    /// Per item: `false` when its lease had run out, `true` when settled.
    Settled(Vec<std::result::Result<bool, FerryError>>),
    /// How many of a forwarded chunk were taken before, and where the others landed.
    Accepted {
        skipped: u64,
        results: Vec<RecordMetadata>,
    },
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
            Call::Receive { .. } => "receive",
            Call::Settle { .. } => "settle",
            Call::Seek { .. } => "seek",
            Call::Accept { .. } => "accept",
            Call::CheckRoom { .. } => "checkRoom",
        }
    }

    /// Whether the directory serves it (else a partition does).
    pub fn for_directory(&self) -> bool {
        matches!(self, Call::CreateTopic { .. } | Call::Topics | Call::Topic { .. } | Call::Settings)
    }

    /// Calls that may leave messages for other partitions (dead letters,
    /// redriven messages, a send's other parts) and answer once those are
    /// forwarded. The others never wait for a forward: objects forwarding to
    /// each other would wait on each other for ever.
    pub fn forwards(&self) -> bool {
        matches!(self, Call::Send { .. } | Call::Redrive { .. } | Call::Receive { .. } | Call::Settle { .. })
    }
}

/// Runs one of the calls any engine holding a topic serves alike, whole bus or one
/// partition: `createTopic`, `topics`, `send`, `stats`, `redrive` and `seek`. The
/// caller commits. Any other call is refused: it needs the place it runs in.
pub fn serve(engine: &mut Engine, call: Call, now_ms: u64) -> Result<Reply> {
    Ok(match call {
        Call::CreateTopic { name, config } => Reply::Bool(engine.create_topic(&name, config)?),
        Call::Topics => Reply::Topics(engine.topics()),
        Call::Send { topic, messages } => Reply::Metadata(engine.send(&topic, &messages, now_ms)?),
        Call::Stats => {
            engine.trim_settled();
            Reply::Stats(Box::new(engine.stats()))
        }
        Call::Redrive { from, limit } => Reply::Count(engine.redrive(&from, limit, now_ms)?),
        Call::Seek { group, topic, partition, to } => Reply::Count(engine.seek(&group, &topic, partition, to)?),
        other => return Err(FerryError::invalid(format!("{} is not served here", other.method()))),
    })
}
