//! The memory broker's idempotency keys: per topic, the keys of recent
//! publishes with the position each got, forgotten by age and by count
//! (`--dedup-window`, `--dedup-max`). The Redis broker keeps the same in
//! Redis, inside its publish script.

use std::collections::{HashMap, VecDeque};

use crate::broker::Dedupe;
use crate::history::Position;

/// One topic's remembered keys, oldest first.
#[derive(Default)]
struct Window {
    order: VecDeque<(String, u64)>,
    seen: HashMap<String, Position>,
}

impl Window {
    fn forget_old(&mut self, now_ms: u64, dedupe: Dedupe) {
        let cutoff = now_ms.saturating_sub(dedupe.window_ms);
        while let Some((key, at)) = self.order.front() {
            if *at >= cutoff && self.order.len() <= dedupe.max {
                break;
            }
            self.seen.remove(key);
            self.order.pop_front();
        }
    }
}

/// Every topic's window.
#[derive(Default)]
pub(crate) struct Keys {
    topics: HashMap<String, Window>,
    /// Publishes since the last sweep of idle topics.
    since_sweep: usize,
}

/// How many keyed publishes between sweeps of the topics nobody published to lately.
const SWEEP_EVERY: usize = 1024;

impl Keys {
    /// The position `key` got on `topic`, if it is remembered.
    pub(crate) fn get(
        &mut self,
        topic: &str,
        key: &str,
        now_ms: u64,
        dedupe: Dedupe,
    ) -> Option<Position> {
        let w = self.topics.get_mut(topic)?;
        w.forget_old(now_ms, dedupe);
        w.seen.get(key).cloned()
    }

    /// Remembers that `key` was published on `topic` at `position`.
    pub(crate) fn insert(
        &mut self,
        topic: &str,
        key: &str,
        position: Position,
        now_ms: u64,
        dedupe: Dedupe,
    ) {
        let w = self.topics.entry(topic.to_string()).or_default();
        w.order.push_back((key.to_string(), now_ms));
        w.seen.insert(key.to_string(), position);
        w.forget_old(now_ms, dedupe);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.topics.retain(|_, w| {
                w.forget_old(now_ms, dedupe);
                !w.order.is_empty()
            });
        }
    }

    /// Keys remembered over all topics.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.topics.values().map(|w| w.order.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: u64) -> Position {
        Position {
            epoch: "e".into(),
            seq,
        }
    }

    const D: Dedupe = Dedupe {
        window_ms: 1_000,
        max: 3,
    };

    #[test]
    fn a_key_is_remembered_per_topic_until_its_age_or_the_count_forgets_it() {
        let mut k = Keys::default();
        k.insert("t", "a", pos(1), 0, D);
        assert_eq!(k.get("t", "a", 999, D), Some(pos(1)));
        assert_eq!(k.get("other", "a", 999, D), None);
        assert_eq!(k.get("t", "a", 1_001, D), None, "older than the window");

        for (i, key) in ["b", "c", "d", "e"].into_iter().enumerate() {
            k.insert("t", key, pos(i as u64 + 2), 2_000, D);
        }
        assert_eq!(
            k.get("t", "b", 2_000, D),
            None,
            "the oldest of four, over the max of three"
        );
        assert_eq!(k.get("t", "e", 2_000, D), Some(pos(5)));
        assert_eq!(k.len(), 3);
    }

    #[test]
    fn idle_topics_are_swept() {
        let mut k = Keys::default();
        k.insert("idle", "x", pos(1), 0, D);
        for i in 0..SWEEP_EVERY {
            k.insert("busy", &i.to_string(), pos(i as u64), 10_000, D);
        }
        assert!(!k.topics.contains_key("idle"));
        assert_eq!(k.len(), 3);
    }
}
