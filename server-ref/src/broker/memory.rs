//! The in-memory broker, the default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::broker::dedupe;
use crate::broker::registry::Registry;
use crate::broker::{Broker, Dedupe, Keyed, Subscribe, Subscribed, Subscriber};
use crate::history::{History, MemoryHistory, Position};
use crate::published::Published;
use crate::time::now_ms;
use crate::Result;

/// One topic's subscribers.
#[derive(Default)]
struct Subs {
    list: Vec<(u64, Arc<dyn Subscriber>)>,
    /// Taken out of the map (its last subscriber left): whoever locked it
    /// meanwhile must look the topic up again.
    gone: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The in-memory broker: per-topic subscriber lists, each behind its own lock,
/// which also serialises the topic's history appends, so a subscribe with `since`
/// is atomic with respect to publishing.
///
/// A topic has an entry only while it has subscribers, so a server that sees
/// millions of short-lived topics (an order each, say) does not keep them. A
/// publish and a subscribe must still meet on one lock: a publish to a topic
/// without an entry appends while holding the map's lock, so no subscribe can
/// create the entry and read the position in between; an entry removed while
/// someone waited for its lock is marked `gone`, and they look again.
pub struct MemoryBroker {
    topics: Mutex<HashMap<String, Arc<Mutex<Subs>>>>,
    registry: Registry,
    history: Arc<MemoryHistory>,
    /// Idempotency keys; held across the publish that assigns the `seq`.
    keys: Mutex<dedupe::Keys>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// A broker over `history`.
    pub fn new(history: Arc<MemoryHistory>) -> MemoryBroker {
        MemoryBroker {
            topics: Mutex::new(HashMap::new()),
            keys: Mutex::default(),
            registry: Registry::default(),
            history,
        }
    }

    /// Topics with an entry (that is, with subscribers).
    pub fn topics_held(&self) -> usize {
        lock(&self.topics).len()
    }

    fn publish_now(&self, topic: &str, data: Value, event_id: Option<u64>) -> Arc<Published> {
        loop {
            let topics = lock(&self.topics);
            let Some(entry) = topics.get(topic).cloned() else {
                // Nobody subscribed: append (and tell the patterns) under the
                // map's lock, which a subscribe needs to create the entry.
                let msg = self.history.append(topic, data, event_id);
                self.registry.deliver(&msg);
                return msg;
            };
            drop(topics);
            let subs = lock(&entry);
            if subs.gone {
                continue;
            }
            let msg = self.history.append(topic, data, event_id);
            for (_, s) in subs.list.iter() {
                s.deliver(&msg);
            }
            self.registry.deliver(&msg);
            return msg;
        }
    }
}

impl Broker for MemoryBroker {
    fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
    ) -> BoxFuture<'_, Result<Arc<Published>>> {
        let msg = self.publish_now(topic, data, event_id);
        Box::pin(async move { Ok(msg) })
    }

    fn publish_keyed(
        &self,
        topic: &str,
        data: Value,
        key: &str,
        dedupe: Dedupe,
    ) -> BoxFuture<'_, Result<Keyed>> {
        let now = now_ms();
        // Lock order: the keys, then the topics (`publish_now`).
        let mut keys = lock(&self.keys);
        let out = match keys.get(topic, key, now, dedupe) {
            Some(first) => Keyed::Repeat(first),
            None => {
                let msg = self.publish_now(topic, data, None);
                let at = Position {
                    epoch: msg.epoch.clone(),
                    seq: msg.seq,
                };
                keys.insert(topic, key, at, now, dedupe);
                Keyed::New(msg)
            }
        };
        drop(keys);
        Box::pin(async move { Ok(out) })
    }

    fn subscribe<'a>(&'a self, r: Subscribe<'a>) -> BoxFuture<'a, Result<()>> {
        loop {
            let entry = lock(&self.topics)
                .entry(r.topic.to_string())
                .or_default()
                .clone();
            let mut subs = lock(&entry);
            if subs.gone {
                continue;
            }
            let position = self.history.position_now(r.topic);
            let replay = r.since.map(|s| self.history.since_now(r.topic, &s));
            let latest = self.history.latest_now(r.topic);
            (r.on_ready)(&Subscribed {
                position,
                replay,
                latest,
            });
            if let Some(slot) = subs.list.iter_mut().find(|(i, _)| *i == r.id) {
                slot.1 = r.subscriber;
            } else {
                self.registry.topic_subscribed(subs.list.is_empty());
                subs.list.push((r.id, r.subscriber));
            }
            return Box::pin(async { Ok(()) });
        }
    }

    fn unsubscribe(&self, topic: &str, id: u64) -> bool {
        // Lock order: the map, then the topic. Nothing takes the map while
        // holding a topic.
        let mut topics = lock(&self.topics);
        let Some(entry) = topics.get(topic).cloned() else {
            return false;
        };
        let mut subs = lock(&entry);
        let before = subs.list.len();
        subs.list.retain(|(i, _)| *i != id);
        let removed = subs.list.len() < before;
        if removed {
            self.registry.topic_unsubscribed(subs.list.is_empty());
            if subs.list.is_empty() {
                subs.gone = true;
                topics.remove(topic);
            }
        }
        removed
    }

    fn subscribe_pattern(&self, pattern: &str, id: u64, subscriber: Arc<dyn Subscriber>) {
        self.registry
            .subscribe_pattern(pattern, id, subscriber, |_| String::new());
    }

    fn unsubscribe_pattern(&self, pattern: &str, id: u64) {
        self.registry.unsubscribe_pattern(pattern, id);
    }

    fn active_streams(&self) -> usize {
        self.registry.active()
    }

    fn subscriptions(&self) -> usize {
        self.registry.subscriptions()
    }

    fn history(&self) -> &dyn History {
        &*self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Records the `seq`s delivered to it.
    #[derive(Default)]
    struct Seqs(Mutex<Vec<u64>>);

    impl Subscriber for Seqs {
        fn deliver(&self, msg: &Arc<Published>) {
            lock(&self.0).push(msg.seq);
        }
    }

    fn broker() -> MemoryBroker {
        MemoryBroker::new(Arc::new(MemoryHistory::new(
            100_000,
            Duration::from_secs(600),
        )))
    }

    /// Subscribes `sub` as `id`; returns the position it starts after.
    fn subscribe(b: &MemoryBroker, topic: &str, id: u64, sub: Arc<Seqs>) -> u64 {
        let at = Arc::new(AtomicUsize::new(0));
        let at2 = at.clone();
        b.subscribe(Subscribe {
            topic,
            id,
            subscriber: sub,
            since: None,
            on_ready: Box::new(move |s| at2.store(s.position.seq as usize, Ordering::SeqCst)),
        })
        .now_or_never()
        .expect("the memory broker answers at once")
        .unwrap();
        at.load(Ordering::SeqCst) as u64
    }

    #[test]
    fn a_topic_is_held_only_while_it_has_subscribers() {
        let b = broker();
        for i in 0..1_000 {
            let topic = format!("order:{i}");
            subscribe(&b, &topic, 1, Arc::default());
            subscribe(&b, &topic, 2, Arc::default());
            b.publish(&topic, json!(i), None).now_or_never();
            assert!(b.unsubscribe(&topic, 1));
            assert_eq!(b.topics_held(), 1, "one subscriber left");
            assert!(b.unsubscribe(&topic, 2));
            assert!(!b.unsubscribe(&topic, 2), "already gone");
            // Publishing to a topic nobody follows creates no entry either.
            b.publish(&format!("log:{i}"), json!(i), None)
                .now_or_never();
        }
        assert_eq!(b.topics_held(), 0);
        assert_eq!((b.active_streams(), b.subscriptions()), (0, 0));
    }

    /// Subscribers that come and go (taking the topic's entry with them)
    /// while others publish: whoever stays gets every message after its
    /// starting position, once and in order.
    #[test]
    fn entries_removed_under_racing_publishes_lose_nothing() {
        let b = Arc::new(broker());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (b, stop) = (b.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        b.publish("t", json!(0), None).now_or_never();
                    }
                })
            })
            .collect();
        let mut checked = 0;
        for round in 0..2_000u64 {
            // The only subscriber: its leaving removes the entry each round.
            let sub = Arc::new(Seqs::default());
            let from = subscribe(&b, "t", round, sub.clone());
            std::thread::yield_now();
            assert!(b.unsubscribe("t", round));
            let got = lock(&sub.0).clone();
            let want: Vec<u64> = (from + 1..from + 1 + got.len() as u64).collect();
            assert_eq!(got, want, "round {round}: a gap or a duplicate");
            checked += got.len();
        }
        stop.store(true, Ordering::Relaxed);
        for p in publishers {
            p.join().unwrap();
        }
        assert!(checked > 0, "the publishers overlapped the subscriptions");
        assert_eq!(b.topics_held(), 0);
    }
}
