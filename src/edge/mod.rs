//! The bus split over Cloudflare Durable Objects (`ferry/workers`), as sans-IO
//! state machines: [`object::EdgeObject`] is one object, the directory of a bus
//! (`{bus}`: its topics and their settings) or one topic partition
//! (`{bus}/{topic}/{partition}`: its log, its groups' cursors and leases, its dedup
//! ids), so that a topic's throughput grows with its partitions.
//!
//! What a partition's object appends to another partition (the rest of a send it
//! coordinates, dead letters, redriven messages) waits in its storage until
//! forwarded: a send is stored whole in one object's transaction, and so is
//! atomic, before any of it moves. A Worker's consumers pull: `receive` leases a
//! partition's messages to the group's one pull member in its object, and
//! `settle` acks or retries them by receipt.
//!
//! Nothing here touches JavaScript but the face (`face.rs`, the `ferry/workers`
//! build), which converts, and
//! `pkg/entry/workers.js` carries calls between objects. So the simulation
//! (`tests/split.rs`) drives the same code the objects run.

pub mod client;
#[cfg(all(target_arch = "wasm32", feature = "edge"))]
mod face;
pub mod http;
pub mod object;
