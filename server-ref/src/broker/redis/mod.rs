//! Scale-out: topics and history shared by several nodes through Redis
//! (`--broker redis --redis-url redis://...`), the way Centrifugo's Redis engine
//! works.
//!
//! # Keys (`P` is `--redis-prefix`, default `hublink`)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:meta:{topic}` | hash | `epoch` (random, made once per topic) and `seq` (the last one assigned); expires after a day without publications |
//! | `P:stream:{topic}` | stream | the replay window: entry id `seq-0`, fields `d` (data JSON), `t` (ms timestamp), `i` (event id); `MAXLEN ~ --history-size`, aged entries trimmed on publish, the key expires `--history-age` after the last publication |
//! | `P:dedupe:{topic}` | hash | idempotency key → `"seq epoch"` of the publish that used it |
//! | `P:dedupe-at:{topic}` | sorted set | the same keys by publish time (ms): trimmed to `--dedup-window` and `--dedup-max` by the publish script; both keys expire a window after the last keyed publish |
//! | `P:ch:{topic}` | pub/sub channel | every publication, as `{"seq","epoch","ts","ev","data"}` |
//!
//! The braces are Redis Cluster hash tags: a topic's keys share a slot. (This
//! broker talks to one Redis; Cluster and sharded pub/sub are not implemented:
//! before each connect it reads `INFO`, and a Cluster node or a Sentinel is
//! refused, see [`Broker::unusable`].)
//!
//! # Publishing
//!
//! One Lua script ([`scripts::PUBLISH`], run with `EVALSHA`) reads or creates the
//! epoch (a missing meta hash means the history was lost: a new epoch, `seq`
//! from 1, the old stream deleted), increments `seq`, `XADD`s the entry, trims
//! by count and age, and `PUBLISH`es the message with its `seq` and epoch. Redis
//! runs scripts one at a time, so the `seq` order of a topic is the order of its
//! `PUBLISH`es, which is the order every subscriber receives.
//!
//! # Receiving
//!
//! Each node has one pub/sub connection, owned by one task: it `SUBSCRIBE`s a
//! topic's channel when the topic gets its first local subscriber and
//! `UNSUBSCRIBE`s when the last one leaves (patterns: `PSUBSCRIBE`). A received
//! message is parsed once into a [`Published`], whose frames are serialised once
//! per node, and handed to the local subscribers under the topic's lock.
//!
//! # Subscribe with `since`: no gap, no duplicate
//!
//! A subscriber is first registered as *pending*: live messages are buffered for
//! it. Once the channel subscription is confirmed, a second script reads the
//! position and the replay in one step. Every message after that snapshot
//! arrives on the channel (it was subscribed before), every message before it
//! is in the snapshot: under the topic's lock, `on_ready` sends the ack and the
//! replay, then the buffered messages newer than the snapshot are delivered and
//! the subscriber turns live.
//!
//! # Redis outages
//!
//! The node keeps the WebSockets it serves open. It reports `redis_up 0` (and
//! 503 on `/healthz`), fails publishes with `publish_failed` (Redis refused
//! the connection: nothing was published) or `publish_unknown` (no answer: the
//! publish may be in the stream; a retry with the same `id` is safe), and
//! reconnects with a backoff of 100 ms doubling to 2 s. A subscribe waits up to
//! [`SUBSCRIBE_WAIT`] for the link, then fails; the endpoint then closes that
//! connection with 1013, since a subscription this node cannot take would
//! otherwise stay silently dead: the client comes back with backoff and
//! subscribes again (here once Redis is back, or on another node). Back
//! on line, it subscribes its topics again and, per topic, compares the last
//! `seq` it delivered with Redis: messages it missed are filled from the
//! stream; when the stream cannot vouch for them (trimmed, or a new epoch
//! because Redis lost its data) every local subscriber is told through
//! [`Subscriber::missed`](crate::broker::Subscriber::missed): `/ws` clients get `reconnect` and resubscribe with
//! `since`, which answers `recovered: false`. A jump in `seq` on the channel
//! (a message lost between Redis and this node) is handled the same way.
//!
//! # Layout
//!
//! - `keys`: the names of a topic's keys and channel.
//! - `scripts`: the Lua scripts (`publish.lua`, `snapshot.lua`).
//! - `history`: the replay window in Redis, read and written by the scripts.
//! - `topics`: this node's subscribers per topic (pending, live, catching up).
//! - `health`: whether Redis works, and the deployments it refuses.
//! - `link`: the pub/sub connection's task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Client;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::broker::{Broker, BrokerStatus, Dedupe, Keyed, Subscribe, Subscriber};
use crate::history::History;
use crate::published::Published;
use crate::{Error, Result};

mod health;
mod history;
mod keys;
mod link;
pub mod scripts;
mod topics;

pub use history::RedisHistory;

use health::Health;
use history::OP_TIMEOUT;
use keys::Keys;
use link::{Cmd, Node};
use topics::LocalTopics;

/// How long a subscribe waits for the pub/sub link when it is down: long
/// enough for a (re)connect on a healthy network, short enough not to hold up
/// the connection (its heartbeats wait meanwhile) when Redis is really gone.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

/// What the Redis broker needs to know.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://...`. It may hold a password: messages name only the host
    /// and port it points to.
    pub url: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// This node's name, for logs and `/healthz`.
    pub node_id: String,
    /// Messages kept per topic (0: no history).
    pub history_size: usize,
    /// Age after which messages leave the replay window.
    pub history_age: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &crate::redact::redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("history_size", &self.history_size)
            .field("history_age", &self.history_age)
            .finish()
    }
}

/// The Redis broker: see the module docs.
pub struct RedisBroker {
    node: Arc<Node>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node_id", &self.node.node_id)
            .field("history", &self.node.history)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBroker {
    /// A broker on the Redis at `opts.url`. Does not wait for Redis: the node
    /// starts, reports Redis down until it connects, and keeps retrying. Must be
    /// called within a tokio runtime.
    pub fn new(opts: RedisOptions) -> Result<RedisBroker> {
        let bad = |e: ::redis::RedisError| {
            Error::Config(format!(
                "--redis-url {:?} cannot be used: {e}",
                crate::redact::redacted_url(&opts.url)
            ))
        };
        check_scheme(&opts.url)?;
        let client = Client::open(opts.url.as_str()).map_err(bad)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "the Redis broker must be created within a tokio runtime".into(),
            ));
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), cfg).map_err(bad)?;
        let addr = client.get_connection_info().addr().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Arc::new(Node {
            history: RedisHistory::new(
                conn,
                Keys::new(&opts.prefix),
                addr.clone(),
                opts.history_size,
                opts.history_age,
            ),
            health: Health::new(opts.node_id.clone(), addr),
            client,
            local: LocalTopics::default(),
            node_id: opts.node_id,
            event_salt: u64::from(fastrand::u32(..)) << 32,
            cmds: tx,
        });
        let task = tokio::spawn(link::run(node.clone(), rx)).abort_handle();
        Ok(RedisBroker { node, task })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.node_id
    }

    /// Waits until the pub/sub connection is up (for tests and start-up checks).
    pub async fn wait_up(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.node.health.is_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Refuses, by name, the kinds of `--redis-url` this broker does not take.
fn check_scheme(url: &str) -> Result<()> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let refuse = |why: &str| {
        Err(Error::Config(format!(
            "--redis-url {:?}: {why}",
            crate::redact::redacted_url(url)
        )))
    };
    match scheme.as_str() {
        "redis" | "redis+unix" | "unix" | "valkey" | "valkey+unix" => Ok(()),
        "rediss" | "valkeys" if url.ends_with("#insecure") => refuse(
            "#insecure is not supported: the server's certificate is always verified; \
             trust its CA through SSL_CERT_FILE or SSL_CERT_DIR instead",
        ),
        "rediss" | "valkeys" if cfg!(feature = "tls") => {
            // The process-wide rustls provider, unless one is installed
            // already: without it rustls panics when more than one is built in.
            #[cfg(feature = "tls")]
            let _ = rustls::crypto::ring::default_provider().install_default();
            Ok(())
        }
        "rediss" | "valkeys" => refuse(
            "TLS (rediss://) needs hublink-server built with its `tls` feature \
             (on by default), which this build left out",
        ),
        s if s.contains("sentinel") => refuse(
            "Redis Sentinel is not supported; point --redis-url at the current \
             primary (redis://host:port), which SENTINEL GET-MASTER-ADDR-BY-NAME names",
        ),
        s if s.contains("cluster") => refuse(
            "Redis Cluster is not supported; point --redis-url at a standalone Redis \
             (redis://host:port)",
        ),
        _ => refuse(
            "expected redis://[[user]:password@]host[:port][/db], rediss:// (TLS) \
             or redis+unix:///path",
        ),
    }
}

/// Removes a pending registration if its subscribe did not finish.
struct PendingGuard<'a> {
    node: &'a Node,
    topic: &'a str,
    id: u64,
    done: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.done && self.node.local.abandon(self.topic, self.id) {
            self.node.last_left(self.topic);
        }
    }
}

/// A publish is refused at once, truthfully (nothing sent, nothing
/// published), while this Redis cannot be used (a Cluster node, a
/// Sentinel) or the node knows it is unreachable (its link is down): tried,
/// it would fail with a broken pipe that cannot be told apart from a command
/// lost after it ran.
fn refuse_unless_usable(node: &Node) -> Result<()> {
    let why = match node.health.unsupported() {
        Some(why) => why,
        None if node.health.is_up() => return Ok(()),
        None => format!("{}; nothing was published", node.health.unreachable()),
    };
    node.history.errors.fetch_add(1, Ordering::Relaxed);
    Err(Error::PublishFailed(why))
}

impl Broker for RedisBroker {
    fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
    ) -> BoxFuture<'_, Result<Arc<Published>>> {
        let topic = topic.to_string();
        Box::pin(async move {
            let node = &self.node;
            refuse_unless_usable(node)?;
            let event_id = event_id.map(|e| e ^ node.event_salt);
            match node.history.publish(&topic, data, event_id, None).await? {
                Keyed::New(msg) => Ok(msg),
                // The script answers a repeat only for a key: a broken script.
                Keyed::Repeat(p) => Err(Error::PublishFailed(format!(
                    "Redis answered a publish without a key as a repeat of seq {}",
                    p.seq
                ))),
            }
        })
    }

    fn publish_keyed(
        &self,
        topic: &str,
        data: Value,
        key: &str,
        dedupe: Dedupe,
    ) -> BoxFuture<'_, Result<Keyed>> {
        let (topic, key) = (topic.to_string(), key.to_string());
        Box::pin(async move {
            let node = &self.node;
            refuse_unless_usable(node)?;
            node.history
                .publish(&topic, data, None, Some((&key, dedupe)))
                .await
        })
    }

    fn subscribe<'a>(&'a self, r: Subscribe<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let node = &*self.node;
            // A node that just started, or whose link is being re-established,
            // is usually up within milliseconds: wait a little before refusing.
            if !self.wait_up(SUBSCRIBE_WAIT).await {
                return Err(Error::BrokerUnavailable(node.health.unreachable()));
            }
            node.local.register_pending(r.topic, r.id, r.subscriber);
            let mut guard = PendingGuard {
                node,
                topic: r.topic,
                id: r.id,
                done: false,
            };
            let (tx, rx) = oneshot::channel();
            if node
                .cmds
                .send(Cmd::Subscribe(r.topic.to_string(), tx))
                .is_err()
            {
                return Err(Error::BrokerUnavailable("the broker stopped".into()));
            }
            match tokio::time::timeout(OP_TIMEOUT * 2, rx).await {
                Ok(Ok(subscribed)) => subscribed?,
                _ => return Err(Error::BrokerUnavailable(node.health.unreachable())),
            }
            let snap = node
                .history
                .snapshot(r.topic, r.since.as_ref(), true)
                .await?;
            node.local.go_live(r.topic, r.id, snap, r.on_ready);
            guard.done = true;
            Ok(())
        })
    }

    fn unsubscribe(&self, topic: &str, id: u64) -> bool {
        match self.node.local.unsubscribe(topic, id) {
            None => false,
            Some(last) => {
                if last {
                    self.node.last_left(topic);
                }
                true
            }
        }
    }

    fn subscribe_pattern(&self, pattern: &str, id: u64, subscriber: Arc<dyn Subscriber>) {
        let node = &self.node;
        let keys = &node.history.keys;
        let glob = node
            .local
            .registry
            .subscribe_pattern(pattern, id, subscriber, |p| keys.channel_glob(p));
        if let Some(glob) = glob {
            let _ = node.cmds.send(Cmd::PSubscribe(glob));
        }
    }

    fn unsubscribe_pattern(&self, pattern: &str, id: u64) {
        let node = &self.node;
        if let Some(glob) = node.local.registry.unsubscribe_pattern(pattern, id) {
            let _ = node.cmds.send(Cmd::PUnsubscribe(glob));
        }
    }

    fn active_streams(&self) -> usize {
        self.node.local.registry.active()
    }

    fn subscriptions(&self) -> usize {
        self.node.local.registry.subscriptions()
    }

    fn history(&self) -> &dyn History {
        &self.node.history
    }

    fn status(&self) -> BrokerStatus {
        let node = &self.node;
        let up = node.health.is_up();
        BrokerStatus {
            kind: "redis",
            up,
            reason: if up {
                None
            } else {
                Some(node.health.unreachable())
            },
            errors: node.history.errors.load(Ordering::Relaxed),
        }
    }

    fn unusable(&self) -> BoxFuture<'_, String> {
        let mut fatal = self.node.health.fatal.subscribe();
        Box::pin(async move {
            let why = match fatal.wait_for(Option::is_some).await {
                Ok(why) => why.clone(),
                Err(_) => None,
            };
            match why {
                Some(why) => why,
                None => std::future::pending().await,
            }
        })
    }
}
