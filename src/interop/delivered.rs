//! Delivered messages as handlers and pull consumers get them.

use js_sys::{Uint8Array, JSON};
use wasm_bindgen::prelude::*;

use crate::core::{Delivery, ValueKind};

#[wasm_bindgen(inline_js = "export function message(key, value, names, values, offset, timestamp, id, attempt) {
  const headers = {};
  for (let i = 0; i < names.length; i++) headers[names[i]] = values[i];
  return { key: key ?? null, value, headers, offset, timestamp, id: id ?? null, attempt };
}
export function messagePayload(topic, partition, message) {
  return { topic, partition, message };
}
export function remoteMessage(m, value) {
  return { key: m.key ?? null, value, headers: m.headers ?? {}, offset: m.offset, timestamp: m.timestamp, id: m.id ?? null, attempt: m.attempt };
}")]
extern "C" {
    /// Builds a delivered message in one call: property names cross from wasm as
    /// text, which costs more per message than the message itself.
    #[wasm_bindgen(js_name = message)]
    #[allow(clippy::too_many_arguments)]
    fn make_message(
        key: Option<String>,
        value: JsValue,
        names: Vec<String>,
        values: Vec<String>,
        offset: f64,
        timestamp: f64,
        id: Option<String>,
        attempt: u32,
    ) -> JsValue;

    /// `eachMessage`'s argument.
    #[wasm_bindgen(js_name = messagePayload)]
    pub fn make_message_payload(topic: &str, partition: u32, message: JsValue) -> JsValue;

    /// A message a remote consumer leased (`m`, as the edge's JSON gives it) in a
    /// delivered message's shape, with `value` as read back.
    #[wasm_bindgen(js_name = remoteMessage)]
    pub fn make_remote_message(m: &JsValue, value: JsValue) -> JsValue;
}

/// A message's value as the consumer gets it.
fn value_of(message: &crate::core::Message) -> JsValue {
    match message.value.kind {
        ValueKind::String => JsValue::from_str(&message.value.text()),
        ValueKind::Bytes => Uint8Array::from(message.value.bytes.as_slice()).into(),
        ValueKind::Json => JSON::parse(&message.value.text()).unwrap_or(JsValue::NULL),
    }
}

/// `{ topic, partition, message }`, `eachMessage`'s argument.
pub fn payload(delivery: &Delivery) -> JsValue {
    make_message_payload(&delivery.topic, delivery.partition, message_payload(&delivery.message, delivery.attempt))
}

/// `{ key, value, headers, offset, timestamp, id, attempt }`.
pub fn message_payload(m: &crate::core::Message, attempt: u32) -> JsValue {
    let (names, values) = m.headers.iter().cloned().unzip();
    make_message(m.key.clone(), value_of(m), names, values, m.offset as f64, m.timestamp_ms as f64, m.id.clone(), attempt)
}
