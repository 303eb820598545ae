//! Where the bus lives: one async trait, its backends, and the one commit driver
//! that every build runs ([`commit`]).
//!
//! One bus operation (or one group of them) is one [`Store::transact`]: its writes
//! are stored whole or not at all. That is what keeps offsets gapless and leases
//! exclusive; a backend that cannot promise it is not a backend.
//!
//! A store may be shared by contexts that each write it (every tab of an origin
//! on IndexedDB, two native buses on clones of one memory store). So a commit does
//! not only write: it first hands the driver what other contexts stored since it
//! last looked, and the operations run on the bus as stored, inside the
//! transaction that stores their outcome.
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

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::core::records::{Key, Record};
use crate::core::{BusConfig, Engine, FerryError, Write};

/// How many commits a store has taken: a context compares it with the count its
/// engine reflects to know whether others wrote in between.
pub type Version = u64;

/// What a context that fell behind gets to catch up.
#[derive(Debug)]
pub enum Refresh {
    /// Every record: rebuild from scratch.
    Everything(Vec<(Key, Record)>),
    /// The keys changed since it last looked, with their records now (`None`:
    /// deleted).
    Changes(Vec<Write>),
}

/// Storage for one bus.
///
/// Both calls may be slow (IndexedDB), so both are async; a synchronous backend
/// (memory, a Durable Object's `transactionSync`) returns futures that are ready at
/// once. Nothing but the store's own requests is awaited inside a transaction,
/// which is IndexedDB's rule: `run` is a plain function.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Every stored record, in any order, and the version they are as of.
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version), FerryError>;

    /// One atomic commit. When the store is past `seen` (the version the caller's
    /// view reflects; `None`: its view is not to be trusted), `run` first gets what
    /// changed since, or every record, and must bring its view up to date with it.
    /// `run` then returns the writes, and the call resolves to the version after
    /// them. After an error nothing of them is stored; when `run` refuses, its
    /// error is the call's.
    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>, FerryError>) -> Result<Version, FerryError>;
}

/// An engine, and the version of its store it reflects.
pub struct Replica {
    engine: Engine,
    seen: Option<Version>,
}

impl Replica {
    /// Opens the bus stored in `store`; `seed` drives retry jitter.
    pub async fn open<S: Store>(store: &S, config: BusConfig, seed: u64) -> Result<Replica, FerryError> {
        let (records, version) = store.load().await?;
        Ok(Replica { engine: Engine::open(config, seed, records)?, seen: Some(version) })
    }

    /// A replica that has read nothing yet: its first commit reads every record.
    pub fn unread(config: BusConfig, seed: u64) -> Result<Replica, FerryError> {
        Ok(Replica { engine: Engine::open(config, seed, [])?, seen: None })
    }

    /// The engine as of the last commit.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, for what is not an operation (its home, its options).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Brings the engine up to date with what other contexts stored.
    fn catch_up(&mut self, fresh: Option<Refresh>) -> Result<(), FerryError> {
        let caught_up = match fresh {
            None => return Ok(()),
            Some(Refresh::Everything(records)) => self.engine.reload(records),
            Some(Refresh::Changes(changes)) => self.engine.apply_stored(changes),
        };
        if caught_up.is_err() {
            // The view may be half updated: the next commit rebuilds it from every record.
            self.seen = None;
        }
        caught_up
    }
}

fn reentered() -> FerryError {
    FerryError::storage("the bus was re-entered while it was changing")
}

/// The commit cycle of every driver (the browser's commit queue, the native
/// runtime, a Durable Object's protocol):
///
/// 1. one transaction of `store` opens, and the engine catches up with what other
///    contexts stored since this one last looked;
/// 2. housekeeping, then `run`, at `now_ms()` read at that moment;
/// 3. the engine's writes are stored, and the engine told how it went: a failed
///    commit, or a `run` that refuses, undoes every change since the last commit.
///
/// The replica is borrowed only while the transaction runs its callback and once it
/// ends, never across a wait: other tasks read it meanwhile.
pub async fn commit<S: Store, T>(
    replica: &RefCell<Replica>,
    store: &S,
    now_ms: impl FnOnce() -> u64,
    run: impl FnOnce(&mut Engine, u64) -> Result<T, FerryError>,
) -> Result<T, FerryError> {
    let seen = replica.try_borrow().map_err(|_| reentered())?.seen;
    let mut out = None;
    let mut ran = false;
    let stored = store
        .transact(seen, |fresh| {
            let mut replica = replica.try_borrow_mut().map_err(|_| reentered())?;
            replica.catch_up(fresh)?;
            ran = true;
            let now = now_ms();
            let engine = &mut replica.engine;
            // Job events are those of the last commit: a driver that tells them
            // takes them as it ends, and one that does not keeps none.
            #[cfg(feature = "jobs")]
            engine.take_job_events();
            engine.housekeep(now);
            out = Some(run(engine, now)?);
            Ok(engine.begin_commit())
        })
        .await;
    let mut replica = replica.try_borrow_mut().map_err(|_| reentered())?;
    if ran {
        replica.engine.end_commit(stored.is_ok());
    }
    // After a failure `seen` stays: what the engine caught up with is read again
    // next time, and applying it twice is applying it once.
    let version = stored?;
    replica.seen = Some(version);
    out.ok_or_else(|| FerryError::storage("the store committed without running the operation"))
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
