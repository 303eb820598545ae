//! What tasks of the face wait for: a value set once ([`Settled`]), and an event
//! JavaScript promises wait for ([`Waiters`]).

use std::cell::RefCell;
use std::future::Future;
use std::task::{Poll, Waker};

use js_sys::Function;
use wasm_bindgen::JsValue;

/// Resolvers of promises waiting for one event.
#[derive(Default)]
pub struct Waiters(RefCell<Vec<Function>>);

impl Waiters {
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

/// A value set once, which tasks wait for. Waiting costs no JavaScript promise:
/// a commit's thousand callers wake as Rust tasks.
pub struct Settled<T> {
    value: RefCell<Option<T>>,
    wakers: RefCell<Vec<Waker>>,
}

impl<T> Default for Settled<T> {
    fn default() -> Self {
        Settled { value: RefCell::new(None), wakers: RefCell::default() }
    }
}

impl<T: Clone> Settled<T> {
    /// The value, once set.
    pub fn get(&self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(move |cx| match self.value.borrow().clone() {
            Some(value) => Poll::Ready(value),
            None => {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    pub fn set(&self, value: T) {
        *self.value.borrow_mut() = Some(value);
        for waker in self.wakers.take() {
            waker.wake();
        }
    }
}
