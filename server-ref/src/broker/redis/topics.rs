//! This node's subscribers of Redis topics: per topic, who is live and who
//! is still reading its snapshot (*pending*, its live messages buffered), the
//! last position delivered, and the catch-up after a gap.
//!
//! Nothing here talks to Redis: the methods say what the pub/sub link has to
//! do (unsubscribe a channel, catch a topic up).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::broker::registry::Registry;
use crate::broker::{OnReady, Subscribed, Subscriber};
use crate::history::{Position, Replay};
use crate::published::Published;

use super::history::Snapshot;

enum Member {
    /// Receiving. With a position: the subscription's replay went up to it,
    /// so messages up to it that were still on their way on the channel when
    /// it went live are not delivered twice.
    Live(Arc<dyn Subscriber>, Option<Position>),
    /// Subscribing: live messages wait in `buf` until the snapshot is read.
    Pending {
        sub: Arc<dyn Subscriber>,
        buf: Vec<Arc<Published>>,
        /// It was live before (a re-subscribe): on failure it goes back to live.
        was_live: bool,
    },
    /// Only while a member is moved from one state to the other.
    Moving,
}

/// One topic's local subscribers.
#[derive(Default)]
pub(super) struct Topic {
    members: Vec<(u64, Member)>,
    /// The last message delivered on this node (or the position its first
    /// subscriber started from).
    last: Option<Position>,
    /// Catching up after a gap: live messages wait here.
    resync: Option<Vec<Arc<Published>>>,
    /// The channel subscription is confirmed on the current pub/sub connection.
    subscribed: bool,
}

impl Topic {
    fn live(&self) -> impl Iterator<Item = (&Arc<dyn Subscriber>, Option<&Position>)> {
        self.members.iter().filter_map(|(_, m)| match m {
            Member::Live(s, had) => Some((s, had.as_ref())),
            _ => None,
        })
    }

    fn take(&mut self, i: usize) -> Member {
        std::mem::replace(&mut self.members[i].1, Member::Moving)
    }
}

/// Whether a member whose replay reached `had` already has `msg`.
fn had_it(had: Option<&Position>, msg: &Published) -> bool {
    had.is_some_and(|p| *p.epoch == *msg.epoch && msg.seq <= p.seq)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A topic's entry, held across a wait (the catch-up reads Redis meanwhile).
pub(super) type Entry = Arc<Mutex<Topic>>;

/// Every topic with local subscribers, and the pattern subscribers.
#[derive(Default)]
pub(super) struct LocalTopics {
    // Lock order: `topics`, then one topic.
    topics: Mutex<HashMap<String, Entry>>,
    /// Pattern subscribers (keyed by their channel glob) and the counts.
    pub(super) registry: Registry,
}

impl LocalTopics {
    fn entry(&self, topic: &str) -> Option<Entry> {
        lock(&self.topics).get(topic).cloned()
    }

    /// Registers `sub` as `id`, pending: its live messages are buffered until
    /// [`LocalTopics::go_live`].
    pub(super) fn register_pending(&self, topic: &str, id: u64, sub: Arc<dyn Subscriber>) {
        let mut topics = lock(&self.topics);
        let entry = topics.entry(topic.to_string()).or_default().clone();
        let mut t = lock(&entry);
        drop(topics);
        if let Some((_, m)) = t.members.iter_mut().find(|(i, _)| *i == id) {
            let was_live = match m {
                Member::Pending { was_live, .. } => *was_live,
                _ => true,
            };
            *m = Member::Pending {
                sub,
                buf: Vec::new(),
                was_live,
            };
        } else {
            self.registry.topic_subscribed(t.members.is_empty());
            t.members.push((
                id,
                Member::Pending {
                    sub,
                    buf: Vec::new(),
                    was_live: false,
                },
            ));
        }
    }

    /// A subscribe that failed or was dropped: back to live if it was a
    /// re-subscribe (with what arrived meanwhile), else gone. True when the
    /// topic's last member left (its channel is to be unsubscribed).
    pub(super) fn abandon(&self, topic: &str, id: u64) -> bool {
        let Some(entry) = self.entry(topic) else {
            return false;
        };
        let mut t = lock(&entry);
        let Some(i) = t.members.iter().position(|(m, _)| *m == id) else {
            return false;
        };
        match t.take(i) {
            Member::Pending {
                sub,
                buf,
                was_live: true,
            } => {
                for m in &buf {
                    sub.deliver(m);
                }
                t.members[i].1 = Member::Live(sub, None);
                false
            }
            _ => self.remove_at(&mut t, i),
        }
    }

    /// Removes member `id`: `None` when it was not subscribed, else whether
    /// it was the topic's last (its channel is to be unsubscribed).
    pub(super) fn unsubscribe(&self, topic: &str, id: u64) -> Option<bool> {
        let entry = self.entry(topic)?;
        let mut t = lock(&entry);
        let i = t.members.iter().position(|(m, _)| *m == id)?;
        Some(self.remove_at(&mut t, i))
    }

    fn remove_at(&self, t: &mut Topic, i: usize) -> bool {
        t.members.swap_remove(i);
        let last = t.members.is_empty();
        self.registry.topic_unsubscribed(last);
        last
    }

    /// Turns pending member `id` live after its snapshot: ack and replay
    /// (`on_ready`), then what arrived since the snapshot.
    pub(super) fn go_live(&self, topic: &str, id: u64, snap: Snapshot, on_ready: OnReady<'_>) {
        let Some(entry) = self.entry(topic) else {
            return;
        };
        let mut t = lock(&entry);
        let Some(i) = t.members.iter().position(|(m, _)| *m == id) else {
            return;
        };
        let (sub, buf) = match t.take(i) {
            Member::Pending { sub, buf, .. } => (sub, buf),
            other => {
                t.members[i].1 = other;
                return;
            }
        };
        let pos = snap.position.clone();
        on_ready(&Subscribed {
            position: snap.position,
            replay: snap.replay,
            latest: snap.latest,
        });
        for m in &buf {
            if *m.epoch != *pos.epoch || m.seq > pos.seq {
                sub.deliver(m);
            }
        }
        t.members[i].1 = Member::Live(sub, Some(pos.clone()));
        // Every message received on the channel moved `last` already; before
        // the first one, the snapshot is where this node stands.
        if t.last.is_none() {
            t.last = Some(pos);
        }
    }

    /// Whether `topic`'s channel is confirmed subscribed; `None` when nobody
    /// here follows the topic any more.
    pub(super) fn channel_subscribed(&self, topic: &str) -> Option<bool> {
        self.entry(topic).map(|e| lock(&e).subscribed)
    }

    /// Records that `topic`'s channel is subscribed.
    pub(super) fn set_channel_subscribed(&self, topic: &str) {
        if let Some(e) = self.entry(topic) {
            lock(&e).subscribed = true;
        }
    }

    /// Drops `topic`'s entry when nobody is subscribed; returns whether its
    /// channel is to be unsubscribed.
    pub(super) fn forget_if_empty(&self, topic: &str) -> bool {
        let mut topics = lock(&self.topics);
        let Some(entry) = topics.get(topic).cloned() else {
            return false;
        };
        let t = lock(&entry);
        if !t.members.is_empty() {
            return false;
        }
        let subscribed = t.subscribed;
        drop(t);
        topics.remove(topic);
        subscribed
    }

    /// Topics with members, for subscribing their channels again.
    pub(super) fn wanted(&self) -> Vec<(String, Entry)> {
        let entries: Vec<(String, Entry)> = lock(&self.topics)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        entries
            .into_iter()
            .filter(|(_, e)| !lock(e).members.is_empty())
            .collect()
    }

    /// Marks the channels of `entries` subscribed.
    pub(super) fn subscribed(entries: &[(String, Entry)]) {
        for (_, e) in entries {
            lock(e).subscribed = true;
        }
    }

    /// The pub/sub connection is gone: every topic with live members will
    /// have to catch up.
    pub(super) fn connection_lost(&self) {
        let topics = lock(&self.topics);
        for entry in topics.values() {
            let mut t = lock(entry);
            t.subscribed = false;
            if t.live().next().is_some() && t.resync.is_none() {
                t.resync = Some(Vec::new());
            }
        }
    }

    /// Topics waiting to catch up.
    pub(super) fn behind(&self) -> Vec<String> {
        lock(&self.topics)
            .iter()
            .filter(|(_, e)| lock(e).resync.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Delivers a message received on `topic`'s channel, in order. Returns
    /// true when it reveals a gap: the topic must catch up ([`Catch::start`]).
    pub(super) fn on_message(&self, node: &str, topic: &str, msg: Arc<Published>) -> bool {
        let Some(entry) = self.entry(topic) else {
            return false;
        };
        let mut t = lock(&entry);
        for (_, m) in t.members.iter_mut() {
            if let Member::Pending { buf, .. } = m {
                buf.push(msg.clone());
            }
        }
        if let Some(buf) = &mut t.resync {
            buf.push(msg);
            return false;
        }
        match &t.last {
            Some(l) if l.epoch == msg.epoch && msg.seq <= l.seq => return false,
            Some(l) if l.epoch != msg.epoch || msg.seq != l.seq + 1 => {
                tracing::info!(
                    node,
                    topic,
                    "redis: {}:{} after {}:{} on the channel: catching up from the stream",
                    msg.epoch,
                    msg.seq,
                    l.epoch,
                    l.seq
                );
                t.resync = Some(vec![msg]);
                return true;
            }
            _ => {}
        }
        for (s, had) in t.live() {
            if !had_it(had, &msg) {
                s.deliver(&msg);
            }
        }
        t.last = Some(Position {
            epoch: msg.epoch.clone(),
            seq: msg.seq,
        });
        false
    }
}

/// A topic's catch-up after a gap, in two steps around the read of the
/// stream: [`Catch::start`] says from where, [`Catch::finish`] delivers.
pub(super) struct Catch {
    entry: Entry,
    /// The position to read the stream from (`None`: nothing delivered yet).
    pub(super) since: Option<Position>,
}

impl Catch {
    /// The catch-up of `topic`, if it still has an entry.
    pub(super) fn start(topics: &LocalTopics, topic: &str) -> Option<Catch> {
        let entry = topics.entry(topic)?;
        let since = lock(&entry).last.clone();
        Some(Catch { entry, since })
    }

    /// Fills what this node missed from `snap` (the stream read from
    /// `since`), then what waited meanwhile. Returns the subscribers to tell
    /// through [`Subscriber::missed`] when the stream could not vouch for
    /// every message (none when it could).
    pub(super) fn finish(
        self,
        node: &str,
        topic: &str,
        snap: Option<crate::Result<Snapshot>>,
    ) -> Vec<Arc<dyn Subscriber>> {
        let mut t = lock(&self.entry);
        let buf = t.resync.take().unwrap_or_default();
        let live: Vec<(Arc<dyn Subscriber>, Option<Position>)> =
            t.live().map(|(s, had)| (s.clone(), had.cloned())).collect();
        let mut lost = false;
        match snap {
            Some(Ok(snap)) => {
                match snap.replay {
                    Some(Replay::Recovered(msgs)) => {
                        let topic: Arc<str> = topic.into();
                        for (s, had) in &live {
                            let missing: Vec<_> = msgs
                                .iter()
                                .filter(|m| !had_it(had.as_ref(), m))
                                .cloned()
                                .collect();
                            if !missing.is_empty() {
                                s.catch_up(&topic, missing);
                            }
                        }
                    }
                    _ => lost = true,
                }
                t.last = Some(snap.position);
            }
            Some(Err(e)) => {
                tracing::warn!(node, topic, "redis: cannot catch up: {e}");
                lost = true;
            }
            None => {}
        }
        for m in buf {
            let next = match &t.last {
                Some(l) if l.epoch == m.epoch && m.seq <= l.seq => continue,
                Some(l) => l.epoch == m.epoch && m.seq == l.seq + 1,
                None => true,
            };
            lost |= !next;
            for (s, had) in &live {
                if !had_it(had.as_ref(), &m) {
                    s.deliver(&m);
                }
            }
            t.last = Some(Position {
                epoch: m.epoch.clone(),
                seq: m.seq,
            });
        }
        if !lost {
            return Vec::new();
        }
        tracing::info!(
            node,
            topic,
            subscribers = live.len(),
            "redis: missed messages the history cannot replay: asking subscribers to resubscribe"
        );
        live.into_iter().map(|(s, _)| s).collect()
    }
}
