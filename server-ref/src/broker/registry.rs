//! What both brokers keep about their subscribers besides the per-topic
//! lists: the pattern subscribers, grouped by pattern, and the counts shown
//! by `/metrics` and heartbeats.
//!
//! A publish matches each distinct pattern once, not each pattern subscriber
//! (every `/ws/machines` socket follows `machines.*`: one group). A group also
//! keeps the key its backend subscribes to for it (the Redis channel glob),
//! computed once when the group is made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::broker::Subscriber;
use crate::published::Published;
use crate::topic::pattern_matches;

/// The subscribers of one pattern.
struct Group {
    pattern: String,
    /// What the backend subscribes to for this pattern (empty in memory).
    key: String,
    subs: Vec<(u64, Arc<dyn Subscriber>)>,
}

/// Pattern subscribers by pattern, and the subscription counts.
#[derive(Default)]
pub(crate) struct Registry {
    patterns: RwLock<Vec<Group>>,
    /// Topics and patterns with at least one subscriber.
    active: AtomicUsize,
    /// Subscriptions over all topics and patterns.
    subscriptions: AtomicUsize,
}

impl Registry {
    /// Topics (and patterns) with at least one subscriber.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Subscriptions over all topics and patterns.
    pub(crate) fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Counts a topic subscription; `first` when the topic had none.
    pub(crate) fn topic_subscribed(&self, first: bool) {
        if first {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a topic subscription gone; `last` when the topic has none left.
    pub(crate) fn topic_unsubscribed(&self, last: bool) {
        if last {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `sub` as `id` to `pattern`'s group. Returns the group's key when
    /// the group is new (the backend subscribes to it then); `key` makes it.
    pub(crate) fn subscribe_pattern(
        &self,
        pattern: &str,
        id: u64,
        sub: Arc<dyn Subscriber>,
        key: impl FnOnce(&str) -> String,
    ) -> Option<String> {
        let mut groups = self.patterns.write().unwrap_or_else(|e| e.into_inner());
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = groups.iter_mut().find(|g| g.pattern == pattern) {
            g.subs.push((id, sub));
            return None;
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        let key = key(pattern);
        groups.push(Group {
            pattern: pattern.to_string(),
            key: key.clone(),
            subs: vec![(id, sub)],
        });
        Some(key)
    }

    /// Removes `id` from `pattern`'s group. Returns the group's key when the
    /// group is gone and no other group shares its key (the backend
    /// unsubscribes from it then).
    pub(crate) fn unsubscribe_pattern(&self, pattern: &str, id: u64) -> Option<String> {
        let mut groups = self.patterns.write().unwrap_or_else(|e| e.into_inner());
        let at = groups.iter().position(|g| g.pattern == pattern)?;
        let g = &mut groups[at];
        let before = g.subs.len();
        g.subs.retain(|(i, _)| *i != id);
        if g.subs.len() == before {
            return None;
        }
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        if !g.subs.is_empty() {
            return None;
        }
        self.active.fetch_sub(1, Ordering::Relaxed);
        let gone = groups.swap_remove(at);
        (!groups.iter().any(|g| g.key == gone.key)).then_some(gone.key)
    }

    /// Hands `msg` to the subscribers of every pattern that matches its topic.
    pub(crate) fn deliver(&self, msg: &Arc<Published>) {
        self.deliver_where(msg, |_| true);
    }

    /// Hands `msg` to the subscribers of the patterns with backend key `key`
    /// that match its topic (a Redis glob is broader than its pattern).
    pub(crate) fn deliver_keyed(&self, key: &str, msg: &Arc<Published>) {
        self.deliver_where(msg, |g| g.key == key);
    }

    fn deliver_where(&self, msg: &Arc<Published>, pick: impl Fn(&Group) -> bool) {
        let groups = self.patterns.read().unwrap_or_else(|e| e.into_inner());
        for g in groups.iter() {
            if pick(g) && pattern_matches(&g.pattern, &msg.topic) {
                for (_, s) in &g.subs {
                    s.deliver(msg);
                }
            }
        }
    }

    /// Whether a group with backend key `key` exists.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        let groups = self.patterns.read().unwrap_or_else(|e| e.into_inner());
        groups.iter().any(|g| g.key == key)
    }

    /// Every backend key, once each.
    pub(crate) fn keys(&self) -> Vec<String> {
        let groups = self.patterns.read().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = groups.iter().map(|g| g.key.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Count(Mutex<usize>);

    impl Subscriber for Count {
        fn deliver(&self, _msg: &Arc<Published>) {
            *self.0.lock().unwrap() += 1;
        }
    }

    fn msg(topic: &str) -> Arc<Published> {
        Arc::new(Published::new(
            topic.into(),
            1,
            "e".into(),
            serde_json::json!(1),
            0,
            None,
        ))
    }

    #[test]
    fn one_group_per_pattern_and_one_key_per_group() {
        let r = Registry::default();
        let subs: Vec<Arc<Count>> = (0..3).map(|_| Arc::default()).collect();
        let mut made = 0;
        for (i, s) in subs.iter().enumerate() {
            let new = r.subscribe_pattern("machines.*", i as u64, s.clone(), |p| {
                made += 1;
                format!("g:{}", p.replace("**", "*"))
            });
            assert_eq!(new.is_some(), i == 0);
        }
        assert_eq!(made, 1, "the key is made once, for the group");
        let other = Arc::new(Count::default());
        r.subscribe_pattern("machines.**", 9, other.clone(), |_| "g:machines.*".into());
        assert_eq!((r.active(), r.subscriptions()), (2, 4));

        r.deliver(&msg("machines.A"));
        r.deliver_keyed("g:machines.*", &msg("machines.A.b"));
        r.deliver_keyed("g:other", &msg("machines.B"));
        assert_eq!(*subs[2].0.lock().unwrap(), 1);
        assert_eq!(*other.0.lock().unwrap(), 2);

        for i in 0..3 {
            assert_eq!(
                r.unsubscribe_pattern("machines.*", i),
                None,
                "key still used"
            );
        }
        assert_eq!(r.unsubscribe_pattern("machines.*", 0), None, "already gone");
        assert_eq!(
            r.unsubscribe_pattern("machines.**", 9).as_deref(),
            Some("g:machines.*")
        );
        assert_eq!((r.active(), r.subscriptions()), (0, 0));
        assert!(r.keys().is_empty());
    }
}
