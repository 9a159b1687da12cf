//! A message the broker accepted, and how it looks on each endpoint.
//!
//! Each [`Shape`] of a [`Published`] is serialised once, on first use, and the
//! bytes are shared by every subscriber of that shape.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::frames::to_frame;
use crate::time::iso8601;

/// How many rendered shapes a message can have (see [`Shape`]).
const SHAPES: usize = 6;

/// A message accepted by the broker, with its position. Each endpoint's rendering
/// of it is serialised once, on first use, and shared by every subscriber.
pub struct Published {
    /// The topic it was published on.
    pub topic: Arc<str>,
    /// Its position in the topic's stream.
    pub seq: u64,
    /// The topic's epoch.
    pub epoch: Arc<str>,
    /// The application payload.
    pub data: Value,
    /// When the server accepted it, ms since the Unix epoch.
    pub timestamp: u64,
    /// Shared by the copies of one event published to several rooms, so a
    /// connection in several of those rooms gets it once.
    pub event_id: Option<u64>,
    frames: [OnceLock<Utf8Bytes>; SHAPES],
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("topic", &self.topic)
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The renderings of a published message, one per endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/ws`: `{"type":"message","topic","seq","epoch","data","timestamp"}`.
    Hublink = 0,
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

impl Published {
    /// A message at `seq` in `epoch`.
    pub fn new(
        topic: Arc<str>,
        seq: u64,
        epoch: Arc<str>,
        data: Value,
        timestamp: u64,
        event_id: Option<u64>,
    ) -> Published {
        Published {
            topic,
            seq,
            epoch,
            data,
            timestamp,
            event_id,
            frames: Default::default(),
        }
    }

    /// This message as `shape`, serialised once and then shared.
    pub fn frame(&self, shape: Shape) -> Utf8Bytes {
        self.frames[shape as usize]
            .get_or_init(|| self.render(shape))
            .clone()
    }

    fn render(&self, shape: Shape) -> Utf8Bytes {
        match shape {
            Shape::Hublink => to_frame(&MessageFrame {
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
            Shape::Power => self.render_power(),
        }
    }

    fn render_power(&self) -> Utf8Bytes {
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

/// Splits `{"type":T,"data":D}` into `(T, D)`; anything else is `(default, whole)`.
fn typed<'a>(data: &'a Value, default: &'a str) -> (&'a str, &'a Value) {
    match (data.get("type").and_then(Value::as_str), data.get("data")) {
        (Some(t), Some(d)) => (t, d),
        (Some(t), None) => (t, data),
        _ => (default, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
