//! `/api/v1/devices/{uuid}/ws`, as the Node device manager serves it:
//! `connected`, `subscribe`/`unsubscribe` with `channels` (no ack), `ping` to
//! `pong`, and `{"type":channel,"data":{...}}` frames.
//!
//! Topics: channel `{c}` of device `{uuid}` is `devices.{uuid}.{c}`. On subscribe
//! the latest message of the channel, if any, is sent at once (the seed sends the
//! current value immediately, then every period).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::wire::{message_type, parse_batch, short};
use crate::broker::Subscribed;
use crate::conn::{admit, upgrade, Ctx, DriveOptions, Handler, ShapeSubscriber};
use crate::metrics::Endpoint;
use crate::published::Shape;
use crate::state::AppState;
use crate::time::iso8601;
use crate::time::now_ms;
use crate::topic::{child, validate_topic};

/// `GET /api/v1/devices/{uuid}/ws`.
pub(crate) async fn ws(
    State(state): State<Arc<AppState>>,
    Path(uuid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if uuid.contains('.')
        || validate_topic(&format!("devices.{uuid}.x"), state.config.max_topic_len).is_err()
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("device uuid {uuid:?} is not valid\n"),
        )
            .into_response();
    }
    let admitted = match admit(&state, Endpoint::Devices, &headers, query.as_deref()) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let opts = DriveOptions::new(Endpoint::Devices, &state.config);
    upgrade(
        ws,
        state,
        admitted,
        opts,
        Devices {
            uuid,
            channels: BTreeSet::new(),
            sub: None,
        },
    )
}

struct Devices {
    uuid: String,
    channels: BTreeSet<String>,
    sub: Option<Arc<ShapeSubscriber>>,
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

impl Handler for Devices {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.sub = Some(Arc::new(ShapeSubscriber {
                conn: ctx.conn.clone(),
                shape: Shape::Devices,
            }));
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
        Box::pin(async move {
            for item in parse_batch(text) {
                let v = match item {
                    Ok(v) => v,
                    Err(e) => {
                        ctx.error("invalid_json", &e);
                        continue;
                    }
                };
                let ty = match message_type(&v, "type") {
                    Ok(t) => t,
                    Err(e) => {
                        ctx.error("invalid_message", &e);
                        continue;
                    }
                };
                match ty {
                    "subscribe" => {
                        let Some(chs) = channels(ctx, &v, "subscribe") else {
                            continue;
                        };
                        for ch in chs {
                            let prefix = format!("devices.{}", self.uuid);
                            let max = ctx.state.config.max_topic_len;
                            let Some(topic) = child(&prefix, ch, max) else {
                                ctx.error(
                                    "invalid_topic",
                                    &format!("channel {ch:?} is not a valid channel name"),
                                );
                                continue;
                            };
                            if let Err(e) =
                                ctx.state.policy.may_subscribe(ctx.claims.as_ref(), &topic)
                            {
                                ctx.error("forbidden", &e.to_string());
                                continue;
                            }
                            if !self.channels.contains(ch)
                                && self.channels.len() >= ctx.state.config.max_subscriptions
                            {
                                ctx.error(
                                    "too_many_subscriptions",
                                    &format!("cannot subscribe to channel {ch:?}: limit reached"),
                                );
                                continue;
                            }
                            let conn = ctx.conn.clone();
                            let on_ready = Box::new(move |s: &Subscribed| {
                                if let Some(latest) = &s.latest {
                                    conn.send(latest.frame(Shape::Devices));
                                }
                            });
                            let sub = self.sub.clone().expect("set in on_open");
                            let broker = ctx.state.broker.clone();
                            match broker
                                .subscribe(&topic, ctx.conn.id, sub, None, on_ready)
                                .await
                            {
                                Ok(()) => {
                                    self.channels.insert(ch.to_string());
                                }
                                Err(e) => return ctx.broker_unavailable(&e, false),
                            }
                        }
                    }
                    "unsubscribe" => {
                        let Some(chs) = channels(ctx, &v, "unsubscribe") else {
                            continue;
                        };
                        for ch in chs {
                            if self.channels.remove(ch) {
                                ctx.state.broker.unsubscribe(
                                    &format!("devices.{}.{ch}", self.uuid),
                                    ctx.conn.id,
                                );
                            }
                        }
                    }
                    "ping" => ctx.send_json(
                        &json!({"type": "pong", "data": {"timestamp": iso8601(now_ms())}}),
                    ),
                    other => ctx.error("unknown_type", &format!("unknown message type {other:?}")),
                }
            }
        })
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        for ch in std::mem::take(&mut self.channels) {
            ctx.state
                .broker
                .unsubscribe(&format!("devices.{}.{ch}", self.uuid), ctx.conn.id);
        }
        if let Some(feeds) = ctx.state.device_feeds() {
            feeds.unwatched(&self.uuid);
        }
    }
}
