//! The outbound queue: frames sent while not connected, bounded, each with a
//! time to live, flushed in order after the next resubscription; and the
//! publishes with ids, kept until the server answers them and sent again,
//! with the same ids, on every new transport.

use alloc::string::String;
use alloc::vec::Vec;
/// A first-in first-out queue of two stacks: pushes go on `back`; pops come
/// off `front`, refilled by reversing `back` when empty. Amortised O(1), and
/// only `Vec`'s code, where one `VecDeque` per element type would add about
/// 2 KB gzipped each to the browser build.
#[derive(Clone, Debug)]
pub(crate) struct Fifo<T> {
    back: Vec<T>,
    front: Vec<T>,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            back: Vec::new(),
            front: Vec::new(),
        }
    }
}

impl<T> Fifo<T> {
    pub(crate) fn push_back(&mut self, item: T) {
        self.back.push(item);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.front.is_empty() {
            core::mem::swap(&mut self.front, &mut self.back);
            self.front.reverse();
        }
        self.front.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.front.is_empty() && self.back.is_empty()
    }
}

/// Limits of the outbound queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// How many frames it holds at most (default 1,024), publishes awaiting
    /// their answer included; a send beyond that is refused with
    /// [`Error::QueueFull`](crate::Error::QueueFull).
    pub max_frames: usize,
    /// How long a frame may wait, in ms (default 60,000); an expired frame is
    /// reported with [`Event::Unsent`](crate::Event::Unsent), and a publish
    /// still unanswered that long (counted from its first `publish`, resends
    /// included) with [`Event::PublishFailed`](crate::Event::PublishFailed).
    pub ttl_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_frames: 1_024,
            ttl_ms: 60_000,
        }
    }
}

/// A frame waiting for the connection, or a publish waiting for its answer.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) frame: String,
    pub(crate) queued_at: u64,
    pub(crate) expires_at: u64,
    /// Set for a publish with an id: kept, and sent again on every new
    /// transport, until the server answers it or its time to live runs out.
    pub(crate) publish: Option<Pending>,
}

/// What the queue knows of a publish it keeps until answered.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) topic: String,
    /// A transport took it at least once: unanswered, it may have been published.
    pub(crate) sent: bool,
    /// Sent on the current transport and not answered yet (a
    /// `publish_unknown` answer clears it: sent again at the next
    /// [`flush`](OutboundQueue::flush)).
    pub(crate) in_flight: bool,
}

impl Pending {
    pub(crate) fn new(id: String, topic: String, sent: bool) -> Self {
        Pending {
            id,
            topic,
            sent,
            in_flight: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct OutboundQueue {
    // A `Vec`: frames only join at the back and leave all at once, by
    // expiry, or (publishes) by their answer, and `VecDeque`'s code costs
    // the browser build about 2 KB.
    frames: Vec<Queued>,
}

impl OutboundQueue {
    /// Everything held: the limit applies to this.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// How many wait to be sent (not in flight).
    pub(crate) fn waiting(&self) -> usize {
        self.frames.iter().filter(|q| !in_flight(q)).count()
    }

    /// How many publishes were sent on the current transport and are unanswered.
    pub(crate) fn in_flight(&self) -> usize {
        self.frames.iter().filter(|q| in_flight(q)).count()
    }

    pub(crate) fn push(&mut self, queued: Queued) {
        self.frames.push(queued);
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.frames.iter().map(|q| q.expires_at).min()
    }

    /// Removes and returns the frames expired at `now`, in queue order.
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<Queued> {
        let mut expired = Vec::new();
        let mut i = 0;
        while i < self.frames.len() {
            if self.frames[i].expires_at <= now {
                expired.push(self.frames.remove(i));
            } else {
                i += 1;
            }
        }
        expired
    }

    /// Every frame to send on the open transport, in queue order: all of
    /// them on a new one, those a `publish_unknown` answered on the current
    /// one. Plain frames leave the queue; publishes stay, in flight.
    pub(crate) fn flush(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.frames.len() {
            let q = &mut self.frames[i];
            match &mut q.publish {
                Some(p) => {
                    if !p.in_flight {
                        p.sent = true;
                        p.in_flight = true;
                        out.push(q.frame.clone());
                    }
                    i += 1;
                }
                None => out.push(self.frames.remove(i).frame),
            }
        }
        out
    }

    /// The transport is gone: nothing is in flight on it any more.
    pub(crate) fn transport_gone(&mut self) {
        for p in self.frames.iter_mut().filter_map(|q| q.publish.as_mut()) {
            p.in_flight = false;
        }
    }

    /// The publish `id`, if held, for its answer to act on.
    pub(crate) fn publish_mut(&mut self, id: &str) -> Option<&mut Pending> {
        self.frames
            .iter_mut()
            .filter_map(|q| q.publish.as_mut())
            .find(|p| p.id == id)
    }

    /// Removes and returns the publish `id`: the server answered it.
    pub(crate) fn take_publish(&mut self, id: &str) -> Option<Pending> {
        for i in 0..self.frames.len() {
            if self.frames[i].publish.as_ref().is_some_and(|p| p.id == id) {
                return self.frames.remove(i).publish;
            }
        }
        None
    }

    /// Removes and returns everything, in order.
    pub(crate) fn drain(&mut self) -> Vec<Queued> {
        core::mem::take(&mut self.frames)
    }
}

fn in_flight(q: &Queued) -> bool {
    q.publish.as_ref().is_some_and(|p| p.in_flight)
}

#[cfg(test)]
mod tests {
    use super::Fifo;
    use proptest::prelude::*;

    proptest! {
        /// Interleaved pushes and pops come out in the order they went in.
        #[test]
        fn a_fifo_keeps_order(ops in proptest::collection::vec(any::<bool>(), 0..200)) {
            let mut fifo = Fifo::default();
            let mut model = std::collections::VecDeque::new();
            for (i, push) in ops.into_iter().enumerate() {
                if push {
                    fifo.push_back(i);
                    model.push_back(i);
                } else {
                    prop_assert_eq!(fifo.pop_front(), model.pop_front());
                }
                prop_assert_eq!(fifo.is_empty(), model.is_empty());
            }
        }
    }
}
