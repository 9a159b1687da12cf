//! Whether this node's Redis works, why not, and what it refuses to use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state of the link to Redis, as `/healthz`, publishes and subscribes see it.
pub(super) struct Health {
    node_id: String,
    /// Where Redis is (never the URL, which may hold a password).
    addr: String,
    up: AtomicBool,
    reason: Mutex<Option<String>>,
    /// The pub/sub link has been up once: from then on an unusable Redis
    /// marks the broker down instead of stopping the server.
    ever_up: AtomicBool,
    /// Why the Redis at the address cannot be used (a Cluster node, a
    /// Sentinel), while it is so: publishes fail at once with this.
    unsupported: Mutex<Option<String>>,
    /// Set at the first contact with an unusable Redis: the server stops.
    pub(super) fatal: watch::Sender<Option<String>>,
}

impl Health {
    /// Down, connecting.
    pub(super) fn new(node_id: String, addr: String) -> Health {
        Health {
            node_id,
            addr,
            up: AtomicBool::new(false),
            reason: Mutex::new(Some("connecting to Redis".into())),
            ever_up: AtomicBool::new(false),
            unsupported: Mutex::new(None),
            fatal: watch::channel(None).0,
        }
    }

    /// Whether the pub/sub link is up.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Why this Redis cannot be used, while it cannot.
    pub(super) fn unsupported(&self) -> Option<String> {
        lock(&self.unsupported).clone()
    }

    /// A usable Redis answered: forgets an earlier refusal; true if there was one.
    pub(super) fn usable_again(&self) -> bool {
        lock(&self.unsupported).take().is_some()
    }

    /// Why Redis cannot be used now, for errors and `/healthz`.
    pub(super) fn unreachable(&self) -> String {
        if let Some(why) = self.unsupported() {
            return why;
        }
        let reason = lock(&self.reason).clone().unwrap_or_default();
        format!("Redis at {} is unreachable ({reason})", self.addr)
    }

    pub(super) fn set_up(&self) {
        self.ever_up.store(true, Ordering::Release);
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(node = %self.node_id, "redis: connected to {}", self.addr);
        }
        *lock(&self.reason) = None;
    }

    pub(super) fn set_down(&self, reason: String) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(node = %self.node_id, "redis: connection lost: {reason}");
        } else {
            tracing::debug!(node = %self.node_id, "redis: still unreachable: {reason}");
        }
        *lock(&self.reason) = Some(reason);
    }

    /// The Redis at the address cannot be used: at the first contact the
    /// server stops (see [`crate::broker::Broker::unusable`]); later the
    /// broker is down with `why` until a usable Redis answers there.
    pub(super) fn refuse(&self, why: String) {
        let changed = lock(&self.unsupported).replace(why.clone()).as_ref() != Some(&why);
        if !self.ever_up.load(Ordering::Acquire) {
            tracing::error!(node = %self.node_id, "redis: {why}");
            self.fatal.send_replace(Some(why.clone()));
        } else if changed {
            tracing::error!(node = %self.node_id, "redis: {why}; the broker is down until it is replaced");
        }
        self.set_down(why);
    }
}

/// Why the server whose `INFO` is `info` cannot serve as this broker's
/// Redis, if it cannot: a Redis Cluster node (publishes to topics on other
/// shards would fail with `MOVED`), a Sentinel (no scripts, no keys) or a
/// read-only replica (every publish would fail with `READONLY`, while
/// `/healthz` said ok).
pub(super) fn unsupported_deployment(addr: &str, info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix(name)?.strip_prefix(':'))
    };
    if field("redis_mode") == Some("cluster") || field("cluster_enabled") == Some("1") {
        return Some(format!(
            "Redis at {addr} is a Redis Cluster node: Redis Cluster is not supported; \
             point --redis-url at a standalone Redis (a primary, with replicas if wanted)"
        ));
    }
    // `slave_read_only` is what Redis 7 calls it; a writable replica (a
    // rare setup, but one that works) is let through.
    let writable = [field("replica_read_only"), field("slave_read_only")].contains(&Some("0"));
    if field("role") == Some("slave") && !writable {
        let primary = match (field("master_host"), field("master_port")) {
            (Some(host), Some(port)) => format!(" of {host}:{port}"),
            _ => String::new(),
        };
        return Some(format!(
            "Redis at {addr} is a read-only replica{primary}: publishes would fail; \
             point --redis-url at the primary"
        ));
    }
    if field("redis_mode") == Some("sentinel") {
        return Some(format!(
            "Redis at {addr} is a Redis Sentinel: Sentinel is not supported; point \
             --redis-url at the primary it monitors (SENTINEL GET-MASTER-ADDR-BY-NAME <name>)"
        ));
    }
    None
}
