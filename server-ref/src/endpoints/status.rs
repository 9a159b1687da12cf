//! `GET /healthz` and `GET /metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: 200 when the node can serve; 503 with a `reason` when its
/// broker's backend (Redis) is unreachable or unusable, while its connections
/// stay open. `node_id` names the node.
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let broker = state.broker.status();
    let mut body = json!({
        "status": if *state.shutdown.borrow() { "shutting_down" } else if broker.up { "ok" } else { "degraded" },
        "connections": state.live_connections(),
        "active_streams": state.broker.active_streams(),
        "uptime_s": state.started.elapsed().as_secs(),
        "broker": broker.kind,
        "node_id": state.node_id(),
    });
    if broker.kind != "memory" {
        body["broker_up"] = json!(broker.up);
    }
    if let Some(reason) = broker.reason {
        body["reason"] = json!(reason);
    }
    let code = if broker.up {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// `GET /metrics`: the Prometheus text exposition.
pub(crate) async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&*state.broker),
    )
}
