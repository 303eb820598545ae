//! Group commit for a store whose commits yield (IndexedDB): while one commit is
//! in flight the engine is left alone; operations that arrive meanwhile wait, then
//! run together and share the next commit, one transaction for all of them.
//!
//! An operation runs on the engine, joins the open batch (the first to join
//! schedules its flush as a microtask, so everything started in the same turn
//! joins too), and settles with the batch: its result counts only once the batch
//! is stored.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::core::records::{Key, Record};
use crate::core::{Engine, FerryError, Result, Write};
use crate::store::indexeddb::IndexedDbStore;
use crate::store::{MemoryStore, Store};

/// Where a bus opened from JavaScript lives.
pub enum BusStore {
    Memory(MemoryStore),
    IndexedDb(IndexedDbStore),
}

impl Store for BusStore {
    async fn load(&self) -> Result<Vec<(Key, Record)>> {
        match self {
            BusStore::Memory(s) => s.load().await,
            BusStore::IndexedDb(s) => s.load().await,
        }
    }

    async fn commit(&self, writes: &[Write]) -> Result<()> {
        match self {
            BusStore::Memory(s) => s.commit(writes).await,
            BusStore::IndexedDb(s) => s.commit(writes).await,
        }
    }
}

/// Resolvers of promises waiting for one event.
#[derive(Default)]
pub struct Waiters(RefCell<Vec<Function>>);

impl Waiters {
    /// A promise that resolves at the next [`Waiters::wake_all`].
    pub fn wait(&self) -> JsFuture {
        JsFuture::from(Promise::new(&mut |resolve: Function, _reject: Function| self.0.borrow_mut().push(resolve)))
    }

    pub fn wake_all(&self) {
        for resolve in self.0.take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }
}

/// The operations sharing one commit, and its outcome once known.
#[derive(Default)]
pub struct Batch {
    outcome: RefCell<Option<Result<()>>>,
    settled: Waiters,
}

impl Batch {
    pub async fn stored(&self) -> Result<()> {
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

/// The engine with its store and the commit queue in front of them.
pub struct Committer {
    pub engine: Engine,
    store: Rc<BusStore>,
    /// The batch operations join; flushed on the next microtask.
    open: Option<Rc<Batch>>,
    in_flight: bool,
    /// Operations waiting for the commit in flight to end.
    commit_ended: Rc<Waiters>,
}

pub type SharedCommitter = Rc<RefCell<Committer>>;

impl Committer {
    pub fn new(engine: Engine, store: BusStore) -> Self {
        Committer { engine, store: Rc::new(store), open: None, in_flight: false, commit_ended: Rc::default() }
    }

    pub fn store(&self) -> &BusStore {
        &self.store
    }
}

fn busy() -> FerryError {
    FerryError::storage("the bus was re-entered while it was changing")
}

/// Runs `op` on the engine and resolves once its writes are stored (with the
/// writes of every operation that shared its commit).
pub async fn operate<T>(shared: &SharedCommitter, now_ms: impl Fn() -> u64, op: impl FnOnce(&mut Engine, u64) -> Result<T>) -> Result<T> {
    loop {
        let waiting = {
            let committer = shared.try_borrow().map_err(|_| busy())?;
            committer.in_flight.then(|| committer.commit_ended.clone())
        };
        match waiting {
            Some(waiters) => {
                let _ = waiters.wait().await;
            }
            None => break,
        }
    }
    let (out, batch) = {
        let mut committer = shared.try_borrow_mut().map_err(|_| busy())?;
        let out = op(&mut committer.engine, now_ms())?;
        let batch = match &committer.open {
            Some(batch) => batch.clone(),
            None => {
                let batch = Rc::new(Batch::default());
                committer.open = Some(batch.clone());
                spawn_local(flush(shared.clone()));
                batch
            }
        };
        (out, batch)
    };
    batch.stored().await?;
    Ok(out)
}

/// Commits the open batch; operations arriving meanwhile wait for the next one.
async fn flush(shared: SharedCommitter) {
    let Ok(mut committer) = shared.try_borrow_mut() else { return };
    let Some(batch) = committer.open.take() else { return };
    committer.in_flight = true;
    let writes = committer.engine.begin_commit();
    let store = committer.store.clone();
    drop(committer);
    let outcome = if writes.is_empty() { Ok(()) } else { store.commit(&writes).await };
    let ended = match shared.try_borrow_mut() {
        Ok(mut committer) => {
            committer.engine.end_commit(outcome.is_ok());
            committer.in_flight = false;
            committer.commit_ended.clone()
        }
        Err(_) => {
            batch.settle(Err(busy()));
            return;
        }
    };
    batch.settle(outcome);
    ended.wake_all();
}
