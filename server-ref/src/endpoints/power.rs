//! `/api/v1/ws/v2/power?module=&interval=` and `/api/v1/ws/v2/health`, as the
//! FastAPI backend serves them: `{"type":"data","timestamp"(s),"module",...}`
//! at most once per `interval` seconds (default 0.1), heartbeats with
//! `active_streams`, text `ping` to `pong`, recoverable `error` and `reconnect`.
//!
//! Topics: module `{m}` publishes on `power.{m}` with the reading's fields as
//! data; data `{"type":"error","message":...}` is sent as a recoverable `error`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::delivery::Filter;
use super::subscriptions::Subscriptions;
use super::wire::query_map;
use crate::conn::{Ctx, DriveOptions, Handler, UpgradeRequest};
use crate::metrics::{Endpoint, Metrics};
use crate::published::Shape;
use crate::state::AppState;
use crate::time::{iso8601, now_ms};
use crate::topic::child;

/// `GET /api/v1/ws/v2/power`.
pub(crate) async fn power(req: UpgradeRequest) -> Response {
    let q = query_map(req.query.as_deref());
    let Some(module) = q.get("module").filter(|m| !m.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "query parameter \"module\" is required\n",
        )
            .into_response();
    };
    let Some(topic) = child("power", module, req.state.config.max_topic_len) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("module {module:?} is not valid\n"),
        )
            .into_response();
    };
    let interval = match q.get("interval").map(|s| s.parse::<f64>()) {
        None => 0.1,
        Some(Ok(i)) if i.is_finite() && i >= 0.0 => i,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("interval {:?} is not a number of seconds\n", q["interval"]),
            )
                .into_response()
        }
    };
    let opts = options(&req.state, Endpoint::Power);
    let handler = Power::new(Some(topic.clone()), (interval * 1000.0) as u64);
    req.accept(opts, Some(&topic), handler)
}

/// `GET /api/v1/ws/v2/health`.
pub(crate) async fn health(req: UpgradeRequest) -> Response {
    let opts = options(&req.state, Endpoint::Health);
    req.accept(opts, None, Power::new(None, 0))
}

fn options(state: &AppState, endpoint: Endpoint) -> DriveOptions {
    DriveOptions {
        heartbeat: true,
        iso_errors: true,
        ..DriveOptions::new(endpoint, &state.config)
    }
}

/// A power connection following its module's topic (none: `/health`).
struct Power {
    topic: Option<String>,
    subs: Subscriptions,
}

impl Power {
    /// At most one reading per `interval_ms` (errors always pass).
    fn new(topic: Option<String>, interval_ms: u64) -> Power {
        let filter = Filter::at_most_every(interval_ms);
        Power {
            topic,
            subs: Subscriptions::filtered(Shape::Power, filter),
        }
    }
}

impl Handler for Power {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(topic) = &self.topic {
                if let Err(e) = self.subs.follow(ctx, topic).await {
                    ctx.broker_unavailable(&e, false);
                }
            }
        })
    }

    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let t = text.trim();
            if t == "ping" {
                return ctx.send_json(&json!({"type": "pong", "timestamp": iso8601(now_ms())}));
            }
            match serde_json::from_str::<Value>(t) {
                Ok(v) => match v.get("type").and_then(Value::as_str) {
                    Some("ping") => ctx.send_json(&json!({"type": "pong", "timestamp": iso8601(now_ms())})),
                    Some("heartbeat") | Some("pong") => Metrics::inc(&ctx.state.metrics.heartbeat_echoes),
                    Some(other) => ctx.error("unknown_type", &format!("unknown message type {other:?}; this endpoint understands the text \"ping\"")),
                    None => ctx.error("invalid_message", "expected the text \"ping\" or a JSON object with a string \"type\""),
                },
                Err(_) => ctx.error("invalid_json", &format!("expected the text \"ping\", got {:?}", t.chars().take(40).collect::<String>())),
            }
        })
    }

    fn on_heartbeat(&mut self, ctx: &mut Ctx) {
        ctx.send_json(&json!({
            "type": "heartbeat",
            "timestamp": iso8601(now_ms()),
            "active_streams": ctx.state.broker.active_streams(),
        }));
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        self.subs.close(ctx);
    }
}
