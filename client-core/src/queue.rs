//! The outbound queue: frames sent while not connected, bounded, each with a
//! time to live, flushed in order after the next resubscription.

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
    /// How many frames it holds at most (default 1,024); a send beyond that is
    /// refused with [`Error::QueueFull`](crate::Error::QueueFull).
    pub max_frames: usize,
    /// How long a frame may wait, in ms (default 60,000); an expired frame is
    /// reported with [`Event::Unsent`](crate::Event::Unsent).
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

#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) frame: String,
    pub(crate) queued_at: u64,
    pub(crate) expires_at: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct OutboundQueue {
    // A `Vec`: frames only join at the back and leave all at once or by
    // expiry, and `VecDeque`'s code costs the browser build about 2 KB.
    frames: Vec<Queued>,
}

impl OutboundQueue {
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn push(&mut self, frame: String, now: u64, ttl_ms: u64) {
        self.frames.push(Queued {
            frame,
            queued_at: now,
            expires_at: now.saturating_add(ttl_ms),
        });
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.frames.iter().map(|q| q.expires_at).min()
    }

    /// Removes and returns the frames expired at `now`, in queue order.
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<Queued> {
        let mut expired = Vec::new();
        self.frames.retain(|q| {
            if q.expires_at <= now {
                expired.push(q.clone());
                false
            } else {
                true
            }
        });
        expired
    }

    /// Removes and returns everything, in order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Queued> + '_ {
        self.frames.drain(..)
    }
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
