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
    /// Sent on the current transport and not answered yet.
    pub(crate) in_flight: bool,
    /// After a `publish_unknown`: when to send it again on this transport.
    pub(crate) retry_at: Option<u64>,
    /// Answers that did not settle it (`publish_unknown`, or `publish_failed`
    /// to a resend) so far: the step of the retry's backoff.
    pub(crate) unknowns: u32,
    /// The copy in flight is a resend: an earlier copy went unanswered (its
    /// transport was lost, or it got `publish_unknown`) or came before a
    /// restart ([`republish`](crate::Connection::republish)), and may have
    /// been published. A refusal then speaks for this copy only.
    pub(crate) resend: bool,
}

impl Pending {
    pub(crate) fn new(id: String, topic: String, sent: bool) -> Self {
        Pending {
            id,
            topic,
            sent,
            in_flight: false,
            retry_at: None,
            unknowns: 0,
            resend: sent,
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

    /// The earliest expiry, and with `open`, the earliest retry.
    pub(crate) fn next_deadline(&self, open: bool) -> Option<u64> {
        let retry = |q: &Queued| q.publish.as_ref().and_then(|p| p.retry_at).filter(|_| open);
        self.frames
            .iter()
            .flat_map(|q| [Some(q.expires_at), retry(q)])
            .flatten()
            .min()
    }

    /// Removes and returns the frames expired at `now`, in queue order.
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<Queued> {
        self.take_where(|q| q.expires_at <= now)
    }

    /// A new transport is open: every frame to send on it, in queue order.
    /// Plain frames leave the queue; publishes stay, in flight.
    pub(crate) fn flush(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.frames.retain_mut(|q| match &mut q.publish {
            Some(p) => {
                // Held, so a copy sent before went unanswered.
                p.resend |= p.sent;
                p.sent = true;
                p.in_flight = true;
                p.retry_at = None;
                out.push(q.frame.clone());
                true
            }
            None => {
                out.push(core::mem::take(&mut q.frame));
                false
            }
        });
        out
    }

    /// The publishes whose retry is due at `now`, sent again: in flight.
    pub(crate) fn take_due_retries(&mut self, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        for q in &mut self.frames {
            if let Some(p) = q
                .publish
                .as_mut()
                .filter(|p| p.retry_at.is_some_and(|t| t <= now))
            {
                p.retry_at = None;
                p.in_flight = true;
                p.resend = true;
                out.push(q.frame.clone());
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
        let at = self
            .frames
            .iter()
            .position(|q| q.publish.as_ref().is_some_and(|p| p.id == id))?;
        self.frames.remove(at).publish
    }

    /// Removes and returns everything, in order.
    pub(crate) fn drain(&mut self) -> Vec<Queued> {
        core::mem::take(&mut self.frames)
    }

    fn take_where(&mut self, mut pred: impl FnMut(&Queued) -> bool) -> Vec<Queued> {
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for q in self.frames.drain(..) {
            if pred(&q) {
                taken.push(q);
            } else {
                kept.push(q);
            }
        }
        self.frames = kept;
        taken
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
