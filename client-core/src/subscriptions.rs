//! The registry of topics the application wants, with per-topic state.

use crate::protocol::Position;
use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

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
    /// Whether a message was delivered since the current subscribe was sent:
    /// then it is at least as new as the position its ack reports.
    pub(crate) delivered_since_sent: bool,
    /// The highest `seq` delivered in each of the last few epochs, newest
    /// first: a message from an epoch the stream has left (a node with stale
    /// history, say) is still delivered at most once.
    pub(crate) delivered: Vec<Position>,
}

/// How many epochs per topic [`Subscription::delivered`] remembers.
pub(crate) const REMEMBERED_EPOCHS: usize = 4;

/// The topics the application subscribed to, in name order.
/// A sorted `Vec` rather than a `BTreeMap`: applications want a handful of
/// topics, and the B-tree's code costs about 3 KB gzipped in the browser build.
#[derive(Clone, Debug, Default)]
pub struct Subscriptions {
    entries: Vec<(String, Subscription)>,
}

impl Subscriptions {
    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(t, _)| t.as_str().cmp(topic))
    }

    /// Whether `topic` is wanted.
    pub fn contains(&self, topic: &str) -> bool {
        self.find(topic).is_ok()
    }

    /// The wanted topics, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(t, _)| t.as_str())
    }

    /// One topic's subscription.
    pub fn get(&self, topic: &str) -> Option<&Subscription> {
        self.find(topic).ok().map(|i| &self.entries[i].1)
    }

    /// How many topics are wanted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no topic is wanted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut Subscription> {
        let i = self.find(topic).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Adds `topic` as pending; false when it was there already.
    pub(crate) fn insert(&mut self, topic: &str) -> bool {
        let Err(i) = self.find(topic) else {
            return false;
        };
        let sub = Subscription {
            state: SubscriptionState::Pending,
            position: None,
            established_before: false,
            sent_since: false,
            delivered_since_sent: false,
            delivered: Vec::new(),
        };
        self.entries.insert(i, (topic.to_owned(), sub));
        true
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<Subscription> {
        let i = self.find(topic).ok()?;
        Some(self.entries.remove(i).1)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Subscription)> {
        self.entries.iter_mut().map(|(t, s)| (&*t, s))
    }
}
