//! Counters and gauges, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::broker::Broker;

/// The WebSocket endpoints, for per-endpoint metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws`, the canonical hublink.v1 endpoint.
    Ws = 0,
    /// `/api/v1/ws/`, the topics dialect.
    Topics = 1,
    /// `/ws/machines[/{id}]`.
    Machines = 2,
    /// `/api/v1/devices/{uuid}/ws`.
    Devices = 3,
    /// The actions dialect (`/api/v1/actions`, `/dev`, `/actions`).
    Actions = 4,
    /// `/api/v1/ws/v2/power`.
    Power = 5,
    /// `/api/v1/ws/v2/health`.
    Health = 6,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Ws,
        Endpoint::Topics,
        Endpoint::Machines,
        Endpoint::Devices,
        Endpoint::Actions,
        Endpoint::Power,
        Endpoint::Health,
    ];

    /// The endpoint's short name (also used by `--anonymous-endpoints`).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Ws => "ws",
            Endpoint::Topics => "topics",
            Endpoint::Machines => "machines",
            Endpoint::Devices => "devices",
            Endpoint::Actions => "actions",
            Endpoint::Power => "power",
            Endpoint::Health => "health",
        }
    }
}

/// The server's counters. Plain atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections per endpoint.
    pub connections: [AtomicI64; 7],
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Upgrades refused: over the connection limit.
    pub rejected_limit: AtomicU64,
    /// Upgrades refused: token missing or invalid.
    pub rejected_auth: AtomicU64,
    /// Upgrades refused: origin or claims.
    pub rejected_forbidden: AtomicU64,
    /// Text and binary messages received from clients.
    pub messages_in: AtomicU64,
    /// Frames written to clients.
    pub messages_out: AtomicU64,
    /// Frames dropped because a send queue was full.
    pub dropped: AtomicU64,
    /// Connections closed with 4009.
    pub slow_consumer_closes: AtomicU64,
    /// Connections closed with 4029.
    pub rate_limited_closes: AtomicU64,
    /// Connections closed with 4008.
    pub stale_closes: AtomicU64,
    /// Connections closed with 1009.
    pub too_big_closes: AtomicU64,
    /// `error` frames sent.
    pub errors_sent: AtomicU64,
    /// Messages published (all sources).
    pub published: AtomicU64,
    /// Heartbeat echoes received.
    pub heartbeat_echoes: AtomicU64,
    /// Publications the broker refused (Redis unreachable): nothing was published.
    pub publish_failures: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Open connections over all endpoints.
    pub fn open_connections(&self) -> i64 {
        self.connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, broker: &dyn Broker) -> String {
        let mut s = String::new();
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.push_str("# HELP hublink_connections Open WebSocket connections.\n# TYPE hublink_connections gauge\n");
        for e in Endpoint::ALL {
            let _ = writeln!(
                s,
                "hublink_connections{{endpoint=\"{}\"}} {}",
                e.name(),
                self.connections[e as usize].load(Ordering::Relaxed)
            );
        }
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "hublink_connections_total",
            "Connections accepted.",
            g(&self.connections_total),
        );
        counter(
            "hublink_rejected_connections_limit_total",
            "Upgrades refused with 503.",
            g(&self.rejected_limit),
        );
        counter(
            "hublink_rejected_connections_auth_total",
            "Upgrades refused with 401.",
            g(&self.rejected_auth),
        );
        counter(
            "hublink_rejected_connections_forbidden_total",
            "Upgrades refused with 403.",
            g(&self.rejected_forbidden),
        );
        counter(
            "hublink_messages_in_total",
            "Messages received from clients.",
            g(&self.messages_in),
        );
        counter(
            "hublink_messages_out_total",
            "Frames sent to clients.",
            g(&self.messages_out),
        );
        counter(
            "hublink_dropped_total",
            "Frames dropped on full send queues.",
            g(&self.dropped),
        );
        counter(
            "hublink_slow_consumer_closes_total",
            "Connections closed as slow consumers (4009).",
            g(&self.slow_consumer_closes),
        );
        counter(
            "hublink_rate_limited_closes_total",
            "Connections closed for rate (4029).",
            g(&self.rate_limited_closes),
        );
        counter(
            "hublink_stale_closes_total",
            "Connections closed as stale (4008).",
            g(&self.stale_closes),
        );
        counter(
            "hublink_too_big_closes_total",
            "Connections closed for size (1009).",
            g(&self.too_big_closes),
        );
        counter(
            "hublink_errors_sent_total",
            "error frames sent.",
            g(&self.errors_sent),
        );
        counter(
            "hublink_published_total",
            "Messages published.",
            g(&self.published),
        );
        counter(
            "hublink_heartbeat_echoes_total",
            "Heartbeat echoes received.",
            g(&self.heartbeat_echoes),
        );
        counter(
            "hublink_publish_failures_total",
            "Publications the broker refused; nothing was published.",
            g(&self.publish_failures),
        );
        let status = broker.status();
        if status.kind == "redis" {
            counter(
                "hublink_redis_errors_total",
                "Failed Redis operations on this node.",
                status.errors,
            );
        }
        let mut gauge = |name: &str, help: &str, v: usize| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "hublink_subscriptions",
            "Subscriptions over all connections.",
            broker.subscriptions(),
        );
        gauge(
            "hublink_active_streams",
            "Topics with at least one subscriber.",
            broker.active_streams(),
        );
        if let Some(held) = broker.history().held() {
            gauge(
                "hublink_history_messages",
                "Messages held in the replay window.",
                held,
            );
        }
        if status.kind == "redis" {
            gauge(
                "hublink_redis_up",
                "1 when this node's Redis connection works.",
                usize::from(status.up),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use serde_json::Value;

    use super::{Endpoint, Metrics};
    use crate::broker::{Broker, BrokerStatus, OnReady, Subscriber};
    use crate::history::{History, MemoryHistory, Position};
    use crate::published::Published;

    /// Fixed counts, a history holding two messages, and the given status.
    struct Fixed(BrokerStatus, MemoryHistory);

    impl Broker for Fixed {
        fn publish(
            &self,
            _: &str,
            _: Value,
            _: Option<u64>,
        ) -> BoxFuture<'_, crate::Result<Arc<Published>>> {
            unreachable!()
        }
        fn subscribe<'a>(
            &'a self,
            _: &'a str,
            _: u64,
            _: Arc<dyn Subscriber>,
            _: Option<Position>,
            _: OnReady<'a>,
        ) -> BoxFuture<'a, crate::Result<()>> {
            unreachable!()
        }
        fn unsubscribe(&self, _: &str, _: u64) -> bool {
            unreachable!()
        }
        fn subscribe_pattern(&self, _: &str, _: u64, _: Arc<dyn Subscriber>) {}
        fn unsubscribe_pattern(&self, _: &str, _: u64) {}
        fn active_streams(&self) -> usize {
            2
        }
        fn subscriptions(&self) -> usize {
            3
        }
        fn history(&self) -> &dyn History {
            &self.1
        }
        fn status(&self) -> BrokerStatus {
            self.0.clone()
        }
    }

    fn broker(kind: &'static str) -> Fixed {
        let history = MemoryHistory::new(10, std::time::Duration::from_secs(60));
        history.append("t", Value::Null, None);
        history.append("t", Value::Null, None);
        let status = BrokerStatus {
            kind,
            up: true,
            reason: None,
            errors: 7,
        };
        Fixed(status, history)
    }

    /// Every counter a value of its own, so that a mixed-up pair shows.
    fn metrics() -> Metrics {
        let m = Metrics::default();
        for e in Endpoint::ALL {
            for _ in 0..e as usize {
                m.connections[e as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        for (n, c) in [
            &m.connections_total,
            &m.rejected_limit,
            &m.rejected_auth,
            &m.rejected_forbidden,
            &m.messages_in,
            &m.messages_out,
            &m.dropped,
            &m.slow_consumer_closes,
            &m.rate_limited_closes,
            &m.stale_closes,
            &m.too_big_closes,
            &m.errors_sent,
            &m.published,
            &m.heartbeat_echoes,
            &m.publish_failures,
        ]
        .into_iter()
        .enumerate()
        {
            for _ in 0..=n {
                Metrics::inc(c);
            }
        }
        m
    }

    /// The exposition as rendered today: dashboards and alerts know these names, types, labels and help texts.
    const MEMORY: &str = r#"# HELP hublink_connections Open WebSocket connections.
# TYPE hublink_connections gauge
hublink_connections{endpoint="ws"} 0
hublink_connections{endpoint="topics"} 1
hublink_connections{endpoint="machines"} 2
hublink_connections{endpoint="devices"} 3
hublink_connections{endpoint="actions"} 4
hublink_connections{endpoint="power"} 5
hublink_connections{endpoint="health"} 6
# HELP hublink_connections_total Connections accepted.
# TYPE hublink_connections_total counter
hublink_connections_total 1
# HELP hublink_rejected_connections_limit_total Upgrades refused with 503.
# TYPE hublink_rejected_connections_limit_total counter
hublink_rejected_connections_limit_total 2
# HELP hublink_rejected_connections_auth_total Upgrades refused with 401.
# TYPE hublink_rejected_connections_auth_total counter
hublink_rejected_connections_auth_total 3
# HELP hublink_rejected_connections_forbidden_total Upgrades refused with 403.
# TYPE hublink_rejected_connections_forbidden_total counter
hublink_rejected_connections_forbidden_total 4
# HELP hublink_messages_in_total Messages received from clients.
# TYPE hublink_messages_in_total counter
hublink_messages_in_total 5
# HELP hublink_messages_out_total Frames sent to clients.
# TYPE hublink_messages_out_total counter
hublink_messages_out_total 6
# HELP hublink_dropped_total Frames dropped on full send queues.
# TYPE hublink_dropped_total counter
hublink_dropped_total 7
# HELP hublink_slow_consumer_closes_total Connections closed as slow consumers (4009).
# TYPE hublink_slow_consumer_closes_total counter
hublink_slow_consumer_closes_total 8
# HELP hublink_rate_limited_closes_total Connections closed for rate (4029).
# TYPE hublink_rate_limited_closes_total counter
hublink_rate_limited_closes_total 9
# HELP hublink_stale_closes_total Connections closed as stale (4008).
# TYPE hublink_stale_closes_total counter
hublink_stale_closes_total 10
# HELP hublink_too_big_closes_total Connections closed for size (1009).
# TYPE hublink_too_big_closes_total counter
hublink_too_big_closes_total 11
# HELP hublink_errors_sent_total error frames sent.
# TYPE hublink_errors_sent_total counter
hublink_errors_sent_total 12
# HELP hublink_published_total Messages published.
# TYPE hublink_published_total counter
hublink_published_total 13
# HELP hublink_heartbeat_echoes_total Heartbeat echoes received.
# TYPE hublink_heartbeat_echoes_total counter
hublink_heartbeat_echoes_total 14
# HELP hublink_publish_failures_total Publications the broker refused; nothing was published.
# TYPE hublink_publish_failures_total counter
hublink_publish_failures_total 15
# HELP hublink_subscriptions Subscriptions over all connections.
# TYPE hublink_subscriptions gauge
hublink_subscriptions 3
# HELP hublink_active_streams Topics with at least one subscriber.
# TYPE hublink_active_streams gauge
hublink_active_streams 2
# HELP hublink_history_messages Messages held in the replay window.
# TYPE hublink_history_messages gauge
hublink_history_messages 2
"#;

    #[test]
    fn renders_the_names_types_labels_and_help_dashboards_know() {
        assert_eq!(metrics().render(&broker("memory")), MEMORY);
        let redis = MEMORY.replace(
            "# HELP hublink_subscriptions",
            "# HELP hublink_redis_errors_total Failed Redis operations on this node.\n\
             # TYPE hublink_redis_errors_total counter\n\
             hublink_redis_errors_total 7\n\
             # HELP hublink_subscriptions",
        ) + "# HELP hublink_redis_up 1 when this node's Redis connection works.\n\
             # TYPE hublink_redis_up gauge\n\
             hublink_redis_up 1\n";
        assert_eq!(metrics().render(&broker("redis")), redis);
    }
}
