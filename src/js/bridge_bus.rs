//! `bus.bridge` in the pages' build, which has neither the bridge nor `Bus.remote`
//! (feature `bridge`): a page's bridges run in a bus of the engine's build,
//! opened beside this one on the first `bus.bridge`, with the same options
//! (`entry.openEngineBus`, as [`super::local::engine_bus`] opens one). It is a
//! client of the same writer, and the bridges are its consumers. Once it is open,
//! this bus's `stats()` is its (so `stats().bridges` tells of them), and closing
//! this bus closes it (so closing stops them).
//!
//! The engine's build is what the SharedWorker that writes the bus runs, so a page
//! that bridges mostly finds it in the HTTP cache.

use std::cell::RefCell;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::bus::js_promise;
use super::local::engine_bus;
use crate::core::{FerryError, Result};
use crate::interop::error::{from_js_or, to_js};

#[wasm_bindgen]
extern "C" {
    /// The engine build's `Bus`.
    type EngineBus;

    #[wasm_bindgen(method)]
    fn bridge(this: &EngineBus, options: &JsValue) -> Promise;
    #[wasm_bindgen(method)]
    fn stats(this: &EngineBus) -> Promise;
    #[wasm_bindgen(method)]
    fn close(this: &EngineBus) -> Promise;
}

pub struct BridgeBus {
    /// `Bus.open`'s options and entry, to open the same bus with.
    options: Option<Object>,
    entry: JsValue,
    /// Resolves to the engine build's bus, once a `bus.bridge` asked for it.
    opened: RefCell<Option<Promise>>,
}

impl BridgeBus {
    /// The bridges of the bus `Bus.open(options)` of `entry` opened: none yet.
    pub fn new(options: Option<Object>, entry: JsValue) -> BridgeBus {
        BridgeBus { options, entry, opened: RefCell::default() }
    }

    /// The bus, opened on the first call: the bridges started meanwhile wait for the same one.
    fn bus(&self) -> Promise {
        let mut opened = self.opened.borrow_mut();
        let opening = opened.get_or_insert_with(|| {
            let (options, entry) = (self.options.clone(), self.entry.clone());
            js_promise(Box::pin(async move { engine_bus(options.as_ref(), &entry).await.map_err(to_js) }))
        });
        opening.clone()
    }

    /// `bus.bridge(options)`: a bridge of the engine build's bus.
    pub async fn bridge(&self, options: &JsValue) -> Result<JsValue> {
        let bus = match JsFuture::from(self.bus()).await {
            Ok(bus) => bus.unchecked_into::<EngineBus>(),
            Err(failed) => {
                // The next bridge tries to open it again.
                self.opened.take();
                return Err(from_bus(&failed));
            }
        };
        JsFuture::from(bus.bridge(options)).await.map_err(|refused| from_bus(&refused))
    }

    /// `bus.stats()` of the bus the bridges run in, once one was opened.
    pub fn stats(&self) -> Option<Promise> {
        let opening = self.opened.borrow().clone()?;
        Some(js_promise(Box::pin(async move { JsFuture::from(JsFuture::from(opening).await?.unchecked_into::<EngineBus>().stats()).await })))
    }

    /// Closes the bus the bridges run in, which stops them.
    pub async fn close(&self) -> Result<()> {
        let Some(opening) = self.opened.take() else { return Ok(()) };
        // A bus that failed to open has nothing to close.
        let Ok(bus) = JsFuture::from(opening).await else { return Ok(()) };
        JsFuture::from(bus.unchecked_into::<EngineBus>().close()).await.map(drop).map_err(|failed| from_bus(&failed))
    }
}

/// What the engine build's bus rejected with, as the `FerryError` it is.
fn from_bus(error: &JsValue) -> FerryError {
    from_js_or(error, FerryError::storage)
}
