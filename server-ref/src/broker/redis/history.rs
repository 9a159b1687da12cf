//! The replay window in Redis: the scripts that append (and announce) and
//! read, and the parsing of their answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{Script, Value as RValue};
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::keys::Keys;
use super::scripts;
use crate::broker::{Dedupe, Keyed};
use crate::history::{new_epoch, History, Position, Replay};
use crate::published::Published;
use crate::time::now_ms;
use crate::{Error, Result};

/// Longest wait for one Redis operation before it counts as failed.
pub(super) const OP_TIMEOUT: Duration = Duration::from_millis(1500);
/// A topic's epoch and `seq` are forgotten after this long without a publication.
const META_TTL_MS: u64 = 24 * 3600 * 1000;

/// The replay window in Redis: the scripts that append (and announce) and read.
pub struct RedisHistory {
    conn: ConnectionManager,
    pub(super) keys: Keys,
    /// Where Redis is (`host:port` or a socket path), for messages: never the
    /// URL, which may hold a password.
    pub(super) addr: String,
    size: usize,
    age_ms: u64,
    publish_script: Script,
    snapshot_script: Script,
    /// Failed Redis operations on this node.
    pub(super) errors: AtomicU64,
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
pub(super) struct Snapshot {
    pub(super) position: Position,
    pub(super) replay: Option<Replay>,
    pub(super) latest: Option<Arc<Published>>,
}

pub(super) async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = ::redis::RedisResult<T>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {OP_TIMEOUT:?}")),
    }
}

/// Whether a command never reached Redis: the connection was refused, or was
/// closed before the command could be written (`EPIPE`). After a reset or a
/// timeout the command may have run.
fn never_sent(e: &::redis::RedisError) -> bool {
    if e.is_connection_refusal() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::NotConnected
            );
        }
        cause = c.source();
    }
    false
}

impl RedisHistory {
    /// A history whose scripts run on `conn`.
    pub(super) fn new(
        conn: ConnectionManager,
        keys: Keys,
        addr: String,
        size: usize,
        age: Duration,
    ) -> RedisHistory {
        RedisHistory {
            conn,
            keys,
            addr,
            size,
            age_ms: age.as_millis() as u64,
            publish_script: Script::new(scripts::PUBLISH),
            snapshot_script: Script::new(scripts::SNAPSHOT),
            errors: AtomicU64::new(0),
        }
    }

    fn failed(&self, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("redis: {e}");
    }

    /// Appends and announces, atomically (one script). `event_id` is already
    /// made unique across nodes.
    pub(super) async fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
        keyed: Option<(&str, Dedupe)>,
    ) -> Result<Keyed> {
        let ts = now_ms();
        let (key, dedupe) = match keyed {
            Some((key, d)) => (key, d),
            None => (
                "",
                Dedupe {
                    window_ms: 1,
                    max: 0,
                },
            ),
        };
        let mut inv = self.publish_script.key(self.keys.meta(topic));
        inv.key(self.keys.stream(topic))
            .key(self.keys.dedupe(topic))
            .key(self.keys.dedupe_at(topic))
            .arg(self.keys.channel(topic))
            .arg(&*new_epoch())
            .arg(data.to_string())
            .arg(ts)
            .arg(event_id.map(|e| e.to_string()).unwrap_or_default())
            .arg(self.size)
            .arg(self.age_ms.max(1))
            .arg(META_TTL_MS)
            .arg(key)
            .arg(dedupe.window_ms.max(1))
            .arg(dedupe.max);
        let mut conn = self.conn.clone();
        let call = inv.invoke_async::<(u64, String, u8)>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok((seq, epoch, 1))) => Ok(Keyed::Repeat(Position {
                epoch: epoch.into(),
                seq,
            })),
            Ok(Ok((seq, epoch, _))) => Ok(Keyed::New(Arc::new(Published::new(
                topic.into(),
                seq,
                epoch.into(),
                data,
                ts,
                event_id,
            )))),
            // Never sent, so nothing ran: nothing was published.
            Ok(Err(e)) if never_sent(&e) => {
                self.failed(&format!("publish script: {e}"));
                Err(Error::PublishFailed(format!(
                    "Redis at {} is not reachable; {topic:?} was not published: {e}",
                    self.addr
                )))
            }
            // Sent, but no answer (or a broken one): the script may have run.
            other => {
                let e = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {OP_TIMEOUT:?}"),
                };
                self.failed(&format!("publish script: {e}"));
                Err(Error::PublishUnknown(format!(
                    "Redis at {} did not answer the publish to {topic:?}, which may or may not \
                     have been published ({e}); a retry with the same id is safe",
                    self.addr
                )))
            }
        }
    }

    /// The position of `topic`, with the replay after `since` and the latest
    /// message when asked, read in one step.
    pub(super) async fn snapshot(
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
