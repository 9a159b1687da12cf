//! The connection limit (`--max-connections`): a semaphore whose permits
//! the open connections hold.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `--max-connections` slots: a connection holds one from admission until
/// it ends.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: u32,
}

/// Holds one slot of `--max-connections` until dropped.
pub(crate) type ConnPermit = OwnedSemaphorePermit;

impl ConnectionLimit {
    /// `max` slots (at most `u32::MAX`: waiting for all of them takes a `u32`).
    pub(crate) fn new(max: usize) -> ConnectionLimit {
        let max = max.min(u32::MAX as usize).min(Semaphore::MAX_PERMITS) as u32;
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A slot, unless all are taken.
    pub(crate) fn try_admit(&self) -> Option<ConnPermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Open connections (counted from admission).
    pub(crate) fn live(&self) -> usize {
        self.max as usize - self.slots.available_permits()
    }

    /// Waits until every connection has ended, at most `grace`; false if
    /// some were still open then. Admits nobody meanwhile.
    pub(crate) async fn all_closed(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.slots.acquire_many(self.max))
            .await
            .is_ok()
    }
}
