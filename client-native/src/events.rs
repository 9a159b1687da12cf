//! What the client reports besides a subscription's messages: [`Event`]s,
//! their stream [`Events`], and the connection's [`StateSnapshot`]. The
//! driver produces them and the handles hand them out, so they live apart
//! from both.

use futures_util::Stream;
use hublink_core::{Position, Reason, State};
use serde_json::Value;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Everything the client tells the application besides messages taken by a
/// [`Subscription`](crate::Subscription): state changes, (re)subscriptions with their recovery,
/// gaps, decode and server errors, unsent frames.
pub type Event = hublink_core::Event<Value>;

/// The server's answer to a publish: it is in the topic's stream, once,
/// at `position` (however many copies the client had to send).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The publish's id, as the client chose it.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// Its position in the topic's stream.
    pub position: Position,
}

impl Published {
    /// The sequence number the server gave it.
    pub fn seq(&self) -> u64 {
        self.position.seq
    }
}

/// The connection's state with the reason of its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    /// The state.
    pub state: State,
    /// Why it changed last (`None` before the driver ran).
    pub reason: Option<Reason>,
    /// Failed attempts since the last stable connection.
    pub attempt: u32,
    /// While reconnecting: ms until the next attempt.
    pub retry_in_ms: Option<u64>,
}

/// A stream of [`Event`]s; see [`Client::events`](crate::Client::events).
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event; `None` when the client stopped.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
