//! The replies of calls ([`crate::protocol::Reply`]) as the user gets them, in both
//! faces: a Worker's `connect()` and a browser context whose bus is written by
//! another.

use js_sys::{Array, Reflect};
use wasm_bindgen::JsValue;

use super::delivered::{message_payload, payload};
use super::{json, parse_json};
use crate::core::engine::Browsed;
use crate::core::{FerryError, Result};
use crate::protocol::Reply;

/// An operation's result as the user gets it; `publish` (one message sent) gets
/// one metadata, not a list.
pub fn to_js(reply: Reply, publish: bool) -> Result<JsValue> {
    Ok(match reply {
        Reply::Done => JsValue::UNDEFINED,
        Reply::Bool(b) => JsValue::from_bool(b),
        Reply::Count(n) => JsValue::from_f64(n as f64),
        Reply::Topics(list) => parse_json(&json::topics(&list))?,
        Reply::Metadata(list) if publish => Array::from(&parse_json(&json::metadata(&list))?).get(0),
        Reply::Metadata(list) => parse_json(&json::metadata(&list))?,
        Reply::Stats(stats) => parse_json(&json::stats(&stats))?,
        Reply::Deliveries(deliveries) => {
            let received = Array::new();
            for delivery in &deliveries {
                let item = payload(delivery);
                // The generation goes back with the receipt (see Engine::seek).
                Reflect::set(&item, &JsValue::from_str("generation"), &JsValue::from(delivery.generation))
                    .map_err(|_| FerryError::storage("a message could not be handed over"))?;
                received.push(&item);
            }
            received.into()
        }
        Reply::Browsed(browsed) => browsed_js(&browsed)?,
        #[cfg(feature = "jobs")]
        Reply::Json(text) => parse_json(&text)?,
        Reply::Topic { .. } | Reply::Settings(_) | Reply::Settled(_) | Reply::Accepted { .. } | Reply::Round { .. } | Reply::Unserved => {
            return Err(FerryError::storage("an operation ended with an object's own reply"))
        }
    })
}

/// `{ lowOffset, highOffset, nextOffset, messages }` of `bus.browse()`: each
/// message as a handler gets it, its `attempt` the deliveries the group asked
/// about made of it while unsettled (0: none), and `redriven` for a dead letter
/// moved back already.
fn browsed_js(browsed: &Browsed) -> Result<JsValue> {
    let messages = Array::new();
    for m in &browsed.messages {
        let item = message_payload(&m.message, m.attempt.unwrap_or(0));
        Reflect::set(&item, &JsValue::from_str("redriven"), &JsValue::from_bool(m.redriven))
            .map_err(|_| FerryError::storage("a browsed message could not be handed over"))?;
        messages.push(&item);
    }
    let out = js_sys::Object::new();
    for (name, value) in [
        ("lowOffset", JsValue::from_f64(browsed.low_offset as f64)),
        ("highOffset", JsValue::from_f64(browsed.high_offset as f64)),
        ("nextOffset", JsValue::from_f64(browsed.next_offset as f64)),
        ("messages", messages.into()),
    ] {
        Reflect::set(&out, &JsValue::from_str(name), &value).map_err(|_| FerryError::storage("browsed messages could not be handed over"))?;
    }
    Ok(out.into())
}
