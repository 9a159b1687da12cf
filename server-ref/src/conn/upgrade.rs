//! The upgrade request every WebSocket endpoint takes ([`UpgradeRequest`]):
//! admitted (see `admission`), then upgraded with the configured limits and
//! handed to the `connection` loop.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hublink_core::protocol::SUBPROTOCOL;

use super::admission::{admit, may_follow};
use super::{connection, DriveOptions, Handler};
use crate::metrics::Endpoint;
use crate::state::AppState;

/// A WebSocket upgrade request: the state it is served with, its query
/// string (the endpoint's parameters, `?token=`), its headers (origin,
/// `Authorization`) and the upgrade itself.
pub(crate) struct UpgradeRequest {
    pub(crate) state: Arc<AppState>,
    pub(crate) query: Option<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
}

impl FromRequestParts<Arc<AppState>> for UpgradeRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<UpgradeRequest, Response> {
        let ws = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(UpgradeRequest {
            state: state.clone(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            ws,
        })
    }
}

impl UpgradeRequest {
    /// Admits the request (origin, shutdown, connection limit, token; with
    /// `topic`, the one topic its path names, the policy's word on it), then
    /// upgrades and runs `handler` on the socket, as `opts` say.
    pub(crate) fn accept<H: Handler>(
        self,
        opts: DriveOptions,
        topic: Option<&str>,
        handler: H,
    ) -> Response {
        let state = self.state;
        let admitted = admit(&state, opts.endpoint, &self.headers, self.query.as_deref()).and_then(
            |(permit, claims)| match topic {
                Some(t) => may_follow(&state, claims.as_ref(), t).map(|()| (permit, claims)),
                None => Ok((permit, claims)),
            },
        );
        let (permit, claims) = match admitted {
            Ok(a) => a,
            Err(refused) => return *refused,
        };
        let c = &state.config;
        let ws = self
            .ws
            .read_buffer_size(c.read_buffer_size)
            .write_buffer_size(c.write_buffer_size)
            .max_write_buffer_size(c.write_buffer_size + (4 << 20))
            .max_message_size(c.max_message_size)
            .max_frame_size(c.max_message_size);
        let ws = if opts.endpoint == Endpoint::Hublink {
            ws.protocols([SUBPROTOCOL])
        } else {
            ws
        };
        ws.on_upgrade(move |socket| connection::run(socket, state, permit, claims, opts, handler))
    }
}
