//! The job queues of `ferry/bullmq` on a browser bus (feature `jobs`; the
//! browser's `ferry` build leaves them out): the `__jobs` operation, and the job
//! events every context of the bus hears.
//!
//! A writer whose build has no job queues answers a job call
//! [`Reply::Unserved`](crate::protocol::Reply::Unserved), and the context that made
//! it runs it itself ([`super::bus`]'s `call_unchecked`).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::BroadcastChannel;

use super::bus::{call, named_channel, promise, Bus, Shared};
use crate::interop::{args, reply};
use crate::protocol::Call;

/// Where a bus's job events go: `ferry/bullmq`'s listener here, and the channel
/// `ferry-jobs:{bus}` to and from the other contexts of the origin.
pub(super) struct JobEvents {
    listener: RefCell<Option<Function>>,
    channel: Option<BroadcastChannel>,
}

impl JobEvents {
    /// The job events of the bus `name` (`None`: a bus in memory, heard here only).
    pub fn open(name: Option<&str>) -> JobEvents {
        JobEvents { listener: RefCell::default(), channel: name.and_then(|name| named_channel("ferry-jobs", name)) }
    }

    pub fn close(&self) {
        if let Some(channel) = &self.channel {
            channel.set_onmessage(None);
            channel.close();
        }
    }

    fn hear(&self, text: &JsValue) {
        let listener = self.listener.borrow().clone();
        if let Some(listener) = listener {
            let _ = listener.call1(&JsValue::UNDEFINED, text);
        }
    }
}

/// Job events: those of this context's commits go to its listener and to the
/// other contexts; theirs come to its listener. Every context's `QueueEvents`
/// hears every job of the bus, wherever it moved.
pub(super) fn tell_job_events(shared: &Shared) {
    let weak = Rc::downgrade(shared);
    shared.local.on_job_events(Box::new(move |events| {
        let Some(shared) = weak.upgrade() else { return };
        let text = JsValue::from_str(&events);
        if let Some(channel) = &shared.jobs.channel {
            let _ = channel.post_message(&text);
        }
        shared.jobs.hear(&text);
    }));
    if let Some(channel) = &shared.jobs.channel {
        let weak = Rc::downgrade(shared);
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(shared) = weak.upgrade() {
                shared.jobs.hear(&js_sys::Reflect::get(&event, &JsValue::from_str("data")).unwrap_or(JsValue::UNDEFINED));
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
    }
}

#[wasm_bindgen]
impl Bus {
    /// One job queue operation of `ferry/bullmq` (pkg/entry/bullmq.js): `{ op, ... }`
    /// on `queue`, answered as the face reads it.
    #[wasm_bindgen(js_name = "__jobs")]
    pub fn jobs(&self, queue: JsValue, op: JsValue) -> Promise {
        let shared = self.shared.clone();
        promise(async move {
            let queue = args::string(&queue, "queueName")?;
            let op = crate::interop::jobs::job_op(&op)?;
            reply::to_js(call(&shared, Call::Jobs { queue, op }).await?, false)
        })
    }

    /// `ferry/bullmq`'s listener for the job events of every context of the bus.
    #[wasm_bindgen(js_name = "__onJobEvents")]
    pub fn on_job_events(&self, listener: JsValue) {
        *self.shared.jobs.listener.borrow_mut() = listener.dyn_into::<Function>().ok();
    }
}
