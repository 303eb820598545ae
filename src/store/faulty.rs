//! A backend for tests that fails on purpose: commits (and loads) fail on a
//! countdown or at random from a seed, and a failed commit stores nothing, so tests
//! can check that the bus loses nothing it acknowledged.

use std::cell::Cell;

use super::{MemoryStore, Store};
use crate::core::records::{Key, Record};
use crate::core::rng::Rng;
use crate::core::{FerryError, Write};

pub struct FaultyStore {
    inner: MemoryStore,
    rng: std::cell::RefCell<Rng>,
    /// Out of 1000 calls, how many fail.
    failures_per_mille: Cell<u64>,
    /// Fail the call after this many successful ones (`None`: never by countdown).
    countdown: Cell<Option<u64>>,
}

impl FaultyStore {
    pub fn new(inner: MemoryStore, seed: u64) -> Self {
        FaultyStore { inner, rng: std::cell::RefCell::new(Rng::new(seed)), failures_per_mille: Cell::new(0), countdown: Cell::new(None) }
    }

    /// Fails each call with probability `per_mille / 1000`.
    pub fn fail_randomly(&self, per_mille: u64) {
        self.failures_per_mille.set(per_mille);
    }

    /// Fails the call after `calls` more successful ones.
    pub fn fail_after(&self, calls: u64) {
        self.countdown.set(Some(calls));
    }

    pub fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    fn should_fail(&self) -> bool {
        let by_countdown = match self.countdown.get() {
            Some(0) => {
                self.countdown.set(None);
                true
            }
            Some(n) => {
                self.countdown.set(Some(n - 1));
                false
            }
            None => false,
        };
        by_countdown || self.rng.borrow_mut().chance(self.failures_per_mille.get(), 1000)
    }
}

impl Store for FaultyStore {
    async fn load(&self) -> Result<Vec<(Key, Record)>, FerryError> {
        if self.should_fail() {
            return Err(FerryError::storage("injected failure: load (UnknownError)"));
        }
        self.inner.load().await
    }

    async fn commit(&self, writes: &[Write]) -> Result<(), FerryError> {
        if self.should_fail() {
            return Err(FerryError::storage("injected failure: commit (AbortError)"));
        }
        self.inner.commit(writes).await
    }
}
