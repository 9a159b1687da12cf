//! `hublink-server`: the reference backend for the `hublink.v1` protocol
//! (PROTOCOL.md) and for the WebSocket endpoints of the five seed backends, on one
//! axum server with an in-memory broker and history.
//!
//! # Layout
//!
//! - [`config`]: every flag (`clap`), each also settable as `HUBLINK_*`.
//! - [`auth`]: HS256 JWT verification, topic patterns, the actions dialect's room scoping.
//! - [`history`]: the [`History`](history::History) trait (epochs, `seq`, the bounded
//!   replay window) and its in-memory implementation.
//! - [`published`]: a message the broker accepted, and how it looks on each
//!   endpoint; each shape is serialised once per message and shared by all its
//!   subscribers.
//! - [`broker`]: the [`Broker`](broker::Broker) trait (publish, subscribe with atomic
//!   replay, pattern subscriptions), [`MemoryBroker`](broker::MemoryBroker), the default,
//!   and in [`broker::redis`] scale-out, `--broker redis`: several nodes share topics and
//!   history through Redis (a Lua script per publish, one pub/sub connection per node).
//! - [`frames`]: the server's own small frames (`error`, `reconnect`).
//! - `conn`: what every WebSocket endpoint shares: admission (origin, connection
//!   limit, token), a reader loop and a writer task joined by a bounded queue
//!   (full queue: close 4009, the broadcast never waits), heartbeats, WebSocket
//!   pings, stale cleanup (4008), rate limit (4029), size limit (1009), graceful
//!   shutdown (`reconnect`, then 1012).
//! - `endpoints`: one module per protocol: `canonical` (`/ws` and the topics
//!   dialect `/api/v1/ws/`), `machines`, `devices`, `actions`, `power`, and the HTTP
//!   publish API.
//! - [`metrics`]: atomics rendered as Prometheus text at `/metrics`.
//! - `demo`: simulated feeds for `--demo`.
//!
//! # Running
//!
//! [`run`] serves a bound listener until `shutdown` completes, mini-redis style;
//! tests bind `127.0.0.1:0`. [`app`] builds the same router for a given state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
pub mod published;

pub use config::Config;
pub use error::{Error, Result};

use auth::{Claims, Verifier};
use broker::{Broker, MemoryBroker};
use config::BrokerKind;
use history::MemoryHistory;
use metrics::Metrics;
use published::Published;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Everything the handlers share.
pub struct AppState {
    /// The configuration the server runs with.
    pub config: Config,
    /// The broker (and, through it, the history).
    pub broker: Arc<dyn Broker>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// This node's name (`--node-id`, or a random one), in logs and `/healthz`.
    node_id: String,
    verifier: Option<Verifier>,
    jwt_secret: Option<Vec<u8>>,
    publish_key: Option<String>,
    shutdown: watch::Receiver<bool>,
    admission: conn::Admission,
    next_id: AtomicU64,
    /// Rooms learnt to belong to a branch (from publications naming both).
    room_branches: Mutex<HashMap<String, String>>,
    demo_devices: Mutex<HashMap<String, (usize, tokio::task::JoinHandle<()>)>>,
    started: Instant,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// What `--demo` generated because it was not configured.
#[derive(Debug, Clone, Default)]
pub struct DemoCredentials {
    /// The generated JWT secret, when none was configured.
    pub jwt_secret: Option<String>,
    /// A token for the demo user (branch `--demo-branch`, role admin, may publish).
    pub token: Option<String>,
    /// The generated publish API key, when none was configured.
    pub publish_key: Option<String>,
}

fn random_key(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

impl AppState {
    /// State for `config` with the broker it names (`--broker`; the Redis one must
    /// be created within a tokio runtime). The returned sender starts a graceful
    /// shutdown when it sends `true` (or is dropped).
    pub fn new(
        mut config: Config,
    ) -> Result<(Arc<AppState>, watch::Sender<bool>, DemoCredentials)> {
        let mut creds = DemoCredentials::default();
        let mut secret = config.load_jwt_secret()?;
        if config.demo && secret.is_none() {
            let s = random_key(32);
            creds.jwt_secret = Some(s.clone());
            secret = Some(s.into_bytes());
            // The seed frontends other than the actions one send no token.
            for e in ["ws", "topics", "machines", "devices", "power"] {
                if !config.anonymous_endpoints.iter().any(|x| x == e) {
                    config.anonymous_endpoints.push(e.to_string());
                }
            }
        }
        let mut publish_key = config.publish_key.clone().filter(|k| !k.is_empty());
        if config.demo && publish_key.is_none() {
            let k = random_key(24);
            creds.publish_key = Some(k.clone());
            publish_key = Some(k);
        }
        if config.demo {
            if let Some(s) = &secret {
                let claims = Claims {
                    sub: Some("demo-user".into()),
                    branch: Some(config.demo_branch.clone()),
                    role: Some("admin".into()),
                    topics: None,
                    publish: Some(vec!["**".into()]),
                    exp: Some(now_ms() / 1000 + 30 * 86_400),
                    nbf: None,
                };
                creds.token = Some(auth::sign(s, &claims)?);
            }
        }
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{}", random_key(6).to_lowercase()));
        let broker: Arc<dyn Broker> = match config.broker {
            BrokerKind::Memory => Arc::new(MemoryBroker::new(Arc::new(MemoryHistory::new(
                config.history_size,
                config.history_age,
            )))),
            BrokerKind::Redis => Arc::new(broker::RedisBroker::new(broker::RedisOptions {
                url: config.redis_url.clone(),
                prefix: config.redis_prefix.clone(),
                node_id: node_id.clone(),
                history_size: config.history_size,
                history_age: config.history_age,
            })?),
        };
        let (tx, rx) = watch::channel(false);
        let state = AppState {
            verifier: secret.as_deref().map(Verifier::new),
            jwt_secret: secret,
            publish_key,
            node_id,
            admission: conn::Admission::new(config.max_connections),
            config,
            broker,
            metrics: Arc::default(),
            shutdown: rx,
            next_id: AtomicU64::new(1),
            room_branches: Mutex::new(HashMap::new()),
            demo_devices: Mutex::new(HashMap::new()),
            started: Instant::now(),
        };
        Ok((Arc::new(state), tx, creds))
    }

    /// This node's name: `--node-id`, or the random one it was given.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A fresh connection id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Open WebSocket connections (counted from admission).
    pub fn live_connections(&self) -> usize {
        self.admission.live()
    }

    /// Signs claims with the configured secret (for tools and tests).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let s = self
            .jwt_secret
            .as_deref()
            .ok_or_else(|| Error::Config("no JWT secret configured".into()))?;
        auth::sign(s, claims)
    }

    fn known_branch(&self, room: &str) -> Option<String> {
        self.room_branches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }

    /// Whether `claims` may subscribe to `topic` (`None`: anonymous).
    pub(crate) fn may_subscribe(&self, claims: Option<&Claims>, topic: &str) -> Result<()> {
        match claims {
            Some(c) => {
                if let Some(room) = topic.strip_prefix("room:") {
                    auth::room_allowed(Some(c), room, self.known_branch(room).as_deref())?;
                }
                c.may_subscribe(topic)
            }
            None if self.verifier.is_some() && topic.starts_with("room:") => Err(Error::Forbidden(
                format!("topic {topic:?} is a room and needs a token"),
            )),
            None => Ok(()),
        }
    }

    /// Whether a client with `claims` may publish to `topic`.
    pub(crate) fn may_publish(&self, claims: Option<&Claims>, topic: &str) -> Result<()> {
        match claims {
            Some(c) => {
                if let Some(room) = topic.strip_prefix("room:") {
                    auth::room_allowed(Some(c), room, self.known_branch(room).as_deref())?;
                }
                c.may_publish(topic)
            }
            None if self.config.anonymous_publish => Ok(()),
            None => Err(Error::Forbidden(format!(
                "publishing to {topic:?} needs a token with a \"publish\" claim (or --anonymous-publish)"
            ))),
        }
    }

    /// Publishes through the broker, counting it.
    pub async fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
    ) -> Result<Arc<Published>> {
        let r = self.broker.publish(topic, data, event_id).await;
        match &r {
            Ok(_) => Metrics::inc(&self.metrics.published),
            Err(_) => Metrics::inc(&self.metrics.publish_failures),
        }
        r
    }

    /// Publishes one event to several rooms (topics `room:{room}`), so a
    /// connection in several of them gets it once. Rooms published together with
    /// a `branch:{b}` room are remembered as belonging to branch `b`.
    pub async fn publish_event(
        &self,
        rooms: &[String],
        ty: &str,
        data: Value,
    ) -> Result<Vec<Arc<Published>>> {
        if let Some(branch) = rooms.iter().find_map(|r| r.strip_prefix("branch:")) {
            let mut map = self.room_branches.lock().unwrap_or_else(|e| e.into_inner());
            for r in rooms
                .iter()
                .filter(|r| !r.starts_with("branch:") && !r.starts_with("role:"))
            {
                if map.len() < 100_000 || map.contains_key(r) {
                    map.insert(r.clone(), branch.to_string());
                }
            }
        }
        let event_id = self.next_id();
        let payload = json!({"type": ty, "data": data});
        let mut out = Vec::with_capacity(rooms.len());
        for r in rooms {
            out.push(
                self.publish(&format!("room:{r}"), payload.clone(), Some(event_id))
                    .await?,
            );
        }
        Ok(out)
    }
}

/// The router: every endpoint of the server, for `state`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", any(endpoints::canonical::ws))
        .route("/api/v1/ws/", any(endpoints::canonical::topics))
        .route("/api/v1/ws", any(endpoints::canonical::topics))
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
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// `GET /healthz`: 200 when the node can serve; 503 with a `reason` when its
/// broker's backend (Redis) is unreachable or unusable, while its connections
/// stay open. `node_id` names the node.
async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let broker = state.broker.status();
    let mut body = json!({
        "status": if *state.shutdown.borrow() { "shutting_down" } else if broker.up { "ok" } else { "degraded" },
        "connections": state.live_connections(),
        "active_streams": state.broker.active_streams(),
        "uptime_s": state.started.elapsed().as_secs(),
        "broker": broker.kind,
        "node_id": state.node_id,
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

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&*state.broker),
    )
}

/// Serves `listener` with `config` until `shutdown` completes, then asks every
/// connection to reconnect later (`reconnect` + close 1012), waits for them
/// (at most `--shutdown-grace`) and returns. It stops the same way, returning
/// [`Error::Config`], when the broker's backend turns out at start to be one it
/// cannot use (a Redis Cluster node or a Sentinel).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (state, tx, creds) = AppState::new(config)?;
    run_with_state(listener, state, tx, creds, shutdown).await
}

/// [`run`] with a state built by [`AppState::new`] (to share it with a test).
pub async fn run_with_state(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    creds: DemoCredentials,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the listener's address".into(),
        source,
    })?;
    tracing::info!(%addr, "hublink-server listening");
    if state.config.demo {
        print_demo(&state, &creds, addr);
        demo::start(state.clone());
    }
    if state.verifier.is_none() {
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

    let mut stop = state.shutdown.clone();
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    // A broker backend that turns out unusable (a Redis Cluster node...) stops
    // the server as a configuration error would, after the same graceful shutdown.
    let unusable = tokio::select! {
        () = shutdown => None,
        why = state.broker.unusable() => Some(why),
    };
    tracing::info!("shutting down: asking clients to reconnect later");
    let _ = shutdown_tx.send(true);

    if !state
        .admission
        .all_closed(state.config.shutdown_grace)
        .await
    {
        tracing::warn!(
            left = state.live_connections(),
            "shutdown grace over with connections still open"
        );
    }
    pruner.abort();
    demo::stop(&state);
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    tracing::info!("stopped");
    match unusable {
        Some(why) => Err(Error::Config(why)),
        None => Ok(()),
    }
}

fn print_demo(state: &AppState, creds: &DemoCredentials, addr: std::net::SocketAddr) {
    println!("hublink-server demo mode on http://{addr}");
    if let Some(s) = &creds.jwt_secret {
        println!("  generated dev JWT secret (HUBLINK_JWT_SECRET): {s}");
    }
    if let Some(t) = &creds.token {
        println!(
            "  demo token (sub demo-user, branch {}, role admin): {t}",
            state.config.demo_branch
        );
        println!("  actions endpoint: ws://{addr}/api/v1/actions?token={t}");
    }
    if let Some(k) = &creds.publish_key {
        println!("  generated publish key (HUBLINK_PUBLISH_KEY): {k}");
    }
}
