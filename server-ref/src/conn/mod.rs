//! The per-connection machinery shared by every endpoint.
//!
//! - `admission`: origin, shutdown, connection limit and token, before the
//!   upgrade; and the policy on the one topic of an endpoint whose path names it.
//! - `limit`: the connection limit, a semaphore.
//! - `connection`: the reader loop, a `select!` whose inputs each go to one
//!   `handle_*`: frames (size, UTF-8 and rate checks), heartbeats, pings,
//!   the stale deadline, shutdown.
//! - `shared`: what subscribers, the reader and the writer share: the queue
//!   and the close request.
//! - `queue`: the send queue and its two budgets (live frames, replays).
//! - `writer`: the task that writes what is queued, coalesced.
//! - `upgrade`: the [`UpgradeRequest`] every endpoint takes, admitted then
//!   upgraded.
//!
//! Endpoints implement [`Handler`] and [`accept`](UpgradeRequest::accept) an
//! [`UpgradeRequest`] with it; what a connection subscribes to is the
//! endpoints' business (`endpoints::subscriptions`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use hublink_core::protocol::close_code;
use serde_json::Value;

use crate::auth::Claims;
use crate::frames::{error_frame, frame};
use crate::metrics::{Endpoint, Metrics};
use crate::state::AppState;

mod admission;
mod connection;
pub(crate) mod limit;
mod queue;
mod shared;
mod upgrade;
mod writer;

pub(crate) use shared::ConnShared;
pub(crate) use upgrade::UpgradeRequest;

/// What a handler works with.
pub(crate) struct Ctx {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) state: Arc<AppState>,
    pub(crate) claims: Option<Claims>,
    pub(crate) errors: u64,
    /// Power-style errors carry an RFC 3339 `timestamp`.
    pub(crate) iso_errors: bool,
}

impl Ctx {
    /// A fresh connection's context: no error sent yet.
    pub(crate) fn new(
        conn: Arc<ConnShared>,
        state: Arc<AppState>,
        claims: Option<Claims>,
        iso_errors: bool,
    ) -> Ctx {
        Ctx {
            conn,
            state,
            claims,
            errors: 0,
            iso_errors,
        }
    }

    pub(crate) fn send_json(&self, v: &Value) {
        self.conn.send(frame(v));
    }

    /// Sends a recoverable `error`; past the error limit, a final one and close 1008.
    pub(crate) fn error(&mut self, code: &str, message: &str) {
        self.error_for(None, code, message);
    }

    /// [`error`](Self::error) answering a request that carried an `id` (a
    /// publish): the frame repeats it, so the client knows which one failed.
    pub(crate) fn error_for(&mut self, id: Option<&str>, code: &str, message: &str) {
        self.errors += 1;
        Metrics::inc(&self.state.metrics.errors_sent);
        if self.errors > self.state.config.max_errors {
            let f = self.error_frame(
                "too_many_errors",
                &format!(
                    "{message} (error limit of {} reached)",
                    self.state.config.max_errors
                ),
                false,
            );
            self.conn
                .close(close_code::POLICY, "too many errors", Some(f));
            return;
        }
        self.send_error(id, code, message);
    }

    /// A recoverable `error` for what the broker did (`publish_failed`,
    /// `publish_unknown`), sent as [`error_for`](Self::error_for) sends one
    /// but not counted against the connection's error limit: that limit is
    /// for errors the connection caused, and a publisher retrying through a
    /// Redis outage, as these errors invite it to, would otherwise be closed
    /// with 1008 for it.
    pub(crate) fn broker_error_for(&mut self, id: Option<&str>, code: &str, message: &str) {
        Metrics::inc(&self.state.metrics.errors_sent);
        self.send_error(id, code, message);
    }

    fn send_error(&self, id: Option<&str>, code: &str, message: &str) {
        let f = match id {
            None => self.error_frame(code, message, true),
            Some(id) => {
                let mut v = serde_json::json!({
                    "type": "error", "code": code, "message": message,
                    "recoverable": true, "error_count": self.errors, "id": id,
                });
                if self.iso_errors {
                    v["timestamp"] = crate::time::iso8601(crate::time::now_ms()).into();
                }
                frame(&v)
            }
        };
        self.conn.send(f);
    }

    /// A subscription this node cannot take because its broker is unreachable:
    /// sends a non-recoverable `error` naming the cause (unless `told`, when
    /// the endpoint already answered the subscribe), then closes with 1013.
    /// Keeping the connection would leave the stream silently dead until some
    /// other fault made the client reconnect; after the close it resubscribes
    /// with backoff, on this node when the broker is back or on another one.
    pub(crate) fn broker_unavailable(&mut self, e: &crate::Error, told: bool) {
        Metrics::inc(&self.state.metrics.errors_sent);
        let last = (!told).then(|| self.error_frame("broker_unavailable", &e.to_string(), false));
        self.conn.close(
            close_code::TRY_AGAIN_LATER,
            "broker unavailable: try again later",
            last,
        );
    }

    /// Sends a non-recoverable `error`, then closes with `code`.
    pub(crate) fn fatal(
        &mut self,
        code: &str,
        message: &str,
        close_code: u16,
        reason: &'static str,
    ) {
        self.errors += 1;
        Metrics::inc(&self.state.metrics.errors_sent);
        let f = self.error_frame(code, message, false);
        self.conn.close(close_code, reason, Some(f));
    }

    fn error_frame(&self, code: &str, message: &str, recoverable: bool) -> Utf8Bytes {
        if self.iso_errors {
            frame(&serde_json::json!({
                "type": "error", "code": code, "message": message,
                "timestamp": crate::time::iso8601(crate::time::now_ms()),
                "recoverable": recoverable, "error_count": self.errors,
            }))
        } else {
            error_frame(code, message, recoverable, self.errors)
        }
    }
}

/// One endpoint's protocol.
pub(crate) trait Handler: Send + 'static {
    /// After the upgrade: greet, start fixed subscriptions.
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()>;
    /// A text message from the client.
    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()>;
    /// A binary message from the client.
    fn on_binary(&mut self, ctx: &mut Ctx) {
        ctx.error(
            "binary_frame",
            "binary frames are not accepted: send JSON in text frames",
        );
    }
    /// Every heartbeat interval, when the endpoint has heartbeats.
    fn on_heartbeat(&mut self, _ctx: &mut Ctx) {}
    /// The connection ended: drop subscriptions.
    fn on_close(&mut self, ctx: &mut Ctx);
}

/// Per-endpoint options of the driver.
pub(crate) struct DriveOptions {
    pub(crate) endpoint: Endpoint,
    pub(crate) ping_interval: Duration,
    pub(crate) heartbeat: bool,
    pub(crate) reconnect_on_shutdown: bool,
    pub(crate) iso_errors: bool,
}

impl DriveOptions {
    /// The common case: JSON frames one by one, WebSocket pings every
    /// heartbeat interval, no application heartbeats, `reconnect` on
    /// shutdown, `error` frames without the power backend's ISO 8601
    /// `timestamp`. Endpoints override what differs.
    pub(crate) fn new(endpoint: Endpoint, config: &crate::Config) -> DriveOptions {
        DriveOptions {
            endpoint,
            ping_interval: config.heartbeat_interval,
            heartbeat: false,
            reconnect_on_shutdown: true,
            iso_errors: false,
        }
    }
}
