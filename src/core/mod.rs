//! The engine, sans-IO: pure Rust with no clock, no storage, no JavaScript and no
//! randomness it was not given a seed for. See [`Engine`] for the order of calls.
#![forbid(unsafe_code)]

pub mod assign;
pub mod bridge;
pub mod codec;
pub mod config;
#[cfg(feature = "jobs")]
pub mod cron;
pub mod engine;
pub mod error;
pub mod fxhash;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod json;
pub mod limits;
pub mod message;
pub mod murmur2;
pub mod records;
pub mod rng;
pub mod sort;
pub mod vec_map;

pub use config::{BusConfig, ConsumerConfig, Ordering, RetryPolicy, TopicConfig};
pub use engine::{Delivery, Engine, PollLimit, Receipt, RecordMetadata, SeekTo, Stats, Subscription, TopicInfo, Write};
pub use error::{ErrorCode, FerryError, Result};
pub use message::{Message, Name, OutgoingMessage, Value, ValueKind};
