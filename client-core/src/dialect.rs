//! Dialects: how one server family encodes subscribe, ping and heartbeat echoes,
//! and how its acks, heartbeats, errors and data messages look.
//!
//! The state machine is the same for every backend; only this small trait
//! differs. [`Hublink`] is the canonical protocol of PROTOCOL.md; the others are
//! the seed backends of PROTOCOL.md section 7, matched against the literal
//! messages of their documents in `tests/dialects.rs`.

use crate::json::{concat, JsonValue, JsonWriter};
use crate::protocol::{Header, HeaderMessage, Inbound, Message, Position, ServerError};
use crate::subscriptions::Subscriptions;
use crate::DecodeError;
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// One server family's message shapes.
///
/// Encoders return `None` for an operation the dialect does not have (for
/// example, stream-per-endpoint backends have no subscribe): the core then does
/// it locally only.
pub trait Dialect<V: JsonValue> {
    /// The dialect's name, as `--dialect` takes it.
    fn name(&self) -> &'static str;
    /// Whether the server answers subscribes with acks; without them a
    /// subscription counts as established once sent.
    fn acks_subscriptions(&self) -> bool {
        false
    }
    /// Whether topics have `seq`/`epoch` and the server replays from `since`.
    fn supports_recovery(&self) -> bool {
        false
    }
    /// A subscribe, resuming after `since` where the dialect supports it.
    fn encode_subscribe(&self, _topic: &str, _since: Option<&Position>) -> Option<String> {
        None
    }
    /// An unsubscribe.
    fn encode_unsubscribe(&self, _topic: &str) -> Option<String> {
        None
    }
    /// An application-level ping that the server answers.
    fn encode_ping(&self) -> Option<String> {
        None
    }
    /// A request for the list of subscribed topics.
    fn encode_get_topics(&self) -> Option<String> {
        None
    }
    /// The echo of a server heartbeat with its timestamp.
    fn encode_heartbeat_echo(&self, _timestamp: Option<&V>) -> Option<String> {
        None
    }
    /// Whether the server answers a publish carrying an `id` with
    /// [`Inbound::PublishAck`] or an [`Inbound::Error`] naming that id; the
    /// core then keeps each publish until answered and sends it again, with
    /// the same id, after a reconnect.
    fn acks_publishes(&self) -> bool {
        false
    }
    /// A publication from the client, carrying `id` where the dialect
    /// [acks publishes](Self::acks_publishes).
    fn encode_publish(&self, _topic: &str, _data: &V, _id: Option<&str>) -> Option<String> {
        None
    }
    /// A message told by its header alone, for dialects whose messages carry
    /// topic, position and payload (`data`) at the top level. `None` sends the
    /// frame down [`decode`](Self::decode) instead: it must answer `None` for
    /// anything `decode` would not turn into that same message.
    fn decode_header<'h>(&self, _header: &Header<'h>) -> Option<HeaderMessage<'h>> {
        None
    }
    /// Classifies one received JSON value. `subscriptions` lets a dialect whose
    /// messages do not name their topic match them to one.
    fn decode(&self, value: V, subscriptions: &Subscriptions) -> Result<Inbound<V>, DecodeError>;
}

/// The built-in dialects, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DialectKind {
    /// The canonical protocol (`/ws`).
    Hublink,
    /// The Go hub of the machines backend (`/ws/machines`).
    Machines,
    /// The Node device-metrics backend (`/api/v1/devices/{uuid}/ws`).
    Devices,
    /// The Go topic backend with acks and echoed heartbeats (`/api/v1/ws/`).
    Topics,
    /// The serverless action protocol (`?token=`, `{"action":...}`).
    Actions,
    /// The FastAPI power stream (`/api/v1/ws/v2/power`).
    Power,
}

impl DialectKind {
    /// Every built-in dialect.
    pub const ALL: [DialectKind; 6] = [
        DialectKind::Hublink,
        DialectKind::Machines,
        DialectKind::Devices,
        DialectKind::Topics,
        DialectKind::Actions,
        DialectKind::Power,
    ];

    /// The dialect's name.
    pub fn name(self) -> &'static str {
        match self {
            DialectKind::Hublink => "hublink",
            DialectKind::Machines => "machines",
            DialectKind::Devices => "devices",
            DialectKind::Topics => "topics",
            DialectKind::Actions => "actions",
            DialectKind::Power => "power",
        }
    }

    /// Every built-in dialect's name, comma-separated (for error messages).
    pub fn names() -> String {
        let names = DialectKind::ALL.map(DialectKind::name);
        names.join(", ")
    }

    /// The dialect as a trait object for [`Connection`](crate::Connection).
    pub fn build<V: JsonValue + 'static>(self) -> Box<dyn Dialect<V> + Send> {
        match self {
            DialectKind::Hublink => Box::new(Hublink),
            DialectKind::Machines => Box::new(Machines),
            DialectKind::Devices => Box::new(Devices),
            DialectKind::Topics => Box::new(Topics),
            DialectKind::Actions => Box::new(Actions),
            DialectKind::Power => Box::new(Power),
        }
    }
}

impl fmt::Display for DialectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DialectKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DialectKind::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| crate::Error::UnknownDialect(s.to_owned()))
    }
}

fn shape<V: JsonValue>(dialect: &str, value: &V, problem: &str) -> DecodeError {
    DecodeError::Shape {
        dialect: dialect.to_owned(),
        problem: problem.to_owned(),
        excerpt: crate::excerpt(&value.to_json()),
    }
}

fn require_str<V: JsonValue>(
    dialect: &str,
    value: &V,
    key: &str,
    what: &str,
) -> Result<String, DecodeError> {
    value.get_str(key).ok_or_else(|| {
        shape(
            dialect,
            value,
            &concat(&[what, " has no string `", key, "`"]),
        )
    })
}

/// `seconds` (fractions allowed) as whole milliseconds, clamped to a day:
/// durations come from the wire, and `1e300` must not become `u64::MAX`.
fn seconds_to_ms(seconds: f64) -> u64 {
    const DAY_SECONDS: f64 = 86_400.0;
    let seconds = if seconds.is_nan() { 0.0 } else { seconds };
    // Rounded half up (`f64::round` is not in `core`); the value is >= 0.
    (seconds.clamp(0.0, DAY_SECONDS) * 1000.0 + 0.5) as u64
}

/// `{"message", "recoverable", "error_count"}` as the canonical and power
/// dialects send it.
fn server_error<V: JsonValue>(value: &V) -> ServerError {
    ServerError {
        code: value.get_str("code").unwrap_or_else(|| "error".to_owned()),
        message: value
            .get_str("message")
            .or_else(|| value.get("data").map(|d| d.to_json()))
            .unwrap_or_default(),
        recoverable: value.get_bool("recoverable").unwrap_or(true),
        error_count: value.get_u64("error_count"),
        id: value.get_str("id"),
    }
}

fn reconnect<V: JsonValue>(value: &V) -> Inbound<V> {
    Inbound::Reconnect {
        reason: value.get_str("reason").unwrap_or_default(),
        retry_after_ms: seconds_to_ms(value.get_f64("retry_after").unwrap_or(1.0)),
    }
}

fn ack<V: JsonValue>(
    dialect: &str,
    value: &V,
    what: &str,
    key: &str,
) -> Result<(String, bool, Option<String>), DecodeError> {
    let topic = require_str(dialect, value, key, what)?;
    let error = value.get_str("error");
    let success = value.get_bool("success").unwrap_or(error.is_none());
    Ok((topic, success, error))
}

/// `{"type":kind}`: the bodiless control frames.
fn typed(kind: &str) -> String {
    JsonWriter::object().str("type", kind).finish()
}

/// `{"type":kind,"topic":topic}`.
fn typed_topic(kind: &str, topic: &str) -> String {
    JsonWriter::object()
        .str("type", kind)
        .str("topic", topic)
        .finish()
}

/// `{"type":kind,"channels":[channel]}`, the device backend's shape.
fn typed_channel(kind: &str, channel: &str) -> String {
    JsonWriter::object()
        .str("type", kind)
        .str_array("channels", &[channel])
        .finish()
}

/// The canonical protocol, `hublink.v1` (PROTOCOL.md sections 2 and 3).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hublink;

impl<V: JsonValue> Dialect<V> for Hublink {
    fn name(&self) -> &'static str {
        "hublink"
    }
    fn acks_subscriptions(&self) -> bool {
        true
    }
    fn supports_recovery(&self) -> bool {
        true
    }
    fn encode_subscribe(&self, topic: &str, since: Option<&Position>) -> Option<String> {
        let w = JsonWriter::object()
            .str("type", "subscribe")
            .str("topic", topic);
        Some(match since {
            Some(p) => {
                let since = JsonWriter::object()
                    .u64("seq", p.seq)
                    .str("epoch", &p.epoch)
                    .finish();
                w.raw("since", &since).finish()
            }
            None => w.finish(),
        })
    }
    fn encode_unsubscribe(&self, topic: &str) -> Option<String> {
        Some(typed_topic("unsubscribe", topic))
    }
    fn encode_ping(&self) -> Option<String> {
        Some(typed("ping"))
    }
    fn encode_get_topics(&self) -> Option<String> {
        Some(typed("get_topics"))
    }
    fn encode_heartbeat_echo(&self, timestamp: Option<&V>) -> Option<String> {
        Some(heartbeat_echo(timestamp))
    }
    fn acks_publishes(&self) -> bool {
        true
    }
    fn encode_publish(&self, topic: &str, data: &V, id: Option<&str>) -> Option<String> {
        let w = JsonWriter::object()
            .str("type", "publish")
            .str("topic", topic);
        let w = match id {
            Some(id) => w.str("id", id),
            None => w,
        };
        Some(w.raw("data", &data.to_json()).finish())
    }
    fn decode_header<'h>(&self, h: &Header<'h>) -> Option<HeaderMessage<'h>> {
        // Exactly the `message` arm of `decode` below, without its errors.
        if h.kind != Some("message") || !h.has_data {
            return None;
        }
        let position = match (h.epoch, h.seq) {
            (Some(epoch), Some(seq)) => Some((epoch, seq)),
            (None, None) => None,
            _ => return None,
        };
        Some(HeaderMessage {
            topic: h.topic?,
            position,
        })
    }
    fn decode(&self, mut value: V, _: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        const D: &str = "hublink";
        let Some(kind) = value.get_str("type") else {
            return Err(shape(D, &value, "message has no string `type`"));
        };
        Ok(match kind.as_str() {
            "connected" => Inbound::Welcome {
                client_id: value.get_str("client_id"),
                heartbeat_interval_ms: value.get_f64("heartbeat_interval").map(seconds_to_ms),
            },
            "subscribe_ack" => {
                let (topic, success, error) = ack(D, &value, "subscribe_ack", "topic")?;
                let position = match (value.get_str("epoch"), value.get_u64("seq")) {
                    (Some(epoch), Some(seq)) => Some(Position { epoch, seq }),
                    _ => None,
                };
                Inbound::SubscribeAck {
                    topic,
                    success,
                    error,
                    recovered: value.get_bool("recovered"),
                    position,
                }
            }
            "unsubscribe_ack" => {
                let (topic, success, error) = ack(D, &value, "unsubscribe_ack", "topic")?;
                Inbound::UnsubscribeAck {
                    topic,
                    success,
                    error,
                }
            }
            "topics" => Inbound::Topics(value.get_str_array("topics").unwrap_or_default()),
            "message" => {
                let topic = require_str(D, &value, "topic", "message")?;
                let position = match (value.get_str("epoch"), value.get_u64("seq")) {
                    (Some(epoch), Some(seq)) => Some(Position { epoch, seq }),
                    (None, None) => None,
                    _ => {
                        return Err(shape(
                            D,
                            &value,
                            "message has `seq` without `epoch` or the reverse",
                        ))
                    }
                };
                let Some(data) = value.take("data") else {
                    return Err(shape(D, &value, "message has no `data`"));
                };
                Inbound::Message(Message {
                    topic,
                    kind: None,
                    position,
                    data,
                    timestamp: value.take("timestamp"),
                })
            }
            "heartbeat" => Inbound::Heartbeat {
                timestamp: value.take("timestamp"),
                active_streams: value.get_u64("active_streams"),
            },
            "publish_ack" => match (
                value.get_str("id"),
                value.get_str("topic"),
                value.get_str("epoch"),
                value.get_u64("seq"),
            ) {
                (Some(id), Some(topic), Some(epoch), Some(seq)) => Inbound::PublishAck {
                    id,
                    topic,
                    position: Position { epoch, seq },
                },
                _ => {
                    return Err(shape(
                        D,
                        &value,
                        "publish_ack needs string `id`, `topic`, `epoch` and integer `seq`",
                    ))
                }
            },
            "pong" => Inbound::Pong,
            "error" => Inbound::Error(server_error(&value)),
            "reconnect" => reconnect(&value),
            _ => Inbound::Unknown(value),
        })
    }
}

fn heartbeat_echo<V: JsonValue>(timestamp: Option<&V>) -> String {
    let w = JsonWriter::object().str("type", "heartbeat");
    match timestamp {
        Some(ts) => w.raw("timestamp", &ts.to_json()),
        None => w,
    }
    .finish()
}

/// A `{"type": T, "data": ..., "timestamp": ...}` message whose topic is its type.
fn typed_stream_message<V: JsonValue>(kind: String, mut value: V) -> Inbound<V> {
    let data = value.take("data").unwrap_or_else(|| value.clone());
    Inbound::Message(Message {
        topic: kind.clone(),
        kind: Some(kind),
        position: None,
        data,
        timestamp: value.take("timestamp"),
    })
}

/// The machines backend's Go hub (`/ws/machines`, `/ws/machines/{id}`): no client
/// messages; `sensor_data`, `machine_status` and `error` messages, `\n`-batched;
/// liveness from WebSocket ping frames.
#[derive(Clone, Copy, Debug, Default)]
pub struct Machines;

impl<V: JsonValue> Dialect<V> for Machines {
    fn name(&self) -> &'static str {
        "machines"
    }
    fn decode(&self, value: V, _: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        let kind = require_str("machines", &value, "type", "message")?;
        Ok(match kind.as_str() {
            "error" => Inbound::Error(server_error(&value)),
            _ => typed_stream_message(kind, value),
        })
    }
}

/// The device-metrics backend (`/api/v1/devices/{uuid}/ws`): channel
/// subscriptions without acks, `ping`/`pong`, one message type per channel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Devices;

impl<V: JsonValue> Dialect<V> for Devices {
    fn name(&self) -> &'static str {
        "devices"
    }
    fn encode_subscribe(&self, topic: &str, _: Option<&Position>) -> Option<String> {
        Some(typed_channel("subscribe", topic))
    }
    fn encode_unsubscribe(&self, topic: &str) -> Option<String> {
        Some(typed_channel("unsubscribe", topic))
    }
    fn encode_ping(&self) -> Option<String> {
        Some(typed("ping"))
    }
    fn decode(&self, value: V, _: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        let kind = require_str("devices", &value, "type", "message")?;
        Ok(match kind.as_str() {
            "connected" => Inbound::Welcome {
                client_id: value.get("data").and_then(|d| d.get_str("deviceUuid")),
                heartbeat_interval_ms: None,
            },
            "pong" => Inbound::Pong,
            "error" => Inbound::Error(server_error(&value)),
            _ => typed_stream_message(kind, value),
        })
    }
}

/// The topic backend (`/api/v1/ws/`): subscribe with `subscribe_ack`,
/// `get_topics`, server heartbeats the client echoes, and data messages whose
/// shape tells their topic when no `topic` field does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Topics;

impl<V: JsonValue> Dialect<V> for Topics {
    fn name(&self) -> &'static str {
        "topics"
    }
    fn acks_subscriptions(&self) -> bool {
        true
    }
    fn encode_subscribe(&self, topic: &str, _: Option<&Position>) -> Option<String> {
        Some(typed_topic("subscribe", topic))
    }
    fn encode_unsubscribe(&self, topic: &str) -> Option<String> {
        Some(typed_topic("unsubscribe", topic))
    }
    fn encode_get_topics(&self) -> Option<String> {
        Some(typed("get_topics"))
    }
    fn encode_heartbeat_echo(&self, timestamp: Option<&V>) -> Option<String> {
        Some(heartbeat_echo(timestamp))
    }
    fn decode(&self, mut value: V, subs: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        const D: &str = "topics";
        if !value.is_object() {
            return Err(shape(D, &value, "message is not an object"));
        }
        let kind = value.get_str("type");
        match kind.as_deref() {
            Some("connected") => {
                return Ok(Inbound::Welcome {
                    client_id: value.get_str("client_id"),
                    heartbeat_interval_ms: None,
                })
            }
            Some("subscribe_ack") => {
                let (topic, success, error) = ack(D, &value, "subscribe_ack", "topic")?;
                return Ok(Inbound::SubscribeAck {
                    topic,
                    success,
                    error,
                    recovered: None,
                    position: None,
                });
            }
            Some("unsubscribe_ack") => {
                let (topic, success, error) = ack(D, &value, "unsubscribe_ack", "topic")?;
                return Ok(Inbound::UnsubscribeAck {
                    topic,
                    success,
                    error,
                });
            }
            Some("topics") => {
                return Ok(Inbound::Topics(
                    value.get_str_array("topics").unwrap_or_default(),
                ))
            }
            Some("heartbeat") => {
                return Ok(Inbound::Heartbeat {
                    timestamp: value.take("timestamp"),
                    active_streams: value.get_u64("active_streams"),
                })
            }
            Some("error") => return Ok(Inbound::Error(server_error(&value))),
            _ => {}
        }
        // A data message: the topic is named, or told by the shape.
        // hublink-server adds `topic`; it is routing, not payload, so it goes.
        let named = value.get_str("topic");
        if named.is_some() {
            value.take("topic");
        }
        let (topic, kind) = match named {
            Some(topic) => (Some(topic), kind),
            None => infer_topic(&value, kind, subs),
        };
        let Some(topic) = topic else {
            return Ok(Inbound::Unknown(value));
        };
        Ok(Inbound::Message(Message {
            topic,
            kind,
            position: None,
            data: value,
            timestamp: None,
        }))
    }
}

/// Matches a data message of the topic backend to a topic by its shape
/// (PROTOCOL.md section 7).
fn infer_topic<V: JsonValue>(
    value: &V,
    kind: Option<String>,
    subs: &Subscriptions,
) -> (Option<String>, Option<String>) {
    if value.get_str("Result").as_deref() == Some("Event Task Updated") {
        return (
            Some("task_completion_update".to_owned()),
            Some("Event Task Updated".to_owned()),
        );
    }
    if value.get_str("message").as_deref() == Some("Overview added successfully") {
        let topic = if subs.contains("event_updates") {
            Some("event_updates".to_owned())
        } else {
            subs.topics()
                .find(|t| t.starts_with("central_"))
                .map(str::to_owned)
        };
        return (
            topic.or_else(|| Some("event_updates".to_owned())),
            Some("Overview added successfully".to_owned()),
        );
    }
    if kind.as_deref() == Some("task_completion_update") {
        return (Some("task_completion_map_update".to_owned()), kind);
    }
    (kind.clone(), kind)
}

/// The serverless action protocol: `{"action": ...}` requests, rooms, and
/// `{"type": "order:created", "data": ...}` events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actions;

const ORDER_ROOM: &str = "order:";

impl<V: JsonValue> Dialect<V> for Actions {
    fn name(&self) -> &'static str {
        "actions"
    }
    fn acks_subscriptions(&self) -> bool {
        true
    }
    fn encode_subscribe(&self, topic: &str, _: Option<&Position>) -> Option<String> {
        Some(match topic.strip_prefix(ORDER_ROOM) {
            Some(order_id) => {
                let data = JsonWriter::object().str("orderId", order_id).finish();
                JsonWriter::object()
                    .str("action", "subscribeToOrder")
                    .raw("data", &data)
                    .finish()
            }
            None => {
                let data = JsonWriter::object().str("room", topic).finish();
                JsonWriter::object()
                    .str("action", "subscribe")
                    .raw("data", &data)
                    .finish()
            }
        })
    }
    fn encode_unsubscribe(&self, topic: &str) -> Option<String> {
        let data = JsonWriter::object().str("room", topic).finish();
        Some(
            JsonWriter::object()
                .str("action", "unsubscribe")
                .raw("data", &data)
                .finish(),
        )
    }
    fn encode_ping(&self) -> Option<String> {
        Some(JsonWriter::object().str("action", "ping").finish())
    }
    fn encode_get_topics(&self) -> Option<String> {
        Some(JsonWriter::object().str("action", "getRooms").finish())
    }
    fn decode(&self, mut value: V, _: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        const D: &str = "actions";
        if let Some(action) = value.get_str("action") {
            return Ok(match action.as_str() {
                "pong" => Inbound::Pong,
                "getRooms" => Inbound::Topics(value.get_str_array("rooms").unwrap_or_default()),
                "subscribe" | "subscribeToOrder" | "unsubscribe" => {
                    let topic = match action.as_str() {
                        "subscribeToOrder" => {
                            let id = require_str(D, &value, "orderId", "subscribeToOrder answer")?;
                            concat(&[ORDER_ROOM, &id])
                        }
                        _ => require_str(D, &value, "room", "subscribe answer")?,
                    };
                    let error = value.get_str("error").or_else(|| value.get_str("message"));
                    let success = value.get_bool("success").unwrap_or(false);
                    if action == "unsubscribe" {
                        Inbound::UnsubscribeAck {
                            topic,
                            success,
                            error,
                        }
                    } else {
                        Inbound::SubscribeAck {
                            topic,
                            success,
                            error,
                            recovered: None,
                            position: None,
                        }
                    }
                }
                "error" => Inbound::Error(ServerError {
                    code: value.get_str("code").unwrap_or_else(|| "error".to_owned()),
                    message: value
                        .get_str("message")
                        .or_else(|| value.get_str("error"))
                        .unwrap_or_default(),
                    recoverable: value.get_bool("recoverable").unwrap_or(true),
                    error_count: None,
                    id: None,
                }),
                "reconnect" => reconnect(&value),
                _ => Inbound::Unknown(value),
            });
        }
        let kind = require_str(D, &value, "type", "event (no `action` either)")?;
        if kind == "reconnect" {
            return Ok(reconnect(&value));
        }
        let topic = value.get_str("room").unwrap_or_else(|| kind.clone());
        let data = value.take("data").unwrap_or_else(|| value.clone());
        Ok(Inbound::Message(Message {
            topic,
            kind: Some(kind),
            position: None,
            data,
            timestamp: value.take("timestamp"),
        }))
    }
}

/// The power-meter stream (`/api/v1/ws/v2/power`, `/api/v1/ws/v2/health`):
/// top-level data fields, heartbeats with `active_streams`, recoverable errors,
/// `reconnect` with `retry_after`, and a text `ping`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Power;

impl<V: JsonValue> Dialect<V> for Power {
    fn name(&self) -> &'static str {
        "power"
    }
    fn encode_ping(&self) -> Option<String> {
        Some("ping".to_owned())
    }
    fn decode(&self, mut value: V, _: &Subscriptions) -> Result<Inbound<V>, DecodeError> {
        let kind = require_str("power", &value, "type", "message")?;
        Ok(match kind.as_str() {
            "heartbeat" => Inbound::Heartbeat {
                timestamp: value.take("timestamp"),
                active_streams: value.get_u64("active_streams"),
            },
            "pong" => Inbound::Pong,
            "error" => Inbound::Error(server_error(&value)),
            "reconnect" => reconnect(&value),
            _ => Inbound::Message(Message {
                topic: kind.clone(),
                kind: Some(kind),
                position: None,
                timestamp: value.get("timestamp"),
                data: value,
            }),
        })
    }
}
