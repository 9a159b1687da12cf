//! Admission: what is checked before an upgrade (origin, shutdown, the
//! connection limit, the token, and for an endpoint whose path names its one
//! topic, the policy's word on it).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::limit::ConnPermit;
use crate::auth::{token_from, Claims};
use crate::metrics::{Endpoint, Metrics};
use crate::state::AppState;

/// Origin, connection limit and token checks before an upgrade.
pub(super) fn admit(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(ConnPermit, Option<Claims>), Box<Response>> {
    let m = &state.metrics;
    let origins = &state.config.allowed_origins;
    if !origins.is_empty() {
        if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !origins.iter().any(|o| o == origin) {
                Metrics::inc(&m.rejected_forbidden);
                return Err(Box::new(
                    (
                        StatusCode::FORBIDDEN,
                        format!("origin {origin:?} is not allowed\n"),
                    )
                        .into_response(),
                ));
            }
        }
    }
    if *state.shutdown.borrow() {
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n").into_response(),
        ));
    }
    let Some(permit) = state.connections.try_admit() else {
        Metrics::inc(&m.rejected_limit);
        return Err(Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many connections (limit {})\n",
                    state.config.max_connections
                ),
            )
                .into_response(),
        ));
    };
    let token = token_from(query, headers);
    let unauthorized = |why: String| {
        Metrics::inc(&m.rejected_auth);
        Box::new((StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response())
    };
    let claims = state
        .policy
        .claims_for(endpoint, token)
        .map_err(|e| unauthorized(e.0))?;
    Ok((permit, claims))
}

/// For an endpoint whose path names the one topic it streams: 403 unless
/// the policy lets `claims` subscribe to `topic`.
pub(super) fn may_follow(
    state: &AppState,
    claims: Option<&Claims>,
    topic: &str,
) -> Result<(), Box<Response>> {
    state.policy.may_subscribe(claims, topic).map_err(|e| {
        Metrics::inc(&state.metrics.rejected_forbidden);
        Box::new((StatusCode::FORBIDDEN, format!("{e}\n")).into_response())
    })
}
