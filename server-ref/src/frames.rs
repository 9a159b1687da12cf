//! The server's own small frames (`error`, `reconnect`), and JSON into text
//! frames. How a published message looks is [`crate::published`]'s.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{json, Value};

/// Serialises a value into a text frame.
pub(crate) fn to_frame<T: Serialize>(v: &T) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(v).unwrap_or_else(|_| "{}".into()))
}

/// Serialises a JSON value into a text frame.
pub fn frame(v: &Value) -> Utf8Bytes {
    to_frame(v)
}

/// The canonical `error` frame.
pub fn error_frame(code: &str, message: &str, recoverable: bool, error_count: u64) -> Utf8Bytes {
    to_frame(&json!({
        "type": "error", "code": code, "message": message,
        "recoverable": recoverable, "error_count": error_count,
    }))
}

/// The `reconnect` frame sent on graceful shutdown.
pub fn reconnect_frame(retry_after: u64) -> Utf8Bytes {
    to_frame(
        &json!({"type": "reconnect", "reason": "server restarting", "retry_after": retry_after}),
    )
}
