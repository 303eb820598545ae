//! Reading what JavaScript passes: every wrong type, NaN, fraction, negative or
//! out-of-range number, and unserialisable value becomes `INVALID_ARGUMENT` with a
//! message naming the field.

use std::cell::RefCell;

use js_sys::{Array, Object, Reflect, Uint8Array, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{FerryError, Result, Value};

fn invalid(field: &str, expected: &str, got: &JsValue) -> FerryError {
    FerryError::invalid(format!("{field} must be {expected}, got {}", describe(got)))
}

/// A short description of a value for error messages.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        "undefined".into()
    } else if value.is_null() {
        "null".into()
    } else if let Some(s) = value.as_string() {
        format!("the string \"{s}\"")
    } else if value.as_f64().is_some() {
        js_text(value)
    } else {
        value.js_typeof().as_string().unwrap_or_else(|| "a value".into())
    }
}

/// `value` as an options object; `None` for `undefined` or `null`.
pub fn options(value: &JsValue, field: &str) -> Result<Option<Object>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if !value.is_object() || value.is_function() || Array::is_array(value) {
        return Err(invalid(field, "an object", value));
    }
    Ok(Some(value.clone().unchecked_into()))
}

thread_local! {
    /// Property names as JavaScript strings, made once: a string crossing from wasm
    /// is decoded every time, which costs more than reading the property itself.
    static PROPERTY_NAMES: RefCell<Vec<(&'static str, JsValue)>> = RefCell::default();
}

/// The property `key` of `object` (`undefined` when `object` is `None`).
pub fn get(object: Option<&Object>, key: &'static str) -> Result<JsValue> {
    let Some(object) = object else { return Ok(JsValue::UNDEFINED) };
    // Out of the borrow before reading: a getter may call back into ferry.
    let name = PROPERTY_NAMES.with(|names| {
        let mut names = names.borrow_mut();
        // The same literal is one address in the binary: compared by address
        // first, each read costs no string comparisons.
        let found = names.iter().position(|(name, _)| std::ptr::eq(*name, key)).or_else(|| names.iter().position(|(name, _)| *name == key));
        match found.map(|i| &names[i]) {
            Some((_, js)) => js.clone(),
            None => {
                let js = JsValue::from_str(key);
                names.push((key, js.clone()));
                js
            }
        }
    });
    Reflect::get(object, &name).map_err(|_| FerryError::invalid(format!("{key} could not be read")))
}

pub fn string(value: &JsValue, field: &str) -> Result<String> {
    value.as_string().ok_or_else(|| invalid(field, "a string", value))
}

/// A string, or `None` for `undefined` and `null`.
pub fn opt_string(value: &JsValue, field: &str) -> Result<Option<String>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    string(value, field).map(Some)
}

pub fn opt_bool(value: &JsValue, field: &str) -> Result<Option<bool>> {
    if value.is_undefined() {
        return Ok(None);
    }
    value.as_bool().map(Some).ok_or_else(|| invalid(field, "a boolean", value))
}

/// A number as JavaScript prints it; also keeps float formatting out of the binary.
pub fn js_text(number: &JsValue) -> String {
    number.unchecked_ref::<js_sys::Number>().to_string_with_radix(10).map(String::from).unwrap_or_else(|_| "a number".into())
}

fn out_of_range(field: &str, min: u64, max: u64, got: &JsValue) -> FerryError {
    FerryError::invalid(format!("{field} must be between {min} and {max}, got {}", js_text(got)))
}

/// A whole number in `min..=max`.
pub fn integer(value: &JsValue, field: &str, min: u64, max: u64) -> Result<u64> {
    let n = value.as_f64().ok_or_else(|| invalid(field, "a number", value))?;
    if !n.is_finite() || n.fract() != 0.0 {
        return Err(invalid(field, "a whole number", value));
    }
    if n < min as f64 || n > max as f64 {
        return Err(out_of_range(field, min, max, value));
    }
    Ok(n as u64)
}

/// A whole number in `min..=max`, or `None` for `undefined` and `null`.
pub fn opt_integer(value: &JsValue, field: &str, min: u64, max: u64) -> Result<Option<u64>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    integer(value, field, min, max).map(Some)
}

/// A number (not necessarily whole) in `min..=max`, or `None` for `undefined`.
pub fn opt_number(value: &JsValue, field: &str, min: f64, max: f64) -> Result<Option<f64>> {
    if value.is_undefined() {
        return Ok(None);
    }
    let n = value.as_f64().filter(|n| n.is_finite()).ok_or_else(|| invalid(field, "a finite number", value))?;
    if n < min || n > max {
        return Err(out_of_range(field, min as u64, max as u64, value));
    }
    Ok(Some(n))
}

/// A message value: a string stays a string, a `Uint8Array` stays bytes, anything
/// else must survive `JSON.stringify`.
pub fn value(value: &JsValue, field: &str) -> Result<Value> {
    if let Some(s) = value.as_string() {
        return Ok(Value::string(s));
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(Value::bytes(bytes.to_vec()));
    }
    if value.is_undefined() || value.is_function() || value.is_symbol() || value.is_bigint() {
        return Err(invalid(field, "a string, a Uint8Array or a JSON-serialisable value", value));
    }
    // A value is delivered deep-equal to what was sent, or refused: JSON would turn
    // NaN into null, a Date into a string, a Map or an ArrayBuffer into {}.
    if let Some(part) = unfaithful(value).as_string() {
        return Err(FerryError::invalid(format!(
            "{field}{part}: JSON would not give it back as it is; send plain objects, arrays, strings, finite numbers, booleans and null, or bytes as a Uint8Array"
        )));
    }
    let text = JSON::stringify(value)
        .map_err(|_| FerryError::invalid(format!("{field} is not JSON-serialisable (a cycle or a BigInt inside)")))?
        .as_string()
        .ok_or_else(|| invalid(field, "a JSON-serialisable value", value))?;
    Ok(Value::json(text))
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = "export function unfaithful(value) {
  const holding = new Set();
  const walk = (v, path) => {
    switch (typeof v) {
      case 'string': case 'boolean': return null;
      case 'number': return Number.isFinite(v) ? null : `${path} is ${v}`;
      case 'object': break;
      default: return `${path} is ${typeof v === 'undefined' ? 'undefined' : 'a ' + typeof v}`;
    }
    if (v === null) return null;
    if (holding.has(v)) return `${path} is a cycle`;
    const proto = Object.getPrototypeOf(v);
    const array = Array.isArray(v);
    if (!array && proto !== Object.prototype && proto !== null) return `${path} is a ${v.constructor?.name ?? 'non-plain object'}`;
    if (!array && typeof v.toJSON === 'function') return `${path} has a toJSON method`;
    holding.add(v);
    let bad = null;
    if (array) {
      for (let i = 0; i < v.length && !bad; i++) bad = walk(v[i], `${path}[${i}]`);
    } else {
      for (const key of Object.keys(v)) {
        // JSON drops an undefined property, as a deep-equal comparison ignores it.
        if (v[key] !== undefined) bad = walk(v[key], `${path}.${key}`);
        if (bad) break;
      }
    }
    holding.delete(v);
    return bad;
  };
  return walk(value, '');
}")]
extern "C" {
    /// Where in `value` the first part JSON would not give back as it was is, with
    /// why (`.items[2] is NaN`; empty for the value itself), or `null` when none is.
    fn unfaithful(value: &JsValue) -> JsValue;
}

/// `headers`: a plain object of string values (a `Map` would read as empty).
pub fn headers(value: &JsValue, field: &str) -> Result<Vec<(String, String)>> {
    let Some(object) = options(value, field)? else { return Ok(Vec::new()) };
    let prototype = Object::get_prototype_of(value);
    if !(prototype.is_null() || prototype == Object::get_prototype_of(&Object::new())) {
        return Err(FerryError::invalid(format!("{field} must be a plain object of strings, got {}", String::from(prototype.constructor().name()))));
    }
    let mut headers = Vec::new();
    for entry in Object::entries(&object).iter() {
        let pair: Array = entry.unchecked_into();
        let name = pair.get(0).as_string().unwrap_or_default();
        let header = pair.get(1);
        let header = header.as_string().ok_or_else(|| invalid(&format!("{field}.{name}"), "a string", &header))?;
        headers.push((name, header));
    }
    Ok(headers)
}

/// Runs `check` with no field name, and only when it fails again with `field()`
/// so that the error names it: checking a batch builds no names for good input.
pub fn named<T>(check: impl Fn(&str) -> Result<T>, field: impl FnOnce() -> String) -> Result<T> {
    check("").or_else(|_| check(&field()))
}

/// Each item of a JavaScript array as `item(index, value)` reads it, in order; the
/// first error is the call's. A loop, not a collect into a `Result`: that compiles
/// its adapter anew for each list read.
pub fn each<T>(list: &Array, mut item: impl FnMut(u32, JsValue) -> Result<T>) -> Result<Vec<T>> {
    let mut items = Vec::with_capacity(list.length() as usize);
    for i in 0..list.length() {
        items.push(item(i, list.get(i))?);
    }
    Ok(items)
}

/// A JavaScript array.
pub fn array(value: &JsValue, field: &str) -> Result<Array> {
    if !Array::is_array(value) {
        return Err(invalid(field, "an array", value));
    }
    Ok(value.clone().unchecked_into())
}
