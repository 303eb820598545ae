//! Where the bus lives: a small async trait and its backends.
//!
//! One bus operation (or one group of them) is one [`Store::commit`]: the batch is
//! stored whole or not at all. That is what keeps offsets gapless and leases
//! exclusive; a backend that cannot promise it is not a backend.
//!
//! The IndexedDB store is shared by other contexts that write too, so it cannot
//! split reading and writing: it offers `transact` instead (read what changed, run
//! the operations, write, all in one transaction).
#![forbid(unsafe_code)]

#[cfg(all(target_arch = "wasm32", feature = "edge"))]
pub mod durable;
mod faulty;
#[cfg(all(target_arch = "wasm32", not(feature = "edge")))]
pub mod indexeddb;
#[cfg(target_arch = "wasm32")]
mod js_keys;
mod memory;

pub use faulty::FaultyStore;
pub use memory::MemoryStore;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::core::records::{Key, Record};
use crate::core::{Engine, FerryError, Write};

/// Storage for one bus.
///
/// `load` is called when the bus opens; `commit` after every batch of engine
/// operations. Both may be slow (IndexedDB, a Durable Object), so both are async;
/// neither is ever called concurrently with itself by one driver.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Every stored record, in any order.
    async fn load(&self) -> Result<Vec<(Key, Record)>, FerryError>;

    /// Stores `writes` atomically: after an error, nothing of them is stored.
    async fn commit(&self, writes: &[Write]) -> Result<(), FerryError>;
}

/// The commit step of every driver that owns its engine and store: stores what
/// the engine wrote since its last commit when `keep` (else the operations since
/// are undone), and tells the engine how it went, so that a failed commit undoes
/// them too.
pub async fn commit<S: Store>(engine: &mut Engine, store: &S, keep: bool) -> Result<(), FerryError> {
    let writes = engine.begin_commit();
    let stored = if keep && !writes.is_empty() { store.commit(&writes).await } else { Ok(()) };
    engine.end_commit(keep && stored.is_ok());
    stored
}

/// The outcome of a store's future that is ready at once: what the synchronous
/// backends give (memory, a Durable Object's `transactionSync`), for the drivers
/// that run synchronously (a Durable Object's protocol, the native runtime). A
/// future that would wait is a `STORAGE` error, never a block.
pub fn ready<T>(future: impl Future<Output = Result<T, FerryError>>) -> Result<T, FerryError> {
    struct Never;
    impl Wake for Never {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Never));
    match pin!(future).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => Err(FerryError::storage("this store waits, and the driver using it cannot")),
    }
}
