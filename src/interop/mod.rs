//! JavaScript values in and out, for both faces of the package (the browser's in
//! `js`, the edge's in `edge::face`): arguments read and checked, results built,
//! and the one place engine errors become JavaScript values ([`error`]).
//!
//! Nothing a caller passes may panic: every value read from JavaScript goes through
//! [`args`], which answers a wrong type or range with `INVALID_ARGUMENT` naming the
//! field.

pub mod args;
pub mod delivered;
pub mod error;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod json;
pub mod options;
pub mod reply;

use wasm_bindgen::JsValue;

use crate::core::{FerryError, Result};

pub fn parse_json(text: &str) -> Result<JsValue> {
    js_sys::JSON::parse(text).map_err(|_| FerryError::storage("a result could not be handed to JavaScript"))
}

/// `{ field: value, ... }`.
pub fn object_of(fields: &[(&str, JsValue)]) -> Result<JsValue> {
    let out = js_sys::Object::new();
    for (field, value) in fields {
        js_sys::Reflect::set(&out, &JsValue::from_str(field), value).map_err(|_| FerryError::storage("a value could not be handed to JavaScript"))?;
    }
    Ok(out.into())
}
