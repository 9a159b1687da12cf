//! The broker: topics, subscribers and fan-out of published messages.
//!
//! [`Broker`] is the seam for scale-out: the in-memory [`MemoryBroker`] is the
//! default, [`RedisBroker`] shares topics and history between nodes through
//! Redis behind the same trait. Both keep their pattern subscribers and counts
//! in one [`registry`](self::registry) kind.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::history::{History, Position, Replay};
use crate::published::Published;
use crate::Result;

mod dedupe;
mod memory;
pub mod redis;
mod registry;

pub use memory::MemoryBroker;
pub use redis::{RedisBroker, RedisOptions};

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

/// What a publish with an idempotency key did.
#[derive(Debug)]
pub enum Keyed {
    /// Published now.
    New(Arc<Published>),
    /// The key was seen within the window: nothing was published; the first
    /// publish's position.
    Repeat(Position),
}

/// How long and how many idempotency keys a topic remembers (`--dedup-window`, `--dedup-max`).
#[derive(Clone, Copy, Debug)]
pub struct Dedupe {
    /// Age after which a key is forgotten, in ms.
    pub window_ms: u64,
    /// Most keys per topic; the oldest are forgotten first.
    pub max: usize,
}

/// Callback run once when a subscription starts, before any live message.
pub type OnReady<'a> = Box<dyn FnOnce(&Subscribed) + Send + 'a>;

/// One subscriber's subscription to one topic, as [`Broker::subscribe`] takes it.
pub struct Subscribe<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The subscriber's id (its connection's); subscribing again with the
    /// same id replaces the earlier registration.
    pub id: u64,
    /// Where the topic's messages go.
    pub subscriber: Arc<dyn Subscriber>,
    /// Replay what came after this position first.
    pub since: Option<Position>,
    /// Run once, with what the subscribe found, before any live message.
    pub on_ready: OnReady<'a>,
}

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
    /// Publishes `data` on `topic` once per idempotency `key`: a key seen on
    /// the topic within `dedupe` answers the first publish's position and
    /// publishes nothing. Atomic with the `seq` assignment, so concurrent
    /// repeats (on any node) deliver once.
    fn publish_keyed(
        &self,
        topic: &str,
        data: Value,
        key: &str,
        dedupe: Dedupe,
    ) -> BoxFuture<'_, Result<Keyed>>;
    /// Subscribes (or re-subscribes, replacing the earlier registration of `id`).
    fn subscribe<'a>(&'a self, request: Subscribe<'a>) -> BoxFuture<'a, Result<()>>;
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
