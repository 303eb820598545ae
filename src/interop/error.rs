//! Engine errors as JavaScript values, in one place: an `Error` named `FerryError`
//! with a `code` (the package's `FerryError` class recognises them with
//! `instanceof`).

use js_sys::{Error, Reflect};
use wasm_bindgen::JsValue;

use crate::core::FerryError;

pub fn to_js(error: FerryError) -> JsValue {
    let js = Error::new(&error.message);
    js.set_name("FerryError");
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(&js, &JsValue::from_str("code"), &JsValue::from_str(error.code.as_str()));
    js.into()
}

/// A `FerryError` as JavaScript holds it (what [`to_js`] made, in another build of
/// the engine, or an edge's `{ code, message }`), back as one; anything else is
/// `otherwise(its message)`.
pub fn from_js_or(error: &JsValue, otherwise: impl FnOnce(String) -> FerryError) -> FerryError {
    let field = |name: &str| Reflect::get(error, &JsValue::from_str(name)).ok().and_then(|v| v.as_string());
    match (field("code").and_then(|code| crate::core::ErrorCode::parse(&code)), field("message")) {
        (Some(code), Some(message)) => FerryError::new(code, message),
        (_, message) => otherwise(message.or_else(|| error.as_string()).unwrap_or_default()),
    }
}
