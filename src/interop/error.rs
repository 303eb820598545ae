//! Engine errors as JavaScript values, in one place: an `Error` named `FerryError`
//! with a `code` (the package's `FerryError` class recognises them with
//! `instanceof`), or plain data to cross Durable Object RPC.

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

/// `{ error: { code, message } }`: an error as plain data, to cross RPC.
#[cfg(feature = "edge")]
pub fn error_data(error: &FerryError) -> JsValue {
    let data = js_sys::Object::new();
    let inner = js_sys::Object::new();
    // Setting properties on fresh objects cannot fail.
    let _ = Reflect::set(&inner, &JsValue::from_str("code"), &JsValue::from_str(error.code.as_str()));
    let _ = Reflect::set(&inner, &JsValue::from_str("message"), &JsValue::from_str(&error.message));
    let _ = Reflect::set(&data, &JsValue::from_str("error"), &inner);
    data.into()
}

