//! The registry of topics the application wants, with per-topic state.

use crate::protocol::Position;
use std::collections::BTreeMap;

/// Where a subscription stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Wanted, not sent yet (offline, or waiting for the connection).
    Pending,
    /// Sent, waiting for the server's ack.
    Subscribing,
    /// Established.
    Subscribed,
    /// The server refused it; the reason is kept. It is tried again after the
    /// next reconnect (a new token may allow it).
    Failed(String),
}

/// One topic's subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Where it stands.
    pub state: SubscriptionState,
    /// The last position delivered to the application, or the stream position
    /// the server reported when subscribing; `since` on the next resubscribe.
    pub position: Option<Position>,
    /// Whether it was established on some connection before, so that a
    /// resubscribe without recovery can be reported as a possible loss.
    pub(crate) established_before: bool,
    /// Whether the current subscribe carried `since`.
    pub(crate) sent_since: bool,
}

/// The topics the application subscribed to, in name order.
#[derive(Clone, Debug, Default)]
pub struct Subscriptions {
    map: BTreeMap<String, Subscription>,
}

impl Subscriptions {
    /// Whether `topic` is wanted.
    pub fn contains(&self, topic: &str) -> bool {
        self.map.contains_key(topic)
    }

    /// The wanted topics, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// One topic's subscription.
    pub fn get(&self, topic: &str) -> Option<&Subscription> {
        self.map.get(topic)
    }

    /// How many topics are wanted.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no topic is wanted.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut Subscription> {
        self.map.get_mut(topic)
    }

    /// Adds `topic` as pending; false when it was there already.
    pub(crate) fn insert(&mut self, topic: &str) -> bool {
        if self.map.contains_key(topic) {
            return false;
        }
        self.map.insert(
            topic.to_owned(),
            Subscription {
                state: SubscriptionState::Pending,
                position: None,
                established_before: false,
                sent_since: false,
            },
        );
        true
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<Subscription> {
        self.map.remove(topic)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Subscription)> {
        self.map.iter_mut()
    }
}
