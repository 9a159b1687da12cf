//! The part of a connection that subscribers, the reader and the writer
//! share: its send queue and its close request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use hublink_core::protocol::close_code;
use tokio::sync::Notify;

use super::queue::{Out, Outbox, Pushed};
use crate::metrics::Metrics;
use crate::published::{Published, Shape};

/// A close the writer is asked to send.
pub(super) struct CloseRequest {
    pub(super) code: u16,
    pub(super) reason: &'static str,
    /// A last frame before the close frame.
    pub(super) last: Option<Utf8Bytes>,
}

/// The part of a connection that subscribers and the reader share: the
/// [`Outbox`] and the close request.
///
/// The outbox sits behind a plain mutex rather than in a tokio `mpsc` channel:
/// it allocates nothing until the first frame (an idle connection holds no
/// 32-slot block), and the writer takes everything queued at once, so frames
/// that piled up while it was busy leave in one write.
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    outbox: Mutex<Outbox>,
    /// Set when the writer has stopped: nothing queued would leave any more.
    writer_gone: AtomicBool,
    close: Mutex<Option<(u16, &'static str)>>,
    pending: Mutex<Option<CloseRequest>>,
    /// Wakes the writer: frames queued, or a close requested.
    pub(super) notify: Notify,
    pub(super) metrics: Arc<Metrics>,
}

/// How many replayed messages the writer takes at once: a replay leaves in
/// writes of this many, each waiting for the socket to drain.
pub(super) const REPLAY_CHUNK: usize = 256;

impl ConnShared {
    pub(super) fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `add` on the outbox unless the writer has stopped (then nothing
    /// queued would leave: false); wakes the writer, or closes the connection
    /// as a slow consumer (4009) when `add` is over a budget. Never waits: the
    /// broadcast does not wait for a connection.
    fn add(&self, add: impl FnOnce(&mut Outbox) -> Pushed) -> bool {
        let mut o = self.outbox();
        if self.writer_gone.load(Ordering::Acquire) {
            return false;
        }
        let pushed = add(&mut o);
        drop(o);
        match pushed {
            // An outbox that was not empty means the writer was woken already
            // and has not taken it all yet: it will find this too.
            Pushed::Yes { wake } => {
                if wake {
                    self.notify.notify_one();
                }
                true
            }
            Pushed::Full => {
                Metrics::inc(&self.metrics.dropped);
                if self.close(close_code::SLOW_CONSUMER, "slow consumer", None) {
                    Metrics::inc(&self.metrics.slow_consumer_closes);
                    tracing::info!(conn = self.id, "send queue full: closing as slow consumer");
                }
                false
            }
        }
    }

    /// Queues a frame.
    pub(crate) fn send(&self, f: Utf8Bytes) -> bool {
        self.add(|o| o.push(Out::Frame(f)))
    }

    /// Queues a published message in `shape`, behind its topic's replay if
    /// one is under way.
    pub(crate) fn send_published(&self, msg: &Arc<Published>, shape: Shape) -> bool {
        self.add(|o| o.push_published(msg, shape))
    }

    /// Queues a subscription's `ack` and replay (or, without `ack`, a catch-up
    /// after an outage), paced by the socket rather than counted against the
    /// send queue: see [`Outbox`].
    pub(crate) fn replay(
        &self,
        topic: &Arc<str>,
        shape: Shape,
        ack: Option<Utf8Bytes>,
        msgs: Vec<Arc<Published>>,
    ) -> bool {
        self.add(|o| o.replay(topic, shape, ack, msgs))
    }

    /// Queues a WebSocket ping. A ping never closes a connection: it is
    /// skipped when the send queue is full.
    pub(super) fn ping(&self) {
        let mut o = self.outbox();
        if self.writer_gone.load(Ordering::Acquire) {
            return;
        }
        let pushed = o.push(Out::Ping);
        drop(o);
        if pushed == (Pushed::Yes { wake: true }) {
            self.notify.notify_one();
        }
    }

    /// Drops what is left of `topic`'s replay.
    pub(crate) fn cancel_replay(&self, topic: &str) {
        self.outbox().cancel_replay(topic);
    }

    /// Moves the live frames and a chunk of replay into `batch` (which must be empty).
    pub(super) fn take_queued(&self, batch: &mut VecDeque<Out>) {
        self.outbox().take(batch, REPLAY_CHUNK);
    }

    pub(super) fn writer_stopped(&self) {
        let mut o = self.outbox();
        self.writer_gone.store(true, Ordering::Release);
        o.clear();
    }

    /// Asks the writer to send `last` (if any) then a close frame. The first request wins.
    pub(crate) fn close(&self, code: u16, reason: &'static str, last: Option<Utf8Bytes>) -> bool {
        let mut c = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_some() {
            return false;
        }
        *c = Some((code, reason));
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(CloseRequest { code, reason, last });
        self.notify.notify_one();
        true
    }

    pub(super) fn close_code(&self) -> Option<u16> {
        self.close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(code, _)| code)
    }

    /// Takes the close request, once.
    pub(super) fn take_close(&self) -> Option<CloseRequest> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether a close was requested: the reader ignores frames then.
    pub(crate) fn closing(&self) -> bool {
        self.close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ConnShared {
    /// Connection `id`'s outgoing side, with a send queue of `capacity` live
    /// frames. Without a writer (the fuzz harness), [`ConnShared::drain`]
    /// takes what a writer would send.
    pub(crate) fn new(id: u64, capacity: usize, metrics: Arc<Metrics>) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            id,
            outbox: Mutex::new(Outbox::new(capacity)),
            writer_gone: AtomicBool::new(false),
            close: Mutex::new(None),
            pending: Mutex::new(None),
            notify: Notify::new(),
            metrics,
        })
    }

    /// Takes the queued text frames and the close request's code and final
    /// frame, as the writer would send them.
    pub(crate) fn drain(&self) -> (Vec<Utf8Bytes>, Option<(u16, Option<Utf8Bytes>)>) {
        let mut q = VecDeque::new();
        self.outbox().take_all(&mut q);
        let frames = q
            .into_iter()
            .filter_map(|o| match o {
                Out::Frame(f) => Some(f),
                Out::Ping => None,
            })
            .collect();
        let close = self.take_close().map(|r| (r.code, r.last));
        (frames, close)
    }
}
