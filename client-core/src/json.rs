//! The JSON abstraction that keeps a JSON parser out of the core.
//!
//! The core never parses or prints JSON values itself. A shell picks the value
//! type it already has: the native shell uses `serde_json::Value` (feature
//! `serde_json`), the browser shell wraps the `JsValue` that the browser's own
//! `JSON.parse` produced, which costs no code in the wasm build. Dialects read the
//! few fields they need through [`JsonValue`], and payloads stay in the shell's
//! value type until the application asks for a typed `T`.
//!
//! Outbound frames are small, fixed shapes; the core writes them as text with
//! [`JsonWriter`], splicing in payloads that the value type printed.

use alloc::string::String;
use alloc::vec::Vec;
#[cfg(feature = "serde_json")]
use alloc::{borrow::ToOwned, string::ToString};
use core::fmt;
use serde::de::DeserializeOwned;

/// A parsed JSON value, as the shell's JSON implementation represents it.
///
/// Accessors take a field name and look at the value as an object; on any other
/// kind of value they return `None`.
pub trait JsonValue: Sized + Clone + fmt::Debug {
    /// Parses one JSON text. The error names what was wrong.
    fn parse(text: &str) -> Result<Self, String>;
    /// Prints the value as compact JSON text.
    fn to_json(&self) -> String;
    /// Whether the value is a JSON object.
    fn is_object(&self) -> bool;
    /// The string field `key`.
    fn get_str(&self, key: &str) -> Option<String>;
    /// The numeric field `key`, when it is a non-negative integer.
    fn get_u64(&self, key: &str) -> Option<u64>;
    /// The numeric field `key`.
    fn get_f64(&self, key: &str) -> Option<f64>;
    /// The boolean field `key`.
    fn get_bool(&self, key: &str) -> Option<bool>;
    /// The field `key` as an array of strings (non-strings are skipped).
    fn get_str_array(&self, key: &str) -> Option<Vec<String>>;
    /// A copy of the field `key`, of any kind (null included).
    fn get(&self, key: &str) -> Option<Self>;
    /// Removes the field `key` from an object and returns it, so that large
    /// payloads move instead of being copied.
    fn take(&mut self, key: &str) -> Option<Self>;
    /// Deserialises the value into the application's type.
    fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String>;
}

#[cfg(feature = "serde_json")]
impl JsonValue for serde_json::Value {
    fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
    fn to_json(&self) -> String {
        self.to_string()
    }
    fn is_object(&self) -> bool {
        self.is_object()
    }
    fn get_str(&self, key: &str) -> Option<String> {
        self.get(key)?.as_str().map(str::to_owned)
    }
    fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }
    fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }
    fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }
    fn get_str_array(&self, key: &str) -> Option<Vec<String>> {
        let items = self.get(key)?.as_array()?;
        Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<Self> {
        serde_json::Value::get(self, key).cloned()
    }
    fn take(&mut self, key: &str) -> Option<Self> {
        self.as_object_mut()?.remove(key)
    }
    fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(self).map_err(|e| e.to_string())
    }
}

/// Writes the small JSON objects the core sends: `{"type":"subscribe",...}`.
///
/// Strings are escaped per RFC 8259; payloads are spliced in as the text the
/// value type printed.
#[derive(Debug)]
pub struct JsonWriter {
    out: String,
    first: bool,
}

impl JsonWriter {
    /// Starts an object.
    pub fn object() -> Self {
        JsonWriter {
            out: String::from("{"),
            first: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(&mut self.out, key);
        self.out.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        write_str(&mut self.out, value);
        self
    }

    /// Adds an integer field.
    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        push_u64(&mut self.out, value);
        self
    }

    /// Adds a field whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// Adds an array of strings.
    pub fn str_array(mut self, key: &str, values: &[&str]) -> Self {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            write_str(&mut self.out, v);
        }
        self.out.push(']');
        self
    }

    /// Closes the object and returns its text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `n` in decimal. Not `to_string()`: that is `Display`, whose
/// formatting machinery the browser build would carry for this one number.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(d as char);
    }
}

/// `parts` joined, for messages built without `format!` (see [`push_u64`]).
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `n` in decimal, as a `String` (see [`push_u64`]).
pub fn u64_text(n: u64) -> String {
    let mut out = String::new();
    push_u64(&mut out, n);
    out
}

/// Appends `s` to `out` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn written_strings_parse_back_to_the_same_string(s in ".*") {
            let text = JsonWriter::object().str("k", &s).finish();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(v["k"].as_str().unwrap(), s.as_str());
        }

        #[test]
        fn arrays_and_numbers_round_trip(items in proptest::collection::vec("\\PC*", 0..5), n: u64) {
            let refs: Vec<&str> = items.iter().map(String::as_str).collect();
            let text = JsonWriter::object().str_array("a", &refs).u64("n", n).finish();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(v["n"].as_u64(), Some(n));
            let back: Vec<String> = serde_json::from_value(v["a"].clone()).unwrap();
            prop_assert_eq!(back, items);
        }
    }

    proptest! {
        #[test]
        fn numbers_print_as_display_does(n: u64) {
            prop_assert_eq!(u64_text(n), n.to_string());
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let text = JsonWriter::object().str("k", "a\u{1}b\u{1f}").finish();
        assert_eq!(text, r#"{"k":"a\u0001b\u001f"}"#);
    }
}
