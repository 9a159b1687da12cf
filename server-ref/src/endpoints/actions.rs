//! The actions dialect of the serverless backend (API Gateway style): a token is
//! always required at the upgrade; `{"action":"ping"|"getRooms"|"getStatus"|
//! "subscribe"|"unsubscribe"|"subscribeToOrder", "data":{...}}`; events arrive as
//! `{"type":"order:status_changed","data":{...},"timestamp":...,"room":...}`.
//!
//! Rooms are topics `room:{room}`. On connect the client joins `branch:{branch}`,
//! `user:{sub}` and `role:{role}:{branch}` from its token (`sub`/`branch` may be
//! named `userId`/`branchId`, as the seed's tokens name them); other rooms are
//! checked by the room scoping of [`crate::policy`]. `getRooms` lists them in
//! the order they were joined, as the seed's session shows them.

use std::ops::ControlFlow;

use axum::response::Response;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::delivery::Filter;
use super::subscriptions::{Refusal, Subscriptions};
use super::wire::{run_commands, short, Commands};
use crate::conn::{Ctx, DriveOptions, Handler, UpgradeRequest};
use crate::metrics::Endpoint;
use crate::published::Shape;
use crate::time::{iso8601, now_ms};

/// `GET /api/v1/actions` (also `/actions` and `/dev`, the API Gateway stage path).
pub(crate) async fn ws(req: UpgradeRequest) -> Response {
    let opts = DriveOptions::new(Endpoint::Actions, &req.state.config);
    req.accept(opts, None, Actions::new())
}

/// An actions-dialect handler, for the fuzz harness.
pub(crate) fn handler() -> Box<dyn Handler> {
    Box::new(Actions::new())
}

/// An actions-dialect connection: its rooms are its topics, `room:{room}`.
struct Actions {
    rooms: Subscriptions,
    connected_at: u64,
}

fn topic(room: &str) -> String {
    format!("room:{room}")
}

impl Actions {
    fn new() -> Actions {
        Actions {
            rooms: Subscriptions::filtered(Shape::Actions, Filter::once_per_event()),
            connected_at: now_ms(),
        }
    }

    /// The rooms joined, in the order joined.
    fn rooms(&self) -> Vec<&str> {
        let rooms = self.rooms.topics().iter();
        rooms
            .map(|t| t.strip_prefix("room:").unwrap_or(t))
            .collect()
    }

    async fn join(&mut self, ctx: &mut Ctx, room: &str) -> Result<(), Refusal> {
        self.rooms.subscribe(ctx, &topic(room)).await
    }

    async fn subscribe(&mut self, ctx: &mut Ctx, action: &str, key: &str, id: String, room: &str) {
        let refusal = match self.join(ctx, room).await {
            Ok(()) => return ctx.send_json(&json!({"action": action, "success": true, key: id})),
            Err(r) => r,
        };
        let (code, error) = match refusal {
            Refusal::Broker(e) => {
                let reply =
                    json!({"action": action, "success": false, key: id, "error": e.to_string()});
                ctx.send_json(&reply);
                return ctx.broker_unavailable(&e, false);
            }
            Refusal::Forbidden(e) => ("forbidden", e.to_string()),
            Refusal::InvalidTopic(e) | Refusal::InvalidRoom(e) => ("invalid_topic", e.to_string()),
            Refusal::TooMany { limit } => (
                "invalid_topic",
                format!("cannot join room {room:?}: limit of {limit} rooms reached"),
            ),
        };
        ctx.error(code, &error);
        ctx.send_json(&json!({"action": action, "success": false, key: id, "error": error}));
    }
}

/// `data.{field}` of an `action` message: a non-empty string, or a number.
fn data_str(v: &Value, action: &str, field: &str) -> Result<String, String> {
    match v.get("data").and_then(|d| d.get(field)) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!(
            "{action}: field \"data.{field}\" must be a non-empty string, got {}",
            short(other)
        )),
        None => Err(format!("{action}: field \"data.{field}\" is missing")),
    }
}

impl Commands for Actions {
    const FIELD: &'static str = "action";

    async fn command(&mut self, ctx: &mut Ctx, action: &str, v: &Value) -> ControlFlow<()> {
        match action {
            "ping" => ctx.send_json(&json!({"action": "pong", "timestamp": iso8601(now_ms())})),
            "getRooms" => {
                let rooms = self.rooms();
                ctx.send_json(&json!({"action": "getRooms", "rooms": rooms, "count": rooms.len()}));
            }
            "getStatus" => {
                let c = ctx.claims.clone().unwrap_or_default();
                ctx.send_json(&json!({
                    "action": "getStatus", "connected": true,
                    "connectionId": format!("conn-{}", ctx.conn.id),
                    "userId": c.sub, "branchId": c.branch, "role": c.role,
                    "rooms": self.rooms(),
                    "connectedAt": iso8601(self.connected_at),
                }));
            }
            "subscribe" => match data_str(v, action, "room") {
                Ok(room) => {
                    self.subscribe(ctx, action, "room", room.clone(), &room)
                        .await
                }
                Err(e) => ctx.error("invalid_message", &e),
            },
            "subscribeToOrder" => match data_str(v, action, "orderId") {
                Ok(o) => {
                    let room = format!("order:{o}");
                    self.subscribe(ctx, action, "orderId", o, &room).await;
                }
                Err(e) => ctx.error("invalid_message", &e),
            },
            "unsubscribe" => match data_str(v, action, "room") {
                Ok(room) => {
                    let ok = self.rooms.unsubscribe(ctx, &topic(&room));
                    let mut reply = json!({"action": "unsubscribe", "success": ok, "room": room});
                    if !ok {
                        reply["error"] = json!(format!("not in room {room:?}"));
                    }
                    ctx.send_json(&reply);
                }
                Err(e) => ctx.error("invalid_message", &e),
            },
            other => ctx.error("unknown_type", &format!("unknown action {other:?}")),
        }
        ControlFlow::Continue(())
    }
}

impl Handler for Actions {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let c = ctx.claims.clone().unwrap_or_default();
            // The seed's order: branch, user, role.
            let mut auto = Vec::new();
            if let Some(b) = &c.branch {
                auto.push(format!("branch:{b}"));
            }
            if let Some(u) = &c.sub {
                auto.push(format!("user:{u}"));
            }
            if let (Some(r), Some(b)) = (&c.role, &c.branch) {
                auto.push(format!("role:{r}:{b}"));
            }
            for room in auto {
                match self.join(ctx, &room).await {
                    Ok(()) => {}
                    Err(Refusal::Broker(e)) => return ctx.broker_unavailable(&e, false),
                    Err(e) => {
                        tracing::debug!(conn = ctx.conn.id, "auto-join of {room:?} failed: {e}");
                    }
                }
            }
        })
    }

    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(run_commands(self, ctx, text))
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        self.rooms.close(ctx);
    }
}
