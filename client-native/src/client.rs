//! The application's side: [`Client`] and [`Subscription`]; [`Events`] lives in `events`.

use crate::driver::{Command, Driver, Outbound, OutcomeTx, Shared};
use crate::events::{Events, Published, StateSnapshot};
use crate::outbox::Outbox;
use crate::transport::Dialer;
use crate::{Error, Result};
use futures_util::Stream;
use hublink_core::{Config, DecodeError, DialectKind, Message, Position, Reason, State};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A message delivered to a [`Subscription`], its payload decoded into `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery<T> {
    /// The topic (for stream dialects, the message type).
    pub topic: String,
    /// The message's own type name where the dialect has one.
    pub kind: Option<String>,
    /// The position in the topic's stream, for dialects with history.
    pub position: Option<Position>,
    /// The payload.
    pub data: T,
    /// The server's timestamp, as sent.
    pub timestamp: Option<Value>,
}

impl<T> Delivery<T> {
    /// The sequence number, when the dialect has one.
    pub fn seq(&self) -> Option<u64> {
        self.position.as_ref().map(|p| p.seq)
    }

    /// The epoch, when the dialect has one.
    pub fn epoch(&self) -> Option<&str> {
        self.position.as_ref().map(|p| p.epoch.as_str())
    }
}

/// A handle on one logical connection. Cheap to clone; the connection ends
/// with [`close`](Self::close), or when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<StateSnapshot>,
    shared: Arc<Shared>,
    dialect: DialectKind,
}

static NEXT_SUBSCRIBER: AtomicU64 = AtomicU64::new(1);

impl Client {
    /// Starts configuring a client for `url` (`ws://` or `wss://`).
    pub fn builder(url: impl Into<String>) -> crate::ClientBuilder {
        crate::ClientBuilder::new(url)
    }

    pub(crate) fn start(
        runtime: tokio::runtime::Handle,
        config: Config,
        dialect: DialectKind,
        dialer: Dialer,
        shared: Arc<Shared>,
        outbox: Option<Outbox>,
    ) -> Client {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (driver, state) =
            Driver::new(config, dialect, dialer, commands_rx, shared.clone(), outbox);
        runtime.spawn(driver.run());
        Client {
            commands,
            state,
            shared,
            dialect,
        }
    }

    /// The dialect this client speaks.
    pub fn dialect(&self) -> DialectKind {
        self.dialect
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state.borrow().state
    }

    /// The WebSocket subprotocol the server selected on the latest
    /// connection (`Some("hublink.v1")` from a server that speaks
    /// PROTOCOL.md, which it MUST select), `None` when it selected none or
    /// before the first connection. Set before [`State::Connected`] is
    /// reported for that connection.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.subprotocol()
    }

    /// A watch of the state with the reason of its last change. It holds the
    /// latest value only; [`events`](Self::events) has every transition.
    pub fn state_changes(&self) -> watch::Receiver<StateSnapshot> {
        self.state.clone()
    }

    /// Waits until the client is connected. Fails when it stops for good
    /// first (refused with 403/4003, gave up, closed).
    pub async fn connected(&self) -> Result<()> {
        let mut rx = self.state.clone();
        let snapshot = rx
            .wait_for(|s| s.state == State::Connected || is_final(s))
            .await
            .map_err(|_| Error::Closed)?
            .clone();
        match snapshot.state {
            State::Connected => Ok(()),
            _ => Err(stopped(&snapshot)),
        }
    }

    /// As [`connected`](Self::connected), giving up after `timeout`.
    pub async fn connected_within(&self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.connected())
            .await
            .map_err(|_| Error::Timeout {
                what: "the connection",
                ms: timeout.as_millis() as u64,
            })?
    }

    /// Subscribes to `topic`; the stream yields its messages decoded into `T`
    /// (use [`serde_json::Value`] for raw payloads), once each and in order,
    /// across reconnects. Dropping the stream unsubscribes; the server is told
    /// when the last local subscription of the topic goes.
    ///
    /// The stream is unbounded: the driver never waits for the application
    /// (it must keep answering heartbeats) and never drops a message, so a
    /// subscription that is not polled holds its messages in memory.
    pub fn subscribe<T: DeserializeOwned>(&self, topic: &str) -> Result<Subscription<T>> {
        if topic.is_empty() {
            return Err(hublink_core::Error::InvalidTopic {
                topic: String::new(),
                problem: "a topic name cannot be empty",
            }
            .into());
        }
        let id = NEXT_SUBSCRIBER.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.command(Command::Subscribe {
            topic: topic.to_owned(),
            id,
            tx,
        })?;
        Ok(Subscription {
            topic: topic.to_owned(),
            id,
            rx,
            commands: self.commands.downgrade(),
            _type: PhantomData,
        })
    }

    /// Publishes `data` on `topic` and waits for the server's answer: the
    /// [`Published`] position, once in the stream however many times the
    /// client had to send it (the publish carries an id; after a reconnect or
    /// a `publish_unknown` it is sent again with the same id, and the server
    /// publishes it once). Queued while offline.
    ///
    /// Fails at once with [`hublink_core::Error::QueueFull`] when the queue
    /// (publishes awaiting their answer included) is full, and with
    /// `Unsupported` on a dialect without publish. Fails later with
    /// [`Error::Publish`]: refused by the server (nothing was published), or
    /// expired or closed unanswered (it may have been published: see
    /// [`PublishError::maybe_published`](hublink_core::PublishError::maybe_published)).
    /// With an [outbox](crate::ClientBuilder::outbox), one closed unanswered
    /// stays in the file, and the next client built on it sends it again.
    pub async fn publish<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> Result<Published> {
        let (tx, rx) = oneshot::channel();
        self.publish_with(topic, data, Some(tx)).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Publishes as [`publish`](Self::publish) does without waiting for the
    /// answer: returns the publish's id once it is queued or sent; its
    /// outcome comes as [`Event::Published`](crate::Event::Published) or
    /// [`Event::PublishFailed`](crate::Event::PublishFailed) with that id.
    pub async fn queue_publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<String> {
        self.publish_with(topic, data, None).await
    }

    async fn publish_with<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        outcome: OutcomeTx,
    ) -> Result<String> {
        let data = serde_json::to_value(data).map_err(|e| Error::Serialize(e.to_string()))?;
        let (queued, rx) = oneshot::channel();
        self.command(Command::Publish {
            topic: topic.to_owned(),
            data,
            queued,
            outcome,
        })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Sends a JSON value as is, for dialect messages the client has no call
    /// for (queued while offline; fails when the queue is full).
    pub async fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let value = serde_json::to_value(value).map_err(|e| Error::Serialize(e.to_string()))?;
        self.send_outbound(Outbound::Json(value)).await
    }

    /// Asks the server for the topics of this connection; the answer comes as
    /// [`Event::Topics`](crate::Event::Topics).
    pub async fn request_topics(&self) -> Result<()> {
        self.send_outbound(Outbound::GetTopics).await
    }

    /// Skips the backoff wait while reconnecting; on a connection that looks
    /// alive, probes it with a ping and reconnects if it does not answer.
    pub fn reconnect_now(&self) -> Result<()> {
        self.command(Command::ReconnectNow)
    }

    /// A stream of every [`Event`](crate::Event) from now on (the builder's
    /// [`events`](crate::ClientBuilder::events) has them from the start), except messages taken by a
    /// [`Subscription`] (messages on topics nobody subscribed to locally,
    /// such as the streams of the `machines` dialect, do come here). Ends
    /// when the client stops. Unbounded, like subscriptions.
    pub fn events(&self) -> Events {
        self.shared.add_sink(false)
    }

    /// Every [`Event`](crate::Event) from now on, messages included, in the exact order the
    /// core produced them: for tools and tests that show everything.
    pub fn monitor(&self) -> Events {
        self.shared.add_sink(true)
    }

    /// Closes the connection for good: queued frames are reported as unsent,
    /// a close frame (1000) is sent after everything written before, and the
    /// call returns once the server answered it or after one second. Streams
    /// end. Calling it again, or on a stopped client, does nothing.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn command(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }

    async fn send_outbound(&self, outbound: Outbound) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Send(outbound, tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

fn is_final(s: &StateSnapshot) -> bool {
    s.state == State::Disconnected && s.reason.is_some()
}

fn stopped(s: &StateSnapshot) -> Error {
    let reason = match &s.reason {
        Some(Reason::Forbidden { code }) => format!("forbidden ({code})"),
        Some(Reason::GaveUp { attempts }) => format!("gave up after {attempts} attempts"),
        Some(r) => r.name().to_owned(),
        None => "not started".to_owned(),
    };
    Error::Stopped { reason }
}

/// The messages of one topic, decoded into `T`. Dropping it unsubscribes.
///
/// Yields `Err` for a payload that does not decode into `T` (the stream goes
/// on); ends when the client stops.
#[derive(Debug)]
pub struct Subscription<T> {
    topic: String,
    id: u64,
    rx: mpsc::UnboundedReceiver<Incoming>,
    commands: mpsc::WeakUnboundedSender<Command>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Subscription<T> {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl<T: DeserializeOwned> Subscription<T> {
    /// The next message; `None` when the client stopped.
    pub async fn next(&mut self) -> Option<Result<Delivery<T>, DecodeError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

/// A message on its way to a [`Subscription`]: parsed whole (control-frame
/// path, seed dialects), or read by its header with the payload still JSON
/// text, which the subscription deserialises into its type in one pass.
#[derive(Clone, Debug)]
pub(crate) enum Incoming {
    Whole(Message<Value>),
    Raw(RawMessage),
}

/// A hublink message as the fast path keeps it: the payload and timestamp as
/// their JSON text, shared by every subscription of the topic.
#[derive(Clone, Debug)]
pub(crate) struct RawMessage {
    pub(crate) topic: String,
    pub(crate) position: Option<Position>,
    pub(crate) data: Arc<str>,
    pub(crate) timestamp: Option<Arc<str>>,
}

impl RawMessage {
    /// The message as the whole-value path would have made it (for the
    /// event streams, which carry `serde_json::Value`s).
    pub(crate) fn to_message(&self) -> Message<Value> {
        Message {
            topic: self.topic.clone(),
            kind: None,
            position: self.position.clone(),
            data: serde_json::from_str(&self.data).unwrap_or(Value::Null),
            timestamp: self
                .timestamp
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
        }
    }
}

fn deliver<T: DeserializeOwned>(incoming: Incoming) -> Result<Delivery<T>, DecodeError> {
    let message = match incoming {
        Incoming::Whole(message) => message,
        Incoming::Raw(raw) => {
            let data = serde_json::from_str::<T>(&raw.data).map_err(|e| DecodeError::Payload {
                topic: raw.topic.clone(),
                error: e.to_string(),
            })?;
            return Ok(Delivery {
                timestamp: raw
                    .timestamp
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok()),
                topic: raw.topic,
                kind: None,
                position: raw.position,
                data,
            });
        }
    };
    let data = message.decode::<T>()?;
    Ok(Delivery {
        topic: message.topic,
        kind: message.kind,
        position: message.position,
        data,
        timestamp: message.timestamp,
    })
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = Result<Delivery<T>, DecodeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(deliver))
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Unsubscribe {
                topic: std::mem::take(&mut self.topic),
                id: self.id,
            });
        }
    }
}
