//! [`JsonValue`] for values parsed by the browser's own `JSON.parse`.
//!
//! The core reads a few fields of each frame through this trait; the payloads
//! stay the JS values `JSON.parse` made and reach the application untouched.
//! No JSON parser is compiled into the wasm module.

use hublink_core::JsonValue;
use js_sys::{Array, Object, Reflect, JSON};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

/// A JSON value held by JavaScript.
#[derive(Clone, Debug)]
pub struct Js(pub JsValue);

impl Js {
    fn field(&self, key: &str) -> Option<JsValue> {
        if !self.0.is_object() {
            return None;
        }
        Reflect::get(&self.0, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined())
    }
}

/// The message of a thrown JS value, for error texts.
pub(crate) fn error_message(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => e.message().into(),
        None => error.as_string().unwrap_or_else(|| "unknown error".into()),
    }
}

impl JsonValue for Js {
    fn parse(text: &str) -> Result<Self, String> {
        JSON::parse(text).map(Js).map_err(|e| error_message(&e))
    }

    fn to_json(&self) -> String {
        JSON::stringify(&self.0)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| "null".into())
    }

    fn is_object(&self) -> bool {
        self.0.is_object() && !Array::is_array(&self.0)
    }

    fn get_str(&self, key: &str) -> Option<String> {
        self.field(key)?.as_string()
    }

    fn get_u64(&self, key: &str) -> Option<u64> {
        let n = self.field(key)?.as_f64()?;
        (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0).then_some(n as u64)
    }

    fn get_f64(&self, key: &str) -> Option<f64> {
        self.field(key)?.as_f64()
    }

    fn get_bool(&self, key: &str) -> Option<bool> {
        self.field(key)?.as_bool()
    }

    fn get_str_array(&self, key: &str) -> Option<Vec<String>> {
        let v = self.field(key)?;
        if !Array::is_array(&v) {
            return None;
        }
        Some(
            v.unchecked_into::<Array>()
                .iter()
                .filter_map(|s| s.as_string())
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<Self> {
        self.field(key).map(Js)
    }

    fn take(&mut self, key: &str) -> Option<Self> {
        let v = self.field(key)?;
        let _ = Reflect::delete_property(self.0.unchecked_ref::<Object>(), &JsValue::from_str(key));
        Some(Js(v))
    }

    fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_wasm_bindgen::from_value(self.0.clone()).map_err(|e| e.to_string())
    }
}
