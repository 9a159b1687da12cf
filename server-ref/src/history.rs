//! Per-topic history: epochs, sequence numbers and the bounded replay window.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::broker::Published;
use crate::now_ms;

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

/// Storage of the recent messages of every topic. Calls for one topic are
/// serialised by the broker (it holds the topic's lock), so `append` and `since`
/// see a consistent stream.
pub trait History: Send + Sync {
    /// Assigns the next `seq` in the topic's current epoch and stores the message.
    fn append(&self, topic: &str, data: Value, event_id: Option<u64>) -> Arc<Published>;
    /// The topic's current position (creating its epoch if the topic is new).
    fn position(&self, topic: &str) -> Position;
    /// The messages after `since`, or [`Replay::Lost`].
    fn since(&self, topic: &str, since: &Position) -> Replay;
    /// The latest message still in the window.
    fn latest(&self, topic: &str) -> Option<Arc<Published>>;
    /// Messages currently held over all topics.
    fn len(&self) -> usize;
    /// Whether no message is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drops messages older than the age bound.
    fn prune(&self);
}

struct Log {
    epoch: Arc<str>,
    last_seq: u64,
    window: VecDeque<Arc<Published>>,
}

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

    fn with_log<R>(&self, topic: &str, f: impl FnOnce(&mut Log) -> R) -> R {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let log = logs.entry(topic.to_string()).or_insert_with(|| Log {
            epoch: new_epoch(),
            last_seq: 0,
            window: VecDeque::new(),
        });
        f(log)
    }
}

impl History for MemoryHistory {
    fn append(&self, topic: &str, data: Value, event_id: Option<u64>) -> Arc<Published> {
        let now = now_ms();
        self.with_log(topic, |log| {
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

    fn position(&self, topic: &str) -> Position {
        self.with_log(topic, |log| Position {
            epoch: log.epoch.clone(),
            seq: log.last_seq,
        })
    }

    fn since(&self, topic: &str, since: &Position) -> Replay {
        let now = now_ms();
        self.with_log(topic, |log| {
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

    fn latest(&self, topic: &str) -> Option<Arc<Published>> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.get(topic).and_then(|l| l.window.back().cloned())
    }

    fn len(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn prune(&self) {
        let now = now_ms();
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        for log in logs.values_mut() {
            self.prune_log(log, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replay_window() {
        let h = MemoryHistory::new(3, Duration::from_secs(60));
        let p0 = h.position("t");
        assert_eq!(p0.seq, 0);
        for i in 0..5 {
            h.append("t", json!(i), None);
        }
        assert_eq!(h.len(), 3);
        let pos = |seq| Position {
            epoch: p0.epoch.clone(),
            seq,
        };
        match h.since("t", &pos(2)) {
            Replay::Recovered(v) => {
                assert_eq!(v.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5])
            }
            Replay::Lost => panic!("should recover"),
        }
        assert!(matches!(h.since("t", &pos(1)), Replay::Lost));
        assert!(matches!(h.since("t", &pos(5)), Replay::Recovered(v) if v.is_empty()));
        assert!(matches!(h.since("t", &pos(6)), Replay::Lost));
        let other = Position {
            epoch: "zzzz".into(),
            seq: 4,
        };
        assert!(matches!(h.since("t", &other), Replay::Lost));
    }
}
