//! How a connection takes the messages of the topics it follows: the one
//! [`Subscriber`] of every endpoint, in that endpoint's [`Shape`], through its
//! [`Filter`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hublink_core::protocol::close_code;
use serde_json::{json, Value};

use crate::broker::Subscriber;
use crate::conn::ConnShared;
use crate::frames::frame;
use crate::published::{Published, Shape};
use crate::time::now_ms;

/// Events a connection remembers having delivered, to deliver each once.
const RECENT_EVENTS: usize = 32;

/// Which of a topic's messages a connection takes.
pub(crate) enum Filter {
    /// Every message; a catch-up after an outage is paced by the socket.
    All,
    /// Each event once, even when the connection is in several of the rooms
    /// it was published to (the actions dialect).
    OncePerEvent(Mutex<VecDeque<u64>>),
    /// At most one reading per interval; `error` data always passes (power).
    AtMostEvery { interval_ms: u64, last: AtomicU64 },
}

impl Filter {
    /// [`Filter::OncePerEvent`], remembering nothing yet.
    pub(crate) fn once_per_event() -> Filter {
        Filter::OncePerEvent(Mutex::new(VecDeque::new()))
    }

    /// [`Filter::AtMostEvery`] `interval_ms` (0: every message).
    pub(crate) fn at_most_every(interval_ms: u64) -> Filter {
        Filter::AtMostEvery {
            interval_ms,
            last: AtomicU64::new(0),
        }
    }

    /// Whether `msg` goes to the client.
    fn passes(&self, msg: &Published) -> bool {
        match self {
            Filter::All => true,
            Filter::OncePerEvent(recent) => {
                let Some(id) = msg.event_id else {
                    return true;
                };
                let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.contains(&id) {
                    return false;
                }
                if recent.len() >= RECENT_EVENTS {
                    recent.pop_front();
                }
                recent.push_back(id);
                true
            }
            Filter::AtMostEvery { interval_ms, last } => {
                let is_error = msg.data.get("type").and_then(Value::as_str) == Some("error");
                if is_error || *interval_ms == 0 {
                    return true;
                }
                let now = now_ms();
                let then = last.load(Ordering::Relaxed);
                if then != 0 && now.saturating_sub(then) < *interval_ms {
                    return false;
                }
                last.store(now, Ordering::Relaxed);
                true
            }
        }
    }
}

/// A connection as the broker sees it: queues each message that passes the
/// filter, in the endpoint's shape.
pub(crate) struct Delivery {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) shape: Shape,
    pub(crate) filter: Filter,
}

impl Subscriber for Delivery {
    fn deliver(&self, msg: &Arc<Published>) {
        if self.filter.passes(msg) {
            self.conn.send_published(msg, self.shape);
        }
    }

    fn catch_up(&self, topic: &Arc<str>, msgs: Vec<Arc<Published>>) {
        match self.filter {
            // The catch-up may be a whole history window: paced by the socket.
            Filter::All => {
                self.conn.replay(topic, self.shape, None, msgs);
            }
            _ => msgs.iter().for_each(|m| self.deliver(m)),
        }
    }

    /// A hublink.v1 client can recover what this node lost: it is asked to
    /// reconnect, so that it resubscribes with `since` and hears
    /// `recovered: false`. The other protocols have no way to.
    fn missed(&self, topic: &str) {
        if self.shape == Shape::Hublink {
            let f = frame(&json!({
                "type": "reconnect",
                "reason": format!("messages of {topic:?} were lost on this node: resubscribe with since"),
                "retry_after": 0,
            }));
            self.conn
                .close(close_code::RESTART, "stream interrupted", Some(f));
        }
    }
}
