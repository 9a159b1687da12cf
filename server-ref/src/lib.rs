//! `hublink-server`: the reference backend for the `hublink.v1` protocol
//! (PROTOCOL.md) and for the WebSocket endpoints of the five seed backends, on one
//! axum server with an in-memory broker and history.
//!
//! # Layout
//!
//! - `lib.rs` (this file): the front door: [`app`], [`run`], [`Error`] and
//!   [`Result`] (from `error.rs`). `main.rs` is the binary: flags, runtime,
//!   listener, signals.
//! - [`config`]: every flag (`clap`), each also settable as `HUBLINK_*`; its
//!   `Debug` hides the secrets.
//! - [`redact`]: a Redis URL with its password hidden, for health, logs and errors.
//! - [`state`]: [`AppState`], what every handler shares, built from the config.
//! - [`policy`]: who may subscribe and publish where, anonymous endpoints, the
//!   actions dialect's room scoping and the room-to-branch map it learns.
//! - [`auth`]: HS256 JWT verification and where a request carries its token.
//! - [`topic`]: valid topic names and how patterns match them.
//! - [`time`]: milliseconds since the epoch and RFC 3339.
//! - [`published`]: a message the broker accepted, and how it looks on each
//!   endpoint; each shape is serialised once per message and shared by all its
//!   subscribers.
//! - [`history`]: the [`History`](history::History) trait (epochs, `seq`, the bounded
//!   replay window) and its in-memory implementation.
//! - [`broker`]: the [`Broker`](broker::Broker) trait (publish, subscribe with atomic
//!   replay, pattern subscriptions), [`MemoryBroker`](broker::MemoryBroker), the default,
//!   the pattern `registry` both share, and in [`broker::redis`] scale-out, `--broker
//!   redis`: several nodes share topics and history through Redis: its `keys`,
//!   the Lua `scripts` (`publish.lua`, `snapshot.lua`), the stream `history`,
//!   the node's local `topics`, the pub/sub `link` (one connection per node)
//!   and its `health`.
//! - [`frames`]: the server's own small frames (`error`, `reconnect`).
//! - `conn/`: what every WebSocket endpoint shares: the `upgrade` request each
//!   takes, its `admission` (origin, the connection `limit` (a semaphore),
//!   token, the policy on a topic the path names), the `connection` loop, the
//!   `shared` half of a connection that deliveries reach, the `queue` (full:
//!   close 4009, the broadcast never waits), the `writer` task; heartbeats,
//!   WebSocket pings, stale cleanup
//!   (4008), rate limit (4029), size limit (1009), graceful shutdown
//!   (`reconnect`, then 1012).
//! - `endpoints/`: one module per protocol, each with its own parsing and
//!   replies: `hublink` (`/ws`, hublink.v1, and the topics dialect
//!   `/api/v1/ws/`), `machines`, `devices`, `actions`, `power`, the HTTP
//!   `publish` API and `status` (`/healthz`, `/metrics`). What they share:
//!   `subscriptions` (what a connection follows, and the one subscribe pipeline:
//!   topic, policy, limit, broker, ready/replay, with typed refusals),
//!   `delivery` (the one subscriber: a shape and a filter), `wire` (client
//!   JSON: `\n` batches of commands).
//! - [`metrics`]: the counters and gauges of `/metrics`, rendered by
//!   `prometheus-client`.
//! - `demo`: simulated feeds for `--demo`, with their own state.
//! - `fuzzing`: the endpoints' frame parsers as the fuzz targets drive them.
//!
//! # Running
//!
//! [`AppState::new`] builds the state from a [`Config`]; [`run`] serves a bound
//! listener with it until `shutdown` completes, mini-redis style; tests bind
//! `127.0.0.1:0`. [`app`] builds the same router for a given state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{any, get, post};
use axum::Router;
use tokio::net::TcpListener;

pub mod auth;
pub mod broker;
pub mod config;
mod conn;
mod demo;
mod endpoints;
mod error;
pub mod frames;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod metrics;
pub mod policy;
pub mod published;
pub mod redact;
pub mod state;
pub mod time;
pub mod topic;

pub use config::Config;
pub use error::{Error, Result};
pub use state::AppState;
pub use time::now_ms;

/// The router: every endpoint of the server, for `state`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", any(endpoints::hublink::ws))
        .route("/api/v1/ws/", any(endpoints::hublink::topics))
        .route("/api/v1/ws", any(endpoints::hublink::topics))
        .route("/ws/machines", any(endpoints::machines::all))
        .route("/ws/machines/", any(endpoints::machines::missing_id))
        .route("/ws/machines/{id}", any(endpoints::machines::one))
        .route("/ws/machines/{id}/", any(endpoints::machines::one))
        .route(
            "/ws/machines/{id}/{*rest}",
            any(endpoints::machines::one_deeper),
        )
        .route("/api/v1/devices/{uuid}/ws", any(endpoints::devices::ws))
        .route("/api/v1/actions", any(endpoints::actions::ws))
        .route("/actions", any(endpoints::actions::ws))
        .route("/dev", any(endpoints::actions::ws))
        .route("/api/v1/ws/v2/power", any(endpoints::power::power))
        .route("/api/v1/ws/v2/health", any(endpoints::power::health))
        .route("/api/publish", post(endpoints::publish::publish))
        .route("/api/publish/batch", post(endpoints::publish::batch))
        .route("/healthz", get(endpoints::status::healthz))
        .route("/metrics", get(endpoints::status::metrics_text))
        .with_state(state)
}

/// Serves `listener` with `state` (built by [`AppState::new`]) until
/// `shutdown` completes or [`AppState::shut_down`] is called, then asks every
/// connection to reconnect later (`reconnect` + close 1012), waits for them
/// (at most `--shutdown-grace`) and returns. It stops the same way, returning
/// [`Error::Config`], when the broker's backend turns out at start to be one it
/// cannot use (a Redis Cluster node or a Sentinel).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the listener's address".into(),
        source,
    })?;
    tracing::info!(%addr, "hublink-server listening");
    if state.config.demo {
        demo::announce(&state, addr);
        demo::start(&state);
    }
    if !state.policy.checks_tokens() {
        tracing::warn!(
            "no --jwt-secret: auth is off, and the actions endpoint refuses every upgrade with 401"
        );
    }
    let pruner = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            loop {
                t.tick().await;
                state.broker.history().prune();
            }
        })
    };

    let mut stop = state.shutdown.subscribe();
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    // A broker backend that turns out unusable (a Redis Cluster node...) stops
    // the server as a configuration error would, after the same graceful shutdown.
    let mut asked = state.shutdown.subscribe();
    let unusable = tokio::select! {
        () = shutdown => None,
        _ = asked.wait_for(|s| *s) => None,
        why = state.broker.unusable() => Some(why),
    };
    tracing::info!("shutting down: asking clients to reconnect later");
    state.shut_down();

    if !state
        .connections
        .all_closed(state.config.shutdown_grace)
        .await
    {
        tracing::warn!(
            left = state.live_connections(),
            "shutdown grace over with connections still open"
        );
    }
    pruner.abort();
    if let Some(feeds) = state.device_feeds() {
        feeds.stop();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    tracing::info!("stopped");
    match unusable {
        Some(why) => Err(Error::Config(why)),
        None => Ok(()),
    }
}
