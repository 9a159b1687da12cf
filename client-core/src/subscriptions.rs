//! The registry of topics the application wants, and each [`Subscription`]'s
//! own rules: what a (re)subscribe recovers, what its ack means, and which
//! messages are new (at most once, in order, gaps reported).

use crate::protocol::Position;
use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

/// What a (re)subscription means for the messages the application holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// A first subscription: nothing was missed.
    Fresh,
    /// A resubscription and every missed message follows, in order.
    Recovered,
    /// A resubscription after which missed messages cannot be replayed (out of
    /// the history window, the epoch changed, or the dialect has no history):
    /// refetch the state.
    Lost,
}

impl Recovery {
    /// Its name in lower case, as events on the wire and in TypeScript spell it.
    pub fn name(self) -> &'static str {
        match self {
            Recovery::Fresh => "fresh",
            Recovery::Recovered => "recovered",
            Recovery::Lost => "lost",
        }
    }
}

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
    established_before: bool,
    /// Whether the current subscribe carried `since`.
    sent_since: bool,
    /// Whether a message was delivered since the current subscribe was sent:
    /// then it is at least as new as the position its ack reports.
    delivered_since_sent: bool,
    /// The highest `seq` delivered in each of the last few epochs, newest
    /// first: a message from an epoch the stream has left (a node with stale
    /// history, say) is still delivered at most once.
    delivered: Vec<Position>,
}

/// How many epochs per topic [`Subscription`] remembers delivered positions of.
const REMEMBERED_EPOCHS: usize = 4;

/// What [`Subscription::admit`] decided about a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Delivered before (or older than where the subscription started): drop it.
    Old,
    /// New, and the next one after the last delivered.
    Next,
    /// New, after missing messages: this position was the last delivered before.
    Gap(Position),
}

/// What the server's answer to a subscribe means, by [`Subscription::acked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Acked {
    /// An ack for an earlier subscribe of a topic that is established: not news.
    Stale,
    /// Established, with what it recovered.
    Subscribed(Recovery),
    /// Refused, with the server's reason.
    Failed(String),
}

impl Subscription {
    fn new() -> Self {
        Subscription {
            state: SubscriptionState::Pending,
            position: None,
            established_before: false,
            sent_since: false,
            delivered_since_sent: false,
            delivered: Vec::new(),
        }
    }

    /// Resumes after `position`, delivered before this subscription existed
    /// (by another connection): the next subscribe carries it as `since`, and
    /// one that does not recover from it reports the loss.
    pub(crate) fn resume_from(&mut self, position: Position) {
        self.position = Some(position);
        self.established_before = true;
    }

    /// Where the next subscribe resumes from: the position, for a dialect
    /// with recovery.
    pub(crate) fn since(&self, recovery: bool) -> Option<&Position> {
        self.position.as_ref().filter(|_| recovery)
    }

    /// A subscribe went out (`with_since` a position to resume from, or
    /// not). When the server will ack it (`acked`), it is `Subscribing` until
    /// [`acked`](Self::acked); otherwise it is established now, and the answer
    /// is what that recovered: nothing, so a resubscription may have lost messages.
    #[inline(always)]
    pub(crate) fn sent(&mut self, with_since: bool, acked: bool) -> Option<Recovery> {
        self.sent_since = with_since;
        self.delivered_since_sent = false;
        if acked {
            self.state = SubscriptionState::Subscribing;
            return None;
        }
        let recovery = if self.established_before {
            Recovery::Lost
        } else {
            Recovery::Fresh
        };
        self.establish();
        Some(recovery)
    }

    #[inline(always)]
    fn establish(&mut self) {
        self.state = SubscriptionState::Subscribed;
        self.established_before = true;
    }

    /// The connection is gone: subscribed again on the next one.
    pub(crate) fn unestablish(&mut self) {
        self.state = SubscriptionState::Pending;
    }

    /// The server's ack of the current subscribe: `success`, its `error`,
    /// whether it `recovered` the missed messages and its stream `position`.
    /// `supports_recovery` is the dialect's.
    #[inline(always)]
    pub(crate) fn acked(
        &mut self,
        success: bool,
        error: Option<String>,
        recovered: Option<bool>,
        position: Option<Position>,
        supports_recovery: bool,
    ) -> Acked {
        if self.state == SubscriptionState::Subscribed {
            // An ack for an earlier subscribe of the same topic (unsubscribed
            // and subscribed again before the server answered): the first ack
            // established it, this one is not news.
            return Acked::Stale;
        }
        if !success {
            let error = error.unwrap_or_else(|| "refused without a reason".to_owned());
            self.state = SubscriptionState::Failed(error.clone());
            return Acked::Failed(error);
        }
        let recovery = match (supports_recovery && self.sent_since, recovered) {
            (true, Some(true)) => Recovery::Recovered,
            (true, _) => Recovery::Lost,
            (false, _) if self.established_before => Recovery::Lost,
            (false, _) => Recovery::Fresh,
        };
        if recovery != Recovery::Recovered && !self.delivered_since_sent {
            // Continue from the server's position, unless messages delivered
            // since the subscribe went out are newer than its snapshot; and
            // never move back within an epoch: what was delivered stays
            // delivered (at most once), even if a server reports an older
            // position than it sent.
            match (position, &self.position) {
                (Some(new), Some(old)) if new.epoch == old.epoch && new.seq < old.seq => {}
                (Some(new), _) => self.position = Some(new),
                (None, _) => {}
            }
        }
        self.establish();
        Acked::Subscribed(recovery)
    }

    /// At-most-once delivery: whether a message at `seq` in `epoch` is new,
    /// and if so whether messages are missing before it. A new one moves the
    /// position.
    #[inline(always)]
    pub(crate) fn admit(&mut self, epoch: &str, seq: u64) -> Admitted {
        // Not at or before the position the subscription started from or
        // reached, nor at or before what was delivered in a remembered epoch.
        let before_position = self
            .position
            .as_ref()
            .is_some_and(|p| p.epoch == epoch && seq <= p.seq);
        let delivered_before = self
            .delivered
            .iter()
            .any(|p| p.epoch == epoch && seq <= p.seq);
        if before_position || delivered_before {
            return Admitted::Old;
        }
        self.delivered_since_sent = true;
        let next = || Position {
            epoch: epoch.to_owned(),
            seq,
        };
        match self.delivered.iter().position(|p| p.epoch == epoch) {
            Some(0) => self.delivered[0].seq = seq, // the common case: no allocation
            Some(i) => {
                let mut entry = self.delivered.remove(i);
                entry.seq = seq;
                self.delivered.insert(0, entry);
            }
            None => {
                self.delivered.insert(0, next());
                self.delivered.truncate(REMEMBERED_EPOCHS);
            }
        }
        match &mut self.position {
            Some(last) if last.epoch == epoch && seq == last.seq + 1 => {
                last.seq = seq;
                Admitted::Next
            }
            Some(last) => Admitted::Gap(core::mem::replace(last, next())),
            None => {
                self.position = Some(next());
                Admitted::Next
            }
        }
    }
}

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

    /// Adds `topic` as pending and returns it; `None` when it was there already.
    pub(crate) fn insert(&mut self, topic: &str) -> Option<&mut Subscription> {
        let i = self.find(topic).err()?;
        self.entries
            .insert(i, (topic.to_owned(), Subscription::new()));
        Some(&mut self.entries[i].1)
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<Subscription> {
        let i = self.find(topic).ok()?;
        Some(self.entries.remove(i).1)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Subscription)> {
        self.entries.iter_mut().map(|(t, s)| (&*t, s))
    }
}
