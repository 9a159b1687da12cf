//! A connection's outbox: what waits for its writer, and the two budgets that
//! bound it.
//!
//! - **Live frames** (messages as they are published, acks, errors, pings) are
//!   held up to the connection's `--send-queue`. A reader that lets more pile up
//!   is not reading: the connection is closed as a slow consumer (4009).
//! - **Replays** (what a `subscribe` with `since` recovered, or what a node
//!   caught up after a broker outage) are the server's own output, as large as
//!   the history window. They are not counted against the send queue: the writer
//!   takes them a chunk at a time, as fast as the socket drains, so they are paced
//!   by the reader. While a topic is replaying, its live messages wait behind the
//!   replay in the same stream (in order, no duplicate); they may add at most a
//!   send queue's worth to what the replay held, past which the reader is a slow
//!   consumer again.
//!
//! Only [`Published`] pointers wait in a replay: the messages themselves are the
//! history's, shared with every other subscriber.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use crate::published::{Published, Shape};

/// One item for the writer.
pub(crate) enum Out {
    /// A text frame.
    Frame(Utf8Bytes),
    /// A WebSocket ping.
    Ping,
}

/// The outcome of adding to the outbox.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Taken; `wake` when the outbox was empty, so the writer may be waiting.
    Yes { wake: bool },
    /// Over the budget: the reader is a slow consumer.
    Full,
}

/// A topic's replay under way.
struct Replaying {
    topic: Arc<str>,
    shape: Shape,
    /// The `subscribe_ack` that precedes the replay, until it is taken.
    ack: Option<Utf8Bytes>,
    msgs: VecDeque<Arc<Published>>,
    /// Most messages `msgs` may hold: what the replay started with (or was
    /// extended by), plus one send queue of live messages.
    limit: usize,
}

/// The frames waiting for one connection's writer.
pub(crate) struct Outbox {
    live: VecDeque<Out>,
    /// Oldest first; the writer works on the first one.
    replays: Vec<Replaying>,
    capacity: usize,
}

impl Outbox {
    /// An empty outbox whose live frames are bounded by `capacity` (at least 1).
    /// Allocates nothing until the first frame.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            live: VecDeque::new(),
            replays: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// Nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty() && self.replays.is_empty()
    }

    /// Adds a live frame or ping.
    pub(crate) fn push(&mut self, out: Out) -> Pushed {
        if self.live.len() >= self.capacity {
            return Pushed::Full;
        }
        let wake = self.is_empty();
        self.live.push_back(out);
        Pushed::Yes { wake }
    }

    /// Adds a published message in `shape`: behind its topic's replay when one
    /// is under way, else as a live frame.
    pub(crate) fn push_published(&mut self, msg: &Arc<Published>, shape: Shape) -> Pushed {
        if let Some(r) = self.replays.iter_mut().find(|r| r.topic == msg.topic) {
            if r.msgs.len() >= r.limit {
                return Pushed::Full;
            }
            r.msgs.push_back(msg.clone());
            return Pushed::Yes { wake: false };
        }
        self.push(Out::Frame(msg.frame(shape)))
    }

    /// Starts (with `ack`: replaces) the replay of `topic`: `ack` first, then
    /// `msgs`, then the topic's live messages. Without `ack` (a node catching up
    /// after an outage), `msgs` go behind a replay already under way. With an
    /// `ack` and nothing to replay, the ack is an ordinary live frame.
    pub(crate) fn replay(
        &mut self,
        topic: &Arc<str>,
        shape: Shape,
        ack: Option<Utf8Bytes>,
        msgs: Vec<Arc<Published>>,
    ) -> Pushed {
        let at = self.replays.iter().position(|r| r.topic == *topic);
        if ack.is_some() {
            if let Some(i) = at {
                // A new subscription: the old replay answered the old one.
                self.replays.remove(i);
            }
        } else if let Some(i) = at {
            let r = &mut self.replays[i];
            r.msgs.extend(msgs);
            r.limit = r.msgs.len() + self.capacity;
            return Pushed::Yes { wake: false };
        }
        if msgs.is_empty() {
            return match ack {
                Some(ack) => self.push(Out::Frame(ack)),
                None => Pushed::Yes { wake: false },
            };
        }
        let wake = self.is_empty();
        let msgs = VecDeque::from(msgs);
        self.replays.push(Replaying {
            topic: topic.clone(),
            shape,
            ack,
            limit: msgs.len() + self.capacity,
            msgs,
        });
        Pushed::Yes { wake }
    }

    /// Drops what is left of `topic`'s replay (the client unsubscribed).
    pub(crate) fn cancel_replay(&mut self, topic: &str) {
        self.replays.retain(|r| &*r.topic != topic);
    }

    /// Moves every live frame into `batch` (which must be empty), then up to
    /// `chunk` items of the oldest replay. A replay leaves the outbox with its
    /// last item, so the topic's next live message is an ordinary frame again.
    pub(crate) fn take(&mut self, batch: &mut VecDeque<Out>, chunk: usize) {
        std::mem::swap(&mut self.live, batch);
        let Some(r) = self.replays.first_mut() else {
            return;
        };
        if let Some(ack) = r.ack.take() {
            batch.push_back(Out::Frame(ack));
        }
        let n = chunk.min(r.msgs.len());
        batch.extend(r.msgs.drain(..n).map(|m| Out::Frame(m.frame(r.shape))));
        if r.msgs.is_empty() {
            self.replays.remove(0);
        }
    }

    /// Moves everything into `batch`: the live frames, then every replay.
    pub(crate) fn take_all(&mut self, batch: &mut VecDeque<Out>) {
        self.take(batch, usize::MAX);
        while !self.replays.is_empty() {
            self.take(batch, usize::MAX);
        }
    }

    /// Empties the outbox and frees its memory.
    pub(crate) fn clear(&mut self) {
        *self = Outbox::new(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(topic: &str, seq: u64) -> Arc<Published> {
        Arc::new(Published::new(
            topic.into(),
            seq,
            "e".into(),
            json!(seq),
            0,
            None,
        ))
    }

    fn texts(batch: &VecDeque<Out>) -> Vec<String> {
        batch
            .iter()
            .map(|o| match o {
                Out::Frame(f) => f.as_str().to_string(),
                Out::Ping => "ping".into(),
            })
            .collect()
    }

    fn seqs(batch: &VecDeque<Out>) -> Vec<u64> {
        texts(batch)
            .iter()
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .filter(|v| v["type"] == "message")
            .map(|v| v["seq"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn live_frames_are_bounded_by_the_send_queue() {
        let mut o = Outbox::new(2);
        assert_eq!(o.push(Out::Ping), Pushed::Yes { wake: true });
        assert_eq!(o.push(Out::Ping), Pushed::Yes { wake: false });
        assert_eq!(o.push(Out::Ping), Pushed::Full);
    }

    #[test]
    fn a_replay_far_longer_than_the_send_queue_is_taken_in_chunks_after_its_ack() {
        let mut o = Outbox::new(4);
        let t: Arc<str> = "t".into();
        let msgs: Vec<_> = (1..=1000).map(|s| msg("t", s)).collect();
        let ack = Utf8Bytes::from_static("ack");
        assert_eq!(
            o.replay(&t, Shape::Hublink, Some(ack), msgs),
            Pushed::Yes { wake: true }
        );
        let mut batch = VecDeque::new();
        o.take(&mut batch, 300);
        assert_eq!(texts(&batch)[0], "ack");
        assert_eq!(seqs(&batch), (1..=300).collect::<Vec<_>>());
        let mut all = Vec::new();
        while !o.is_empty() {
            batch.clear();
            o.take(&mut batch, 300);
            all.extend(seqs(&batch));
        }
        assert_eq!(all, (301..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn live_messages_of_a_replaying_topic_wait_behind_it_and_others_do_not() {
        let mut o = Outbox::new(4);
        let t: Arc<str> = "t".into();
        let msgs: Vec<_> = (1..=10).map(|s| msg("t", s)).collect();
        o.replay(
            &t,
            Shape::Hublink,
            Some(Utf8Bytes::from_static("ack")),
            msgs,
        );
        o.push_published(&msg("t", 11), Shape::Hublink);
        o.push_published(&msg("other", 1), Shape::Hublink);
        let mut batch = VecDeque::new();
        o.take(&mut batch, 5);
        // The other topic's live frame first, then the replay's first chunk.
        assert!(texts(&batch)[0].contains("\"other\""));
        assert_eq!(texts(&batch)[1], "ack");
        let mut all = seqs(&batch)[1..].to_vec();
        while !o.is_empty() {
            batch.clear();
            o.take(&mut batch, 5);
            all.extend(seqs(&batch));
        }
        assert_eq!(all, (1..=11).collect::<Vec<_>>());
        // The replay is over: the topic's next message is a live frame.
        assert_eq!(
            o.push_published(&msg("t", 12), Shape::Hublink),
            Pushed::Yes { wake: true }
        );
    }

    #[test]
    fn a_reader_that_falls_a_send_queue_behind_during_a_replay_is_a_slow_consumer() {
        let mut o = Outbox::new(3);
        let t: Arc<str> = "t".into();
        let msgs: Vec<_> = (1..=100).map(|s| msg("t", s)).collect();
        o.replay(&t, Shape::Hublink, None, msgs);
        for s in 101..=103 {
            assert_eq!(
                o.push_published(&msg("t", s), Shape::Hublink),
                Pushed::Yes { wake: false }
            );
        }
        assert_eq!(
            o.push_published(&msg("t", 104), Shape::Hublink),
            Pushed::Full
        );
        // Taking a chunk makes room again.
        let mut batch = VecDeque::new();
        o.take(&mut batch, 10);
        assert_eq!(
            o.push_published(&msg("t", 104), Shape::Hublink),
            Pushed::Yes { wake: false }
        );
    }

    #[test]
    fn a_new_subscribe_replaces_the_replay_and_an_unsubscribe_cancels_it() {
        let mut o = Outbox::new(4);
        let t: Arc<str> = "t".into();
        o.replay(
            &t,
            Shape::Hublink,
            Some(Utf8Bytes::from_static("a1")),
            vec![msg("t", 1)],
        );
        o.replay(
            &t,
            Shape::Hublink,
            Some(Utf8Bytes::from_static("a2")),
            vec![msg("t", 2)],
        );
        let mut batch = VecDeque::new();
        o.take_all(&mut batch);
        assert_eq!(texts(&batch)[0], "a2");
        assert_eq!(seqs(&batch), vec![2]);

        o.replay(
            &t,
            Shape::Hublink,
            Some(Utf8Bytes::from_static("a3")),
            vec![msg("t", 3)],
        );
        o.cancel_replay("t");
        assert!(o.is_empty());
    }

    #[test]
    fn a_catch_up_joins_the_replay_under_way() {
        let mut o = Outbox::new(4);
        let t: Arc<str> = "t".into();
        o.replay(
            &t,
            Shape::Hublink,
            Some(Utf8Bytes::from_static("ack")),
            vec![msg("t", 1)],
        );
        o.replay(&t, Shape::Hublink, None, vec![msg("t", 2), msg("t", 3)]);
        let mut batch = VecDeque::new();
        o.take_all(&mut batch);
        assert_eq!(seqs(&batch), vec![1, 2, 3]);
    }
}
