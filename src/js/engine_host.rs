//! `EngineHost`: the engine of this build lent to a context of the browser's
//! `ferry` build, which has none (local_host.rs). That context loads it with its
//! bus when it writes the bus itself, or once it takes over as the writer. Calls
//! and replies cross as the bytes the writer's channel carries
//! ([`crate::protocol::wire`]); the rounds that wait for work wait here
//! ([`super::held`]), for as long as that context is the writer.

use js_sys::{Function, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::bus::{js_promise, open_shared, Shared};
use super::local::serve_bytes;
use crate::interop::error::to_js;
use crate::interop::{args, object_of};
use crate::protocol::wire::decode_receipt;
use crate::protocol::CallId;

#[wasm_bindgen]
pub struct EngineHost {
    shared: Shared,
}

#[wasm_bindgen]
impl EngineHost {
    /// `EngineHost.open(options, isWriter)`: the bus `Bus.open(options)` opened in
    /// the context that lends this engine, which writes it itself here (`writer:
    /// "each"`: the lending context holds the writer's lock); `isWriter()` says
    /// whether it is the writer now.
    pub fn open(options: JsValue, is_writer: Function) -> Promise {
        js_promise(Box::pin(async move {
            let here = object_of(&[("writer", "each".into())]).map_err(to_js)?;
            let given = args::options(&options, "options").map_err(to_js)?.unwrap_or_default();
            let options = Object::assign(&Object::assign(&Object::new(), &given), here.unchecked_ref());
            let shared = open_shared(Some(&options), &JsValue::UNDEFINED).await.map_err(to_js)?;
            *shared.lent_to.borrow_mut() = Some(is_writer);
            Ok(EngineHost { shared }.into())
        }))
    }

    /// `host.run(call, caller, id, answeredBelow)`: runs a call's bytes (`caller`:
    /// the context that made it, when another context did); resolves to its
    /// reply's bytes, an error among them.
    pub fn run(&self, call: Vec<u8>, caller: Option<String>, id: f64, answered_below: f64) -> Promise {
        let caller = caller.map(|context| CallId { context, id: id as u64, answered_below: answered_below as u64 });
        let shared = self.shared.clone();
        js_promise(Box::pin(async move { Ok(Uint8Array::from(serve_bytes(&shared, &call, caller).await.as_slice()).into()) }))
    }

    /// `host.nextDueMs()`: when something is due next; -1 when nothing is.
    #[wasm_bindgen(js_name = nextDueMs)]
    pub fn next_due_ms(&self) -> f64 {
        self.shared.local.next_due_ms().map_or(-1.0, |due_ms| due_ms as f64)
    }

    /// `host.holds(group, member, receipt, nowMs)`: whether the member still holds
    /// the delivery of the receipt's bytes.
    pub fn holds(&self, group: String, member: String, receipt: Vec<u8>, now_ms: f64) -> bool {
        decode_receipt(&receipt).map_or(true, |receipt| self.shared.local.holds(&group, &member, &receipt, now_ms as u64))
    }

    /// `host.owns(group, member, topic, partition)`.
    pub fn owns(&self, group: String, member: String, topic: String, partition: u32) -> bool {
        self.shared.local.owns(&group, &member, &topic, partition)
    }

    /// `host.close()`: closes the bus here; the lending context closed its own.
    pub fn close(&self) {
        super::bus::close_now(&self.shared);
    }
}
