//! ferry: a durable message bus whose engine runs the same in browsers, Node.js and
//! Cloudflare Durable Objects.
//!
//! - [`core`] is the engine: a deterministic, sans-IO state machine. It takes the
//!   current time as an argument and hands back what to store and what to deliver.
//! - [`store`] is where the bus lives: a small async trait and its backends.
//! - [`runtime`] drives the engine against a store and a clock.
#![forbid(unsafe_code)]
// The README's examples run as doc tests.
#![doc = include_str!("../README.md")]

pub mod core;
pub mod runtime;
pub mod store;
