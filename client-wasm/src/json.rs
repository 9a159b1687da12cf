//! [`JsonValue`] for values parsed by the browser's own `JSON.parse`.
//!
//! The core reads a few fields of each frame through this trait; the payloads
//! stay the JS values `JSON.parse` made and reach the application untouched.
//! No JSON parser is compiled into the wasm module.

use crate::js;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use hublink_core::JsonValue;
use wasm_bindgen::JsValue;

/// A JSON value held by JavaScript.
#[derive(Clone, Debug)]
pub struct Js(pub JsValue);

impl Js {
    fn field(&self, key: &str) -> Option<JsValue> {
        if !self.0.is_object() {
            return None;
        }
        Some(js::get(&self.0, key)).filter(|v| !v.is_undefined())
    }
}

/// A JS number as a JSON non-negative integer (exactly representable), as
/// `serde_json`'s `as_u64` reads it; else `None` (`NaN` included).
pub fn to_u64(n: f64) -> Option<u64> {
    // `n as u64 as f64 == n` is "integral" (`f64::fract` is not in `core`).
    ((0.0..=9_007_199_254_740_991.0).contains(&n) && n as u64 as f64 == n).then_some(n as u64)
}

/// The message of a thrown JS value, for error texts.
pub(crate) fn error_message(error: &JsValue) -> String {
    match js::get(error, "message").as_string() {
        Some(message) => message,
        None => js::text(error),
    }
}

impl JsonValue for Js {
    fn parse(text: &str) -> Result<Self, String> {
        js::parse(text).map(Js).map_err(|e| error_message(&e))
    }

    fn to_json(&self) -> String {
        js::stringify(&self.0).unwrap_or_else(|| "null".into())
    }

    fn is_object(&self) -> bool {
        self.0.is_object() && !js::is_array(&self.0)
    }

    fn get_str(&self, key: &str) -> Option<String> {
        self.field(key)?.as_string()
    }

    fn get_u64(&self, key: &str) -> Option<u64> {
        to_u64(self.field(key)?.as_f64()?)
    }

    fn get_f64(&self, key: &str) -> Option<f64> {
        self.field(key)?.as_f64()
    }

    fn get_bool(&self, key: &str) -> Option<bool> {
        self.field(key)?.as_bool()
    }

    fn get_str_array(&self, key: &str) -> Option<Vec<String>> {
        let v = self.field(key)?;
        if !js::is_array(&v) {
            return None;
        }
        let len = js::get(&v, "length").as_f64().unwrap_or(0.0) as u32;
        Some(
            (0..len)
                .filter_map(|i| js::get_index(&v, i).as_string())
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<Self> {
        self.field(key).map(Js)
    }

    fn take(&mut self, key: &str) -> Option<Self> {
        let v = self.field(key)?;
        js::delete(&self.0, key);
        Some(Js(v))
    }

    /// Not in the browser build: payloads reach JS as `JSON.parse` made them
    /// and are typed there; a serde deserialiser for JS values would cost
    /// every page load several KB for a call the package never makes.
    fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        Err("typed decoding is not compiled into the browser build".to_string())
    }
}
