//! A backend for tests that fails on purpose: it wraps any other backend, and its
//! commits (and loads) fail on a countdown or at random from a seed. A failed
//! commit stores nothing, so tests can check that the bus loses nothing it
//! acknowledged.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::{MemoryStore, Refresh, Store, Version};
use crate::core::records::{Key, Record};
use crate::core::rng::Rng;
use crate::core::{FerryError, Write};

/// `inner`, failing on purpose. Clones share the failure schedule (and whatever
/// clones of `inner` share), so a test can keep one to steer the failures of a
/// store it handed to a driver.
#[derive(Clone)]
pub struct FaultyStore<S = MemoryStore> {
    inner: S,
    faults: Rc<Faults>,
}

struct Faults {
    rng: RefCell<Rng>,
    /// Out of 1000 calls, how many fail.
    failures_per_mille: Cell<u64>,
    /// Fail the call after this many successful ones (`None`: never by countdown).
    countdown: Cell<Option<u64>>,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S, seed: u64) -> Self {
        let faults = Faults { rng: RefCell::new(Rng::new(seed)), failures_per_mille: Cell::new(0), countdown: Cell::new(None) };
        FaultyStore { inner, faults: Rc::new(faults) }
    }

    /// Fails each call with probability `per_mille / 1000`.
    pub fn fail_randomly(&self, per_mille: u64) {
        self.faults.failures_per_mille.set(per_mille);
    }

    /// Fails the call after `calls` more successful ones.
    pub fn fail_after(&self, calls: u64) {
        self.faults.countdown.set(Some(calls));
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn should_fail(&self) -> bool {
        let faults = &self.faults;
        let by_countdown = match faults.countdown.get() {
            Some(0) => {
                faults.countdown.set(None);
                true
            }
            Some(n) => {
                faults.countdown.set(Some(n - 1));
                false
            }
            None => false,
        };
        by_countdown || faults.rng.borrow_mut().chance(faults.failures_per_mille.get(), 1000)
    }
}

impl<S: Store> Store for FaultyStore<S> {
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version), FerryError> {
        if self.should_fail() {
            return Err(FerryError::storage("injected failure: load (UnknownError)"));
        }
        self.inner.load().await
    }

    /// Fails once the writes are known, as a transaction aborts when it commits;
    /// a commit that writes nothing counts no call.
    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>, FerryError>) -> Result<Version, FerryError> {
        self.inner
            .transact(seen, |fresh| {
                let writes = run(fresh)?;
                if !writes.is_empty() && self.should_fail() {
                    return Err(FerryError::storage("injected failure: commit (AbortError)"));
                }
                Ok(writes)
            })
            .await
    }
}
