//! The connection's stored deadlines, one slot per [`Timer`], in the
//! caller's milliseconds (the core has no clock of its own).
//!
//! Each slot belongs to one transport state: `Connect` to `Opening`, `Retry`
//! to no transport, `Probe`, `Stable` and `Resend` to an open one; the connection
//! stops a slot when it leaves that state, so the earliest armed slot is
//! always one that [`handle_timeout`](crate::Connection::handle_timeout)
//! acts on. The liveness deadline and the idle ping are not stored: they
//! follow the last inbound frame and the heartbeat learned so far, and are
//! computed where they are needed.

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The transport asked for did not open within `connect_timeout_ms`.
    Connect = 0,
    /// The backoff wait is over: start the next attempt.
    Retry = 1,
    /// A probe ping (`reconnect_now`) went unanswered: the link is dead.
    Probe = 2,
    /// Connected for `stable_after_ms`: the attempt count starts again.
    Stable = 3,
    /// The backoff after a `publish_unknown` is over: send the publishes
    /// that wait on the open transport again.
    Resend = 4,
}

impl Timer {
    const COUNT: usize = 5;
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    data: [Option<u64>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at`, replacing its earlier deadline.
    pub(crate) fn set(&mut self, timer: Timer, at: u64) {
        self.data[timer as usize] = Some(at);
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<u64> {
        self.data[timer as usize]
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// Whether `timer` is armed and its deadline has come.
    pub(crate) fn is_expired(&self, timer: Timer, now: u64) -> bool {
        self.get(timer).is_some_and(|at| now >= at)
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<u64> {
        self.data.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::{Timer, TimerTable};

    #[test]
    fn the_next_timeout_is_the_earliest_armed_slot() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Stable, 50);
        t.set(Timer::Probe, 20);
        assert_eq!(t.next_timeout(), Some(20));
        assert!(t.is_expired(Timer::Probe, 20) && !t.is_expired(Timer::Stable, 49));
        t.stop(Timer::Probe);
        assert_eq!((t.get(Timer::Probe), t.next_timeout()), (None, Some(50)));
        t.set(Timer::Stable, 70);
        assert_eq!(t.next_timeout(), Some(70));
        assert!(!t.is_expired(Timer::Connect, u64::MAX));
    }
}
