//! JSON text written by hand, for the few places the engine speaks JSON (results
//! parsed once in JavaScript, a bridge's batches): no serializer in the build.

use std::fmt::Write;

/// Appends `text` as a JSON string literal.
pub fn string(out: &mut String, text: &str) {
    out.push('"');
    // Most text (ids, names) needs no escape: copied whole.
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a number, or `null` for `None`.
pub fn opt_number(out: &mut String, value: Option<u64>) {
    match value {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}
