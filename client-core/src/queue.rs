//! The outbound queue: frames sent while not connected, bounded, each with a
//! time to live, flushed in order after the next resubscription.

use std::collections::VecDeque;

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
    frames: VecDeque<Queued>,
}

impl OutboundQueue {
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn push(&mut self, frame: String, now: u64, ttl_ms: u64) {
        self.frames.push_back(Queued {
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
