//! Time for the driver: the system clock, or a manual one that jumps instead of
//! sleeping (for simulations and fast tests).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits until `now_ms() >= at_ms`.
    fn sleep_until(&self, at_ms: u64);
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn sleep_until(&self, at_ms: u64) {
        let now = self.now_ms();
        if at_ms > now {
            std::thread::sleep(Duration::from_millis(at_ms - now));
        }
    }
}

/// A clock that moves only when told to (or when slept on). Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now_ms: Rc<Cell<u64>>,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock { now_ms: Rc::new(Cell::new(start_ms)) }
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.set(now_ms);
    }

    pub fn advance(&self, by_ms: u64) {
        self.now_ms.set(self.now_ms.get().saturating_add(by_ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn sleep_until(&self, at_ms: u64) {
        if at_ms > self.now_ms.get() {
            self.now_ms.set(at_ms);
        }
    }
}
