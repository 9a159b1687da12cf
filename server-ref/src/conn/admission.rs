//! Admission: what is checked before an upgrade (origin, shutdown, the
//! connection limit, the token), and the connection limit itself, a
//! semaphore whose permits the open connections hold.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{token_from, Claims};
use crate::metrics::{Endpoint, Metrics};
use crate::AppState;

/// `--max-connections` slots: a connection holds one from admission until
/// it ends.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    max: u32,
}

/// Holds one slot of `--max-connections` until dropped.
pub(crate) type ConnPermit = OwnedSemaphorePermit;

impl Admission {
    /// `max` slots (at most `u32::MAX`: waiting for all of them takes a `u32`).
    pub(crate) fn new(max: usize) -> Admission {
        let max = max.min(u32::MAX as usize).min(Semaphore::MAX_PERMITS) as u32;
        Admission {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A slot, unless all are taken.
    pub(crate) fn try_admit(&self) -> Option<ConnPermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Open connections (counted from admission).
    pub(crate) fn live(&self) -> usize {
        self.max as usize - self.slots.available_permits()
    }

    /// Waits until every connection has ended, at most `grace`; false if
    /// some were still open then. Admits nobody meanwhile.
    pub(crate) async fn all_closed(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.slots.acquire_many(self.max))
            .await
            .is_ok()
    }
}

/// Origin, connection limit and token checks before an upgrade.
pub(crate) fn admit(
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
    let Some(permit) = state.admission.try_admit() else {
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
    let claims = match (&state.verifier, token) {
        (Some(v), Some(t)) => Some(v.verify(&t).map_err(|e| unauthorized(e.to_string()))?),
        (Some(_), None) => {
            let anonymous = endpoint != Endpoint::Actions
                && state.config.anonymous_endpoints.iter().any(|e| {
                    e == endpoint.name() || (e == "power" && endpoint == Endpoint::Health)
                });
            if !anonymous {
                return Err(unauthorized(
                    "unauthorized: a token is required (?token= or Authorization: Bearer)".into(),
                ));
            }
            None
        }
        (None, _) if endpoint == Endpoint::Actions => {
            tracing::warn!("actions endpoint refused: it always needs a token, and no --jwt-secret is configured");
            return Err(unauthorized(
                "unauthorized: this endpoint needs a JWT and the server has no --jwt-secret configured".into(),
            ));
        }
        (None, _) => None,
    };
    Ok((permit, claims))
}
