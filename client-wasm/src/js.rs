//! The few JavaScript built-ins the binding calls, declared here rather than
//! through js-sys: js-sys links its closure and futures glue into the module
//! (2.4 KB of table entries nothing calls), -1 KB gzipped on every page load.

use alloc::string::String;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `Reflect.get(target, key)`.
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    pub(crate) fn get(target: &JsValue, key: &str) -> JsValue;
    /// `Reflect.get(array, index)`.
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    pub(crate) fn get_index(array: &JsValue, index: u32) -> JsValue;
    /// `Reflect.deleteProperty(target, key)`.
    #[wasm_bindgen(js_namespace = Reflect, js_name = deleteProperty)]
    pub(crate) fn delete(target: &JsValue, key: &str) -> bool;
    /// `Array.isArray(value)`.
    #[wasm_bindgen(js_namespace = Array, js_name = isArray)]
    pub(crate) fn is_array(value: &JsValue) -> bool;
    /// `Array.of()`: a new empty array.
    #[wasm_bindgen(js_namespace = Array, js_name = of)]
    pub(crate) fn array() -> JsValue;
    /// `Reflect.set(array, index, value)`.
    #[wasm_bindgen(js_namespace = Reflect, js_name = set)]
    pub(crate) fn set_index(array: &JsValue, index: u32, value: &str) -> bool;
    /// `Array.of(a, b)`.
    #[wasm_bindgen(js_namespace = Array, js_name = of)]
    pub(crate) fn pair(a: &JsValue, b: &JsValue) -> JsValue;
    /// `JSON.parse(text)`; a `SyntaxError` is the `Err`.
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    pub(crate) fn parse(text: &str) -> Result<JsValue, JsValue>;
    /// `JSON.stringify(value)`: `None` for `undefined` and functions.
    #[wasm_bindgen(js_namespace = JSON, js_name = stringify)]
    pub(crate) fn stringify(value: &JsValue) -> Option<String>;
    /// `String(value)`: an `Error`'s "Name: message", or the value as text.
    #[wasm_bindgen(js_name = String)]
    pub(crate) fn text(value: &JsValue) -> String;
}
