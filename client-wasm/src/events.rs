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
use hublink_core::json::concat;
use hublink_core::{DecodeError, Event, PublishError, Reason, UnsentReason};
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
  | { name: "offline" }
  | { name: "suspended" };
/** The name of a `Reason`. */
export type ReasonName = Reason["name"];
/** What a (re)subscription recovered (`Recovery` in hublink-core). */
export type Recovery = "fresh" | "recovered" | "lost";
/** Why a queued frame was never sent (`UnsentReason` in hublink-core). */
export type UnsentReason = "expired" | "closed";
/** Why a publish will not be delivered (`PublishError` in hublink-core). */
export type PublishFailure = "refused" | "expired" | "closed";
/** A publish this client will not deliver: refused by the server, or expired or closed unanswered. */
export interface PublishFailed {
  type: "publish_failed";
  id: string;
  topic: string;
  reason: PublishFailure;
  /** The server's error code when refused (`forbidden`, `publish_failed`, ...), else null. */
  code: string | null;
  message: string;
  /** Whether it may have been published all the same; false: nothing was. */
  maybePublished: boolean;
  /** How long it waited, when it expired. */
  waitedMs: number | null;
}
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
  | { type: "subscribed"; topic: string; recovery: Recovery }
  | { type: "subscribe_failed"; topic: string; error: string }
  | { type: "unsubscribed"; topic: string }
  | { type: "gap"; topic: string; last: Position; next: Position }
  | { type: "topics"; topics: string[] }
  | { type: "server_error"; code: string; message: string; recoverable: boolean; errorCount: number | null }
  | { type: "decode_error"; message: string }
  | { type: "unsent"; frame: string; reason: UnsentReason; waitedMs: number | null }
  | { type: "published"; id: string; topic: string; seq: number; epoch: string }
  | PublishFailed
  | { type: "unknown"; data: unknown };
/**
 * Receives the core's outputs (`Core.drain`, and `REFUSED` from a refused
 * call), as positional fields; `kind` is one of hublink-wasm's
 * `events::output` numbers, whose docs say what each puts where. Absent
 * strings are undefined, absent numbers NaN.
 */
export interface Outputs {
  out(kind: number, w: number, a: string | undefined, b: string | undefined, c: string | undefined,
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

/// The numbers of the outputs `Outputs.out` receives (`Output` in
/// pkg/src/index.ts).
pub mod output {
    /// Open a WebSocket: `a` the subprotocol.
    pub const OPEN: u32 = 0;
    /// Send `a`.
    pub const SEND: u32 = 1;
    /// Close the WebSocket: `x` the code, `a` the reason.
    pub const CLOSE: u32 = 2;
    /// The call being made was refused: `a` the message (its code is the call's answer).
    pub const REFUSED: u32 = 3;
    /// A state change: `w` = from | to << 4 | reason << 8 (the indexes of
    /// `STATE_NAMES` and `REASON_NAMES`), `a` the reason's message, `x` the
    /// attempt, `y` retryInMs, `z` the reason's number.
    pub const STATE: u32 = 4;
    /// `a` clientId, `x` heartbeatIntervalMs.
    pub const WELCOME: u32 = 5;
    /// `a` topic, `b` kind, `c` epoch, `x` seq, `v` `[data, timestamp]`.
    pub const MESSAGE: u32 = 6;
    /// `a` topic, `b` recovery.
    pub const SUBSCRIBED: u32 = 7;
    /// `a` topic, `b` error.
    pub const SUBSCRIBE_FAILED: u32 = 8;
    /// `a` topic.
    pub const UNSUBSCRIBED: u32 = 9;
    /// `a` topic, `b`/`x` the last epoch/seq, `c`/`y` the next.
    pub const GAP: u32 = 10;
    /// `v` the topics.
    pub const TOPICS: u32 = 11;
    /// `a` code, `b` message, `w` recoverable (0/1), `x` errorCount.
    pub const SERVER_ERROR: u32 = 12;
    /// `a` message.
    pub const DECODE_ERROR: u32 = 13;
    /// `a` frame, `b` reason, `x` waitedMs.
    pub const UNSENT: u32 = 14;
    /// `v` the value.
    pub const UNKNOWN: u32 = 15;
    /// The server took the publish `a` on topic `b`: `c` epoch, `x` seq.
    pub const PUBLISHED: u32 = 16;
    /// The publish `a` on topic `b` failed: `w` = the `PublishFailure`'s
    /// index | 4 when it may have been published; `c` the server's code and
    /// `v` its message (refused); `x` waitedMs (expired).
    pub const PUBLISH_FAILED: u32 = 17;
}

/// The index of `reason` in `REASON_NAMES` (pkg/src/index.ts), its message and
/// its number, as a `state` output carries them.
pub fn reason_fields(reason: &Reason) -> (u32, Option<&str>, Option<u64>) {
    match reason {
        Reason::Requested => (0, None, None),
        Reason::Opened => (1, None, None),
        Reason::Closed { code, reason } => (2, Some(reason), Some(u64::from(*code))),
        Reason::ConnectFailed { error } => (3, Some(error), None),
        Reason::HeartbeatTimeout { silent_ms } => (4, None, Some(*silent_ms)),
        Reason::ServerReconnect {
            reason,
            retry_after_ms,
        } => (5, Some(reason), Some(*retry_after_ms)),
        Reason::AuthRejected { code } => (6, None, Some(u64::from(*code))),
        Reason::Forbidden { code } => (7, None, Some(u64::from(*code))),
        Reason::UpgradeRefused { status } => (8, None, Some(u64::from(*status))),
        Reason::GaveUp { attempts } => (9, None, Some(u64::from(*attempts))),
        Reason::ClosedByUser => (10, None, None),
        Reason::Offline => (11, None, None),
        Reason::Suspended => (12, None, None),
    }
}

/// One core event, as positional fields of `Outputs.out` (the TS layer builds
/// the `ClientEvent` object the types describe, and only for events someone
/// listens to).
pub(crate) fn emit(o: &Outputs, event: Event<Js>) {
    use output::*;
    let nan = f64::NAN;
    let none = &JsValue::UNDEFINED;
    match event {
        Event::StateChanged(c) => {
            let (reason, message, n) = reason_fields(&c.reason);
            // `State` is fieldless, numbered in `STATE_NAMES` order.
            let w = c.from as u32 | (c.to as u32) << 4 | reason << 8;
            let (x, y) = (c.attempt.into(), num(c.retry_in_ms));
            o.out(STATE, w, message, None, None, x, y, num(n), none)
        }
        Event::Welcome {
            client_id,
            heartbeat_interval_ms,
        } => {
            let x = num(heartbeat_interval_ms);
            o.out(
                WELCOME,
                0,
                client_id.as_deref(),
                None,
                None,
                x,
                nan,
                nan,
                none,
            )
        }
        Event::Message(m) => {
            let (epoch, seq) = match &m.position {
                Some(p) => (Some(p.epoch.as_str()), Some(p.seq)),
                None => (None, None),
            };
            let ts = m.timestamp.map_or(JsValue::NULL, |t| t.0);
            let v = &js::pair(&m.data.0, &ts);
            let (a, b) = (Some(m.topic.as_str()), m.kind.as_deref());
            o.out(MESSAGE, 0, a, b, epoch, num(seq), nan, nan, v)
        }
        Event::Subscribed { topic, recovery } => {
            let recovery = recovery.name();
            o.out(
                SUBSCRIBED,
                0,
                Some(&topic),
                Some(recovery),
                None,
                nan,
                nan,
                nan,
                none,
            )
        }
        Event::SubscribeFailed { topic, error } => o.out(
            SUBSCRIBE_FAILED,
            0,
            Some(&topic),
            Some(&error),
            None,
            nan,
            nan,
            nan,
            none,
        ),
        Event::Unsubscribed { topic } => o.out(
            UNSUBSCRIBED,
            0,
            Some(&topic),
            None,
            None,
            nan,
            nan,
            nan,
            none,
        ),
        Event::Gap { topic, last, next } => {
            let (x, y) = (last.seq as f64, next.seq as f64);
            let (b, c) = (Some(last.epoch.as_str()), Some(next.epoch.as_str()));
            o.out(GAP, 0, Some(&topic), b, c, x, y, nan, none)
        }
        Event::Topics(topics) => {
            // Built in place: a `Vec<JsValue>` would link wasm-bindgen's
            // externref-slice glue for this one rare event.
            let list = js::array();
            for (i, t) in topics.iter().enumerate() {
                js::set_index(&list, i as u32, t);
            }
            o.out(TOPICS, 0, None, None, None, nan, nan, nan, &list)
        }
        Event::ServerError(e) => {
            let (w, x) = (u32::from(e.recoverable), num(e.error_count));
            let (a, b) = (Some(e.code.as_str()), Some(e.message.as_str()));
            o.out(SERVER_ERROR, w, a, b, None, x, nan, nan, none)
        }
        Event::DecodeError(e) => {
            let message = decode_error(e);
            o.out(
                DECODE_ERROR,
                0,
                Some(&message),
                None,
                None,
                nan,
                nan,
                nan,
                none,
            )
        }
        Event::Unsent { frame, reason } => {
            let waited = match reason {
                UnsentReason::Expired { waited_ms } => Some(waited_ms),
                UnsentReason::Closed => None,
            };
            let name = reason.name();
            o.out(
                UNSENT,
                0,
                Some(&frame),
                Some(name),
                None,
                num(waited),
                nan,
                nan,
                none,
            )
        }
        Event::Published {
            id,
            topic,
            position,
        } => {
            let (a, b, c) = (
                Some(id.as_str()),
                Some(topic.as_str()),
                Some(position.epoch.as_str()),
            );
            o.out(PUBLISHED, 0, a, b, c, position.seq as f64, nan, nan, none)
        }
        Event::PublishFailed { id, topic, error } => {
            let (w, code, message, waited) = match &error {
                PublishError::Refused { code, message } => {
                    (0, Some(code.as_str()), JsValue::from_str(message), None)
                }
                PublishError::Expired { waited_ms, sent } => (
                    1 | u32::from(*sent) << 2,
                    None,
                    JsValue::UNDEFINED,
                    Some(*waited_ms),
                ),
                PublishError::Closed { sent } => {
                    (2 | u32::from(*sent) << 2, None, JsValue::UNDEFINED, None)
                }
            };
            let (a, b) = (Some(id.as_str()), Some(topic.as_str()));
            o.out(
                PUBLISH_FAILED,
                w,
                a,
                b,
                code,
                num(waited),
                nan,
                nan,
                &message,
            )
        }
        Event::Unknown(v) => o.out(UNKNOWN, 0, None, None, None, nan, nan, nan, &v.0),
    }
}
