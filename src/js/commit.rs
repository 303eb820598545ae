//! The commit queue between JavaScript calls and the store.
//!
//! Operations are queued, not run at once: the first one queued schedules a flush
//! on the next microtask, so everything started in the same turn shares one
//! commit (group commit), and nothing touches the engine while a commit is in
//! flight. A flush is one run of the commit driver every build shares
//! ([`store::commit`]): on IndexedDB, one readwrite transaction that first brings
//! in what other contexts of the origin committed since this one last looked, and
//! only then runs the queued operations: every operation sees the bus as it is.
//!
//! An operation's result counts only once its commit is stored; a failed commit
//! undoes every operation in it, and each caller gets the storage error.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;

use super::settled::Settled;
use crate::core::records::{Key, Record};
use crate::core::{BusConfig, Engine, FerryError, Result, Write};
use crate::store::indexeddb::IndexedDbStore;
use crate::store::{self, MemoryStore, Refresh, Replica, Store, Version};

/// Where a bus opened from JavaScript lives.
pub enum BusStore {
    Memory(MemoryStore),
    IndexedDb(IndexedDbStore),
}

impl BusStore {
    /// Lets go of the database: an open one keeps a Node process alive.
    pub fn close(&self) {
        if let BusStore::IndexedDb(store) = self {
            store.close();
        }
    }
}

impl Store for BusStore {
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version)> {
        match self {
            BusStore::Memory(store) => store.load().await,
            BusStore::IndexedDb(store) => store.load().await,
        }
    }

    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>>) -> Result<Version> {
        match self {
            BusStore::Memory(store) => store.transact(seen, run).await,
            BusStore::IndexedDb(store) => store.transact(seen, run).await,
        }
    }
}

/// The operations sharing one commit, and its outcome once known.
#[derive(Default)]
struct Batch {
    outcome: Settled<Result<()>>,
}

impl Batch {
    async fn stored(&self) -> Result<()> {
        self.outcome.get().await
    }

    fn settle(&self, outcome: Result<()>) {
        self.outcome.set(outcome);
    }
}

/// A queued operation; it keeps its own result.
type Operation = Box<dyn FnOnce(&mut Engine, u64)>;

/// Where an operation runs within its commit.
#[derive(Clone, Copy)]
pub enum Place {
    /// After the operations queued before it.
    InOrder,
    /// After every [`Place::InOrder`] operation of its commit, even those queued
    /// after it: a consumer's round that waits for work then leases what the
    /// commit appends or frees.
    Last,
}

/// The operations waiting for the next commit.
#[derive(Default)]
struct Queue {
    operations: Vec<Operation>,
    /// The [`Place::Last`] ones, in the order they were queued.
    last: Vec<Operation>,
    /// The batch the queued operations belong to.
    open: Option<Rc<Batch>>,
    /// A flush is running; it starts the next one when it ends.
    flushing: bool,
}

/// The engine, its store, and the queue in front of them.
pub struct Committer {
    replica: RefCell<Replica>,
    store: BusStore,
    queue: RefCell<Queue>,
    /// Told the job events of each stored commit ([`Engine::take_job_events`]).
    #[cfg(feature = "jobs")]
    job_events: RefCell<Option<JobEvents>>,
}

/// What hears a commit's job events, as the text of a JSON array.
#[cfg(feature = "jobs")]
pub type JobEvents = Box<dyn Fn(String)>;

pub type SharedCommitter = Rc<Committer>;

fn reentered() -> FerryError {
    FerryError::storage("the bus was re-entered while it was changing")
}

impl Committer {
    /// Opens the bus stored in `store`: reads it now when `reads_now`, else at its
    /// first commit.
    pub async fn open(config: BusConfig, seed: u64, store: BusStore, reads_now: bool) -> Result<Committer> {
        let replica = if reads_now { Replica::open(&store, config, seed).await? } else { Replica::unread(config, seed)? };
        Ok(Committer {
            replica: RefCell::new(replica),
            store,
            queue: RefCell::default(),
            #[cfg(feature = "jobs")]
            job_events: RefCell::default(),
        })
    }

    /// Reads the engine as of this context's last commit, for decisions that need
    /// not be current (when to wake up next).
    pub fn read<T>(&self, f: impl FnOnce(&Engine) -> T) -> Result<T> {
        Ok(f(self.replica.try_borrow().map_err(|_| reentered())?.engine()))
    }

    pub fn store(&self) -> &BusStore {
        &self.store
    }

    #[cfg(feature = "jobs")]
    pub fn on_job_events(&self, hear: JobEvents) {
        *self.job_events.borrow_mut() = Some(hear);
    }
}

/// Queues `op` at once (not when the future is first polled: callers rely on the
/// order of their calls), to run on the bus as stored within the next commit; the
/// future resolves with its result once that commit is stored.
pub fn operate<T: 'static>(
    shared: &SharedCommitter,
    now_ms: fn() -> u64,
    place: Place,
    op: impl FnOnce(&mut Engine, u64) -> Result<T> + 'static,
) -> impl Future<Output = Result<T>> {
    let result: Rc<RefCell<Option<Result<T>>>> = Rc::default();
    let slot = result.clone();
    // The queue and the commit are not generic: one copy of them in the binary.
    let batch = enqueue(shared, now_ms, place, Box::new(move |engine, now| *slot.borrow_mut() = Some(op(engine, now))));
    async move {
        let stored = batch?.stored().await;
        match (result.take(), stored) {
            (Some(Err(refused)), _) => Err(refused),
            (_, Err(failed)) => Err(failed),
            (Some(Ok(out)), Ok(())) => Ok(out),
            (None, Ok(())) => Err(FerryError::storage("the operation never ran")),
        }
    }
}

/// Queues an operation; returns the batch (the commit) it joined.
fn enqueue(shared: &SharedCommitter, now_ms: fn() -> u64, place: Place, op: Operation) -> Result<Rc<Batch>> {
    let mut queue = shared.queue.try_borrow_mut().map_err(|_| reentered())?;
    match place {
        Place::InOrder => queue.operations.push(op),
        Place::Last => queue.last.push(op),
    }
    if let Some(batch) = &queue.open {
        return Ok(batch.clone());
    }
    let batch = Rc::new(Batch::default());
    queue.open = Some(batch.clone());
    if !queue.flushing {
        queue.flushing = true;
        spawn_local(flush(shared.clone(), now_ms));
    }
    Ok(batch)
}

/// Commits the open batch through the one commit driver ([`store::commit`]).
/// Later operations queue up for the next one, which starts when this one ends.
async fn flush(shared: SharedCommitter, now_ms: fn() -> u64) {
    // The batch is taken with the queue, when the transaction is ready to run it:
    // whatever was queued until then is in this commit, and is settled by it.
    let ran: RefCell<Option<Rc<Batch>>> = RefCell::default();
    let outcome = store::commit(&shared.replica, &shared.store, now_ms, |engine, now| {
        let operations = {
            let mut queue = shared.queue.try_borrow_mut().map_err(|_| reentered())?;
            *ran.borrow_mut() = queue.open.take();
            let mut operations = std::mem::take(&mut queue.operations);
            operations.append(&mut queue.last);
            operations
        };
        for op in operations {
            op(engine, now);
        }
        Ok(())
    })
    .await;
    let Ok(mut queue) = shared.queue.try_borrow_mut() else {
        if let Some(batch) = ran.take() {
            batch.settle(Err(reentered()));
        }
        return;
    };
    let batch = match ran.take() {
        Some(batch) => batch,
        // The transaction failed before it could run anything: the queued operations
        // never ran, and their callers get its error.
        None => {
            queue.operations.clear();
            queue.last.clear();
            match queue.open.take() {
                Some(batch) => batch,
                None => {
                    queue.flushing = false;
                    return;
                }
            }
        }
    };
    // Operations queued during this commit opened the next batch.
    queue.flushing = queue.open.is_some();
    let more = queue.flushing;
    drop(queue);
    #[cfg(feature = "jobs")]
    let events = shared.replica.try_borrow_mut().ok().and_then(|mut r| r.engine_mut().take_job_events());
    batch.settle(outcome);
    #[cfg(feature = "jobs")]
    if let Some(events) = events {
        if let Some(hear) = shared.job_events.borrow().as_ref() {
            hear(events);
        }
    }
    if more {
        spawn_local(flush(shared, now_ms));
    }
}
