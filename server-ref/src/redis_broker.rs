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
//! | `P:ch:{topic}` | pub/sub channel | every publication, as `{"seq","epoch","ts","ev","data"}` |
//!
//! The braces are Redis Cluster hash tags: a topic's keys share a slot. (This
//! broker talks to one Redis; Cluster and sharded pub/sub are not implemented:
//! before each connect it reads `INFO`, and a Cluster node or a Sentinel is
//! refused, see [`Broker::unusable`].)
//!
//! # Publishing
//!
//! One Lua script ([`PUBLISH_SCRIPT`], run with `EVALSHA`) reads or creates the
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
//! 503 on `/healthz`), fails publishes at once with `publish_failed`, and
//! reconnects with a backoff of 100 ms doubling to 2 s. A subscribe waits up to
//! [`SUBSCRIBE_WAIT`] for the link, then fails; the endpoint then closes that
//! connection with 1013, since a subscription this node cannot take would
//! otherwise stay silently dead: the client comes back with backoff and
//! subscribes again (here once Redis is back, or on another node). Back
//! on line, it subscribes its topics again and, per topic, compares the last
//! `seq` it delivered with Redis: messages it missed are filled from the
//! stream; when the stream cannot vouch for them (trimmed, or a new epoch
//! because Redis lost its data) every local subscriber is told through
//! [`Subscriber::missed`]: `/ws` clients get `reconnect` and resubscribe with
//! `since`, which answers `recovered: false`. A jump in `seq` on the channel
//! (a message lost between Redis and this node) is handled the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use ::redis::{Client, Msg, Script, Value as RValue};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::pattern_matches;
use crate::broker::{Broker, BrokerStatus, OnReady, Published, Subscribed, Subscriber};
use crate::history::{new_epoch, History, Position, Replay};
use crate::{now_ms, Error, Result};

/// Longest wait for one Redis operation before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a subscribe waits for the pub/sub link when it is down: long
/// enough for a (re)connect on a healthy network, short enough not to hold up
/// the connection (its heartbeats wait meanwhile) when Redis is really gone.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);
/// A topic's epoch and `seq` are forgotten after this long without a publication.
const META_TTL_MS: u64 = 24 * 3600 * 1000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Publishes one message. KEYS: meta, stream. ARGV: channel, a fresh epoch (used
/// when the topic has none), data JSON, timestamp ms, event id or "", history
/// size, history age ms, meta TTL ms. Returns `{seq, epoch}`.
pub const PUBLISH_SCRIPT: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local size = tonumber(ARGV[6])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, seq .. '-0', 'd', ARGV[3], 't', ARGV[4], 'i', ARGV[5])
  local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[7])
  local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if old[1] and tonumber(old[1][2][4]) < cutoff then
    local trim = nil
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)) do
      if tonumber(e[2][4]) < cutoff then trim = e[1] else break end
    end
    if trim then
      redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(trim, '^(%d+)')) + 1) .. '-0')
    end
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
local ev = ARGV[5]
if ev == '' then ev = 'null' end
redis.call('PUBLISH', ARGV[1], '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '","ts":' .. ARGV[4] .. ',"ev":' .. ev .. ',"data":' .. ARGV[3] .. '}')
return {seq, epoch}
"#;

/// Reads a topic's position, and optionally its replay and latest entry, in one
/// step. KEYS: meta, stream. ARGV: a fresh epoch, `since` seq or "", "1" for
/// the latest entry, history size, meta TTL ms. Returns `{epoch, seq, replay
/// entries or false, latest entry or false}`.
pub const SNAPSHOT_SCRIPT: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('DEL', KEYS[2])
else
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
end
local replay = false
if ARGV[2] ~= '' then
  local since = tonumber(ARGV[2])
  if since < seq and seq - since <= tonumber(ARGV[4]) then
    replay = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', seq - since)
  end
end
local latest = false
if ARGV[3] == '1' then
  latest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
end
return {epoch, seq, replay, latest}
"#;

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
            .field("url", &crate::config::redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("history_size", &self.history_size)
            .field("history_age", &self.history_age)
            .finish()
    }
}

struct Keys {
    prefix: String,
    /// `P:ch:{`, to find the topic in a channel name.
    channel_head: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            channel_head: format!("{prefix}:ch:{{"),
        }
    }
    fn meta(&self, topic: &str) -> String {
        format!("{}:meta:{{{topic}}}", self.prefix)
    }
    fn stream(&self, topic: &str) -> String {
        format!("{}:stream:{{{topic}}}", self.prefix)
    }
    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}}}", self.channel_head)
    }
    fn topic_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.channel_head)?.strip_suffix('}')
    }
    /// The Redis glob for a hublink pattern: `*` and `**` both become `*`
    /// (broader than one segment; messages are filtered again locally). Glob
    /// characters in the prefix are escaped; topics cannot contain any.
    fn channel_glob(&self, pattern: &str) -> String {
        let mut g = String::new();
        for c in self.channel_head.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                g.push('\\');
            }
            g.push(c);
        }
        g.push_str(&pattern.replace("**", "*"));
        g.push('}');
        g
    }
}

/// The replay window in Redis: the scripts that append (and announce) and read.
pub struct RedisHistory {
    conn: ConnectionManager,
    keys: Keys,
    /// Where Redis is (`host:port` or a socket path), for messages: never the
    /// URL, which may hold a password.
    addr: String,
    size: usize,
    age_ms: u64,
    publish_script: Script,
    snapshot_script: Script,
    errors: AtomicU64,
}

impl std::fmt::Debug for RedisHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHistory")
            .field("prefix", &self.keys.prefix)
            .field("size", &self.size)
            .field("age_ms", &self.age_ms)
            .finish_non_exhaustive()
    }
}

/// A topic's position with what was asked for alongside.
struct Snapshot {
    position: Position,
    replay: Option<Replay>,
    latest: Option<Arc<Published>>,
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = ::redis::RedisResult<T>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {OP_TIMEOUT:?}")),
    }
}

impl RedisHistory {
    fn failed(&self, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("redis: {e}");
    }

    /// Appends and announces, atomically (one script). `event_id` is already
    /// made unique across nodes.
    async fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
    ) -> Result<Arc<Published>> {
        let ts = now_ms();
        let mut inv = self.publish_script.key(self.keys.meta(topic));
        inv.key(self.keys.stream(topic))
            .arg(self.keys.channel(topic))
            .arg(&*new_epoch())
            .arg(data.to_string())
            .arg(ts)
            .arg(event_id.map(|e| e.to_string()).unwrap_or_default())
            .arg(self.size)
            .arg(self.age_ms.max(1))
            .arg(META_TTL_MS);
        let mut conn = self.conn.clone();
        match bounded(
            "publish script",
            inv.invoke_async::<(u64, String)>(&mut conn),
        )
        .await
        {
            Ok((seq, epoch)) => Ok(Arc::new(Published::new(
                topic.into(),
                seq,
                epoch.into(),
                data,
                ts,
                event_id,
            ))),
            Err(e) => {
                self.failed(&e);
                Err(Error::PublishFailed(format!(
                    "Redis at {} did not take the message for {topic:?} (it may retry): {e}",
                    self.addr
                )))
            }
        }
    }

    /// The position of `topic`, with the replay after `since` and the latest
    /// message when asked, read in one step.
    async fn snapshot(
        &self,
        topic: &str,
        since: Option<&Position>,
        latest: bool,
    ) -> Result<Snapshot> {
        let mut inv = self.snapshot_script.key(self.keys.meta(topic));
        inv.key(self.keys.stream(topic))
            .arg(&*new_epoch())
            .arg(since.map(|s| s.seq.to_string()).unwrap_or_default())
            .arg(if latest { "1" } else { "0" })
            .arg(self.size)
            .arg(META_TTL_MS);
        let mut conn = self.conn.clone();
        let v = match bounded("snapshot script", inv.invoke_async::<RValue>(&mut conn)).await {
            Ok(v) => v,
            Err(e) => {
                self.failed(&e);
                return Err(Error::BrokerUnavailable(format!(
                    "Redis at {} could not read the history of {topic:?}: {e}",
                    self.addr
                )));
            }
        };
        self.parse_snapshot(topic, since, v).ok_or_else(|| {
            Error::BrokerUnavailable(format!(
                "unexpected answer from Redis reading the history of {topic:?}"
            ))
        })
    }

    fn parse_snapshot(&self, topic: &str, since: Option<&Position>, v: RValue) -> Option<Snapshot> {
        let RValue::Array(mut parts) = v else {
            return None;
        };
        if parts.len() < 2 {
            return None;
        }
        let latest_v = if parts.len() > 3 { parts.pop() } else { None };
        let replay_v = if parts.len() > 2 { parts.pop() } else { None };
        let seq = match parts.pop()? {
            RValue::Int(i) => u64::try_from(i).ok()?,
            _ => return None,
        };
        let epoch: Arc<str> = match parts.pop()? {
            RValue::BulkString(b) => String::from_utf8(b).ok()?.into(),
            RValue::SimpleString(s) => s.into(),
            _ => return None,
        };
        let topic_arc: Arc<str> = topic.into();
        let cutoff = now_ms().saturating_sub(self.age_ms);
        let entries = |v: Option<RValue>| -> Vec<Arc<Published>> {
            match v {
                Some(RValue::Array(items)) => items
                    .into_iter()
                    .filter_map(|e| entry(&topic_arc, &epoch, e))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let replay = since.map(|s| {
            if *s.epoch != *epoch || s.seq > seq {
                return Replay::Lost;
            }
            if s.seq == seq {
                return Replay::Recovered(Vec::new());
            }
            let msgs = entries(replay_v);
            let whole = msgs.len() as u64 == seq - s.seq
                && msgs
                    .iter()
                    .enumerate()
                    .all(|(i, m)| m.seq == s.seq + 1 + i as u64 && m.timestamp >= cutoff);
            if whole {
                Replay::Recovered(msgs)
            } else {
                Replay::Lost
            }
        });
        let latest = entries(latest_v)
            .pop()
            .filter(|m| m.timestamp >= cutoff && m.seq == seq);
        Some(Snapshot {
            position: Position { epoch, seq },
            replay,
            latest,
        })
    }
}

/// One stream entry (`[id, [field, value, ...]]`) as a message.
fn entry(topic: &Arc<str>, epoch: &Arc<str>, v: RValue) -> Option<Arc<Published>> {
    let RValue::Array(mut e) = v else {
        return None;
    };
    let fields = match e.pop()? {
        RValue::Array(f) => f,
        _ => return None,
    };
    let id = match e.pop()? {
        RValue::BulkString(b) => String::from_utf8(b).ok()?,
        RValue::SimpleString(s) => s,
        _ => return None,
    };
    let seq: u64 = id.split('-').next()?.parse().ok()?;
    let (mut data, mut ts, mut ev) = (None, 0u64, None);
    let mut it = fields.into_iter();
    while let (Some(RValue::BulkString(k)), Some(RValue::BulkString(v))) = (it.next(), it.next()) {
        match k.as_slice() {
            b"d" => data = serde_json::from_slice::<Value>(&v).ok(),
            b"t" => ts = std::str::from_utf8(&v).ok()?.parse().ok()?,
            b"i" => ev = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()),
            _ => {}
        }
    }
    Some(Arc::new(Published::new(
        topic.clone(),
        seq,
        epoch.clone(),
        data?,
        ts,
        ev,
    )))
}

impl History for RedisHistory {
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position>> {
        Box::pin(async move { Ok(self.snapshot(topic, None, false).await?.position) })
    }

    fn since<'a>(&'a self, topic: &'a str, since: &'a Position) -> BoxFuture<'a, Result<Replay>> {
        Box::pin(async move {
            let s = self.snapshot(topic, Some(since), false).await?;
            Ok(s.replay.unwrap_or(Replay::Lost))
        })
    }

    fn latest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Arc<Published>>>> {
        Box::pin(async move { Ok(self.snapshot(topic, None, true).await?.latest) })
    }

    fn held(&self) -> Option<usize> {
        None
    }

    fn prune(&self) {}
}

/// The message on the channel.
#[derive(serde::Deserialize)]
struct Wire {
    seq: u64,
    epoch: String,
    ts: u64,
    ev: Option<u64>,
    data: Value,
}

enum Member {
    /// Receiving. With a position: the subscription's replay went up to it,
    /// so messages up to it that were still on their way on the channel when
    /// it went live are not delivered twice.
    Live(Arc<dyn Subscriber>, Option<Position>),
    /// Subscribing: live messages wait in `buf` until the snapshot is read.
    Pending {
        sub: Arc<dyn Subscriber>,
        buf: Vec<Arc<Published>>,
        /// It was live before (a re-subscribe): on failure it goes back to live.
        was_live: bool,
    },
}

#[derive(Default)]
struct Topic {
    members: Vec<(u64, Member)>,
    /// The last message delivered on this node (or the position its first
    /// subscriber started from).
    last: Option<Position>,
    /// Catching up after a gap: live messages wait here.
    resync: Option<Vec<Arc<Published>>>,
    /// The channel subscription is confirmed on the current pub/sub connection.
    subscribed: bool,
}

impl Topic {
    fn live(&self) -> impl Iterator<Item = &Arc<dyn Subscriber>> {
        self.members.iter().filter_map(|(_, m)| match m {
            Member::Live(s, _) => Some(s),
            Member::Pending { .. } => None,
        })
    }

    /// The live members that have not had `msg` yet.
    fn live_for<'a>(&'a self, msg: &'a Published) -> impl Iterator<Item = &'a Arc<dyn Subscriber>> {
        self.members.iter().filter_map(move |(_, m)| match m {
            Member::Live(s, had) if !had_it(had.as_ref(), msg) => Some(s),
            _ => None,
        })
    }
}

/// Whether a member whose replay reached `had` already has `msg`.
fn had_it(had: Option<&Position>, msg: &Published) -> bool {
    had.is_some_and(|p| *p.epoch == *msg.epoch && msg.seq <= p.seq)
}

enum Cmd {
    Subscribe(String, oneshot::Sender<Result<()>>),
    Unsubscribe(String),
    PSubscribe(String),
    PUnsubscribe(String),
}

type PatternSubs = Vec<(String, u64, Arc<dyn Subscriber>)>;

struct Inner {
    client: Client,
    history: RedisHistory,
    node_id: String,
    /// XORed into event ids so that two nodes' ids never collide.
    event_salt: u64,
    // Lock order: `topics`, then one topic.
    topics: Mutex<HashMap<String, Arc<Mutex<Topic>>>>,
    patterns: RwLock<PatternSubs>,
    cmds: mpsc::UnboundedSender<Cmd>,
    up: AtomicBool,
    reason: Mutex<Option<String>>,
    /// The pub/sub link has been up once: from then on an unusable Redis
    /// marks the broker down instead of stopping the server.
    ever_up: AtomicBool,
    /// Why the Redis at the address cannot be used (a Cluster node, a
    /// Sentinel), while it is so: publishes fail at once with this.
    unsupported: Mutex<Option<String>>,
    /// Set at the first contact with an unusable Redis: the server stops.
    fatal: watch::Sender<Option<String>>,
    active: AtomicUsize,
    subscriptions: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Redis broker: see the module docs.
pub struct RedisBroker {
    inner: Arc<Inner>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node_id", &self.inner.node_id)
            .field("history", &self.inner.history)
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
                crate::config::redacted_url(&opts.url)
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
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            history: RedisHistory {
                conn,
                keys: Keys::new(&opts.prefix),
                addr: client.get_connection_info().addr().to_string(),
                size: opts.history_size,
                age_ms: opts.history_age.as_millis() as u64,
                publish_script: Script::new(PUBLISH_SCRIPT),
                snapshot_script: Script::new(SNAPSHOT_SCRIPT),
                errors: AtomicU64::new(0),
            },
            client,
            node_id: opts.node_id,
            event_salt: u64::from(fastrand::u32(..)) << 32,
            topics: Mutex::new(HashMap::new()),
            patterns: RwLock::new(Vec::new()),
            cmds: tx,
            up: AtomicBool::new(false),
            reason: Mutex::new(Some("connecting to Redis".into())),
            ever_up: AtomicBool::new(false),
            unsupported: Mutex::new(None),
            fatal: watch::channel(None).0,
            active: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
        });
        let task = tokio::spawn(run_pubsub(inner.clone(), rx)).abort_handle();
        Ok(RedisBroker { inner, task })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Waits until the pub/sub connection is up (for tests and start-up checks).
    pub async fn wait_up(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.inner.up.load(Ordering::Acquire) {
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
            crate::config::redacted_url(url)
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
    inner: &'a Inner,
    topic: &'a str,
    id: u64,
    done: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.abandon(self.topic, self.id);
        }
    }
}

impl Inner {
    fn unreachable(&self) -> String {
        if let Some(why) = lock(&self.unsupported).clone() {
            return why;
        }
        let reason = lock(&self.reason).clone().unwrap_or_default();
        format!("Redis at {} is unreachable ({reason})", self.history.addr)
    }

    fn set_up(&self) {
        self.ever_up.store(true, Ordering::Release);
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(node = %self.node_id, "redis: connected to {}", self.history.addr);
        }
        *lock(&self.reason) = None;
    }

    fn set_down(&self, reason: String) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(node = %self.node_id, "redis: connection lost: {reason}");
        } else {
            tracing::debug!(node = %self.node_id, "redis: still unreachable: {reason}");
        }
        *lock(&self.reason) = Some(reason);
    }

    /// Asks the server at the address what it is (`INFO`): `Ok(Some(why))`
    /// when it is a Redis this broker cannot use. A server that does not let
    /// this client run `INFO` (ACLs) is taken for a plain Redis.
    async fn check_deployment(&self) -> std::result::Result<Option<String>, String> {
        let mut conn = bounded("connect", self.client.get_multiplexed_async_connection()).await?;
        let info = tokio::time::timeout(
            OP_TIMEOUT,
            ::redis::cmd("INFO").query_async::<String>(&mut conn),
        )
        .await;
        match info {
            Ok(Ok(info)) => Ok(unsupported_deployment(&self.history.addr, &info)),
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                Err(format!("INFO: {e}"))
            }
            Ok(Err(e)) => {
                tracing::debug!(
                    node = %self.node_id,
                    "redis: INFO refused ({e}): assuming a standalone Redis"
                );
                Ok(None)
            }
            Err(_) => Err(format!("INFO: no answer within {OP_TIMEOUT:?}")),
        }
    }

    /// The Redis at the address cannot be used: at the first contact the
    /// server stops (see [`Broker::unusable`]); later the broker is down with
    /// `why` until a usable Redis answers there.
    fn refuse(&self, why: String) {
        let changed = lock(&self.unsupported).replace(why.clone()).as_ref() != Some(&why);
        if !self.ever_up.load(Ordering::Acquire) {
            tracing::error!(node = %self.node_id, "redis: {why}");
            self.fatal.send_replace(Some(why.clone()));
        } else if changed {
            tracing::error!(node = %self.node_id, "redis: {why}; the broker is down until it is replaced");
        }
        self.set_down(why);
    }

    fn topic(&self, topic: &str) -> Option<Arc<Mutex<Topic>>> {
        lock(&self.topics).get(topic).cloned()
    }

    fn register_pending(&self, topic: &str, id: u64, sub: Arc<dyn Subscriber>) {
        let mut topics = lock(&self.topics);
        let entry = topics.entry(topic.to_string()).or_default().clone();
        let mut t = lock(&entry);
        drop(topics);
        if let Some((_, m)) = t.members.iter_mut().find(|(i, _)| *i == id) {
            let was_live = match m {
                Member::Live(..) => true,
                Member::Pending { was_live, .. } => *was_live,
            };
            *m = Member::Pending {
                sub,
                buf: Vec::new(),
                was_live,
            };
        } else {
            if t.members.is_empty() {
                self.active.fetch_add(1, Ordering::Relaxed);
            }
            t.members.push((
                id,
                Member::Pending {
                    sub,
                    buf: Vec::new(),
                    was_live: false,
                },
            ));
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A subscribe that failed or was dropped: back to live if it was a
    /// re-subscribe (with what arrived meanwhile), else gone.
    fn abandon(&self, topic: &str, id: u64) {
        let Some(entry) = self.topic(topic) else {
            return;
        };
        let mut t = lock(&entry);
        let Some(i) = t.members.iter().position(|(m, _)| *m == id) else {
            return;
        };
        match std::mem::replace(&mut t.members[i].1, Member::Live(Arc::new(Nobody), None)) {
            Member::Pending {
                sub,
                buf,
                was_live: true,
            } => {
                for m in &buf {
                    sub.deliver(m);
                }
                t.members[i].1 = Member::Live(sub, None);
            }
            _ => {
                t.members.swap_remove(i);
                self.removed(&t, topic);
            }
        }
    }

    /// Bookkeeping after a member left `t`.
    fn removed(&self, t: &Topic, topic: &str) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        if t.members.is_empty() {
            self.active.fetch_sub(1, Ordering::Relaxed);
            let _ = self.cmds.send(Cmd::Unsubscribe(topic.to_string()));
        }
    }

    /// Turns pending member `id` live after its snapshot: ack and replay
    /// (`on_ready`), then what arrived since the snapshot.
    fn go_live(&self, topic: &str, id: u64, snap: Snapshot, on_ready: OnReady<'_>) {
        let Some(entry) = self.topic(topic) else {
            return;
        };
        let mut t = lock(&entry);
        let Some(i) = t.members.iter().position(|(m, _)| *m == id) else {
            return;
        };
        let Member::Pending { sub, buf, .. } =
            std::mem::replace(&mut t.members[i].1, Member::Live(Arc::new(Nobody), None))
        else {
            return;
        };
        let pos = snap.position.clone();
        on_ready(&Subscribed {
            position: snap.position,
            replay: snap.replay,
            latest: snap.latest,
        });
        for m in &buf {
            if *m.epoch != *pos.epoch || m.seq > pos.seq {
                sub.deliver(m);
            }
        }
        t.members[i].1 = Member::Live(sub, Some(pos.clone()));
        // Every message received on the channel moved `last` already; before
        // the first one, the snapshot is where this node stands.
        if t.last.is_none() {
            t.last = Some(pos);
        }
    }

    /// A message from the pub/sub connection.
    fn on_pubsub(self: &Arc<Self>, msg: Msg) {
        let channel = msg.get_channel_name();
        let Some(topic) = self.history.keys.topic_of(channel) else {
            return;
        };
        let wire: Wire = match serde_json::from_slice(msg.get_payload_bytes()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("redis: unreadable message on {channel}: {e}");
                return;
            }
        };
        let published = Arc::new(Published::new(
            topic.into(),
            wire.seq,
            wire.epoch.into(),
            wire.data,
            wire.ts,
            wire.ev,
        ));
        if let Ok(Some(glob)) = msg.get_pattern::<Option<String>>() {
            let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
            for (p, _, s) in patterns.iter() {
                if self.history.keys.channel_glob(p) == glob && pattern_matches(p, topic) {
                    s.deliver(&published);
                }
            }
            return;
        }
        let Some(entry) = self.topic(topic) else {
            return;
        };
        let mut t = lock(&entry);
        for (_, m) in t.members.iter_mut() {
            if let Member::Pending { buf, .. } = m {
                buf.push(published.clone());
            }
        }
        if let Some(buf) = &mut t.resync {
            buf.push(published);
            return;
        }
        match &t.last {
            Some(l) if l.epoch == published.epoch && published.seq <= l.seq => return,
            Some(l) if l.epoch != published.epoch || published.seq != l.seq + 1 => {
                tracing::info!(
                    node = %self.node_id, topic,
                    "redis: {}:{} after {}:{} on the channel: catching up from the stream",
                    published.epoch, published.seq, l.epoch, l.seq
                );
                t.resync = Some(vec![published]);
                tokio::spawn(resync(self.clone(), topic.to_string()));
                return;
            }
            _ => {}
        }
        for s in t.live_for(&published) {
            s.deliver(&published);
        }
        t.last = Some(Position {
            epoch: published.epoch.clone(),
            seq: published.seq,
        });
    }

    /// The pub/sub connection is gone: every topic will have to catch up.
    fn connection_lost(&self, reason: String) {
        self.history.errors.fetch_add(1, Ordering::Relaxed);
        self.set_down(reason);
        let topics = lock(&self.topics);
        for entry in topics.values() {
            let mut t = lock(entry);
            t.subscribed = false;
            if t.live().next().is_some() && t.resync.is_none() {
                t.resync = Some(Vec::new());
            }
        }
    }

    /// Drops `topic`'s entry when nobody is subscribed; returns whether its
    /// channel is to be unsubscribed.
    fn forget_if_empty(&self, topic: &str) -> bool {
        let mut topics = lock(&self.topics);
        let Some(entry) = topics.get(topic).cloned() else {
            return false;
        };
        let t = lock(&entry);
        if !t.members.is_empty() {
            return false;
        }
        let subscribed = t.subscribed;
        drop(t);
        topics.remove(topic);
        subscribed
    }

    fn offline(&self, cmd: Cmd) {
        match cmd {
            Cmd::Subscribe(_, reply) => {
                let _ = reply.send(Err(Error::BrokerUnavailable(self.unreachable())));
            }
            Cmd::Unsubscribe(t) => {
                self.forget_if_empty(&t);
            }
            Cmd::PSubscribe(_) | Cmd::PUnsubscribe(_) => {}
        }
    }

    async fn online(&self, sink: &mut PubSubSink, cmd: Cmd) -> std::result::Result<(), String> {
        match cmd {
            Cmd::Subscribe(topic, reply) => {
                let Some(entry) = self.topic(&topic) else {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                };
                if lock(&entry).subscribed {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                let ch = self.history.keys.channel(&topic);
                match bounded("SUBSCRIBE", sink.subscribe(&ch)).await {
                    Ok(()) => {
                        lock(&entry).subscribed = true;
                        let _ = reply.send(Ok(()));
                        Ok(())
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::BrokerUnavailable(e.clone())));
                        Err(e)
                    }
                }
            }
            Cmd::Unsubscribe(topic) => {
                if self.forget_if_empty(&topic) {
                    let ch = self.history.keys.channel(&topic);
                    bounded("UNSUBSCRIBE", sink.unsubscribe(&ch)).await?;
                }
                Ok(())
            }
            Cmd::PSubscribe(glob) => bounded("PSUBSCRIBE", sink.psubscribe(&glob)).await,
            Cmd::PUnsubscribe(glob) => {
                let still = {
                    let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
                    patterns
                        .iter()
                        .any(|(p, _, _)| self.history.keys.channel_glob(p) == glob)
                };
                if !still {
                    bounded("PUNSUBSCRIBE", sink.punsubscribe(&glob)).await?;
                }
                Ok(())
            }
        }
    }

    /// After a (re)connect: the channels of every topic and pattern with local
    /// subscribers.
    async fn resubscribe(&self, sink: &mut PubSubSink) -> std::result::Result<(), String> {
        let entries: Vec<(String, Arc<Mutex<Topic>>)> = lock(&self.topics)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let wanted: Vec<_> = entries
            .into_iter()
            .filter(|(_, e)| !lock(e).members.is_empty())
            .collect();
        for chunk in wanted.chunks(256) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|(t, _)| self.history.keys.channel(t))
                .collect();
            bounded("SUBSCRIBE", sink.subscribe(channels)).await?;
            for (_, e) in chunk {
                lock(e).subscribed = true;
            }
        }
        let mut globs: Vec<String> = {
            let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
            patterns
                .iter()
                .map(|(p, _, _)| self.history.keys.channel_glob(p))
                .collect()
        };
        globs.sort();
        globs.dedup();
        if !globs.is_empty() {
            bounded("PSUBSCRIBE", sink.psubscribe(globs)).await?;
        }
        Ok(())
    }
}

/// A placeholder while a member is moved.
struct Nobody;

impl Subscriber for Nobody {
    fn deliver(&self, _msg: &Arc<Published>) {}
}

/// Catches `topic` up with the stream after a gap: fills what this node missed,
/// or tells its subscribers through [`Subscriber::missed`].
async fn resync(inner: Arc<Inner>, topic: String) {
    let Some(entry) = inner.topic(&topic) else {
        return;
    };
    let since = lock(&entry).last.clone();
    let snap = match &since {
        Some(s) => Some(inner.history.snapshot(&topic, Some(s), false).await),
        None => None,
    };
    let mut t = lock(&entry);
    let buf = t.resync.take().unwrap_or_default();
    let live: Vec<(Arc<dyn Subscriber>, Option<Position>)> = t
        .members
        .iter()
        .filter_map(|(_, m)| match m {
            Member::Live(s, had) => Some((s.clone(), had.clone())),
            Member::Pending { .. } => None,
        })
        .collect();
    let mut lost = false;
    match snap {
        Some(Ok(snap)) => {
            match snap.replay {
                Some(Replay::Recovered(msgs)) => {
                    let topic: Arc<str> = topic.as_str().into();
                    for (s, had) in &live {
                        let missing: Vec<_> = msgs
                            .iter()
                            .filter(|m| !had_it(had.as_ref(), m))
                            .cloned()
                            .collect();
                        if !missing.is_empty() {
                            s.catch_up(&topic, missing);
                        }
                    }
                }
                _ => lost = true,
            }
            t.last = Some(snap.position);
        }
        Some(Err(e)) => {
            tracing::warn!(node = %inner.node_id, topic, "redis: cannot catch up: {e}");
            lost = true;
        }
        None => {}
    }
    for m in buf {
        let next = match &t.last {
            Some(l) if l.epoch == m.epoch && m.seq <= l.seq => continue,
            Some(l) => l.epoch == m.epoch && m.seq == l.seq + 1,
            None => true,
        };
        lost |= !next;
        for (s, had) in &live {
            if !had_it(had.as_ref(), &m) {
                s.deliver(&m);
            }
        }
        t.last = Some(Position {
            epoch: m.epoch.clone(),
            seq: m.seq,
        });
    }
    drop(t);
    if lost {
        tracing::info!(
            node = %inner.node_id, topic, subscribers = live.len(),
            "redis: missed messages the history cannot replay: asking subscribers to resubscribe"
        );
        for (s, _) in &live {
            s.missed(&topic);
        }
    }
}

/// Owns the pub/sub connection: (re)connects, runs the channel commands in
/// order, delivers messages, pings every second.
async fn run_pubsub(inner: Arc<Inner>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut delay = BACKOFF_MIN;
    loop {
        let mut failure = None;
        let connected = match inner.check_deployment().await {
            Ok(None) => {
                if lock(&inner.unsupported).take().is_some() {
                    tracing::info!(node = %inner.node_id, "redis: {} is a usable Redis again", inner.history.addr);
                }
                bounded("connect", inner.client.get_async_pubsub()).await
            }
            Ok(Some(why)) => {
                inner.refuse(why.clone());
                Err(why)
            }
            Err(e) => Err(e),
        };
        match connected {
            Ok(ps) => {
                let (mut sink, mut stream) = ps.split();
                match inner.resubscribe(&mut sink).await {
                    Ok(()) => {
                        inner.set_up();
                        delay = BACKOFF_MIN;
                        let behind: Vec<String> = lock(&inner.topics)
                            .iter()
                            .filter(|(_, e)| lock(e).resync.is_some())
                            .map(|(k, _)| k.clone())
                            .collect();
                        for topic in behind {
                            tokio::spawn(resync(inner.clone(), topic));
                        }
                        let Some(reason) = serve(&inner, &mut sink, &mut stream, &mut cmds).await
                        else {
                            return;
                        };
                        inner.connection_lost(reason);
                    }
                    Err(e) => failure = Some(e),
                }
            }
            Err(e) => failure = Some(e),
        }
        if let Some(e) = failure {
            inner.set_down(e);
        }
        // Wait before the next attempt, answering commands meanwhile.
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                c = cmds.recv() => match c {
                    Some(c) => inner.offline(c),
                    None => return,
                },
            }
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Serves one pub/sub connection; returns why it ended (`None`: the broker is gone).
async fn serve(
    inner: &Arc<Inner>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
) -> Option<String> {
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    ping.tick().await;
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(m) => inner.on_pubsub(m),
                None => return Some("the pub/sub connection closed".into()),
            },
            c = cmds.recv() => match c {
                Some(c) => {
                    if let Err(e) = inner.online(sink, c).await {
                        return Some(e);
                    }
                }
                None => return None,
            },
            _ = ping.tick() => {
                // Any answer will do: a connection with subscriptions answers
                // `["pong", ""]` (RESP2 pub/sub mode), one without `PONG`.
                if let Err(e) = bounded("PING", sink.ping::<RValue>()).await {
                    return Some(e);
                }
            }
        }
    }
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
            let inner = &self.inner;
            if let Some(why) = lock(&inner.unsupported).clone() {
                inner.history.errors.fetch_add(1, Ordering::Relaxed);
                return Err(Error::PublishFailed(why));
            }
            // Tried even while the pub/sub link is down: the other nodes may
            // still hear it, and this node catches up when its link returns.
            let event_id = event_id.map(|e| e ^ inner.event_salt);
            inner.history.publish(&topic, data, event_id).await
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        id: u64,
        subscriber: Arc<dyn Subscriber>,
        since: Option<Position>,
        on_ready: OnReady<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let inner = &*self.inner;
            // A node that just started, or whose link is being re-established,
            // is usually up within milliseconds: wait a little before refusing.
            if !self.wait_up(SUBSCRIBE_WAIT).await {
                return Err(Error::BrokerUnavailable(inner.unreachable()));
            }
            inner.register_pending(topic, id, subscriber);
            let mut guard = PendingGuard {
                inner,
                topic,
                id,
                done: false,
            };
            let (tx, rx) = oneshot::channel();
            if inner
                .cmds
                .send(Cmd::Subscribe(topic.to_string(), tx))
                .is_err()
            {
                return Err(Error::BrokerUnavailable("the broker stopped".into()));
            }
            match tokio::time::timeout(OP_TIMEOUT * 2, rx).await {
                Ok(Ok(r)) => r?,
                _ => return Err(Error::BrokerUnavailable(inner.unreachable())),
            }
            let snap = inner.history.snapshot(topic, since.as_ref(), true).await?;
            inner.go_live(topic, id, snap, on_ready);
            guard.done = true;
            Ok(())
        })
    }

    fn unsubscribe(&self, topic: &str, id: u64) -> bool {
        let inner = &self.inner;
        let Some(entry) = inner.topic(topic) else {
            return false;
        };
        let mut t = lock(&entry);
        let Some(i) = t.members.iter().position(|(m, _)| *m == id) else {
            return false;
        };
        t.members.swap_remove(i);
        inner.removed(&t, topic);
        true
    }

    fn subscribe_pattern(&self, pattern: &str, id: u64, subscriber: Arc<dyn Subscriber>) {
        let inner = &self.inner;
        let glob = inner.history.keys.channel_glob(pattern);
        let mut patterns = inner.patterns.write().unwrap_or_else(|e| e.into_inner());
        if !patterns.iter().any(|(p, _, _)| p == pattern) {
            inner.active.fetch_add(1, Ordering::Relaxed);
            let _ = inner.cmds.send(Cmd::PSubscribe(glob));
        }
        patterns.push((pattern.to_string(), id, subscriber));
        inner.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    fn unsubscribe_pattern(&self, pattern: &str, id: u64) {
        let inner = &self.inner;
        let mut patterns = inner.patterns.write().unwrap_or_else(|e| e.into_inner());
        let before = patterns.len();
        patterns.retain(|(p, i, _)| !(p == pattern && *i == id));
        if patterns.len() < before {
            inner.subscriptions.fetch_sub(1, Ordering::Relaxed);
            if !patterns.iter().any(|(p, _, _)| p == pattern) {
                inner.active.fetch_sub(1, Ordering::Relaxed);
                let glob = inner.history.keys.channel_glob(pattern);
                let _ = inner.cmds.send(Cmd::PUnsubscribe(glob));
            }
        }
    }

    fn active_streams(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    fn subscriptions(&self) -> usize {
        self.inner.subscriptions.load(Ordering::Relaxed)
    }

    fn history(&self) -> &dyn History {
        &self.inner.history
    }

    fn status(&self) -> BrokerStatus {
        let inner = &self.inner;
        let up = inner.up.load(Ordering::Acquire);
        BrokerStatus {
            kind: "redis",
            up,
            reason: if up { None } else { Some(inner.unreachable()) },
            errors: inner.history.errors.load(Ordering::Relaxed),
        }
    }

    fn unusable(&self) -> BoxFuture<'_, String> {
        let mut fatal = self.inner.fatal.subscribe();
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

/// Why the server whose `INFO` is `info` cannot serve as this broker's
/// Redis, if it cannot: a Redis Cluster node (publishes to topics on other
/// shards would fail with `MOVED`) or a Sentinel (no scripts, no keys).
fn unsupported_deployment(addr: &str, info: &str) -> Option<String> {
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
    if field("redis_mode") == Some("sentinel") {
        return Some(format!(
            "Redis at {addr} is a Redis Sentinel: Sentinel is not supported; point \
             --redis-url at the primary it monitors (SENTINEL GET-MASTER-ADDR-BY-NAME <name>)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_globs() {
        let k = Keys::new("hub*");
        assert_eq!(k.channel("machines.A"), "hub*:ch:{machines.A}");
        assert_eq!(k.topic_of("hub*:ch:{machines.A}"), Some("machines.A"));
        assert_eq!(k.topic_of("other:ch:{machines.A}"), None);
        assert_eq!(k.channel_glob("machines.*"), "hub\\*:ch:{machines.*}");
        assert_eq!(k.meta("t"), "hub*:meta:{t}");
        assert_eq!(k.stream("t"), "hub*:stream:{t}");
    }
}
