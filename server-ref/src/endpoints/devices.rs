//! `/api/v1/devices/{uuid}/ws`, as the Node device manager serves it:
//! `connected`, `subscribe`/`unsubscribe` with `channels` (no ack), `ping` to
//! `pong`, and `{"type":channel,"data":{...}}` frames.
//!
//! Topics: channel `{c}` of device `{uuid}` is `devices.{uuid}.{c}`. On subscribe
//! the latest message of the channel, if any, is sent at once (the seed sends the
//! current value immediately, then every period).

use std::ops::ControlFlow;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::subscriptions::{Refusal, Subscriptions};
use super::wire::{run_commands, short, Commands};
use crate::broker::Subscribed;
use crate::conn::{Ctx, DriveOptions, Handler, UpgradeRequest};
use crate::metrics::Endpoint;
use crate::published::Shape;
use crate::time::{iso8601, now_ms};
use crate::topic::{child, validate_topic};

/// `GET /api/v1/devices/{uuid}/ws`.
pub(crate) async fn ws(Path(uuid): Path<String>, req: UpgradeRequest) -> Response {
    let max = req.state.config.max_topic_len;
    if uuid.contains('.') || validate_topic(&format!("devices.{uuid}.x"), max).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            format!("device uuid {uuid:?} is not valid\n"),
        )
            .into_response();
    }
    let opts = DriveOptions::new(Endpoint::Devices, &req.state.config);
    let channels = Subscriptions::new(Shape::Devices);
    req.accept(opts, None, Devices { uuid, channels })
}

/// A connection to one device; its channels are its topics, `devices.{uuid}.{channel}`.
struct Devices {
    uuid: String,
    channels: Subscriptions,
}

fn channels<'a>(ctx: &mut Ctx, v: &'a Value, ty: &str) -> Option<Vec<&'a str>> {
    match v.get("channels") {
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for c in a {
                match c.as_str() {
                    Some(s) => out.push(s),
                    None => ctx.error(
                        "invalid_message",
                        &format!("{ty}: every channel must be a string, got {}", short(c)),
                    ),
                }
            }
            Some(out)
        }
        Some(other) => {
            ctx.error(
                "invalid_message",
                &format!(
                    "{ty}: field \"channels\" must be an array of strings, got {}",
                    short(other)
                ),
            );
            None
        }
        None => {
            ctx.error(
                "invalid_message",
                &format!("{ty}: field \"channels\" is missing"),
            );
            None
        }
    }
}

impl Devices {
    /// Subscribes to each channel, the latest message of each sent at once;
    /// `Break` when the broker cannot take them (the connection is closing).
    async fn subscribe(&mut self, ctx: &mut Ctx, chs: Vec<&str>) -> ControlFlow<()> {
        let prefix = format!("devices.{}", self.uuid);
        for ch in chs {
            let invalid = format!("channel {ch:?} is not a valid channel name");
            let Some(topic) = child(&prefix, ch, ctx.state.config.max_topic_len) else {
                ctx.error("invalid_topic", &invalid);
                continue;
            };
            let conn = ctx.conn.clone();
            let on_ready = Box::new(move |s: &Subscribed| {
                if let Some(latest) = &s.latest {
                    conn.send(latest.frame(Shape::Devices));
                }
            });
            match self
                .channels
                .subscribe_with(ctx, &topic, None, on_ready)
                .await
            {
                Ok(()) => {}
                Err(Refusal::InvalidTopic(_)) => ctx.error("invalid_topic", &invalid),
                Err(Refusal::Forbidden(e) | Refusal::InvalidRoom(e)) => {
                    ctx.error("forbidden", &e.to_string())
                }
                Err(Refusal::TooMany { .. }) => ctx.error(
                    "too_many_subscriptions",
                    &format!("cannot subscribe to channel {ch:?}: limit reached"),
                ),
                Err(Refusal::Broker(e)) => {
                    ctx.broker_unavailable(&e, false);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

impl Commands for Devices {
    const FIELD: &'static str = "type";

    async fn command(&mut self, ctx: &mut Ctx, name: &str, v: &Value) -> ControlFlow<()> {
        match name {
            "subscribe" => {
                if let Some(chs) = channels(ctx, v, "subscribe") {
                    return self.subscribe(ctx, chs).await;
                }
            }
            "unsubscribe" => {
                for ch in channels(ctx, v, "unsubscribe").unwrap_or_default() {
                    let topic = format!("devices.{}.{ch}", self.uuid);
                    self.channels.unsubscribe(ctx, &topic);
                }
            }
            "ping" => {
                ctx.send_json(&json!({"type": "pong", "data": {"timestamp": iso8601(now_ms())}}))
            }
            other => ctx.error("unknown_type", &format!("unknown message type {other:?}")),
        }
        ControlFlow::Continue(())
    }
}

impl Handler for Devices {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(feeds) = ctx.state.device_feeds() {
                feeds.watched(&self.uuid);
            }
            ctx.send_json(&json!({
                "type": "connected",
                "data": {"deviceUuid": self.uuid, "timestamp": iso8601(now_ms())},
            }));
        })
    }

    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(run_commands(self, ctx, text))
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        self.channels.close(ctx);
        if let Some(feeds) = ctx.state.device_feeds() {
            feeds.unwatched(&self.uuid);
        }
    }
}
