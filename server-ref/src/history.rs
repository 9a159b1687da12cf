//! Per-topic history: epochs, sequence numbers and the bounded replay window.
//!
//! [`History`] is the read side every broker offers (positions, replay, the
//! latest value), asynchronous because the Redis history answers over the
//! network. Appending is not part of it: a message must get its `seq` atomically
//! with its delivery, so it is the broker's job. [`MemoryBroker`] appends through
//! [`MemoryHistory::append`] under the topic's lock; the Redis broker appends,
//! assigns the `seq` and announces the message in one Lua script
//! ([`crate::broker::redis`]).
//!
//! [`MemoryBroker`]: crate::broker::MemoryBroker

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::published::Published;
use crate::time::now_ms;
use crate::Result;

/// A position in a topic's stream: the `seq` of the last message in `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The stream's epoch.
    pub epoch: Arc<str>,
    /// The last `seq` (0 before the first message).
    pub seq: u64,
}

/// The answer to [`History::since`].
#[derive(Debug)]
pub enum Replay {
    /// Every message after the position, oldest first (possibly none).
    Recovered(Vec<Arc<Published>>),
    /// The messages cannot be replayed: out of the window, or another epoch.
    Lost,
}

/// The read side of the recent messages of every topic. A subscribe that needs
/// its replay atomic with live delivery goes through
/// [`Broker::subscribe`](crate::broker::Broker::subscribe), not through these.
pub trait History: Send + Sync {
    /// The topic's current position (creating its epoch if the topic is new).
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position>>;
    /// The messages after `since`, or [`Replay::Lost`].
    fn since<'a>(&'a self, topic: &'a str, since: &'a Position) -> BoxFuture<'a, Result<Replay>>;
    /// The latest message still in the window.
    fn latest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Arc<Published>>>>;
    /// Messages held over all topics, when this node knows it (`None` for a
    /// shared store such as Redis, where it is a cluster-wide figure).
    fn held(&self) -> Option<usize>;
    /// Drops messages older than the age bound (a no-op where the store trims itself).
    fn prune(&self);
}

struct Log {
    epoch: Arc<str>,
    last_seq: u64,
    window: VecDeque<Arc<Published>>,
    /// When it was last published to or subscribed to (ms).
    touched: u64,
}

/// A topic with nothing left in its window and neither published to nor
/// subscribed to for this long is forgotten (its epoch with it), as the Redis
/// history's meta key expires: a server that sees a topic per order or device
/// does not keep them all. A later subscribe with `since` from before hears
/// `recovered: false`.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// In-memory history bounded by count and age per topic. Epochs are random
/// strings made when a topic is first seen, so a restart changes them.
pub struct MemoryHistory {
    logs: Mutex<HashMap<String, Log>>,
    max_len: usize,
    max_age: Duration,
    total: AtomicUsize,
}

impl std::fmt::Debug for MemoryHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHistory")
            .field("max_len", &self.max_len)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// A random epoch string (8 characters of `[a-z0-9]`).
pub fn new_epoch() -> Arc<str> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect::<String>()
        .into()
}

impl MemoryHistory {
    /// A history keeping at most `max_len` messages, none older than `max_age`, per topic.
    pub fn new(max_len: usize, max_age: Duration) -> MemoryHistory {
        MemoryHistory {
            logs: Mutex::new(HashMap::new()),
            max_len,
            max_age,
            total: AtomicUsize::new(0),
        }
    }

    fn prune_log(&self, log: &mut Log, now: u64) {
        let cutoff = now.saturating_sub(self.max_age.as_millis() as u64);
        while log.window.len() > self.max_len
            || log.window.front().is_some_and(|m| m.timestamp < cutoff)
        {
            log.window.pop_front();
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn with_log<R>(&self, topic: &str, now: u64, f: impl FnOnce(&mut Log) -> R) -> R {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let log = logs.entry(topic.to_string()).or_insert_with(|| Log {
            epoch: new_epoch(),
            last_seq: 0,
            window: VecDeque::new(),
            touched: now,
        });
        log.touched = log.touched.max(now);
        f(log)
    }
}

impl MemoryHistory {
    /// Assigns the next `seq` in the topic's current epoch and stores the
    /// message. The caller serialises calls for one topic with its delivery.
    pub fn append(&self, topic: &str, data: Value, event_id: Option<u64>) -> Arc<Published> {
        let now = now_ms();
        self.with_log(topic, now, |log| {
            log.last_seq += 1;
            let msg = Arc::new(Published::new(
                topic.into(),
                log.last_seq,
                log.epoch.clone(),
                data,
                now,
                event_id,
            ));
            if self.max_len > 0 {
                log.window.push_back(msg.clone());
                self.total.fetch_add(1, Ordering::Relaxed);
            }
            self.prune_log(log, now);
            msg
        })
    }

    /// The topic's current position (creating its epoch if the topic is new).
    pub fn position_now(&self, topic: &str) -> Position {
        self.with_log(topic, now_ms(), |log| Position {
            epoch: log.epoch.clone(),
            seq: log.last_seq,
        })
    }

    /// The messages after `since`, or [`Replay::Lost`].
    pub fn since_now(&self, topic: &str, since: &Position) -> Replay {
        let now = now_ms();
        self.with_log(topic, now, |log| {
            self.prune_log(log, now);
            if since.epoch != log.epoch || since.seq > log.last_seq {
                return Replay::Lost;
            }
            if since.seq == log.last_seq {
                return Replay::Recovered(Vec::new());
            }
            // Every message since.seq+1 ..= last_seq must still be in the window.
            match log.window.front() {
                Some(first) if first.seq <= since.seq + 1 => {
                    let skip = (since.seq + 1 - first.seq) as usize;
                    Replay::Recovered(log.window.iter().skip(skip).cloned().collect())
                }
                _ => Replay::Lost,
            }
        })
    }

    /// The latest message still in the window.
    pub fn latest_now(&self, topic: &str) -> Option<Arc<Published>> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.get(topic).and_then(|l| l.window.back().cloned())
    }

    /// Messages held over all topics.
    pub fn held_now(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Topics whose epoch and position this history holds.
    pub fn topics_held(&self) -> usize {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drops messages older than the age bound, and forgets topics idle for
    /// [`FORGET_AFTER`] with nothing left in their window.
    pub fn prune_now(&self) {
        self.prune_at(now_ms());
    }

    fn prune_at(&self, now: u64) {
        let forget = FORGET_AFTER.max(self.max_age).as_millis() as u64;
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|_, log| {
            self.prune_log(log, now);
            !(log.window.is_empty() && now.saturating_sub(log.touched) >= forget)
        });
    }
}

impl History for MemoryHistory {
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position>> {
        let p = self.position_now(topic);
        Box::pin(async move { Ok(p) })
    }

    fn since<'a>(&'a self, topic: &'a str, since: &'a Position) -> BoxFuture<'a, Result<Replay>> {
        let r = self.since_now(topic, since);
        Box::pin(async move { Ok(r) })
    }

    fn latest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Arc<Published>>>> {
        let l = self.latest_now(topic);
        Box::pin(async move { Ok(l) })
    }

    fn held(&self) -> Option<usize> {
        Some(self.held_now())
    }

    fn prune(&self) {
        self.prune_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replay_window() {
        let h = MemoryHistory::new(3, Duration::from_secs(60));
        let p0 = h.position_now("t");
        assert_eq!(p0.seq, 0);
        for i in 0..5 {
            h.append("t", json!(i), None);
        }
        assert_eq!(h.held_now(), 3);
        let pos = |seq| Position {
            epoch: p0.epoch.clone(),
            seq,
        };
        match h.since_now("t", &pos(2)) {
            Replay::Recovered(v) => {
                assert_eq!(v.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5])
            }
            Replay::Lost => panic!("should recover"),
        }
        assert!(matches!(h.since_now("t", &pos(1)), Replay::Lost));
        assert!(matches!(h.since_now("t", &pos(5)), Replay::Recovered(v) if v.is_empty()));
        assert!(matches!(h.since_now("t", &pos(6)), Replay::Lost));
        let other = Position {
            epoch: "zzzz".into(),
            seq: 4,
        };
        assert!(matches!(h.since_now("t", &other), Replay::Lost));
    }

    #[test]
    fn idle_topics_are_forgotten_a_day_after_their_window_empties() {
        let h = MemoryHistory::new(10, Duration::from_secs(60));
        let subscribed_only = h.position_now("device:1");
        h.append("order:1", json!(1), None);
        let now = now_ms();
        h.prune_at(now + 3_600_000);
        assert_eq!(h.topics_held(), 2, "an hour idle: kept");
        assert_eq!(h.held_now(), 0, "the message aged out");
        h.prune_at(now + FORGET_AFTER.as_millis() as u64 + 1_000);
        assert_eq!(h.topics_held(), 0, "a day idle and empty: forgotten");
        let again = h.position_now("device:1");
        assert_ne!(again.epoch, subscribed_only.epoch, "a new epoch");
        let stale = Position {
            epoch: subscribed_only.epoch,
            seq: 0,
        };
        assert!(matches!(h.since_now("device:1", &stale), Replay::Lost));
    }
}
