//! How a published message looks on each endpoint, and the small server frames.
//!
//! Each [`Shape`] of a [`Published`] is serialised once, on first use, and the
//! bytes are shared by every subscriber of that shape.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::broker::Published;

/// The renderings of a published message, one per endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/ws`: `{"type":"message","topic","seq","epoch","data","timestamp"}`.
    Canonical = 0,
    /// `/api/v1/ws/`: the data object itself, with a `topic` field added.
    Topics = 1,
    /// `/ws/machines`: `{"type","data","timestamp"(RFC 3339)}`.
    Machines = 2,
    /// `/api/v1/devices/{uuid}/ws`: `{"type":channel,"data"}`.
    Devices = 3,
    /// actions: `{"type":"order:...","data","timestamp","room"}`.
    Actions = 4,
    /// `/api/v1/ws/v2/power`: `{"type":"data","timestamp"(s),"module",...fields}`.
    Power = 5,
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    r#type: &'static str,
    topic: &'a str,
    seq: u64,
    epoch: &'a str,
    data: &'a Value,
    timestamp: u64,
}

fn to_frame<T: Serialize>(v: &T) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(v).unwrap_or_else(|_| "{}".into()))
}

/// Serialises a JSON value into a text frame.
pub fn frame(v: &Value) -> Utf8Bytes {
    to_frame(v)
}

impl Published {
    /// This message as `shape`, serialised once and then shared.
    pub fn frame(&self, shape: Shape) -> Utf8Bytes {
        self.frames[shape as usize]
            .get_or_init(|| self.render(shape))
            .clone()
    }

    fn render(&self, shape: Shape) -> Utf8Bytes {
        match shape {
            Shape::Canonical => to_frame(&MessageFrame {
                r#type: "message",
                topic: &self.topic,
                seq: self.seq,
                epoch: &self.epoch,
                data: &self.data,
                timestamp: self.timestamp,
            }),
            Shape::Topics => match &self.data {
                Value::Object(m) => {
                    let mut m = m.clone();
                    m.entry("topic").or_insert_with(|| json!(&*self.topic));
                    to_frame(&m)
                }
                other => to_frame(&json!({"topic": &*self.topic, "data": other})),
            },
            Shape::Machines => {
                let (ty, data) = typed(&self.data, "sensor_data");
                to_frame(&json!({"type": ty, "data": data, "timestamp": iso8601(self.timestamp)}))
            }
            Shape::Devices => {
                let channel = self.topic.rsplit('.').next().unwrap_or_default();
                to_frame(&json!({"type": channel, "data": &self.data}))
            }
            Shape::Actions => {
                let room = self.topic.strip_prefix("room:").unwrap_or(&self.topic);
                let (ty, data) = typed(&self.data, "message");
                let ts = self
                    .data
                    .get("timestamp")
                    .cloned()
                    .unwrap_or_else(|| json!(iso8601(self.timestamp)));
                to_frame(&json!({"type": ty, "data": data, "timestamp": ts, "room": room}))
            }
            Shape::Power => {
                if self.data.get("type").and_then(Value::as_str) == Some("error") {
                    let message = self.data.get("message").cloned().unwrap_or(json!("error"));
                    let recoverable = self.data.get("recoverable").cloned().unwrap_or(json!(true));
                    let count = self.data.get("error_count").cloned().unwrap_or(json!(1));
                    return to_frame(&json!({
                        "type": "error", "code": "stream_error", "message": message,
                        "timestamp": iso8601(self.timestamp), "recoverable": recoverable,
                        "error_count": count,
                    }));
                }
                let module = self.topic.strip_prefix("power.").unwrap_or(&self.topic);
                let module = module
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(module));
                let mut m = Map::new();
                m.insert("type".into(), json!("data"));
                m.insert("timestamp".into(), json!(self.timestamp as f64 / 1000.0));
                m.insert("module".into(), module);
                match &self.data {
                    Value::Object(d) => {
                        for (k, v) in d {
                            if k != "type" && k != "timestamp" && k != "module" {
                                m.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    other => {
                        m.insert("value".into(), other.clone());
                    }
                }
                to_frame(&m)
            }
        }
    }
}

/// Splits `{"type":T,"data":D}` into `(T, D)`; anything else is `(default, whole)`.
fn typed<'a>(data: &'a Value, default: &'a str) -> (&'a str, &'a Value) {
    match (data.get("type").and_then(Value::as_str), data.get("data")) {
        (Some(t), Some(d)) => (t, d),
        (Some(t), None) => (t, data),
        _ => (default, data),
    }
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

/// Formats ms since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_704_110_400_123), "2024-01-01T12:00:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn shapes_are_cached() {
        let p = Published::new(
            "power.4".into(),
            1,
            "e".into(),
            json!({"ch1_power": -1.5}),
            1000,
            None,
        );
        let a = p.frame(Shape::Power);
        let b = p.frame(Shape::Power);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        let v: Value = serde_json::from_str(a.as_str()).unwrap();
        assert_eq!(v["module"], 4);
        assert_eq!(v["type"], "data");
        assert_eq!(v["ch1_power"], -1.5);
    }
}
