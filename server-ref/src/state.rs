//! The application state every handler shares ([`AppState`]), built from
//! the configuration: the broker, the policy, the metrics, the connection limit and
//! shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::auth::{self, Claims};
use crate::broker::{Broker, Dedupe, Keyed, MemoryBroker, RedisBroker, RedisOptions};
use crate::config::{BrokerKind, Config};
use crate::conn::limit::ConnectionLimit;
use crate::history::MemoryHistory;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::published::Published;
use crate::time::now_ms;
use crate::{Error, Result};

/// Everything the handlers share.
pub struct AppState {
    /// The configuration the server runs with.
    pub config: Config,
    /// The broker (and, through it, the history).
    pub broker: Arc<dyn Broker>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Who may subscribe and publish where, and the rooms learnt meanwhile.
    pub(crate) policy: Policy,
    /// This node's name (`--node-id`, or a random one), in logs and `/healthz`.
    node_id: String,
    jwt_secret: Option<Vec<u8>>,
    pub(crate) publish_key: Option<String>,
    /// True once the server is shutting down ([`AppState::shut_down`]).
    pub(crate) shutdown: watch::Sender<bool>,
    /// What `--demo` generated, for the banner [`run`](crate::run) prints.
    pub(crate) demo_credentials: DemoCredentials,
    pub(crate) connections: ConnectionLimit,
    next_id: AtomicU64,
    /// What runs a device's feed while someone watches it (the demo's).
    device_feeds: OnceLock<Arc<dyn DeviceFeeds>>,
    pub(crate) started: Instant,
}

/// Something that feeds a device's topics while clients watch it: the demo
/// installs one; production devices publish through the publish API.
pub(crate) trait DeviceFeeds: Send + Sync {
    /// A client started watching device `uuid`.
    fn watched(&self, uuid: &str);
    /// A client stopped watching device `uuid`.
    fn unwatched(&self, uuid: &str);
    /// The server stops: end every feed.
    fn stop(&self);
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// What `--demo` generated because it was not configured. Secrets: no
/// `Debug`, printed only by the demo's start-up banner.
#[derive(Clone, Default)]
pub(crate) struct DemoCredentials {
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
    /// be created within a tokio runtime), to serve with [`run`](crate::run).
    pub fn new(mut config: Config) -> Result<Arc<AppState>> {
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
            BrokerKind::Redis => Arc::new(RedisBroker::new(RedisOptions {
                url: config.redis_url.clone(),
                prefix: config.redis_prefix.clone(),
                node_id: node_id.clone(),
                history_size: config.history_size,
                history_age: config.history_age,
            })?),
        };
        let state = AppState {
            policy: Policy::new(&config, secret.as_deref()),
            jwt_secret: secret,
            publish_key,
            node_id,
            connections: ConnectionLimit::new(config.max_connections),
            config,
            broker,
            metrics: Arc::default(),
            shutdown: watch::Sender::new(false),
            demo_credentials: creds,
            next_id: AtomicU64::new(1),
            device_feeds: OnceLock::new(),
            started: Instant::now(),
        };
        Ok(Arc::new(state))
    }

    /// Starts the graceful shutdown: every connection is asked to reconnect
    /// later and [`run`](crate::run) returns once they are gone.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// The shutdown flag, to watch (true once shutting down). Tests that
    /// serve the same state again set it back to false through it.
    pub fn shutdown_flag(&self) -> &watch::Sender<bool> {
        &self.shutdown
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
        self.connections.live()
    }

    /// Signs claims with the configured secret (for tools and tests).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let s = self
            .jwt_secret
            .as_deref()
            .ok_or_else(|| Error::Config("no JWT secret configured".into()))?;
        auth::sign(s, claims)
    }

    /// Installs what feeds watched devices (once; later calls are ignored).
    pub(crate) fn set_device_feeds(&self, feeds: Arc<dyn DeviceFeeds>) {
        let _ = self.device_feeds.set(feeds);
    }

    /// What feeds watched devices, if anything does.
    pub(crate) fn device_feeds(&self) -> Option<&Arc<dyn DeviceFeeds>> {
        self.device_feeds.get()
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
            Err(e) => self.count_failure(e),
        }
        r
    }

    /// Publishes once per idempotency `key` on `topic`: a key seen within
    /// `--dedup-window` (at most `--dedup-max` per topic) answers the first
    /// publish's position and publishes nothing.
    pub async fn publish_keyed(&self, topic: &str, data: Value, key: &str) -> Result<Keyed> {
        let dedupe = Dedupe {
            window_ms: self.config.dedup_window.as_millis() as u64,
            max: self.config.dedup_max,
        };
        let r = self.broker.publish_keyed(topic, data, key, dedupe).await;
        match &r {
            Ok(Keyed::New(_)) => Metrics::inc(&self.metrics.published),
            Ok(Keyed::Repeat(_)) => Metrics::inc(&self.metrics.publish_repeats),
            Err(e) => self.count_failure(e),
        }
        r
    }

    fn count_failure(&self, e: &Error) {
        match e {
            Error::PublishUnknown(_) => Metrics::inc(&self.metrics.publish_unknown),
            _ => Metrics::inc(&self.metrics.publish_failures),
        }
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
        self.policy.learn_rooms(rooms);
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
