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
