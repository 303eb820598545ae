//! The browser face of the bus (`import { Bus } from 'ferry'`, in pages, workers,
//! service workers and Node): wasm-bindgen exports of `Bus`, `Producer` and
//! `Consumer`, the commit queue on IndexedDB or memory, the run loop, and the Web
//! Locks that make a closed tab's partitions move at once.

#[cfg(feature = "bridge")]
mod bridge;
// The pages' build runs its bridges in the engine's.
#[cfg(not(feature = "bridge"))]
mod bridge_bus;
mod bus;
#[cfg(feature = "engine")]
mod commit;
mod consumer;
// Lent by the engine's build to the pages' build; ferry/bullmq's pages run their own.
#[cfg(all(feature = "engine", not(feature = "jobs")))]
mod engine_host;
#[cfg(feature = "engine")]
mod held;
#[cfg(feature = "jobs")]
mod jobs;
#[cfg(feature = "engine")]
mod local;
#[cfg(not(feature = "engine"))]
#[path = "local_host.rs"]
mod local;
mod locks;
#[cfg(feature = "bridge")]
mod remote;
mod settled;
mod writer;
