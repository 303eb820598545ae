//! The JavaScript face of the bus (`import { Bus } from 'ferry'`): wasm-bindgen
//! exports, the argument checks of `API.md` done in Rust, and the one place engine
//! errors become JavaScript `FerryError`s.
//!
//! Nothing a caller passes may panic: every value read from JavaScript goes through
//! [`args`], which answers a wrong type or range with `INVALID_ARGUMENT` naming the
//! field.

mod args;
mod bus;
mod commit;
mod consumer;
#[cfg(feature = "edge")]
mod edge;
mod error;
mod json;
mod locks;
