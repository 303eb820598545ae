//! ferry: a durable message bus whose engine runs the same in browsers, Node.js and
//! Cloudflare Durable Objects.
//!
//! - [`core`] is the engine: a deterministic, sans-IO state machine. It takes the
//!   current time as an argument and hands back what to store and what to deliver.
//! - [`store`] is where the bus lives: a small async trait and its backends.
//! - [`protocol`] is what contexts and objects of one bus say to each other: named
//!   calls and replies, and their bytes.
//! - [`runtime`] drives the engine against a store and a clock.
//! - [`edge`] is the bus split over Cloudflare Durable Objects, as sans-IO state
//!   machines.
//! - `js` (WebAssembly only) is the browser face, `import { Bus } from 'ferry'`;
//!   `edge::face` the Durable Object face (`ferry/workers`, its own build);
//!   `interop` the JavaScript values both take and give.
// wasm-bindgen's generated glue is the only unsafe code, and it lives in `js`.
#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]
// The README's examples run as doc tests.
#![doc = include_str!("../README.md")]

pub mod core;
pub mod edge;
// The wasm builds' allocator; its size classes are tested natively.
#[cfg(any(target_arch = "wasm32", test))]
mod heap;
#[cfg(target_arch = "wasm32")]
mod interop;
#[cfg(all(target_arch = "wasm32", not(feature = "edge")))]
mod js;
pub mod protocol;
pub mod runtime;
pub mod store;
