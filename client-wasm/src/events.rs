//! The core's events as positional fields for the TS layer, and their
//! TypeScript types.
//!
//! The `match`es below are exhaustive over the core's enums, so a new state,
//! reason or event in hublink-core stops this crate from compiling until it is
//! mapped here and typed in [`TS_TYPES`]; `tests/tests/ts_names.rs` checks
//! the names hublink-core spells against the lists in pkg/src/index.ts, which
//! `tsc` proves equal to the unions below.

use crate::js;
use crate::json::Js;
use crate::Outputs;
use alloc::string::String;
use alloc::vec::Vec;
use hublink_core::json::concat;
use hublink_core::{DecodeError, Event, Reason, Recovery, UnsentReason};
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
/**
 * Receives the core's outputs (`Core.drain`). Per kind, the fields used
 * (absent strings are undefined, absent numbers NaN):
 * open: a subprotocol | send: a text | close: a reason, x code |
 * state: a from, b to, c reason name, d reason message, x attempt, y retryInMs, z the reason's number |
 * welcome: a clientId, x heartbeatIntervalMs | message: a topic, b kind, c epoch, x seq, v [data, timestamp] |
 * subscribed: a topic, b recovery | subscribe_failed: a topic, b error | unsubscribed: a topic |
 * gap: a topic, b last epoch, c next epoch, x last seq, y next seq | topics: v string[] |
 * server_error: a code, b message, x recoverable (0/1), y errorCount | decode_error: a message |
 * unsent: a frame, b reason, x waitedMs | unknown: v data.
 */
export interface Outputs {
  out(kind: string, a: string | undefined, b: string | undefined, c: string | undefined, d: string | undefined,
    x: number, y: number, z: number, v: unknown): void;
}
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

/// `n` as a JS number, `NaN` for none.
fn num(n: Option<u64>) -> f64 {
    n.map_or(f64::NAN, |n| n as f64)
}

/// One core event, as positional fields of `Outputs.out` (the TS layer builds
/// the `ClientEvent` object the types describe, and only for events someone
/// listens to).
pub(crate) fn emit(o: &Outputs, event: Event<Js>) {
    let nan = f64::NAN;
    let none = &JsValue::UNDEFINED;
    match event {
        Event::StateChanged(c) => {
            let (message, n) = match &c.reason {
                Reason::Requested | Reason::Opened | Reason::ClosedByUser | Reason::Offline => {
                    (None, None)
                }
                Reason::Closed { code, reason } => (Some(reason.as_str()), Some(u64::from(*code))),
                Reason::ConnectFailed { error } => (Some(error.as_str()), None),
                Reason::HeartbeatTimeout { silent_ms } => (None, Some(*silent_ms)),
                Reason::ServerReconnect {
                    reason,
                    retry_after_ms,
                } => (Some(reason.as_str()), Some(*retry_after_ms)),
                Reason::AuthRejected { code } | Reason::Forbidden { code } => {
                    (None, Some(u64::from(*code)))
                }
                Reason::GaveUp { attempts } => (None, Some(u64::from(*attempts))),
                Reason::UpgradeRefused { status } => (None, Some(u64::from(*status))),
            };
            o.out(
                "state",
                Some(c.from.name()),
                Some(c.to.name()),
                Some(c.reason.name()),
                message,
                c.attempt.into(),
                num(c.retry_in_ms),
                num(n),
                none,
            )
        }
        Event::Welcome {
            client_id,
            heartbeat_interval_ms,
        } => o.out(
            "welcome",
            client_id.as_deref(),
            None,
            None,
            None,
            num(heartbeat_interval_ms),
            nan,
            nan,
            none,
        ),
        Event::Message(m) => {
            let (epoch, seq) = match &m.position {
                Some(p) => (Some(p.epoch.as_str()), Some(p.seq)),
                None => (None, None),
            };
            let ts = m.timestamp.map_or(JsValue::NULL, |t| t.0);
            o.out(
                "message",
                Some(&m.topic),
                m.kind.as_deref(),
                epoch,
                None,
                num(seq),
                nan,
                nan,
                &js::pair(&m.data.0, &ts),
            )
        }
        Event::Subscribed { topic, recovery } => {
            let recovery = match recovery {
                Recovery::Fresh => "fresh",
                Recovery::Recovered => "recovered",
                Recovery::Lost => "lost",
            };
            o.out(
                "subscribed",
                Some(&topic),
                Some(recovery),
                None,
                None,
                nan,
                nan,
                nan,
                none,
            )
        }
        Event::SubscribeFailed { topic, error } => o.out(
            "subscribe_failed",
            Some(&topic),
            Some(&error),
            None,
            None,
            nan,
            nan,
            nan,
            none,
        ),
        Event::Unsubscribed { topic } => o.out(
            "unsubscribed",
            Some(&topic),
            None,
            None,
            None,
            nan,
            nan,
            nan,
            none,
        ),
        Event::Gap { topic, last, next } => o.out(
            "gap",
            Some(&topic),
            Some(&last.epoch),
            Some(&next.epoch),
            None,
            last.seq as f64,
            next.seq as f64,
            nan,
            none,
        ),
        Event::Topics(topics) => {
            let list: Vec<JsValue> = topics.iter().map(|t| JsValue::from_str(t)).collect();
            o.out(
                "topics",
                None,
                None,
                None,
                None,
                nan,
                nan,
                nan,
                &list.into(),
            )
        }
        Event::ServerError(e) => o.out(
            "server_error",
            Some(&e.code),
            Some(&e.message),
            None,
            None,
            f64::from(u8::from(e.recoverable)),
            num(e.error_count),
            nan,
            none,
        ),
        Event::DecodeError(e) => {
            let message = decode_error(e);
            o.out(
                "decode_error",
                Some(&message),
                None,
                None,
                None,
                nan,
                nan,
                nan,
                none,
            )
        }
        Event::Unsent { frame, reason } => {
            let (name, waited) = match reason {
                UnsentReason::Expired { waited_ms } => ("expired", Some(waited_ms)),
                UnsentReason::Closed => ("closed", None),
            };
            o.out(
                "unsent",
                Some(&frame),
                Some(name),
                None,
                None,
                num(waited),
                nan,
                nan,
                none,
            )
        }
        Event::Unknown(v) => o.out("unknown", None, None, None, None, nan, nan, nan, &v.0),
    }
}
