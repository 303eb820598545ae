//! The browser face of the bus (`import { Bus } from 'ferry'`, in pages, workers,
//! service workers and Node): wasm-bindgen exports of `Bus`, `Producer` and
//! `Consumer`, the commit queue on IndexedDB or memory, the run loop, and the Web
//! Locks that make a closed tab's partitions move at once.

mod bridge;
mod bus;
mod commit;
mod consumer;
mod held;
#[cfg(feature = "jobs")]
mod jobs;
mod locks;
mod remote;
mod writer;
