//! `EngineHost`: the engine of this build lent to a context of the browser's
//! `ferry` build, which has none (local_host.rs). That context loads it with its
//! bus when it writes the bus itself, or once it takes over as the writer. Calls
//! and replies cross as the bytes the writer's channel carries
//! ([`crate::protocol::wire`]); the rounds that wait for work wait here
//! ([`super::held`]), for as long as that context is the writer.

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::bus::{js_promise, open_shared, Shared, StorageChoice};
use super::local::{serve_bytes, Local};
use crate::core::config::BusConfig;
use crate::interop::error::to_js;
use crate::protocol::wire::decode_receipt;
use crate::protocol::CallId;
use crate::store::indexeddb::Durability;

#[wasm_bindgen]
pub struct EngineHost {
    shared: Shared,
}

#[wasm_bindgen]
impl EngineHost {
    /// `EngineHost.open(name, strict, autoCreateTopics, maxMessageBytes, isWriter)`:
    /// the bus in the IndexedDB database `name`, with the options of the context
    /// that lends this engine. That context holds the writer's lock, so the bus
    /// joins no election here; `isWriter()` says whether it is the writer now.
    pub fn open(name: String, strict: bool, auto_create_topics: bool, max_message_bytes: f64, is_writer: Function) -> Promise {
        js_promise(Box::pin(async move {
            let durability = if strict { Durability::Strict } else { Durability::Relaxed };
            let storage = StorageChoice::IndexedDb { name: name.clone(), durability, one_writer: false, shared_worker: false };
            let config = BusConfig { auto_create_topics, max_message_bytes: max_message_bytes as u64 };
            let local = Local::open(&storage, &config, true).await.map_err(to_js)?;
            let shared = open_shared(config, Some(name), local, None, Default::default());
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
