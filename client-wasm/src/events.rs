//! The core's events as plain JS objects, and their TypeScript types.
//!
//! The `match`es below are exhaustive over the core's enums, so a new state,
//! reason or event in hublink-core stops this crate from compiling until it is
//! mapped here and typed in [`TS_TYPES`]; `pkg/test/types.test.mjs` checks the
//! names listed by [`state_names`] and [`reason_names`] against the TS unions.

use crate::concat;
use crate::json::Js;
use hublink_core::{DecodeError, Event, Position, Reason, Recovery, State, UnsentReason};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A connection state, as `State::name()` spells it in hublink-core. */
export type StateName = "connecting" | "connected" | "reconnecting" | "disconnected";
/** Why the state changed (`Reason` in hublink-core), with its details. */
export type Reason =
  | { name: "requested" }
  | { name: "opened" }
  | { name: "closed"; code: number; message: string }
  | { name: "connect_failed"; message: string }
  | { name: "heartbeat_timeout"; silentMs: number }
  | { name: "server_reconnect"; message: string; retryAfterMs: number }
  | { name: "auth_rejected"; code: number }
  | { name: "forbidden"; code: number }
  | { name: "upgrade_refused"; status: number }
  | { name: "gave_up"; attempts: number }
  | { name: "closed_by_user" }
  | { name: "offline" };
/** The name of a `Reason`. */
export type ReasonName = Reason["name"];
/** A position in a topic's stream. */
export interface Position { epoch: string; seq: number }
/** A state transition. */
export interface StateChange {
  type: "state";
  from: StateName;
  to: StateName;
  reason: Reason;
  /** Failed attempts since the last stable connection (the coming attempt's number while reconnecting). */
  attempt: number;
  /** When reconnecting: ms until the next attempt. */
  retryInMs: number | null;
}
/** A message on a topic, delivered once and in order. */
export interface TopicMessage<T = unknown> {
  type: "message";
  topic: string;
  /** The message's own type name where the dialect has one (`sensor_data`). */
  kind: string | null;
  seq: number | null;
  epoch: string | null;
  data: T;
  timestamp: unknown;
}
/** Every event of a connection. */
export type ClientEvent =
  | StateChange
  | { type: "welcome"; clientId: string | null; heartbeatIntervalMs: number | null }
  | TopicMessage
  | { type: "subscribed"; topic: string; recovery: "fresh" | "recovered" | "lost" }
  | { type: "subscribe_failed"; topic: string; error: string }
  | { type: "unsubscribed"; topic: string }
  | { type: "gap"; topic: string; last: Position; next: Position }
  | { type: "topics"; topics: string[] }
  | { type: "server_error"; code: string; message: string; recoverable: boolean; errorCount: number | null }
  | { type: "decode_error"; message: string }
  | { type: "unsent"; frame: string; reason: "expired" | "closed"; waitedMs: number | null }
  | { type: "unknown"; data: unknown };
/** The type names of `ClientEvent`. */
export type ClientEventType = ClientEvent["type"];
/** The built-in dialects. */
export type DialectName = "hublink" | "machines" | "devices" | "topics" | "actions" | "power";
/** Options of a connection; every field is optional. */
export interface ClientOptions {
  /** The server's dialect (default "hublink", which offers the `hublink.v1` subprotocol). */
  dialect?: DialectName;
  /** The first and smallest reconnect delay, ms (default 1000). */
  backoffInitialMs?: number;
  /** The largest reconnect delay, ms (default 30000). */
  backoffMaxMs?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
  /** A fixed liveness timeout, ms (default: the server's advertised, else observed, heartbeat interval + 10 s; else 60 s). */
  heartbeatTimeoutMs?: number;
  /** How long an attempt may take to open, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Frames held while offline (default 1024). */
  queueMaxFrames?: number;
  /** How long a frame may wait while offline, ms (default 60000). */
  queueTtlMs?: number;
  /** Seed of the backoff jitter (default: from crypto.getRandomValues). */
  seed?: number;
}
"#;

/// A plain JS object built field by field.
pub(crate) struct Obj(Object);

impl Obj {
    pub(crate) fn new(kind: &str) -> Obj {
        Obj(Object::new()).set("type", kind)
    }
    fn bare() -> Obj {
        Obj(Object::new())
    }
    pub(crate) fn set(self, key: &str, value: impl Into<JsValue>) -> Obj {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }
    fn opt<T: Into<JsValue>>(self, key: &str, value: Option<T>) -> Obj {
        let value = value.map_or(JsValue::NULL, Into::into);
        self.set(key, value)
    }
    pub(crate) fn build(self) -> JsValue {
        self.0.into()
    }
}

fn position(p: Position) -> JsValue {
    Obj::bare()
        .set("epoch", p.epoch)
        .set("seq", p.seq as f64)
        .build()
}

fn reason(reason: Reason) -> JsValue {
    let o = Obj::bare().set("name", reason.name());
    match reason {
        Reason::Requested | Reason::Opened | Reason::ClosedByUser | Reason::Offline => o,
        Reason::Closed { code, reason } => o.set("code", code).set("message", reason),
        Reason::ConnectFailed { error } => o.set("message", error),
        Reason::HeartbeatTimeout { silent_ms } => o.set("silentMs", silent_ms as f64),
        Reason::ServerReconnect {
            reason,
            retry_after_ms,
        } => o
            .set("message", reason)
            .set("retryAfterMs", retry_after_ms as f64),
        Reason::AuthRejected { code } | Reason::Forbidden { code } => o.set("code", code),
        Reason::UpgradeRefused { status } => o.set("status", status),
        Reason::GaveUp { attempts } => o.set("attempts", attempts),
    }
    .build()
}

/// A decode error's text, without the core's `Display` (see `core_error`).
fn decode_error(error: DecodeError) -> String {
    match error {
        DecodeError::Json { error, excerpt } => {
            concat(&["frame is not JSON: ", &error, " (frame: ", &excerpt, ")"])
        }
        DecodeError::TooBig { .. } => "frame over the size limit was not parsed".into(),
        DecodeError::Binary { .. } => "binary frame where text is expected".into(),
        DecodeError::Shape {
            dialect,
            problem,
            excerpt,
        } => concat(&[&dialect, " dialect: ", &problem, " (frame: ", &excerpt, ")"]),
        DecodeError::Payload { topic, error } => {
            concat(&["payload on topic ", &topic, " does not decode: ", &error])
        }
        _ => "frame did not decode".into(),
    }
}

/// One core event as the JS object the `ClientEvent` type describes.
pub(crate) fn to_js(event: Event<Js>) -> JsValue {
    match event {
        Event::StateChanged(c) => Obj::new("state")
            .set("from", c.from.name())
            .set("to", c.to.name())
            .set("reason", reason(c.reason))
            .set("attempt", c.attempt)
            .opt("retryInMs", c.retry_in_ms.map(|ms| ms as f64)),
        Event::Welcome {
            client_id,
            heartbeat_interval_ms,
        } => Obj::new("welcome").opt("clientId", client_id).opt(
            "heartbeatIntervalMs",
            heartbeat_interval_ms.map(|ms| ms as f64),
        ),
        Event::Message(m) => {
            let (epoch, seq) = match m.position {
                Some(p) => (Some(p.epoch), Some(p.seq as f64)),
                None => (None, None),
            };
            Obj::new("message")
                .set("topic", m.topic)
                .opt("kind", m.kind)
                .opt("seq", seq)
                .opt("epoch", epoch)
                .set("data", m.data.0)
                .opt("timestamp", m.timestamp.map(|t| t.0))
        }
        Event::Subscribed { topic, recovery } => Obj::new("subscribed").set("topic", topic).set(
            "recovery",
            match recovery {
                Recovery::Fresh => "fresh",
                Recovery::Recovered => "recovered",
                Recovery::Lost => "lost",
            },
        ),
        Event::SubscribeFailed { topic, error } => Obj::new("subscribe_failed")
            .set("topic", topic)
            .set("error", error),
        Event::Unsubscribed { topic } => Obj::new("unsubscribed").set("topic", topic),
        Event::Gap { topic, last, next } => Obj::new("gap")
            .set("topic", topic)
            .set("last", position(last))
            .set("next", position(next)),
        Event::Topics(topics) => Obj::new("topics").set(
            "topics",
            topics.into_iter().map(JsValue::from).collect::<Array>(),
        ),
        Event::ServerError(e) => Obj::new("server_error")
            .set("code", e.code)
            .set("message", e.message)
            .set("recoverable", e.recoverable)
            .opt("errorCount", e.error_count.map(|n| n as f64)),
        Event::DecodeError(e) => Obj::new("decode_error").set("message", decode_error(e)),
        Event::Unsent { frame, reason } => {
            let (name, waited) = match reason {
                UnsentReason::Expired { waited_ms } => ("expired", Some(waited_ms as f64)),
                UnsentReason::Closed => ("closed", None),
            };
            Obj::new("unsent")
                .set("frame", frame)
                .set("reason", name)
                .opt("waitedMs", waited)
        }
        Event::Unknown(v) => Obj::new("unknown").set("data", v.0),
    }
    .build()
}

/// Every state name of hublink-core, for the check of the TypeScript union.
#[wasm_bindgen(js_name = stateNames, unchecked_return_type = "StateName[]")]
pub fn state_names() -> Array {
    [
        State::Connecting,
        State::Connected,
        State::Reconnecting,
        State::Disconnected,
    ]
    .into_iter()
    .map(|s| JsValue::from_str(s.name()))
    .collect()
}

/// Every reason name of hublink-core, for the check of the TypeScript union.
#[wasm_bindgen(js_name = reasonNames, unchecked_return_type = "ReasonName[]")]
pub fn reason_names() -> Array {
    let s = String::new;
    [
        Reason::Requested,
        Reason::Opened,
        Reason::Closed {
            code: 0,
            reason: s(),
        },
        Reason::ConnectFailed { error: s() },
        Reason::HeartbeatTimeout { silent_ms: 0 },
        Reason::ServerReconnect {
            reason: s(),
            retry_after_ms: 0,
        },
        Reason::AuthRejected { code: 0 },
        Reason::Forbidden { code: 0 },
        Reason::UpgradeRefused { status: 0 },
        Reason::GaveUp { attempts: 0 },
        Reason::ClosedByUser,
        Reason::Offline,
    ]
    .into_iter()
    .map(|r| JsValue::from_str(r.name()))
    .collect()
}
