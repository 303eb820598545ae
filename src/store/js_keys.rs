//! Keys as JavaScript values, for the stores that live behind JavaScript APIs:
//! an array `[kind, ...components]` ([`Key::to_parts`]), which IndexedDB takes as
//! a key as it is and the Durable Object store as JSON text.

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::core::records::{Key, KeyPart};
use crate::core::{FerryError, Name};

pub fn key_to_js(key: &Key) -> JsValue {
    let (kind, parts) = key.to_parts();
    let array = Array::new();
    array.push(&JsValue::from_f64(f64::from(kind)));
    for part in parts {
        array.push(&match part {
            KeyPart::Str(s) => JsValue::from_str(&s),
            KeyPart::Num(n) => JsValue::from_f64(n as f64),
        });
    }
    array.into()
}

pub fn key_from_js(value: &JsValue) -> Result<Key, FerryError> {
    let bad = || FerryError::storage("corrupt key in storage");
    let array: &Array = value.dyn_ref().ok_or_else(bad)?;
    let kind = array.get(0).as_f64().filter(|k| (0.0..=255.0).contains(k)).ok_or_else(bad)? as u8;
    let mut parts = Vec::new();
    for i in 1..array.length() {
        let part = array.get(i);
        parts.push(match (part.as_string(), part.as_f64()) {
            (Some(s), _) => KeyPart::Str(Name::from(s)),
            (None, Some(n)) if n >= 0.0 && n.fract() == 0.0 => KeyPart::Num(n as u64),
            _ => return Err(bad()),
        });
    }
    Key::from_parts(kind, &parts)
}
