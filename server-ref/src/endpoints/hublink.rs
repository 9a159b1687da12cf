//! `/ws` (hublink.v1) and `/api/v1/ws/` (the topics dialect, a subset of it
//! with its own `connected`, heartbeat and data shapes).

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::response::Response;
use futures_util::future::BoxFuture;
use hublink_core::protocol::SUBPROTOCOL;
use serde_json::{json, Value};

use super::subscriptions::{Refusal, Subscriptions};
use super::wire::{run_commands, short, Commands};
use crate::broker::{Keyed, OnReady, Subscribed};
use crate::conn::{Ctx, DriveOptions, Handler, UpgradeRequest};
use crate::frames::frame;
use crate::history::{Position, Replay};
use crate::metrics::{Endpoint, Metrics};
use crate::published::Shape;
use crate::time::now_ms;
use crate::topic::validate_topic;
use crate::Error;

/// `GET /ws`.
pub(crate) async fn ws(req: UpgradeRequest) -> Response {
    serve(req, false)
}

/// `GET /api/v1/ws/`.
pub(crate) async fn topics(req: UpgradeRequest) -> Response {
    serve(req, true)
}

fn serve(req: UpgradeRequest, topics: bool) -> Response {
    let endpoint = if topics {
        Endpoint::Topics
    } else {
        Endpoint::Hublink
    };
    let opts = DriveOptions {
        heartbeat: true,
        ..DriveOptions::new(endpoint, &req.state.config)
    };
    req.accept(opts, None, Hublink::new(topics))
}

/// A `/ws` (or, with `topics`, `/api/v1/ws/`) handler, for the fuzz harness.
pub(crate) fn handler(topics: bool) -> Box<dyn Handler> {
    Box::new(Hublink::new(topics))
}

/// A `/ws` connection, or with `topics_dialect` an `/api/v1/ws/` one.
struct Hublink {
    topics_dialect: bool,
    subs: Subscriptions,
}

impl Hublink {
    fn new(topics_dialect: bool) -> Hublink {
        let shape = if topics_dialect {
            Shape::Topics
        } else {
            Shape::Hublink
        };
        Hublink {
            topics_dialect,
            subs: Subscriptions::new(shape),
        }
    }
}

fn client_id() -> String {
    format!("c-{:06x}", fastrand::u32(..0x100_0000))
}

fn uuid_v4() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 + (a as u8 & 3),
        &h[17..20],
        &h[20..32]
    )
}

impl Handler for Hublink {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.topics_dialect {
                ctx.send_json(&json!({
                    "type": "connected",
                    "client_id": format!("127.0.0.1-{}", uuid_v4()),
                    "timestamp": now_ms() / 1000,
                }));
            } else {
                ctx.send_json(&json!({
                    "type": "connected",
                    "client_id": client_id(),
                    "heartbeat_interval": ctx.state.config.heartbeat_interval.as_secs_f64(),
                    "server_time": now_ms(),
                    "protocol": SUBPROTOCOL,
                }));
            }
        })
    }

    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(run_commands(self, ctx, text))
    }

    fn on_heartbeat(&mut self, ctx: &mut Ctx) {
        if self.topics_dialect {
            // The seed's own shape (002): Unix seconds, nothing else.
            ctx.send_json(&json!({"type": "heartbeat", "timestamp": now_ms() / 1000}));
        } else {
            ctx.send_json(&json!({
                "type": "heartbeat",
                "timestamp": now_ms(),
                "active_streams": ctx.state.broker.active_streams(),
            }));
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        self.subs.close(ctx);
    }
}

fn topic_field<'a>(ctx: &mut Ctx, v: &'a Value, ty: &str) -> Option<&'a str> {
    match v.get("topic") {
        Some(Value::String(t)) => Some(t),
        Some(other) => {
            ctx.error(
                "invalid_message",
                &format!(
                    "{ty}: field \"topic\" must be a string, got {}",
                    short(other)
                ),
            );
            None
        }
        None => {
            ctx.error(
                "invalid_message",
                &format!("{ty}: field \"topic\" is missing"),
            );
            None
        }
    }
}

fn parse_since(v: &Value) -> Result<Option<Position>, String> {
    match v.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => {
            let seq = s.get("seq").and_then(Value::as_u64);
            let epoch = s.get("epoch").and_then(Value::as_str);
            match (seq, epoch) {
                (Some(seq), Some(epoch)) => Ok(Some(Position { epoch: epoch.into(), seq })),
                _ => Err(format!(
                    "subscribe: field \"since\" must be {{\"seq\": integer >= 0, \"epoch\": string}}, got {}",
                    short(s)
                )),
            }
        }
    }
}

impl Commands for Hublink {
    const FIELD: &'static str = "type";

    async fn command(&mut self, ctx: &mut Ctx, name: &str, msg: &Value) -> ControlFlow<()> {
        match name {
            "subscribe" => self.subscribe(ctx, msg).await,
            "unsubscribe" => self.unsubscribe(ctx, msg),
            "get_topics" => {
                let mut topics: Vec<&String> = self.subs.topics().iter().collect();
                topics.sort();
                ctx.send_json(&json!({"type": "topics", "topics": topics}));
            }
            "publish" => publish(ctx, msg).await,
            "ping" => ctx.send_json(&json!({"type": "pong", "timestamp": now_ms()})),
            "heartbeat" => Metrics::inc(&ctx.state.metrics.heartbeat_echoes),
            other => ctx.error("unknown_type", &format!("unknown message type {other:?}")),
        }
        ControlFlow::Continue(())
    }
}

/// `subscribe_ack` with `success: false`, after the `error` that says why.
fn nack(ctx: &mut Ctx, topic: &str, code: &str, message: &str) {
    ctx.error(code, message);
    ctx.send_json(&json!({
        "type": "subscribe_ack", "topic": topic, "success": false,
        "error": format!("{code}: {message}"), "code": code,
    }));
}

impl Hublink {
    async fn subscribe(&mut self, ctx: &mut Ctx, v: &Value) {
        let Some(topic) = topic_field(ctx, v, "subscribe") else {
            return;
        };
        // A bad name is told before a bad `since`, and both before the policy's answer.
        if let Err(e) = validate_topic(topic, ctx.state.config.max_topic_len) {
            return nack(ctx, topic, "invalid_topic", &e.to_string());
        }
        let since = match parse_since(v) {
            Ok(s) => s,
            Err(e) => return nack(ctx, topic, "invalid_message", &e),
        };
        let on_ready = self.on_ready(ctx, topic, since.is_some());
        match self.subs.subscribe_with(ctx, topic, since, on_ready).await {
            Ok(()) => {}
            Err(Refusal::InvalidTopic(e)) => nack(ctx, topic, "invalid_topic", &e.to_string()),
            Err(Refusal::Forbidden(e) | Refusal::InvalidRoom(e)) => {
                nack(ctx, topic, "forbidden", &e.to_string())
            }
            Err(Refusal::TooMany { limit }) => {
                let m = format!("cannot subscribe to {topic:?}: limit of {limit} subscriptions per connection reached");
                nack(ctx, topic, "too_many_subscriptions", &m);
            }
            Err(Refusal::Broker(e)) => {
                nack(ctx, topic, "subscribe_failed", &e.to_string());
                if matches!(e, Error::BrokerUnavailable(_)) {
                    ctx.broker_unavailable(&e, true);
                }
            }
        }
    }

    /// What runs when the subscription starts: the `subscribe_ack` (with the
    /// topic's position on `/ws`; with `recovered` after a `since`), then the
    /// replay, then the topic's live messages.
    fn on_ready(&self, ctx: &Ctx, topic: &str, has_since: bool) -> OnReady<'static> {
        let conn = ctx.conn.clone();
        let topics_dialect = self.topics_dialect;
        let shape = self.subs.shape();
        let topic: Arc<str> = topic.into();
        Box::new(move |s: &Subscribed| {
            let mut ack = json!({"type": "subscribe_ack", "topic": &*topic, "success": true});
            if !topics_dialect {
                ack["epoch"] = json!(&*s.position.epoch);
                ack["seq"] = json!(s.position.seq);
            }
            let replay = match (&s.replay, has_since) {
                (Some(Replay::Recovered(msgs)), true) => {
                    ack["recovered"] = json!(true);
                    msgs.clone()
                }
                (_, true) => {
                    ack["recovered"] = json!(false);
                    Vec::new()
                }
                _ => Vec::new(),
            };
            // The replay may be a whole history window: it goes out as
            // fast as the client reads, not counted against the send
            // queue, and the topic's live messages follow it.
            conn.replay(&topic, shape, Some(frame(&ack)), replay);
        })
    }

    fn unsubscribe(&mut self, ctx: &mut Ctx, v: &Value) {
        let Some(topic) = topic_field(ctx, v, "unsubscribe") else {
            return;
        };
        if self.subs.unsubscribe(ctx, topic) {
            ctx.conn.cancel_replay(topic);
            ctx.send_json(&json!({"type": "unsubscribe_ack", "topic": topic, "success": true}));
        } else {
            ctx.send_json(&json!({
                "type": "unsubscribe_ack", "topic": topic, "success": false,
                "error": format!("not subscribed to topic {topic:?}"),
            }));
        }
    }
}

/// Longest idempotency key a publish may carry.
const MAX_ID_LEN: usize = 128;

async fn publish(ctx: &mut Ctx, v: &Value) {
    // The idempotency key: every answer to this publish repeats it.
    let id = match v.get("id") {
        None => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_LEN => Some(id.as_str()),
        Some(other) => {
            return ctx.error(
                "invalid_message",
                &format!(
                    "publish: field \"id\" must be a string of 1 to {MAX_ID_LEN} bytes, got {}",
                    short(other)
                ),
            )
        }
    };
    let Some(topic) = topic_field(ctx, v, "publish") else {
        return;
    };
    if let Err(e) = validate_topic(topic, ctx.state.config.max_topic_len) {
        return ctx.error_for(id, "invalid_topic", &e.to_string());
    }
    let Some(data) = v.get("data") else {
        return ctx.error_for(id, "invalid_message", "publish: field \"data\" is missing");
    };
    if let Err(e) = ctx.state.policy.may_publish(ctx.claims.as_ref(), topic) {
        return ctx.error_for(id, "forbidden", &e.to_string());
    }
    let size = data.to_string().len();
    let max = ctx.state.config.max_publish_size;
    if size > max {
        return ctx.error_for(
            id,
            "message_too_big",
            &format!("publish to {topic:?}: data is {size} bytes, over the limit of {max}"),
        );
    }
    let Some(id) = id else {
        if let Err(e) = ctx.state.publish(topic, data.clone(), None).await {
            ctx.broker_error_for(None, publish_error_code(&e), &e.to_string());
        }
        return;
    };
    match ctx.state.publish_keyed(topic, data.clone(), id).await {
        Ok(keyed) => {
            let (seq, epoch) = match &keyed {
                Keyed::New(msg) => (msg.seq, &msg.epoch),
                Keyed::Repeat(first) => (first.seq, &first.epoch),
            };
            ctx.send_json(&json!({
                "type": "publish_ack", "id": id, "topic": topic, "seq": seq, "epoch": &**epoch,
            }));
        }
        Err(e) => ctx.broker_error_for(Some(id), publish_error_code(&e), &e.to_string()),
    }
}

/// `publish_unknown` when the broker did not answer (it may have published),
/// `publish_failed` when it refused (nothing was published).
fn publish_error_code(e: &Error) -> &'static str {
    match e {
        Error::PublishUnknown(_) => "publish_unknown",
        _ => "publish_failed",
    }
}
