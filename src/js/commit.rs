//! The commit queue between JavaScript calls and the store.
//!
//! Operations are queued, not run at once: the first one queued schedules a flush
//! on the next microtask, so everything started in the same turn shares one
//! commit (group commit), and nothing touches the engine while a commit is in
//! flight. On IndexedDB a flush is one readwrite transaction that first checks
//! whether another context of the origin committed since this one last looked,
//! rebuilds the engine from the stored records if so, and only then runs the
//! queued operations: every operation sees the bus as it is.
//!
//! An operation's result counts only once its commit is stored; a failed commit
//! undoes every operation in it, and each caller gets the storage error.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::core::{BusConfig, Engine, FerryError, Result};
use crate::store::indexeddb::{IndexedDbStore, Refresh};
use crate::store::{MemoryStore, Store};

/// Where a bus opened from JavaScript lives.
pub enum BusStore {
    Memory(MemoryStore),
    IndexedDb(IndexedDbStore),
}

/// Resolvers of promises waiting for one event.
#[derive(Default)]
pub struct Waiters(RefCell<Vec<Function>>);

impl Waiters {
    /// A promise that resolves at the next [`Waiters::wake_all`].
    pub fn wait(&self) -> JsFuture {
        JsFuture::from(Promise::new(&mut |resolve: Function, _reject: Function| self.add(resolve)))
    }

    /// Calls `resolve` at the next [`Waiters::wake_all`].
    pub fn add(&self, resolve: Function) {
        self.0.borrow_mut().push(resolve);
    }

    pub fn wake_all(&self) {
        for resolve in self.0.take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }
}

/// The operations sharing one commit, and its outcome once known.
#[derive(Default)]
struct Batch {
    outcome: RefCell<Option<Result<()>>>,
    settled: Waiters,
}

impl Batch {
    async fn stored(&self) -> Result<()> {
        loop {
            if let Some(outcome) = self.outcome.borrow().clone() {
                return outcome;
            }
            let _ = self.settled.wait().await;
        }
    }

    fn settle(&self, outcome: Result<()>) {
        *self.outcome.borrow_mut() = Some(outcome);
        self.settled.wake_all();
    }
}

/// A queued operation; it keeps its own result.
type Operation = Box<dyn FnOnce(&mut Engine, u64)>;

/// The engine, its store, and the queue in front of them.
pub struct Committer {
    engine: Engine,
    config: BusConfig,
    seed: u64,
    store: Rc<BusStore>,
    /// The commit count of the stored bus this engine reflects (IndexedDB).
    seen: f64,
    queue: Vec<Operation>,
    /// The batch the queued operations belong to.
    open: Option<Rc<Batch>>,
    /// A flush is running; it starts the next one when it ends.
    flushing: bool,
}

pub type SharedCommitter = Rc<RefCell<Committer>>;

fn reentered() -> FerryError {
    FerryError::storage("the bus was re-entered while it was changing")
}

impl Committer {
    /// Opens the bus stored in `store`.
    pub async fn open(config: BusConfig, seed: u64, store: BusStore) -> Result<Committer> {
        let (records, seen) = match &store {
            BusStore::Memory(s) => (s.load().await?, 0.0),
            BusStore::IndexedDb(s) => s.snapshot().await?,
        };
        let engine = Engine::open(config.clone(), seed, records)?;
        Ok(Committer { engine, config, seed, store: Rc::new(store), seen, queue: Vec::new(), open: None, flushing: false })
    }

    /// The engine as of this context's last commit, for reads that need not be
    /// current (when to wake up next).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &BusStore {
        &self.store
    }
}

/// Queues `op` at once (not when the future is first polled: callers rely on the
/// order of their calls), to run on the bus as stored within the next commit; the
/// future resolves with its result once that commit is stored.
pub fn operate<T: 'static>(
    shared: &SharedCommitter,
    now_ms: fn() -> u64,
    op: impl FnOnce(&mut Engine, u64) -> Result<T> + 'static,
) -> impl std::future::Future<Output = Result<T>> {
    let result: Rc<RefCell<Option<Result<T>>>> = Rc::default();
    let slot = result.clone();
    // The queue and the commit are not generic: one copy of them in the binary.
    let batch = enqueue(shared, now_ms, Box::new(move |engine, now| *slot.borrow_mut() = Some(op(engine, now))));
    async move {
        let stored = batch?.stored().await;
        let out = result.take().unwrap_or_else(|| Err(FerryError::storage("the operation never ran: its commit failed first")));
        match (out, stored) {
            (Err(refused), _) => Err(refused),
            (Ok(_), Err(failed)) => Err(failed),
            (Ok(out), Ok(())) => Ok(out),
        }
    }
}

/// Queues an operation; returns the batch (the commit) it joined.
fn enqueue(shared: &SharedCommitter, now_ms: fn() -> u64, op: Operation) -> Result<Rc<Batch>> {
    let batch = {
        let mut committer = shared.try_borrow_mut().map_err(|_| reentered())?;
        committer.queue.push(op);
        match &committer.open {
            Some(batch) => batch.clone(),
            None => {
                let batch = Rc::new(Batch::default());
                committer.open = Some(batch.clone());
                if !committer.flushing {
                    committer.flushing = true;
                    spawn_local(flush(shared.clone(), now_ms));
                }
                batch
            }
        }
    };
    Ok(batch)
}

/// Commits the open batch. Later operations queue up for the next one, which
/// starts when this one ends.
async fn flush(shared: SharedCommitter, now_ms: fn() -> u64) {
    let (store, seen) = {
        let Ok(mut committer) = shared.try_borrow_mut() else { return };
        if committer.open.is_none() {
            committer.flushing = false;
            return;
        }
        (committer.store.clone(), committer.seen)
    };
    // The batch is taken with the queue, when the transaction is ready to run it:
    // whatever was queued until then is in this commit, and is settled by it.
    let ran: RefCell<Option<Rc<Batch>>> = RefCell::default();
    // Takes the queue, runs it on the engine and returns the writes; what another
    // context committed (`fresh`) is brought in first.
    let run = |fresh: Option<Refresh>| -> Result<Vec<crate::core::Write>> {
        let mut committer = shared.try_borrow_mut().map_err(|_| reentered())?;
        let caught_up = match fresh {
            None => Ok(()),
            Some(Refresh::Everything(records)) => Engine::open(committer.config.clone(), committer.seed, records).map(|engine| committer.engine = engine),
            Some(Refresh::Changes(changes)) => committer.engine.apply_stored(changes),
        };
        if let Err(e) = caught_up {
            // The view may be half updated: the next commit rebuilds it from every record.
            committer.seen = -1.0;
            return Err(e);
        }
        *ran.borrow_mut() = committer.open.take();
        let queue = std::mem::take(&mut committer.queue);
        let now = now_ms();
        committer.engine.housekeep(now);
        for op in queue {
            op(&mut committer.engine, now);
        }
        Ok(committer.engine.begin_commit())
    };
    let outcome = match &*store {
        BusStore::Memory(memory) => match run(None) {
            Ok(writes) => memory.commit(&writes).await.map(|()| seen),
            Err(e) => Err(e),
        },
        BusStore::IndexedDb(idb) => {
            let mut refused = None;
            let done = idb
                .transact(seen, |fresh| match run(fresh) {
                    Ok(writes) => writes,
                    Err(e) => {
                        refused = Some(e);
                        Vec::new()
                    }
                })
                .await;
            match refused {
                Some(e) => Err(e),
                None => done,
            }
        }
    };
    let Ok(mut committer) = shared.try_borrow_mut() else {
        if let Some(batch) = ran.take() {
            batch.settle(Err(reentered()));
        }
        return;
    };
    let batch = match ran.take() {
        Some(batch) => {
            committer.engine.end_commit(outcome.is_ok());
            if let Ok(version) = outcome {
                committer.seen = version;
            }
            batch
        }
        // The transaction failed before it could run anything: the queued operations
        // never ran, and their callers get its error.
        None => {
            committer.queue.clear();
            match committer.open.take() {
                Some(batch) => batch,
                None => {
                    committer.flushing = false;
                    return;
                }
            }
        }
    };
    // Operations queued during this commit opened the next batch.
    committer.flushing = committer.open.is_some();
    let more = committer.flushing;
    drop(committer);
    batch.settle(outcome.map(|_| ()));
    if more {
        spawn_local(flush(shared, now_ms));
    }
}
