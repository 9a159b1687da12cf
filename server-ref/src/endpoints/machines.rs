//! `/ws/machines` (every machine) and `/ws/machines/{id}` (one machine), as the
//! Go hub serves them: `{"type","data","timestamp"}` frames, WebSocket pings
//! every `--machines-ping-interval`, client messages read and ignored.
//!
//! One message per text frame. The seed's Go hub joins queued messages with
//! `\n` into one frame, but its own frontend runs `JSON.parse(event.data)` on
//! every frame and so loses each such batch; this endpoint serves that
//! frontend. (hublink's clients still accept `\n` batches from real Go hubs.)
//!
//! Paths route as the seed's `/ws/machines/` handler does: the machine id is
//! the first segment after `/ws/machines/` (`/ws/machines/CNC-001/live` is
//! CNC-001), and an empty one is `400 Machine ID required`, before any upgrade.
//!
//! Topics: machine `{id}` publishes on `machines.{id}`; data
//! `{"type":"sensor_data"|"machine_status","data":{...}}` (a bare object is
//! sent as `sensor_data`).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;

use super::subscriptions::Subscriptions;
use crate::conn::{Ctx, DriveOptions, Handler, UpgradeRequest};
use crate::metrics::Endpoint;
use crate::published::Shape;
use crate::topic::child;

/// `GET /ws/machines`.
pub(crate) async fn all(req: UpgradeRequest) -> Response {
    serve(req, None)
}

/// `GET /ws/machines/`: no machine id, answered as the seed's handler answers.
pub(crate) async fn missing_id() -> Response {
    (StatusCode::BAD_REQUEST, "Machine ID required\n").into_response()
}

/// `GET /ws/machines/{id}/{*rest}`: the seed's handler takes the first segment.
pub(crate) async fn one_deeper(
    Path((id, _rest)): Path<(String, String)>,
    req: UpgradeRequest,
) -> Response {
    serve(req, Some(id))
}

/// `GET /ws/machines/{id}`.
pub(crate) async fn one(Path(id): Path<String>, req: UpgradeRequest) -> Response {
    serve(req, Some(id))
}

fn serve(req: UpgradeRequest, id: Option<String>) -> Response {
    let config = &req.state.config;
    let topic = match &id {
        Some(id) => format!("machines.{id}"),
        None => "machines.*".to_string(),
    };
    if let Some(id) = &id {
        if id.is_empty() || child("machines", id, config.max_topic_len).is_none() {
            return (
                StatusCode::BAD_REQUEST,
                format!("machine id {id:?} is not valid\n"),
            )
                .into_response();
        }
    }
    // The Go hub's ping period, no JSON protocol to send `reconnect` on; one
    // message per frame (see the module's doc).
    let opts = DriveOptions {
        ping_interval: config.machines_ping_interval,
        reconnect_on_shutdown: false,
        ..DriveOptions::new(Endpoint::Machines, config)
    };
    let handler = Machines {
        topic: topic.clone(),
        pattern: id.is_none(),
        subs: Subscriptions::new(Shape::Machines),
    };
    req.accept(opts, Some(&topic), handler)
}

/// A connection to one machine's topic, or with `pattern` to every machine's.
struct Machines {
    topic: String,
    pattern: bool,
    subs: Subscriptions,
}

impl Handler for Machines {
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.pattern {
                self.subs.follow_pattern(ctx, &self.topic);
            } else if let Err(e) = self.subs.follow(ctx, &self.topic).await {
                ctx.broker_unavailable(&e, false);
            }
        })
    }

    // The Go hub reads and discards whatever the client sends.
    fn on_text<'a>(&'a mut self, _ctx: &'a mut Ctx, _text: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn on_binary(&mut self, _ctx: &mut Ctx) {}

    fn on_close(&mut self, ctx: &mut Ctx) {
        self.subs.close(ctx);
    }
}
