//! The broker: topics, subscribers and fan-out of published messages.
//!
//! [`Broker`] is the seam for scale-out: the in-memory [`MemoryBroker`] is the
//! default, [`RedisBroker`](crate::redis_broker::RedisBroker) shares topics and history
//! between nodes through Redis behind the same trait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::auth::pattern_matches;
use crate::history::{History, MemoryHistory, Position, Replay};
use crate::Result;

/// How many rendered shapes a message can have (see [`crate::frames::Shape`]).
pub(crate) const SHAPES: usize = 6;

/// A message accepted by the broker, with its position. Each endpoint's rendering
/// of it is serialised once, on first use, and shared by every subscriber.
pub struct Published {
    /// The topic it was published on.
    pub topic: Arc<str>,
    /// Its position in the topic's stream.
    pub seq: u64,
    /// The topic's epoch.
    pub epoch: Arc<str>,
    /// The application payload.
    pub data: Value,
    /// When the server accepted it, ms since the Unix epoch.
    pub timestamp: u64,
    /// Shared by the copies of one event published to several rooms, so a
    /// connection in several of those rooms gets it once.
    pub event_id: Option<u64>,
    pub(crate) frames: [OnceLock<Utf8Bytes>; SHAPES],
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("topic", &self.topic)
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Published {
    /// A message at `seq` in `epoch`.
    pub fn new(
        topic: Arc<str>,
        seq: u64,
        epoch: Arc<str>,
        data: Value,
        timestamp: u64,
        event_id: Option<u64>,
    ) -> Published {
        Published {
            topic,
            seq,
            epoch,
            data,
            timestamp,
            event_id,
            frames: Default::default(),
        }
    }
}

/// Something that receives a topic's messages: a connection. `deliver` must not
/// block: it runs while the broker holds the topic's lock.
pub trait Subscriber: Send + Sync {
    /// Hands over one message.
    fn deliver(&self, msg: &Arc<Published>);
    /// Hands over the messages of `topic` that a node caught up after its
    /// link to a shared broker broke, in order, before any later delivery.
    /// Default: each through [`Subscriber::deliver`]; a connection paces them
    /// by its socket instead, since there may be a whole history window.
    fn catch_up(&self, _topic: &Arc<str>, msgs: Vec<Arc<Published>>) {
        for m in &msgs {
            self.deliver(m);
        }
    }
    /// Messages of `topic` were lost on their way to this node (its link to a
    /// shared broker broke) and the history could not fill the gap. A
    /// subscriber whose client can recover asks it to reconnect, so that it
    /// resubscribes with `since` and learns `recovered: false`. Default: nothing.
    fn missed(&self, _topic: &str) {}
}

/// The health of the broker's backend, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatus {
    /// `"memory"` or `"redis"`.
    pub kind: &'static str,
    /// Whether the backend is reachable (always true in memory).
    pub up: bool,
    /// Why it is down, when it is.
    pub reason: Option<String>,
    /// Failed backend operations since start.
    pub errors: u64,
}

/// What a subscribe found, handed to its `on_ready` callback.
#[derive(Debug)]
pub struct Subscribed {
    /// The topic's position when the subscription started.
    pub position: Position,
    /// With `since`: the replay, or `Lost`.
    pub replay: Option<Replay>,
    /// The latest message still in the window (for endpoints that send the
    /// current value on subscribe).
    pub latest: Option<Arc<Published>>,
}

/// Callback run once when a subscription starts, before any live message.
pub type OnReady<'a> = Box<dyn FnOnce(&Subscribed) + Send + 'a>;

/// Publish/subscribe with history. Contract of `subscribe`: `on_ready` runs exactly
/// once, before any live delivery to the subscriber, and every message with a `seq`
/// above the reported position is delivered live afterwards, in order: no gap and
/// no duplicate between the replay and the live stream.
pub trait Broker: Send + Sync {
    /// Publishes `data` on `topic`, assigning its `seq`.
    fn publish(
        &self,
        topic: &str,
        data: Value,
        event_id: Option<u64>,
    ) -> BoxFuture<'_, Result<Arc<Published>>>;
    /// Subscribes (or re-subscribes, replacing the earlier registration of `id`).
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        id: u64,
        subscriber: Arc<dyn Subscriber>,
        since: Option<Position>,
        on_ready: OnReady<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes subscriber `id` from `topic`; false when it was not subscribed.
    fn unsubscribe(&self, topic: &str, id: u64) -> bool;
    /// Subscribes to every topic matching `pattern` (no history, no replay).
    fn subscribe_pattern(&self, pattern: &str, id: u64, subscriber: Arc<dyn Subscriber>);
    /// Undoes [`Broker::subscribe_pattern`].
    fn unsubscribe_pattern(&self, pattern: &str, id: u64);
    /// Topics (and patterns) with at least one subscriber.
    fn active_streams(&self) -> usize;
    /// Subscriptions over all topics and patterns.
    fn subscriptions(&self) -> usize;
    /// The history behind the broker.
    fn history(&self) -> &dyn History;
    /// The backend's health.
    fn status(&self) -> BrokerStatus {
        BrokerStatus {
            kind: "memory",
            up: true,
            reason: None,
            errors: 0,
        }
    }
    /// Completes, with the reason, when the backend turned out at start to be
    /// one the broker cannot work with (a Redis Cluster node, a Sentinel): the
    /// server then stops with that message. The default never completes.
    fn unusable(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
}

type PatternSubs = Vec<(String, u64, Arc<dyn Subscriber>)>;

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
    patterns: RwLock<PatternSubs>,
    history: Arc<MemoryHistory>,
    active: AtomicUsize,
    subscriptions: AtomicUsize,
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
            patterns: RwLock::new(Vec::new()),
            history,
            active: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
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
                self.deliver_to_patterns(topic, &msg);
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
            self.deliver_to_patterns(topic, &msg);
            return msg;
        }
    }

    fn deliver_to_patterns(&self, topic: &str, msg: &Arc<Published>) {
        let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
        for (p, _, s) in patterns.iter() {
            if pattern_matches(p, topic) {
                s.deliver(msg);
            }
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

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        id: u64,
        subscriber: Arc<dyn Subscriber>,
        since: Option<Position>,
        on_ready: OnReady<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        loop {
            let entry = lock(&self.topics)
                .entry(topic.to_string())
                .or_default()
                .clone();
            let mut subs = lock(&entry);
            if subs.gone {
                continue;
            }
            let position = self.history.position_now(topic);
            let replay = since.map(|s| self.history.since_now(topic, &s));
            let latest = self.history.latest_now(topic);
            on_ready(&Subscribed {
                position,
                replay,
                latest,
            });
            if let Some(slot) = subs.list.iter_mut().find(|(i, _)| *i == id) {
                slot.1 = subscriber;
            } else {
                if subs.list.is_empty() {
                    self.active.fetch_add(1, Ordering::Relaxed);
                }
                subs.list.push((id, subscriber));
                self.subscriptions.fetch_add(1, Ordering::Relaxed);
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
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            if subs.list.is_empty() {
                self.active.fetch_sub(1, Ordering::Relaxed);
                subs.gone = true;
                topics.remove(topic);
            }
        }
        removed
    }

    fn subscribe_pattern(&self, pattern: &str, id: u64, subscriber: Arc<dyn Subscriber>) {
        let mut patterns = self.patterns.write().unwrap_or_else(|e| e.into_inner());
        if !patterns.iter().any(|(p, _, _)| p == pattern) {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        patterns.push((pattern.to_string(), id, subscriber));
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    fn unsubscribe_pattern(&self, pattern: &str, id: u64) {
        let mut patterns = self.patterns.write().unwrap_or_else(|e| e.into_inner());
        let before = patterns.len();
        patterns.retain(|(p, i, _)| !(p == pattern && *i == id));
        if patterns.len() < before {
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            if !patterns.iter().any(|(p, _, _)| p == pattern) {
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn active_streams(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
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
        b.subscribe(
            topic,
            id,
            sub,
            None,
            Box::new(move |s| at2.store(s.position.seq as usize, Ordering::SeqCst)),
        )
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
