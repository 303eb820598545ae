//! `EngineHost`: the engine of this build lent to a context of the browser's
//! `ferry` build, which has none (local_host.rs). That context loads this build
//! only once it must run calls itself: it took over as the writer, its bus is in
//! memory, or every context writes (`writer: "each"`). Calls and replies cross as
//! the bytes the writer's channel carries ([`crate::protocol::wire`]).

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::bus::{js_promise, StorageChoice};
use super::local::Local;
use crate::core::config::BusConfig;
use crate::interop::error::to_js;
use crate::protocol::wire::{decode_call, decode_receipt, encode_reply};
use crate::protocol::CallId;
use crate::store::indexeddb::Durability;

#[wasm_bindgen]
pub struct EngineHost {
    local: Local,
}

#[wasm_bindgen]
impl EngineHost {
    /// `EngineHost.open(name, strict, autoCreateTopics, maxMessageBytes)`: the
    /// engine of the bus stored in the IndexedDB database `name` (`null`: a bus in
    /// memory), with the options of the context that opens it.
    pub fn open(name: Option<String>, strict: bool, auto_create_topics: bool, max_message_bytes: f64) -> Promise {
        js_promise(Box::pin(async move {
            let durability = if strict { Durability::Strict } else { Durability::Relaxed };
            let storage = match name {
                Some(name) => StorageChoice::IndexedDb { name, durability, one_writer: false, shared_worker: false },
                None => StorageChoice::Memory,
            };
            let config = BusConfig { auto_create_topics, max_message_bytes: max_message_bytes as u64 };
            let local = Local::open(&storage, &config).await.map_err(to_js)?;
            Ok(EngineHost { local }.into())
        }))
    }

    /// `host.run(call, caller, id, answeredBelow)`: runs a call's bytes (`caller`:
    /// the context that made it, when another context did) within the next commit;
    /// resolves to its reply's bytes, an error among them.
    pub fn run(&self, call: Vec<u8>, caller: Option<String>, id: f64, answered_below: f64) -> Promise {
        let caller = caller.map(|context| CallId { context, id: id as u64, answered_below: answered_below as u64 });
        let ran = decode_call(&call).map(|(context, call)| self.local.run(Some(context.config), call, caller));
        js_promise(Box::pin(async move {
            let reply = match ran {
                Ok(ran) => ran.await,
                Err(unreadable) => Err(unreadable),
            };
            Ok(Uint8Array::from(encode_reply(&reply).as_slice()).into())
        }))
    }

    /// `host.nextDueMs()`: when something is due next; -1 when nothing is.
    #[wasm_bindgen(js_name = nextDueMs)]
    pub fn next_due_ms(&self) -> f64 {
        self.local.next_due_ms().map_or(-1.0, |due_ms| due_ms as f64)
    }

    /// `host.holds(group, member, receipt, nowMs)`: whether the member still holds
    /// the delivery of the receipt's bytes.
    pub fn holds(&self, group: String, member: String, receipt: Vec<u8>, now_ms: f64) -> bool {
        decode_receipt(&receipt).map_or(true, |receipt| self.local.holds(&group, &member, &receipt, now_ms as u64))
    }

    /// `host.owns(group, member, topic, partition)`.
    pub fn owns(&self, group: String, member: String, topic: String, partition: u32) -> bool {
        self.local.owns(&group, &member, &topic, partition)
    }

    /// `host.close()`: lets go of the database.
    pub fn close(&self) {
        self.local.close();
    }
}
