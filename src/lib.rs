//! ferry: a durable message bus whose engine runs the same in browsers, Node.js and
//! Cloudflare Durable Objects.
//!
//! - [`core`] is the engine: a deterministic, sans-IO state machine. It takes the
//!   current time as an argument and hands back what to store and what to deliver.
//! - [`store`] is where the bus lives: a small async trait and its backends.
//! - [`runtime`] drives the engine against a store and a clock.
//! - `js` (WebAssembly only) is the JavaScript face: `import { Bus } from 'ferry'`.
// wasm-bindgen's generated glue is the only unsafe code, and it lives in `js`.
#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]
// The README's examples run as doc tests.
#![doc = include_str!("../README.md")]

pub mod core;
pub mod edge;
#[cfg(target_arch = "wasm32")]
mod js;
pub mod runtime;
pub mod store;
