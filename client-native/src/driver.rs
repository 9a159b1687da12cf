//! The driver: one task per client that owns the core's [`Connection`] and the
//! socket, in the manner of quinn's `ConnectionDriver`. It `select!`s over the
//! command channel, the socket (dialing or open) and the core's next timeout;
//! after each input it drains the core's transmits, then its events, exactly
//! as the drive loop in hublink-core's crate docs says.

use crate::client::{Incoming, RawMessage};
use crate::events::{Event, Events, Published, StateSnapshot};
use crate::outbox::{self, Outbox};
use crate::transport::{Dialer, Transport};
use crate::{Error, Result};
use hublink_core::raw::RawFrame;
use hublink_core::{
    Admit, CloseInfo, Config, Connection, DialectKind, Position, PublishError, State, Transmit,
};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

/// What the application asks to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    Json(Value),
    GetTopics,
}

/// Where the outcome of a publish goes: nowhere (it comes as an event only),
/// or to the `publish` call awaiting it.
pub(crate) type OutcomeTx = Option<oneshot::Sender<Result<Published>>>;

/// A call from a [`Client`](crate::Client) or a subscription, to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        topic: String,
        id: u64,
        tx: mpsc::UnboundedSender<Incoming>,
    },
    Unsubscribe {
        topic: String,
        id: u64,
    },
    Send(Outbound, oneshot::Sender<Result<()>>),
    /// A publish: `queued` answers with its id once the core holds it,
    /// `outcome` once the server answered it (or it failed).
    Publish {
        topic: String,
        data: Value,
        queued: oneshot::Sender<Result<String>>,
        outcome: OutcomeTx,
    },
    ReconnectNow,
    Close(oneshot::Sender<()>),
}

/// Event streams, registered from the handles without a round trip through
/// the driver, so that nothing produced after `events()` returns is missed.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    sinks: Mutex<Sinks>,
    /// The subprotocol the server selected for the latest open socket.
    subprotocol: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Sinks {
    stopped: bool,
    list: Vec<Sink>,
}

#[derive(Debug)]
struct Sink {
    tx: mpsc::UnboundedSender<Event>,
    all_messages: bool,
}

impl Shared {
    pub(crate) fn add_sink(&self, all_messages: bool) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        if !sinks.stopped {
            sinks.list.push(Sink { tx, all_messages });
        }
        Events { rx }
    }

    /// Whether any sink wants a message: every sink an unclaimed one, the
    /// monitors a `claimed` one too (see [`broadcast`](Self::broadcast)).
    fn wants_message(&self, claimed: bool) -> bool {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.list.iter().any(|s| !claimed || s.all_messages)
    }

    /// Sends `event` to every sink that wants it; `claimed` messages went to
    /// a subscription already and go only to monitors.
    fn broadcast(&self, event: &Event, claimed: bool) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.list.retain(|sink| {
            if claimed && !sink.all_messages {
                return !sink.tx.is_closed();
            }
            sink.tx.send(event.clone()).is_ok()
        });
    }

    /// The subprotocol the server selected for the latest open socket.
    pub(crate) fn subprotocol(&self) -> Option<String> {
        self.subprotocol
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stop(&self) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.stopped = true;
        sinks.list.clear();
    }
}

/// A local subscription: its id and the sender of its stream.
type Subscriber = (u64, mpsc::UnboundedSender<Incoming>);

type Dialing = Pin<Box<dyn Future<Output = Result<Transport, CloseInfo>> + Send>>;

enum Socket {
    None,
    Dialing(Dialing),
    Open(Transport),
}

enum Input {
    Command(Option<Command>),
    Dialed(Result<Transport, CloseInfo>),
    Frame(Option<tungstenite::Result<tungstenite::Message>>),
    Tick,
}

pub(crate) struct Driver {
    conn: Connection<Value>,
    origin: Instant,
    dialer: Arc<Dialer>,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    state: watch::Sender<StateSnapshot>,
    subscribers: HashMap<String, Vec<Subscriber>>,
    socket: Socket,
    closing: Vec<JoinHandle<()>>,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Whether frames go through the header path first (the hublink
    /// dialect: the seed dialects' messages have no header to decide by).
    header_path: bool,
    /// The `publish` calls awaiting an outcome, by publish id.
    outcomes: HashMap<String, oneshot::Sender<Result<Published>>>,
    /// The file-backed outbox, when the application asked for one: told of
    /// every publish the core takes and of every outcome.
    outbox: Option<Outbox>,
}

impl Driver {
    pub(crate) fn new(
        config: Config,
        dialect: DialectKind,
        dialer: Dialer,
        commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        outbox: Option<Outbox>,
    ) -> (Driver, watch::Receiver<StateSnapshot>) {
        let origin = Instant::now();
        let mut conn = Connection::new(config, dialect.build());
        conn.connect(0);
        let (state, state_rx) = watch::channel(StateSnapshot {
            state: conn.state(),
            reason: Some(hublink_core::Reason::Requested),
            attempt: 0,
            retry_in_ms: None,
        });
        let mut driver = Driver {
            conn,
            origin,
            dialer: Arc::new(dialer),
            commands,
            shared,
            state,
            subscribers: HashMap::new(),
            socket: Socket::None,
            closing: Vec::new(),
            close_waiters: Vec::new(),
            outcomes: HashMap::new(),
            header_path: dialect == DialectKind::Hublink,
            outbox,
        };
        driver.republish_outbox();
        (driver, state_rx)
    }

    /// What the outbox held from an earlier client goes to the core before
    /// any command, so before any new publish, in its order; what expired
    /// meanwhile is reported instead of sent.
    fn republish_outbox(&mut self) {
        let Some(outbox) = &mut self.outbox else {
            return;
        };
        let wall = outbox::unix_ms();
        let now = self.origin.elapsed().as_millis() as u64;
        for entry in outbox.unsettled() {
            if entry.expires_at_ms <= wall {
                outbox.settle(&entry.id);
                let error = PublishError::Expired {
                    waited_ms: wall.saturating_sub(entry.published_at_ms),
                    // Unknown: it may have been sent before the restart.
                    sent: true,
                };
                let event = Event::PublishFailed {
                    id: entry.id,
                    topic: entry.topic,
                    error,
                };
                self.shared.broadcast(&event, false);
                continue;
            }
            let ttl_ms = entry.expires_at_ms - wall;
            match self
                .conn
                .republish(now, &entry.id, &entry.topic, &entry.data, ttl_ms)
            {
                Ok(()) => {}
                Err(e @ hublink_core::Error::QueueFull { .. }) => tracing::warn!(
                    "hublink: outbox publish {} to {:?} not sent now ({e}); \
                     it stays in the outbox for a later client",
                    entry.id,
                    entry.topic
                ),
                Err(e) => {
                    tracing::warn!(
                        "hublink: outbox publish {} to {:?} dropped: {e}",
                        entry.id,
                        entry.topic
                    );
                    outbox.settle(&entry.id);
                }
            }
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.drain();
            if self.conn.state() == State::Disconnected {
                break;
            }
            let deadline = self
                .conn
                .poll_timeout()
                .map(|ms| self.origin + std::time::Duration::from_millis(ms));
            let input = next_input(&mut self.commands, &mut self.socket, deadline).await;
            self.handle(input);
        }
        self.finish().await;
    }

    /// Step 1 of the drive loop: what the core wants done, then what it
    /// wants said.
    fn drain(&mut self) {
        while let Some(transmit) = self.conn.poll_transmit() {
            match transmit {
                Transmit::Open => {
                    self.socket = Socket::Dialing(Box::pin(self.dialer.clone().dial()));
                }
                Transmit::Send(text) => match &self.socket {
                    Socket::Open(transport) => transport.send(text),
                    _ => tracing::warn!("hublink: the core sent a frame without an open socket"),
                },
                Transmit::Close { code, reason } => {
                    if let Socket::Open(transport) =
                        std::mem::replace(&mut self.socket, Socket::None)
                    {
                        self.closing.retain(|task| !task.is_finished());
                        self.closing.push(transport.close(code, reason));
                    }
                }
            }
        }
        while let Some(event) = self.conn.poll_event() {
            self.dispatch(event);
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::StateChanged(change) => {
                tracing::debug!(
                    from = change.from.name(),
                    to = change.to.name(),
                    reason = ?change.reason,
                    "hublink state"
                );
                self.state.send_replace(StateSnapshot {
                    state: change.to,
                    reason: Some(change.reason.clone()),
                    attempt: change.attempt,
                    retry_in_ms: change.retry_in_ms,
                });
                self.shared.broadcast(&Event::StateChanged(change), false);
            }
            Event::Message(message) => {
                let mut claimed = false;
                if let Some(list) = self.subscribers.get_mut(&message.topic) {
                    list.retain(|(_, tx)| tx.send(Incoming::Whole(message.clone())).is_ok());
                    claimed = !list.is_empty();
                }
                self.shared.broadcast(&Event::Message(message), claimed);
            }
            Event::Published {
                id,
                topic,
                position,
            } => {
                if let Some(outbox) = &mut self.outbox {
                    outbox.settle(&id);
                }
                if let Some(tx) = self.outcomes.remove(&id) {
                    let _ = tx.send(Ok(Published {
                        id: id.clone(),
                        topic: topic.clone(),
                        position: position.clone(),
                    }));
                }
                let event = Event::Published {
                    id,
                    topic,
                    position,
                };
                self.shared.broadcast(&event, false);
            }
            Event::PublishFailed { id, topic, error } => {
                // Refused or expired: settled. Closed unanswered: kept in
                // the file, for the next client built on it to send.
                let settled = !matches!(error, PublishError::Closed { .. });
                if let (Some(outbox), true) = (&mut self.outbox, settled) {
                    outbox.settle(&id);
                }
                if let Some(tx) = self.outcomes.remove(&id) {
                    let _ = tx.send(Err(Error::Publish(error.clone())));
                }
                let event = Event::PublishFailed { id, topic, error };
                self.shared.broadcast(&event, false);
            }
            other => self.shared.broadcast(&other, false),
        }
    }

    /// Step 2 of the drive loop: feed one input to the core.
    fn handle(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Command(Some(command)) => self.command(now, command),
            // Every handle is gone: nobody can use the connection any more.
            Input::Command(None) => self.conn.close(now),
            Input::Dialed(Ok(transport)) => {
                // Before the core hears of the open, so that whoever sees
                // `Connected` also sees the subprotocol of that socket.
                *self
                    .shared
                    .subprotocol
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = transport.subprotocol.clone();
                self.socket = Socket::Open(transport);
                self.conn.handle_open(now);
            }
            Input::Dialed(Err(info)) => {
                self.socket = Socket::None;
                self.conn.handle_close(now, info);
            }
            Input::Frame(Some(Ok(frame))) => match frame {
                tungstenite::Message::Text(text) => self.text(now, text.as_str()),
                tungstenite::Message::Binary(bytes) => self.conn.handle_binary(now, bytes.len()),
                tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {
                    self.conn.handle_control_frame(now)
                }
                tungstenite::Message::Close(frame) => {
                    let info = match frame {
                        Some(f) => CloseInfo::Frame {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                        None => CloseInfo::Frame {
                            code: 1005,
                            reason: "close frame without a code".to_owned(),
                        },
                    };
                    self.lose_socket();
                    self.conn.handle_close(now, info);
                }
                tungstenite::Message::Frame(_) => {}
            },
            Input::Frame(Some(Err(error))) => {
                self.lose_socket();
                self.conn.handle_close(
                    now,
                    CloseInfo::Failed {
                        error: error.to_string(),
                    },
                );
            }
            Input::Frame(None) => {
                self.lose_socket();
                self.conn.handle_close(
                    now,
                    CloseInfo::Frame {
                        code: hublink_core::close_code::ABNORMAL,
                        reason: "connection closed without a close frame".to_owned(),
                    },
                );
            }
            Input::Tick => self.conn.handle_timeout(now),
        }
    }

    /// A text frame. On the hublink dialect a message is decided by its
    /// header alone and its payload stays JSON text until a subscription
    /// deserialises its type from it (`hublink_core::raw`: one pass over the
    /// payload instead of a `Value` tree and a second pass); anything else
    /// is parsed whole.
    fn text(&mut self, now: u64, text: &str) {
        if self.header_path {
            if let Some(frame) = RawFrame::parse(text) {
                match self.conn.handle_header(now, text.len(), &frame.header()) {
                    Admit::Deliver => return self.deliver_raw(&frame),
                    Admit::Drop => return,
                    Admit::Decode => {}
                }
            }
        }
        self.conn.handle_text(now, text);
    }

    /// A message the core admitted by its header: after what the core
    /// queued before it (a gap), to the topic's subscriptions, and to the
    /// event streams that want it.
    fn deliver_raw(&mut self, frame: &RawFrame<'_>) {
        self.drain();
        let (Some(topic), Some(data)) = (frame.topic.as_deref(), frame.data) else {
            return; // admitted only with both (`Dialect::decode_header`)
        };
        let position = match (frame.epoch.as_deref(), frame.seq) {
            (Some(epoch), Some(seq)) => Some(Position {
                epoch: epoch.to_owned(),
                seq,
            }),
            _ => None,
        };
        let raw = RawMessage {
            topic: topic.to_owned(),
            position,
            data: Arc::from(data.get()),
            timestamp: frame.timestamp.map(|t| Arc::from(t.get())),
        };
        let mut claimed = false;
        if let Some(list) = self.subscribers.get_mut(topic) {
            list.retain(|(_, tx)| tx.send(Incoming::Raw(raw.clone())).is_ok());
            claimed = !list.is_empty();
        }
        if self.shared.wants_message(claimed) {
            self.shared
                .broadcast(&Event::Message(raw.to_message()), claimed);
        }
    }

    /// The peer ended the socket: let tungstenite finish its side in the
    /// background (it answers a close frame while reading on).
    fn lose_socket(&mut self) {
        if let Socket::Open(transport) = std::mem::replace(&mut self.socket, Socket::None) {
            self.closing.retain(|task| !task.is_finished());
            self.closing.push(transport.finish());
        }
    }

    fn command(&mut self, now: u64, command: Command) {
        match command {
            Command::Subscribe { topic, id, tx } => {
                let list = self.subscribers.entry(topic.clone()).or_default();
                list.push((id, tx));
                if list.len() == 1 {
                    if let Err(e) = self.conn.subscribe(now, &topic) {
                        tracing::warn!("hublink: subscribe {topic:?} refused: {e}");
                    }
                }
            }
            Command::Unsubscribe { topic, id } => {
                if let Some(list) = self.subscribers.get_mut(&topic) {
                    list.retain(|(i, _)| *i != id);
                    if list.is_empty() {
                        self.subscribers.remove(&topic);
                        self.conn.unsubscribe(now, &topic);
                    }
                }
            }
            Command::Send(outbound, reply) => {
                let result = match outbound {
                    Outbound::Json(value) => self.conn.send_json(now, &value),
                    Outbound::GetTopics => self.conn.request_topics(now),
                };
                let _ = reply.send(result.map_err(Error::from));
            }
            Command::Publish {
                topic,
                data,
                queued,
                outcome,
            } => {
                let result = self.conn.publish(now, &topic, &data);
                if let (Ok(id), Some(outbox)) = (&result, &mut self.outbox) {
                    // Before the frame goes out (at the next drain) and
                    // before the caller has the id.
                    let published_at_ms = outbox::unix_ms();
                    outbox.add(outbox::Entry {
                        id: id.clone(),
                        topic,
                        data,
                        published_at_ms,
                        expires_at_ms: published_at_ms
                            .saturating_add(self.conn.config().queue.ttl_ms),
                    });
                }
                if let (Ok(id), Some(tx)) = (&result, outcome) {
                    // Answered no earlier than the next drain: the core's
                    // outcome events come after this call returns.
                    self.outcomes.insert(id.clone(), tx);
                }
                let _ = queued.send(result.map_err(Error::from));
            }
            Command::ReconnectNow => self.conn.reconnect_now(now),
            Command::Close(reply) => {
                self.close_waiters.push(reply);
                self.conn.close(now);
            }
        }
    }

    /// The connection stopped for good: end the streams, let closing sockets
    /// say goodbye (each within its grace), then answer `close()` callers.
    async fn finish(mut self) {
        // Its lock first: whoever sees the streams end or `close()` return
        // can open the file again.
        self.outbox = None;
        self.shared.stop();
        self.subscribers.clear();
        self.socket = Socket::None;
        for task in self.closing.drain(..) {
            let _ = task.await;
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

async fn next_input(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    socket: &mut Socket,
    deadline: Option<Instant>,
) -> Input {
    let socket_input = async {
        match socket {
            Socket::None => std::future::pending().await,
            Socket::Dialing(dialing) => Input::Dialed(dialing.await),
            Socket::Open(transport) => Input::Frame(transport.next().await),
        }
    };
    let timer = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        command = commands.recv() => Input::Command(command),
        input = socket_input => input,
        () = timer => Input::Tick,
    }
}
