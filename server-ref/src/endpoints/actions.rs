//! The actions dialect of the serverless backend (API Gateway style): a token is
//! always required at the upgrade; `{"action":"ping"|"getRooms"|"getStatus"|
//! "subscribe"|"unsubscribe"|"subscribeToOrder", "data":{...}}`; events arrive as
//! `{"type":"order:status_changed","data":{...},"timestamp":...,"room":...}`.
//!
//! Rooms are topics `room:{room}`. On connect the client joins `branch:{branch}`,
//! `user:{sub}` and `role:{role}:{branch}` from its token (`sub`/`branch` may be
//! named `userId`/`branchId`, as the seed's tokens name them); other rooms are
//! checked by [`crate::auth::room_allowed`]. `getRooms` lists them in the order
//! they were joined, as the seed's session shows them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::wire::{parse_batch, short};
use crate::broker::Subscriber;
use crate::conn::{admit, upgrade, ConnShared, Ctx, DriveOptions, Handler};
use crate::metrics::Endpoint;
use crate::published::{Published, Shape};
use crate::state::AppState;
use crate::time::iso8601;
use crate::time::now_ms;
use crate::topic::validate_topic;

/// `GET /api/v1/actions` (also `/actions` and `/dev`, the API Gateway stage path).
pub(crate) async fn ws(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let admitted = match admit(&state, Endpoint::Actions, &headers, query.as_deref()) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let opts = DriveOptions::new(Endpoint::Actions, &state.config);
    upgrade(
        ws,
        state,
        admitted,
        opts,
        Actions {
            rooms: Vec::new(),
            sub: None,
            connected_at: now_ms(),
        },
    )
}

/// An actions-dialect handler, for the fuzz harness.
pub(crate) fn handler() -> Box<dyn Handler> {
    Box::new(Actions {
        rooms: Vec::new(),
        sub: None,
        connected_at: now_ms(),
    })
}

/// Delivers each event once even when the connection is in several of its rooms.
struct RoomSubscriber {
    conn: Arc<ConnShared>,
    recent: Mutex<VecDeque<u64>>,
}

impl Subscriber for RoomSubscriber {
    fn deliver(&self, msg: &Arc<Published>) {
        if let Some(id) = msg.event_id {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.contains(&id) {
                return;
            }
            if recent.len() >= 32 {
                recent.pop_front();
            }
            recent.push_back(id);
        }
        self.conn.send(msg.frame(Shape::Actions));
    }
}

struct Actions {
    /// In the order joined.
    rooms: Vec<String>,
    sub: Option<Arc<RoomSubscriber>>,
    connected_at: u64,
}

/// Why a room could not be joined.
enum JoinError {
    /// Refused for this client (bad name, not allowed, limit): the message.
    Refused(String),
    /// The broker is unreachable: the connection is sent away (1013).
    Unavailable(crate::Error),
}

impl Actions {
    async fn join(&mut self, ctx: &mut Ctx, room: &str) -> Result<(), JoinError> {
        let topic = format!("room:{room}");
        let refused = |e: crate::Error| JoinError::Refused(e.to_string());
        validate_topic(&topic, ctx.state.config.max_topic_len).map_err(refused)?;
        ctx.state
            .policy
            .may_subscribe(ctx.claims.as_ref(), &topic)
            .map_err(refused)?;
        let known = self.rooms.iter().any(|r| r == room);
        if !known && self.rooms.len() >= ctx.state.config.max_subscriptions {
            return Err(JoinError::Refused(format!(
                "cannot join room {room:?}: limit of {} rooms reached",
                ctx.state.config.max_subscriptions
            )));
        }
        let sub = self.sub.clone().expect("set in on_open");
        let broker = ctx.state.broker.clone();
        broker
            .subscribe(&topic, ctx.conn.id, sub, None, Box::new(|_| {}))
            .await
            .map_err(JoinError::Unavailable)?;
        if !known {
            self.rooms.push(room.to_string());
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx, v: Value) {
        let Some(obj) = v.as_object() else {
            return ctx.error(
                "invalid_message",
                &format!("message is not a JSON object: {}", short(&v)),
            );
        };
        let action = match obj.get("action") {
            Some(Value::String(a)) => a.as_str(),
            Some(other) => {
                return ctx.error(
                    "invalid_message",
                    &format!("field \"action\" must be a string, got {}", short(other)),
                )
            }
            None => return ctx.error("invalid_message", "field \"action\" is missing"),
        };
        let data_str = |field: &str| -> Result<String, String> {
            match v.get("data").and_then(|d| d.get(field)) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(other) => Err(format!(
                    "{action}: field \"data.{field}\" must be a non-empty string, got {}",
                    short(other)
                )),
                None => Err(format!("{action}: field \"data.{field}\" is missing")),
            }
        };
        match action {
            "ping" => ctx.send_json(&json!({"action": "pong", "timestamp": iso8601(now_ms())})),
            "getRooms" => {
                let rooms = &self.rooms;
                ctx.send_json(&json!({"action": "getRooms", "rooms": rooms, "count": rooms.len()}));
            }
            "getStatus" => {
                let c = ctx.claims.clone().unwrap_or_default();
                ctx.send_json(&json!({
                    "action": "getStatus", "connected": true,
                    "connectionId": format!("conn-{}", ctx.conn.id),
                    "userId": c.sub, "branchId": c.branch, "role": c.role,
                    "rooms": &self.rooms,
                    "connectedAt": iso8601(self.connected_at),
                }));
            }
            "subscribe" | "subscribeToOrder" => {
                let (room, key, id) = if action == "subscribe" {
                    match data_str("room") {
                        Ok(r) => (r.clone(), "room", r),
                        Err(e) => return ctx.error("invalid_message", &e),
                    }
                } else {
                    match data_str("orderId") {
                        Ok(o) => (format!("order:{o}"), "orderId", o),
                        Err(e) => return ctx.error("invalid_message", &e),
                    }
                };
                match self.join(ctx, &room).await {
                    Ok(()) => ctx.send_json(&json!({"action": action, "success": true, key: id})),
                    Err(JoinError::Unavailable(e)) => {
                        let reply = json!({"action": action, "success": false, key: id, "error": e.to_string()});
                        ctx.send_json(&reply);
                        ctx.broker_unavailable(&e, false);
                    }
                    Err(JoinError::Refused(e)) => {
                        let code = if e.starts_with("forbidden") {
                            "forbidden"
                        } else {
                            "invalid_topic"
                        };
                        ctx.error(code, &e);
                        ctx.send_json(
                            &json!({"action": action, "success": false, key: id, "error": e}),
                        );
                    }
                }
            }
            "unsubscribe" => {
                let room = match data_str("room") {
                    Ok(r) => r,
                    Err(e) => return ctx.error("invalid_message", &e),
                };
                let at = self.rooms.iter().position(|r| *r == room);
                let ok = at.map(|i| self.rooms.remove(i)).is_some();
                if ok {
                    ctx.state
                        .broker
                        .unsubscribe(&format!("room:{room}"), ctx.conn.id);
                }
                let mut reply = json!({"action": "unsubscribe", "success": ok, "room": room});
                if !ok {
                    reply["error"] = json!(format!("not in room {room:?}"));
                }
                ctx.send_json(&reply);
            }
            other => ctx.error("unknown_type", &format!("unknown action {other:?}")),
        }
    }
}

impl Handler for Actions {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.sub = Some(Arc::new(RoomSubscriber {
                conn: ctx.conn.clone(),
                recent: Mutex::new(VecDeque::new()),
            }));
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
                    Err(JoinError::Refused(e)) => {
                        tracing::debug!(conn = ctx.conn.id, "auto-join of {room:?} failed: {e}");
                    }
                    Err(JoinError::Unavailable(e)) => return ctx.broker_unavailable(&e, false),
                }
            }
        })
    }

    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for item in parse_batch(text) {
                match item {
                    Ok(v) => self.handle(ctx, v).await,
                    Err(e) => ctx.error("invalid_json", &e),
                }
            }
        })
    }

    fn on_close(&mut self, ctx: &mut Ctx) {
        for r in std::mem::take(&mut self.rooms) {
            ctx.state
                .broker
                .unsubscribe(&format!("room:{r}"), ctx.conn.id);
        }
    }
}
