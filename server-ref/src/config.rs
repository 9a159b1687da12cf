//! Command-line flags and `HUBLINK_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Parses a duration as `humantime` does (`250ms`, `30s`, `1.5m`, `1h 30m`),
/// or a bare number of seconds (`1.5`), which `humantime` alone refuses.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let parsed = match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| e.to_string()),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| format!("duration {s:?}: {e}"))
}

/// A [`parse_duration`] that must be more than zero: a period to repeat
/// something at (a zero one would spin, and tokio's interval refuses it).
pub fn parse_period(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("period {:?}: must be more than 0", s.trim())),
        d => Ok(d),
    }
}

/// The broker behind every topic (`--broker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// In-process: topics and history live in this node only.
    Memory,
    /// Redis: topics and history shared by every node on the same Redis and prefix.
    Redis,
}

/// Server configuration. Every flag can also be set with the environment
/// variable named in its help (`HUBLINK_*`). Durations accept `250ms`, `30s`,
/// `5m` or a bare number of seconds.
#[derive(Clone, Parser)]
#[command(
    name = "hublink-server",
    version,
    about = "Reference server for hublink.v1 and the seed backends' WebSocket endpoints"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HUBLINK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// HS256 secret for JWTs. When neither this nor --jwt-secret-file is set, auth is
    /// off (except the actions endpoint, which then refuses every upgrade with 401).
    #[arg(long, env = "HUBLINK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// File holding the HS256 secret (surrounding whitespace is trimmed).
    #[arg(long, env = "HUBLINK_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Endpoints that accept connections without a token even when a secret is set
    /// (comma-separated: ws, topics, machines, devices, power). A token that is
    /// presented is still verified. The actions endpoint always needs a token.
    #[arg(long, env = "HUBLINK_ANONYMOUS_ENDPOINTS", value_delimiter = ',')]
    pub anonymous_endpoints: Vec<String>,

    /// Let connections without a token `publish` on /ws (tokens need a `publish` claim).
    #[arg(long, env = "HUBLINK_ANONYMOUS_PUBLISH")]
    pub anonymous_publish: bool,

    /// Key for the HTTP publish API (`Authorization: Bearer <key>`). Unset: the API answers 503.
    #[arg(long, env = "HUBLINK_PUBLISH_KEY", hide_env_values = true)]
    pub publish_key: Option<String>,

    /// Allowed `Origin` values (comma-separated). Empty allows every origin (development default).
    #[arg(long, env = "HUBLINK_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Server heartbeat period (also the WebSocket ping period).
    #[arg(long, env = "HUBLINK_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Close a connection silent for this long with 4008. Default: 2 x heartbeat + 10 s.
    #[arg(long, env = "HUBLINK_STALE_TIMEOUT", value_parser = parse_duration)]
    pub stale_timeout: Option<Duration>,

    /// WebSocket ping period on /ws/machines (the Go hub's pingPeriod).
    #[arg(long, env = "HUBLINK_MACHINES_PING_INTERVAL", default_value = "54s", value_parser = parse_duration)]
    pub machines_ping_interval: Duration,

    /// `retry_after` (whole seconds) announced in `reconnect` on graceful shutdown.
    #[arg(long, env = "HUBLINK_RETRY_AFTER", default_value_t = 2)]
    pub retry_after: u64,

    /// Longest wait for connections to close on shutdown.
    #[arg(long, env = "HUBLINK_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Largest inbound WebSocket message/frame in bytes; larger ones close with 1009.
    #[arg(long, env = "HUBLINK_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,

    /// Largest `data` of a client `publish`, serialised, in bytes (`message_too_big`).
    #[arg(long, env = "HUBLINK_MAX_PUBLISH_SIZE", default_value_t = 32 * 1024)]
    pub max_publish_size: usize,

    /// Most simultaneous WebSocket connections; the next upgrade gets 503.
    #[arg(long, env = "HUBLINK_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Inbound messages per second per connection (token bucket refill rate).
    #[arg(long, env = "HUBLINK_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,

    /// Token bucket size: messages a connection may send in a burst.
    #[arg(long, env = "HUBLINK_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,

    /// Live frames queued per connection before it is closed as a slow consumer
    /// (4009). A replay after `since` is not counted: it is paced by the socket.
    #[arg(long, env = "HUBLINK_SEND_QUEUE", default_value_t = 256)]
    pub send_queue: usize,

    /// Most subscriptions per connection.
    #[arg(long, env = "HUBLINK_MAX_SUBSCRIPTIONS", default_value_t = 1000)]
    pub max_subscriptions: usize,

    /// Longest topic name in bytes.
    #[arg(long, env = "HUBLINK_MAX_TOPIC_LEN", default_value_t = 256)]
    pub max_topic_len: usize,

    /// Errors a connection may cause before it is closed with 1008.
    #[arg(long, env = "HUBLINK_MAX_ERRORS", default_value_t = 100)]
    pub max_errors: u64,

    /// Messages kept per topic for replay.
    #[arg(long, env = "HUBLINK_HISTORY_SIZE", default_value_t = 1000)]
    pub history_size: usize,

    /// Age after which messages leave the replay window.
    #[arg(long, env = "HUBLINK_HISTORY_AGE", default_value = "300s", value_parser = parse_duration)]
    pub history_age: Duration,

    /// How long a publish's idempotency key (`id`, `Idempotency-Key`) is
    /// remembered per topic: a repeat within it gets the first publish's
    /// `seq` and publishes nothing.
    #[arg(long, env = "HUBLINK_DEDUP_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub dedup_window: Duration,

    /// Most idempotency keys remembered per topic (the oldest go first).
    #[arg(long, env = "HUBLINK_DEDUP_MAX", default_value_t = 10_000)]
    pub dedup_max: usize,

    /// Where topics and history live: `memory` (this process only) or `redis`
    /// (shared by every node started with the same --redis-url and --redis-prefix).
    #[arg(long, env = "HUBLINK_BROKER", value_enum, default_value_t = BrokerKind::Memory)]
    pub broker: BrokerKind,

    /// Redis to use with `--broker redis` (`redis://[:password@]host:port[/db]`).
    #[arg(
        long,
        env = "HUBLINK_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Prefix of every Redis key and channel, so that several clusters can share a Redis.
    #[arg(long, env = "HUBLINK_REDIS_PREFIX", default_value = "hublink")]
    pub redis_prefix: String,

    /// This node's name in logs and `/healthz`. Default: a random one.
    #[arg(long, env = "HUBLINK_NODE_ID")]
    pub node_id: Option<String>,

    /// tungstenite read buffer per connection, bytes. Client frames are small
    /// (subscribe, heartbeat echo), and a larger one is read in several parts, so
    /// the default keeps an idle connection small (BENCHMARKS.md: idle memory).
    #[arg(long, env = "HUBLINK_READ_BUFFER", default_value_t = 512)]
    pub read_buffer_size: usize,

    /// tungstenite write buffer per connection, bytes: frames queued together are
    /// coalesced up to this size before a write (0 writes each message eagerly).
    /// Only a connection that received a burst holds a buffer this large.
    #[arg(long, env = "HUBLINK_WRITE_BUFFER", default_value_t = 8192)]
    pub write_buffer_size: usize,

    /// Tokio worker threads. Default: one per CPU core. `1` runs the whole server
    /// on one thread (what the benchmarks pin to one core).
    #[arg(long, env = "HUBLINK_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Start the simulated feeds (machines, devices, power, orders).
    #[arg(long, env = "HUBLINK_DEMO")]
    pub demo: bool,

    /// Machine ids the demo feed simulates.
    #[arg(
        long,
        env = "HUBLINK_DEMO_MACHINES",
        value_delimiter = ',',
        default_value = "CNC-001,CNC-002,CNC-003"
    )]
    pub demo_machines: Vec<String>,

    /// Period of the demo machines' sensor data (the Go seed uses 5 s).
    #[arg(long, env = "HUBLINK_DEMO_MACHINE_PERIOD", default_value = "5s", value_parser = parse_period)]
    pub demo_machine_period: Duration,

    /// Period of the demo power readings per module.
    #[arg(long, env = "HUBLINK_DEMO_POWER_PERIOD", default_value = "100ms", value_parser = parse_period)]
    pub demo_power_period: Duration,

    /// Power modules the demo feed simulates.
    #[arg(
        long,
        env = "HUBLINK_DEMO_POWER_MODULES",
        value_delimiter = ',',
        default_value = "1,2,3,4"
    )]
    pub demo_power_modules: Vec<String>,

    /// Branch the demo order events belong to (and the printed demo token's branch).
    #[arg(long, env = "HUBLINK_DEMO_BRANCH", default_value = "demo-branch")]
    pub demo_branch: String,

    /// Period of the demo order/machine/operator events.
    #[arg(long, env = "HUBLINK_DEMO_ORDER_PERIOD", default_value = "3s", value_parser = parse_period)]
    pub demo_order_period: Duration,

    /// Divide the device streams' documented periods (30 s / 60 s) by this factor.
    #[arg(long, env = "HUBLINK_DEMO_DEVICE_SPEEDUP", default_value_t = 1.0)]
    pub demo_device_speedup: f64,
}

/// Every field, with the secrets hidden: the JWT secret and the publish key
/// as `***`, the Redis URL's password redacted. A `Config` may end up in a
/// log or a panic message; a credential must not.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_secret_file", &self.jwt_secret_file)
            .field("anonymous_endpoints", &self.anonymous_endpoints)
            .field("anonymous_publish", &self.anonymous_publish)
            .field("publish_key", &self.publish_key.as_ref().map(|_| "***"))
            .field("allowed_origins", &self.allowed_origins)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("stale_timeout", &self.stale_timeout)
            .field("machines_ping_interval", &self.machines_ping_interval)
            .field("retry_after", &self.retry_after)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_message_size", &self.max_message_size)
            .field("max_publish_size", &self.max_publish_size)
            .field("max_connections", &self.max_connections)
            .field("rate_limit", &self.rate_limit)
            .field("rate_burst", &self.rate_burst)
            .field("send_queue", &self.send_queue)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("max_topic_len", &self.max_topic_len)
            .field("max_errors", &self.max_errors)
            .field("history_size", &self.history_size)
            .field("history_age", &self.history_age)
            .field("dedup_window", &self.dedup_window)
            .field("dedup_max", &self.dedup_max)
            .field("broker", &self.broker)
            .field("redis_url", &crate::redact::redacted_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("node_id", &self.node_id)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("worker_threads", &self.worker_threads)
            .field("demo", &self.demo)
            .field("demo_machines", &self.demo_machines)
            .field("demo_machine_period", &self.demo_machine_period)
            .field("demo_power_period", &self.demo_power_period)
            .field("demo_power_modules", &self.demo_power_modules)
            .field("demo_branch", &self.demo_branch)
            .field("demo_order_period", &self.demo_order_period)
            .field("demo_device_speedup", &self.demo_device_speedup)
            .finish()
    }
}

impl Config {
    /// The configuration with every default, as if no flag were given.
    pub fn defaults() -> Config {
        Config::parse_from(["hublink-server"])
    }

    /// The effective stale timeout: the flag, or `2 x heartbeat + 10 s`.
    pub fn stale_timeout(&self) -> Duration {
        self.stale_timeout
            .unwrap_or(self.heartbeat_interval * 2 + Duration::from_secs(10))
    }

    /// The JWT secret from the flag or the file, if any.
    pub fn load_jwt_secret(&self) -> crate::Result<Option<Vec<u8>>> {
        if let Some(s) = &self.jwt_secret {
            if s.is_empty() {
                return Err(crate::Error::Config("--jwt-secret is empty".into()));
            }
            return Ok(Some(s.as_bytes().to_vec()));
        }
        if let Some(path) = &self.jwt_secret_file {
            let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
                context: format!("reading --jwt-secret-file {}", path.display()),
                source,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(crate::Error::Config(format!(
                    "--jwt-secret-file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(text.as_bytes().to_vec()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_period, Config};
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn durations_take_units_fractions_and_bare_seconds() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1.5m", 90_000),
            ("1.5", 1_500),
            ("300", 300_000),
            (" 2s ", 2_000),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for text in ["", "s", "-1s", "-1", "NaN", "inf", "2 parsecs"] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.starts_with(&format!("duration {:?}", text.trim())), "{e}");
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let mut c = Config::defaults();
        c.jwt_secret = Some("jwt-secret-0123456789".into());
        c.publish_key = Some("publish-key-0123".into());
        c.redis_url = "redis://user:redis-password@127.0.0.1:6379".into();
        let text = format!("{c:?}");
        for secret in [
            "jwt-secret-0123456789",
            "publish-key-0123",
            "redis-password",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("redis://user:***@127.0.0.1:6379"), "{text}");
        assert!(text.contains("jwt_secret: Some(\"***\")"), "{text}");
    }

    #[test]
    fn a_zero_demo_period_is_refused_by_name_instead_of_stopping_the_feed() {
        assert_eq!(parse_period("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(
            parse_period(" 0s"),
            Err("period \"0s\": must be more than 0".to_owned())
        );
        for flag in [
            "--demo-machine-period",
            "--demo-power-period",
            "--demo-order-period",
        ] {
            let e = Config::try_parse_from(["hublink-server", "--demo", flag, "0"]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(flag) && text.contains("must be more than 0"),
                "{text}"
            );
        }
    }
}
