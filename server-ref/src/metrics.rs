//! Counters and gauges, rendered in the Prometheus text format (0.0.4) by the
//! `prometheus-client` crate.
//!
//! The counters live in the fields of [`Metrics`]; [`Metrics::render`]
//! registers them, with the broker's figures of the moment, in a registry of
//! its own per scrape, in the order and under the names dashboards know.
//! `prometheus-client` appends `_total` to a counter's name and a `.` to its
//! help, so both are registered without them.

use prometheus_client::encoding::{prometheus_text, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::broker::Broker;

/// The WebSocket endpoints, for per-endpoint metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws`, the canonical hublink.v1 endpoint.
    Hublink = 0,
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
        Endpoint::Hublink,
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
            Endpoint::Hublink => "ws",
            Endpoint::Topics => "topics",
            Endpoint::Machines => "machines",
            Endpoint::Devices => "devices",
            Endpoint::Actions => "actions",
            Endpoint::Power => "power",
            Endpoint::Health => "health",
        }
    }
}

/// The server's counters: `prometheus-client`'s, atomics inside.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections per endpoint.
    pub connections: [Gauge; 7],
    /// Connections accepted since start.
    pub connections_total: Counter,
    /// Upgrades refused: over the connection limit.
    pub rejected_limit: Counter,
    /// Upgrades refused: token missing or invalid.
    pub rejected_auth: Counter,
    /// Upgrades refused: origin or claims.
    pub rejected_forbidden: Counter,
    /// Text and binary messages received from clients.
    pub messages_in: Counter,
    /// Frames written to clients.
    pub messages_out: Counter,
    /// Frames dropped because a send queue was full.
    pub dropped: Counter,
    /// Connections closed with 4009.
    pub slow_consumer_closes: Counter,
    /// Connections closed with 4029.
    pub rate_limited_closes: Counter,
    /// Connections closed with 4008.
    pub stale_closes: Counter,
    /// Connections closed with 1009.
    pub too_big_closes: Counter,
    /// `error` frames sent.
    pub errors_sent: Counter,
    /// Messages published (all sources).
    pub published: Counter,
    /// Heartbeat echoes received.
    pub heartbeat_echoes: Counter,
    /// Publications the broker refused (Redis refused the connection): nothing was published.
    pub publish_failures: Counter,
    /// Publications the broker did not answer (a Redis timeout): they may or
    /// may not have been published.
    pub publish_unknown: Counter,
    /// Publications whose idempotency key the topic had seen: nothing new was published.
    pub publish_repeats: Counter,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &Counter) {
        counter.inc();
    }

    /// Open connections over all endpoints.
    pub fn open_connections(&self) -> i64 {
        self.connections.iter().map(Gauge::get).sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, broker: &dyn Broker) -> String {
        let mut r = Registry::default();
        r.register(
            "hublink_connections",
            "Open WebSocket connections",
            PerEndpoint(self.connections.clone()),
        );
        for (name, help, counter) in [
            (
                "hublink_connections",
                "Connections accepted",
                &self.connections_total,
            ),
            (
                "hublink_rejected_connections_limit",
                "Upgrades refused with 503",
                &self.rejected_limit,
            ),
            (
                "hublink_rejected_connections_auth",
                "Upgrades refused with 401",
                &self.rejected_auth,
            ),
            (
                "hublink_rejected_connections_forbidden",
                "Upgrades refused with 403",
                &self.rejected_forbidden,
            ),
            (
                "hublink_messages_in",
                "Messages received from clients",
                &self.messages_in,
            ),
            (
                "hublink_messages_out",
                "Frames sent to clients",
                &self.messages_out,
            ),
            (
                "hublink_dropped",
                "Frames dropped on full send queues",
                &self.dropped,
            ),
            (
                "hublink_slow_consumer_closes",
                "Connections closed as slow consumers (4009)",
                &self.slow_consumer_closes,
            ),
            (
                "hublink_rate_limited_closes",
                "Connections closed for rate (4029)",
                &self.rate_limited_closes,
            ),
            (
                "hublink_stale_closes",
                "Connections closed as stale (4008)",
                &self.stale_closes,
            ),
            (
                "hublink_too_big_closes",
                "Connections closed for size (1009)",
                &self.too_big_closes,
            ),
            (
                "hublink_errors_sent",
                "error frames sent",
                &self.errors_sent,
            ),
            ("hublink_published", "Messages published", &self.published),
            (
                "hublink_heartbeat_echoes",
                "Heartbeat echoes received",
                &self.heartbeat_echoes,
            ),
            (
                "hublink_publish_failures",
                "Publications the broker refused; nothing was published",
                &self.publish_failures,
            ),
            (
                "hublink_publish_unknown",
                "Publications the broker did not answer; they may or may not have been published",
                &self.publish_unknown,
            ),
            (
                "hublink_publish_repeats",
                "Publications with an idempotency key seen before; nothing new was published",
                &self.publish_repeats,
            ),
        ] {
            r.register(name, help, counter.clone());
        }
        let status = broker.status();
        let redis = status.kind == "redis";
        if redis {
            let errors = ConstCounter::new(status.errors);
            r.register(
                "hublink_redis_errors",
                "Failed Redis operations on this node",
                errors,
            );
        }
        let subscriptions = ConstGauge::new(broker.subscriptions());
        r.register(
            "hublink_subscriptions",
            "Subscriptions over all connections",
            subscriptions,
        );
        let streams = ConstGauge::new(broker.active_streams());
        r.register(
            "hublink_active_streams",
            "Topics with at least one subscriber",
            streams,
        );
        if let Some(held) = broker.history().held() {
            let held = ConstGauge::new(held);
            r.register(
                "hublink_history_messages",
                "Messages held in the replay window",
                held,
            );
        }
        if redis {
            let up = ConstGauge::new(usize::from(status.up));
            r.register(
                "hublink_redis_up",
                "1 when this node's Redis connection works",
                up,
            );
        }
        let mut s = String::new();
        prometheus_text::encode(&mut s, &r).expect("writing to a String cannot fail");
        s
    }
}

/// The open connections as one gauge family with an `endpoint` label, in
/// [`Endpoint::ALL`]'s order (a `Family` would follow its hash map's).
#[derive(Debug)]
struct PerEndpoint([Gauge; 7]);

impl EncodeMetric for PerEndpoint {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for e in Endpoint::ALL {
            let labels = [("endpoint", e.name())];
            self.0[e as usize].encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use serde_json::Value;

    use super::{Endpoint, Metrics};
    use crate::broker::{Broker, BrokerStatus, Subscribe, Subscriber};
    use crate::history::{History, MemoryHistory};
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
        fn publish_keyed(
            &self,
            _: &str,
            _: Value,
            _: &str,
            _: crate::broker::Dedupe,
        ) -> BoxFuture<'_, crate::Result<crate::broker::Keyed>> {
            unreachable!()
        }
        fn subscribe<'a>(&'a self, _: Subscribe<'a>) -> BoxFuture<'a, crate::Result<()>> {
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
                m.connections[e as usize].inc();
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
            &m.publish_unknown,
            &m.publish_repeats,
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

    /// The exposition as it was rendered by hand before `prometheus-client`:
    /// dashboards and alerts know these names, types, labels and help texts.
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
# HELP hublink_publish_unknown_total Publications the broker did not answer; they may or may not have been published.
# TYPE hublink_publish_unknown_total counter
hublink_publish_unknown_total 16
# HELP hublink_publish_repeats_total Publications with an idempotency key seen before; nothing new was published.
# TYPE hublink_publish_repeats_total counter
hublink_publish_repeats_total 17
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
