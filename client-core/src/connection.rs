//! The state machine: one logical connection that outlives its transports.

use crate::backoff::BackoffConfig;
use crate::dialect::Dialect;
use crate::json::{concat, u64_text, JsonValue};
use crate::protocol::{
    close_code, close_policy, Admit, CloseInfo, ClosePolicy, Header, Inbound, Message, Position,
    ServerError,
};
use crate::queue::{Fifo, OutboundQueue, Pending, QueueConfig, Queued};
use crate::subscriptions::{Acked, Admitted, Recovery, Subscriptions};
use crate::timer::{Timer, TimerTable};
use crate::{excerpt, DecodeError, Error, Result};
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// Liveness detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// A fixed liveness timeout in ms; `None` (the default) derives it from the
    /// server, first match wins: its advertised heartbeat interval plus
    /// `grace_ms`; else the interval observed between its heartbeats on this
    /// connection (the longest of the last few) plus `grace_ms`, at most
    /// `default_timeout_ms`; else `default_timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// Added to the server's advertised or observed heartbeat interval
    /// (default 10,000 ms): how late a heartbeat may be.
    pub grace_ms: u64,
    /// The timeout while the server has neither advertised an interval nor
    /// been seen to keep one (two heartbeats at least 1 s apart), and the
    /// most an observed interval can make it (default 60,000 ms).
    pub default_timeout_ms: u64,
    /// Send the dialect's application ping after half the timeout of silence
    /// (default true). Browsers cannot send WebSocket ping frames.
    pub idle_ping: bool,
    /// How long [`Connection::reconnect_now`] waits for an answer to its probe
    /// ping on a connection that looks alive (default 1,000 ms). Any frame
    /// answers it. Short, because the shell probes when the page is visible
    /// or resumed again and someone is looking at it: an unanswered probe and
    /// the attempt that replaces the link at once (see `reconnect_now`) stay
    /// within 2 s on any network where a ping's round trip takes under a
    /// second. A slower but live link is replaced once, recovering what it
    /// carried, which costs less than showing a dead one.
    pub probe_timeout_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            timeout_ms: None,
            grace_ms: 10_000,
            default_timeout_ms: 60_000,
            idle_ping: true,
            probe_timeout_ms: 1_000,
        }
    }
}

/// Everything the state machine can be tuned with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Liveness detection.
    pub heartbeat: HeartbeatConfig,
    /// The offline send queue.
    pub queue: QueueConfig,
    /// How long an attempt may take from [`Transmit::Open`] to
    /// [`Connection::handle_open`] (default 10,000 ms).
    pub connect_timeout_ms: u64,
    /// Frames longer than this are reported and not parsed (default 1 MiB).
    pub max_frame_bytes: usize,
    /// Seed of the jitter and of publish ids. Give each client its own (the
    /// shells draw it from the OS or `crypto.getRandomValues`): equal seeds
    /// retry in lockstep, and publish under equal ids, which the server takes
    /// for repeats of one publish.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: BackoffConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            queue: QueueConfig::default(),
            connect_timeout_ms: 10_000,
            max_frame_bytes: 1 << 20,
            seed: 0x5eed,
        }
    }
}

/// The connection's state, as an application shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// The first attempt is under way.
    Connecting,
    /// A transport is open.
    Connected,
    /// The link was lost; waiting for the next attempt, or attempting.
    Reconnecting,
    /// Not connected and not trying: before `connect()`, after `close()`, after
    /// giving up, or after a refusal that retrying cannot fix.
    Disconnected,
}

impl State {
    /// The state's name in lower case, as the CLI and the TypeScript types spell it.
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Disconnected => "disconnected",
        }
    }
}

/// Why the state changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The application called `connect()`.
    Requested,
    /// The transport opened.
    Opened,
    /// The peer closed an open connection (code 1006 when no close frame came).
    Closed {
        /// The close code.
        code: u16,
        /// The close reason or the socket's error.
        reason: String,
    },
    /// An attempt failed before the connection opened.
    ConnectFailed {
        /// What went wrong.
        error: String,
    },
    /// Nothing arrived within the liveness timeout, or within the probe
    /// deadline after [`Connection::reconnect_now`] sent its probe ping.
    HeartbeatTimeout {
        /// How long the link had been silent, in ms.
        silent_ms: u64,
    },
    /// The server sent `reconnect`.
    ServerReconnect {
        /// Its reason.
        reason: String,
        /// Its `retry_after`, in ms.
        retry_after_ms: u64,
    },
    /// The token was refused (HTTP 401 or close 4001); retrying slowly.
    AuthRejected {
        /// 4001.
        code: u16,
    },
    /// Not allowed (HTTP 403 or close 4003); not retrying.
    Forbidden {
        /// 4003.
        code: u16,
    },
    /// The server answered the upgrade with an HTTP status other than 401
    /// and 403 that retrying at once does not fix (404 for a wrong path, 400
    /// for a request the endpoint does not take); retrying slowly, as for a
    /// refused token. 408, 429 and 5xx are [`ConnectFailed`](Self::ConnectFailed).
    UpgradeRefused {
        /// The HTTP status.
        status: u16,
    },
    /// `max_attempts` failed attempts in a row.
    GaveUp {
        /// How many.
        attempts: u32,
    },
    /// The application called `close()`.
    ClosedByUser,
    /// The shell reported that the network went offline.
    Offline,
    /// The shell closed the link because the page was put away: frozen, or
    /// hidden into the back/forward cache ([`Connection::suspend`]).
    Suspended,
}

impl Reason {
    /// The reason's name in snake case, for logs, JSON and TypeScript.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Requested => "requested",
            Reason::Opened => "opened",
            Reason::Closed { .. } => "closed",
            Reason::ConnectFailed { .. } => "connect_failed",
            Reason::HeartbeatTimeout { .. } => "heartbeat_timeout",
            Reason::ServerReconnect { .. } => "server_reconnect",
            Reason::AuthRejected { .. } => "auth_rejected",
            Reason::Forbidden { .. } => "forbidden",
            Reason::UpgradeRefused { .. } => "upgrade_refused",
            Reason::GaveUp { .. } => "gave_up",
            Reason::ClosedByUser => "closed_by_user",
            Reason::Offline => "offline",
            Reason::Suspended => "suspended",
        }
    }
}

/// A state transition. `from == to` happens for `Reconnecting`, when another
/// attempt failed and the next one is scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The previous state.
    pub from: State,
    /// The new state.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// Failed attempts since the last stable connection (the number of the
    /// attempt that is coming, while reconnecting).
    pub attempt: u32,
    /// When reconnecting: ms until the next attempt.
    pub retry_in_ms: Option<u64>,
}

/// Why a queued frame was never sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnsentReason {
    /// It waited longer than its time to live.
    Expired {
        /// How long it waited, in ms.
        waited_ms: u64,
    },
    /// The connection was closed for good (by the application, a refusal, or
    /// giving up) with the frame still queued.
    Closed,
}

impl UnsentReason {
    /// Its name in lower case, as the TypeScript types spell it.
    pub fn name(&self) -> &'static str {
        match self {
            UnsentReason::Expired { .. } => "expired",
            UnsentReason::Closed => "closed",
        }
    }
}

/// Why a publish will not be delivered by this client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The server refused it for good (`forbidden`, `invalid_topic`,
    /// `message_too_big`, ...): nothing was published. (`publish_failed`,
    /// the broker refusing one copy, is no refusal of the publish: it is
    /// sent again after a backoff step, as after `publish_unknown`.)
    #[error("the server refused the publish ({code}: {message}); nothing was published")]
    Refused {
        /// Its error code (`forbidden`, `invalid_topic`, `message_too_big`,
        /// `invalid_message`, `rate_limited`).
        code: String,
        /// What it said.
        message: String,
    },
    /// It was unanswered for longer than its time to live (counted from the
    /// `publish`, across resends).
    #[error("no answer to the publish within {waited_ms} ms; {}", maybe(.sent))]
    Expired {
        /// How long it waited, in ms.
        waited_ms: u64,
        /// Whether a server received it at least once: then it may have been
        /// published, and a repeat with the same id within the server's
        /// dedupe window is still safe.
        sent: bool,
    },
    /// The connection was closed for good (by the application, a refusal, or
    /// giving up) with the publish unanswered.
    #[error("the connection was closed before the publish was answered; {}", maybe(.sent))]
    Closed {
        /// As for `Expired`.
        sent: bool,
    },
}

impl PublishError {
    /// `refused`, `expired` or `closed`, as the TypeScript types spell it.
    pub fn name(&self) -> &'static str {
        match self {
            PublishError::Refused { .. } => "refused",
            PublishError::Expired { .. } => "expired",
            PublishError::Closed { .. } => "closed",
        }
    }

    /// Whether it may have been published all the same: `false` means
    /// nothing was.
    pub fn maybe_published(&self) -> bool {
        match self {
            PublishError::Refused { .. } => false,
            PublishError::Expired { sent, .. } | PublishError::Closed { sent } => *sent,
        }
    }
}

/// The end of a [`PublishError`]'s message: whether anything was published.
fn maybe(sent: &bool) -> &'static str {
    if *sent {
        "it may have been published"
    } else {
        "nothing was published"
    }
}

/// Something for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<V> {
    /// The state changed.
    StateChanged(StateChange),
    /// The server greeted this connection.
    Welcome {
        /// The server's id for it.
        client_id: Option<String>,
        /// The server's heartbeat interval, in ms.
        heartbeat_interval_ms: Option<u64>,
    },
    /// A message, delivered once, in order.
    Message(Message<V>),
    /// A subscription is established (again).
    Subscribed {
        /// The topic.
        topic: String,
        /// Whether missed messages were recovered.
        recovery: Recovery,
    },
    /// The server refused a subscription.
    SubscribeFailed {
        /// The topic.
        topic: String,
        /// Its reason.
        error: String,
    },
    /// The server confirmed an unsubscribe.
    Unsubscribed {
        /// The topic.
        topic: String,
    },
    /// Messages are missing: `seq` jumped, or the epoch changed mid-stream.
    Gap {
        /// The topic.
        topic: String,
        /// The last position delivered before.
        last: Position,
        /// The position of the message that revealed the gap.
        next: Position,
    },
    /// The answer to [`Connection::request_topics`].
    Topics(Vec<String>),
    /// The server reported an error.
    ServerError(ServerError),
    /// A frame did not decode; the connection carries on.
    DecodeError(DecodeError),
    /// The server took a publish: the answer to [`Connection::publish`],
    /// once per publish however often it was sent.
    Published {
        /// The id `publish` returned.
        id: String,
        /// Its topic.
        topic: String,
        /// Where it is in the topic's stream.
        position: Position,
    },
    /// A publish that this client will not deliver: refused by the server,
    /// expired or closed unanswered.
    PublishFailed {
        /// The id `publish` returned.
        id: String,
        /// Its topic.
        topic: String,
        /// Why, and whether it may have been published.
        error: PublishError,
    },
    /// A queued frame was never sent.
    Unsent {
        /// The frame.
        frame: String,
        /// Why.
        reason: UnsentReason,
    },
    /// A message of a type the dialect does not know.
    Unknown(V),
}

/// An instruction for the shell's transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a new WebSocket to the server; report the outcome with
    /// [`Connection::handle_open`] or [`Connection::handle_close`].
    Open,
    /// Send this text frame on the open WebSocket.
    Send(String),
    /// Close the current WebSocket with this code and reason, then discard it:
    /// feed nothing more from it.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// The error code of a publish whose outcome the server does not know: sent
/// again with the same id (PROTOCOL.md section 2).
const PUBLISH_UNKNOWN: &str = "publish_unknown";

/// The error code of a copy of a publish the broker refused: that copy was
/// not published, and a retry may succeed (an earlier copy may have been).
const PUBLISH_FAILED: &str = "publish_failed";

/// The longest publish id the protocol takes.
const MAX_PUBLISH_ID_BYTES: usize = 128;

/// The longest `retry_after` a server's `reconnect` can impose.
const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// How many of the latest intervals between server heartbeats the observed
/// interval is the longest of: one early beat must not shorten the timeout
/// (and cause a false one), and one late beat lengthens it only for a while.
const OBSERVED_INTERVALS: usize = 4;

/// Heartbeats closer together than this are one batch (held beats released
/// by a stalled path, `\n`-batched frames, a frozen tab waking up), not an
/// interval: learning from them would shrink the timeout to nothing.
const MIN_OBSERVED_INTERVAL_MS: u64 = 1_000;

/// The server's heartbeat interval as seen on the current transport, for
/// servers that do not advertise it.
#[derive(Clone, Copy, Debug, Default)]
struct ObservedHeartbeat {
    /// When the heartbeat that the next interval is measured from arrived.
    last_at: Option<u64>,
    /// The latest intervals, in ms; 0 is an empty slot.
    intervals: [u64; OBSERVED_INTERVALS],
    /// The slot the next interval goes to.
    next: usize,
}

impl ObservedHeartbeat {
    fn beat(&mut self, now: u64) {
        let Some(last) = self.last_at else {
            // The time since the open is no interval: a server's heartbeat
            // clock need not start with the connection.
            self.last_at = Some(now);
            return;
        };
        let interval = now.saturating_sub(last);
        if interval < MIN_OBSERVED_INTERVAL_MS {
            // Same batch: the next interval is measured from its first beat.
            return;
        }
        self.intervals[self.next] = interval;
        self.next = (self.next + 1) % OBSERVED_INTERVALS;
        self.last_at = Some(now);
    }

    /// The longest of the latest intervals; `None` before two heartbeats.
    fn interval_ms(&self) -> Option<u64> {
        self.intervals.iter().copied().max().filter(|&ms| ms > 0)
    }
}

/// When `schedule_retry` starts the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// After the backoff delay of the attempt count.
    Backoff,
    /// After the capped delay: retrying at once does not fix a refusal.
    Slowly,
    /// Now: a probe went unanswered.
    AtOnce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    None,
    Opening,
    Open,
}

/// One logical connection to a server, over as many transports as it takes.
///
/// Inputs are `connect`, `handle_*` and the application's calls; outputs are
/// drained with [`poll_transmit`](Self::poll_transmit),
/// [`poll_event`](Self::poll_event) and [`poll_timeout`](Self::poll_timeout)
/// after every input. Time is a monotonic millisecond count passed to every
/// call that may need it. See the crate docs for the drive loop.
pub struct Connection<V: JsonValue> {
    config: Config,
    dialect: Box<dyn Dialect<V> + Send>,
    state: State,
    transport: Transport,
    attempt: u32,
    rng: fastrand::Rng,
    timers: TimerTable,
    last_inbound: u64,
    ping_sent: bool,
    server_heartbeat_ms: Option<u64>,
    observed_heartbeat: ObservedHeartbeat,
    subs: Subscriptions,
    queue: OutboundQueue,
    /// `publish_unknown` answers since the last ack: the resend's backoff step.
    unknowns: u32,
    transmits: Fifo<Transmit>,
    events: Fifo<Event<V>>,
}

impl<V: JsonValue> core::fmt::Debug for Connection<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("dialect", &self.dialect.name())
            .field("state", &self.state)
            .field("attempt", &self.attempt)
            .field("subscriptions", &self.subs.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl<V: JsonValue> Connection<V> {
    /// A disconnected connection; call [`connect`](Self::connect) to start.
    pub fn new(config: Config, dialect: Box<dyn Dialect<V> + Send>) -> Self {
        let rng = fastrand::Rng::with_seed(config.seed);
        Connection {
            config,
            dialect,
            state: State::Disconnected,
            transport: Transport::None,
            attempt: 0,
            rng,
            timers: TimerTable::default(),
            last_inbound: 0,
            ping_sent: false,
            server_heartbeat_ms: None,
            observed_heartbeat: ObservedHeartbeat::default(),
            subs: Subscriptions::default(),
            queue: OutboundQueue::default(),
            unknowns: 0,
            transmits: Fifo::default(),
            events: Fifo::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Failed attempts since the last stable connection.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The subscriptions and their states.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subs
    }

    /// The dialect's name.
    pub fn dialect_name(&self) -> &'static str {
        self.dialect.name()
    }

    /// Frames and publishes waiting for a transport (or, after a
    /// `publish_unknown`, for their retry).
    pub fn queued(&self) -> usize {
        self.queue.waiting()
    }

    /// Publishes sent on the current transport and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The liveness timeout now in force, in ms: the configured one, else the
    /// server's advertised heartbeat interval plus the grace, else the
    /// interval observed between its heartbeats plus the grace (at most the
    /// default), else the default. See [`HeartbeatConfig`].
    pub fn liveness_timeout_ms(&self) -> u64 {
        let hb = &self.config.heartbeat;
        if let Some(timeout) = hb.timeout_ms {
            return timeout;
        }
        // The advertised interval is the contract, even if the server beats
        // more often; the observed one only ever shortens the default.
        match (
            self.server_heartbeat_ms,
            self.observed_heartbeat.interval_ms(),
        ) {
            (Some(advertised), _) => advertised.saturating_add(hb.grace_ms),
            (None, Some(observed)) => observed
                .saturating_add(hb.grace_ms)
                .min(hb.default_timeout_ms),
            (None, None) => hb.default_timeout_ms,
        }
    }

    /// The server's heartbeat interval as observed on the current connection
    /// (the longest of the last few intervals), in ms; `None` before two
    /// heartbeats at least 1 s apart arrived on it.
    pub fn observed_heartbeat_interval_ms(&self) -> Option<u64> {
        self.observed_heartbeat.interval_ms()
    }

    // ----- Application calls -------------------------------------------------

    /// Starts connecting, from `Disconnected`; otherwise does nothing.
    pub fn connect(&mut self, now: u64) {
        if self.state != State::Disconnected {
            return;
        }
        self.attempt = 0;
        self.set_state(State::Connecting, Reason::Requested, None);
        self.start_attempt(now);
    }

    /// Closes for good: a close frame if a transport exists, no reconnect, and
    /// queued frames reported as [`UnsentReason::Closed`]. Subscriptions stay
    /// registered for a later [`connect`](Self::connect).
    pub fn close(&mut self, now: u64) {
        if self.state == State::Disconnected {
            return;
        }
        self.drop_transport(close_code::NORMAL, "closed by client");
        self.stop(now, Reason::ClosedByUser);
    }

    /// Skips the backoff wait, for a shell that knows the network is back
    /// or the page is in use again (browser `online`, page visible, resumed
    /// or restored from the back/forward cache). On a connection that looks
    /// alive it sends a probe ping and declares the link dead if nothing
    /// arrives within `probe_timeout_ms`; that link is replaced at once, not
    /// after the backoff: one attempt per probe, so no loop, and should it
    /// fail the next ones back off as usual.
    pub fn reconnect_now(&mut self, now: u64) {
        match (self.state, self.transport) {
            (State::Reconnecting, Transport::None) => self.start_attempt(now),
            (State::Connected, Transport::Open) => {
                if let Some(ping) = self.dialect.encode_ping() {
                    self.transmits.push_back(Transmit::Send(ping));
                    self.ping_sent = true;
                    let deadline = now.saturating_add(self.config.heartbeat.probe_timeout_ms);
                    let earliest = self
                        .timers
                        .get(Timer::Probe)
                        .map_or(deadline, |d| d.min(deadline));
                    self.timers.set(Timer::Probe, earliest);
                }
            }
            _ => {}
        }
    }

    /// The network went away (browser `offline`): drop the transport and show
    /// `Reconnecting` at once instead of waiting for the liveness timeout.
    pub fn network_offline(&mut self, now: u64) {
        if self.transport != Transport::None {
            self.drop_transport(close_code::GOING_AWAY, "network offline");
            self.schedule_retry(now, Reason::Offline, Pace::Backoff);
        }
    }

    /// The page is being put away (browser `freeze`, `pagehide`): close the
    /// transport cleanly (1001) and show `Reconnecting` with
    /// [`Reason::Suspended`]. A page with an open WebSocket is not kept in
    /// the back/forward cache, a frozen one cannot read its socket (the
    /// server's frames pile up, then arrive stale), and the server frees the
    /// connection now instead of after its stale timeout. The retry is
    /// scheduled as after any loss (a frozen page's timer waits with it);
    /// the shell calls [`reconnect_now`](Self::reconnect_now) when the page
    /// is resumed or shown again, and the resubscribes recover from the last
    /// `seq` delivered.
    pub fn suspend(&mut self, now: u64) {
        if self.transport != Transport::None {
            self.drop_transport(close_code::GOING_AWAY, "page suspended");
            self.schedule_retry(now, Reason::Suspended, Pace::Backoff);
        }
    }

    /// Subscribes to `topic`, now if connected, else on the next connection.
    /// Subscribing again to a wanted topic does nothing.
    pub fn subscribe(&mut self, now: u64, topic: &str) -> Result<()> {
        self.subscribe_from(now, topic, None)
    }

    /// Subscribes to `topic` as [`subscribe`](Self::subscribe) does, resuming
    /// after `since` when given: a position delivered before this
    /// subscription existed, by another connection (a shared connection's
    /// new leader resumes from where the tabs stand). The subscribe carries
    /// it, messages up to it are not delivered again, and a server that
    /// cannot recover from it is reported as a loss.
    pub fn subscribe_from(
        &mut self,
        _now: u64,
        topic: &str,
        since: Option<Position>,
    ) -> Result<()> {
        check_topic(topic)?;
        let Some(sub) = self.subs.insert(topic) else {
            return Ok(());
        };
        if let Some(since) = since {
            sub.resume_from(since);
        }
        if self.transport == Transport::Open {
            self.send_subscribe(topic);
        }
        Ok(())
    }

    /// Unsubscribes from `topic`. Returns whether it was subscribed.
    pub fn unsubscribe(&mut self, _now: u64, topic: &str) -> bool {
        if self.subs.remove(topic).is_none() {
            return false;
        }
        if self.transport == Transport::Open {
            if let Some(frame) = self.dialect.encode_unsubscribe(topic) {
                self.transmits.push_back(Transmit::Send(frame));
            }
        }
        true
    }

    /// Publishes `data` on `topic` through the dialect; queued while offline.
    /// Returns the publish's id.
    ///
    /// Where the dialect [acks publishes](Dialect::acks_publishes), the
    /// publish carries that id (128 bits from the seeded generator: see
    /// [`Config::seed`]) and is kept until the server answers it, sent again
    /// with the same id on every new transport, in order, within the queue's
    /// time to live, and after a `publish_unknown` or `publish_failed`
    /// answer (the broker did not know, or refused that copy) once a backoff
    /// step has passed; the server publishes it once however many copies
    /// arrive. The outcome is one [`Event::Published`] or
    /// [`Event::PublishFailed`] with that id. Elsewhere it is a plain frame
    /// (the id is returned but sent nowhere, and nothing answers it).
    pub fn publish(&mut self, now: u64, topic: &str, data: &V) -> Result<String> {
        let id = self.new_publish_id();
        let ttl_ms = self.config.queue.ttl_ms;
        self.enqueue_publish(now, &id, topic, data, ttl_ms, false)?;
        Ok(id)
    }

    /// As [`publish`](Self::publish), under an `id` the shell chose (1 to
    /// 128 bytes, unique: the browser shell draws 128 bits from
    /// `crypto.getRandomValues`, as its tabs in shared mode do).
    pub fn publish_as(&mut self, now: u64, id: &str, topic: &str, data: &V) -> Result<()> {
        let ttl_ms = self.config.queue.ttl_ms;
        self.enqueue_publish(now, id, topic, data, ttl_ms, false)
    }

    /// Publishes under an `id` chosen before, with `ttl_ms` left of its time
    /// to live: the durable outbox of a shell that restarted hands back what
    /// was unanswered. It counts as possibly published already (a failure
    /// says so), and the server answers a repeat within its dedupe window
    /// with the first publish's position. An id held already is not queued
    /// twice.
    pub fn republish(
        &mut self,
        now: u64,
        id: &str,
        topic: &str,
        data: &V,
        ttl_ms: u64,
    ) -> Result<()> {
        self.enqueue_publish(now, id, topic, data, ttl_ms, true)
    }

    fn enqueue_publish(
        &mut self,
        now: u64,
        id: &str,
        topic: &str,
        data: &V,
        ttl_ms: u64,
        sent: bool,
    ) -> Result<()> {
        check_topic(topic)?;
        if id.is_empty() || id.len() > MAX_PUBLISH_ID_BYTES {
            return Err(Error::InvalidPublishId { len: id.len() });
        }
        let acks = self.dialect.acks_publishes();
        let frame = self
            .dialect
            .encode_publish(topic, data, acks.then_some(id))
            .ok_or(Error::Unsupported {
                dialect: self.dialect.name(),
                operation: "publish",
            })?;
        if !acks {
            return self.send_frame_with_ttl(now, frame, ttl_ms);
        }
        if self.state == State::Disconnected {
            return Err(Error::Closed);
        }
        if self.queue.publish_mut(id).is_some() {
            // Held already (a shell that handed it over twice): one copy.
            return Ok(());
        }
        if self.queue.len() >= self.config.queue.max_frames {
            return Err(Error::QueueFull {
                limit: self.config.queue.max_frames,
            });
        }
        let mut pending = Pending::new(id.to_owned(), topic.to_owned(), sent);
        if self.transport == Transport::Open {
            pending.sent = true;
            pending.in_flight = true;
            self.transmits.push_back(Transmit::Send(frame.clone()));
        }
        self.queue.push(Queued {
            frame,
            queued_at: now,
            expires_at: now.saturating_add(ttl_ms),
            publish: Some(pending),
        });
        Ok(())
    }

    /// 128 bits from the seeded generator, as 32 hex digits.
    fn new_publish_id(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bits = [self.rng.u64(..), self.rng.u64(..)];
        let mut id = String::with_capacity(32);
        for word in bits {
            for shift in (0..16).rev() {
                id.push(HEX[((word >> (shift * 4)) & 0xf) as usize] as char);
            }
        }
        id
    }

    /// Sends a JSON value as is; queued while offline.
    pub fn send_json(&mut self, now: u64, value: &V) -> Result<()> {
        self.send_frame(now, value.to_json())
    }

    /// Asks the server for the subscribed topics (answered with
    /// [`Event::Topics`]); queued while offline.
    pub fn request_topics(&mut self, now: u64) -> Result<()> {
        let frame = self.dialect.encode_get_topics().ok_or(Error::Unsupported {
            dialect: self.dialect.name(),
            operation: "list topics",
        })?;
        self.send_frame(now, frame)
    }

    /// Sends a text frame now if connected; otherwise queues it with the
    /// configured time to live. A full queue refuses it.
    pub fn send_frame(&mut self, now: u64, frame: String) -> Result<()> {
        self.send_frame_with_ttl(now, frame, self.config.queue.ttl_ms)
    }

    /// As [`send_frame`](Self::send_frame), with this frame's own time to live.
    pub fn send_frame_with_ttl(&mut self, now: u64, frame: String, ttl_ms: u64) -> Result<()> {
        match (self.state, self.transport) {
            (State::Disconnected, _) => Err(Error::Closed),
            (_, Transport::Open) => {
                self.transmits.push_back(Transmit::Send(frame));
                Ok(())
            }
            _ if self.queue.len() >= self.config.queue.max_frames => Err(Error::QueueFull {
                limit: self.config.queue.max_frames,
            }),
            _ => {
                self.queue.push(Queued {
                    frame,
                    queued_at: now,
                    expires_at: now.saturating_add(ttl_ms),
                    publish: None,
                });
                Ok(())
            }
        }
    }

    // ----- Transport inputs --------------------------------------------------

    /// The transport asked for by [`Transmit::Open`] is open.
    pub fn handle_open(&mut self, now: u64) {
        if self.transport != Transport::Opening {
            return;
        }
        self.transport = Transport::Open;
        self.timers.stop(Timer::Connect);
        self.last_inbound = now;
        self.ping_sent = false;
        self.timers.stop(Timer::Probe);
        self.server_heartbeat_ms = None;
        // Learned again on every connection: the next may be answered by
        // another server (behind a balancer, after a deploy) that beats more
        // slowly, and a carried-over shorter interval would kill every
        // connection to it before its first heartbeat.
        self.observed_heartbeat = ObservedHeartbeat::default();
        let stable_at = now.saturating_add(self.config.backoff.stable_after_ms);
        self.timers.set(Timer::Stable, stable_at);
        self.set_state(State::Connected, Reason::Opened, None);
        let topics: Vec<String> = self.subs.topics().map(str::to_owned).collect();
        for topic in &topics {
            self.send_subscribe(topic);
        }
        self.flush_queue();
    }

    fn flush_queue(&mut self) {
        for frame in self.queue.flush() {
            self.transmits.push_back(Transmit::Send(frame));
        }
    }

    /// A text frame arrived.
    pub fn handle_text(&mut self, now: u64, text: &str) {
        if self.transport != Transport::Open {
            return;
        }
        self.saw_traffic(now);
        if self.too_big(text.len()) {
            return;
        }
        match V::parse(text) {
            Ok(value) => self.dispatch(now, value),
            Err(error) if !text.contains('\n') => {
                self.events.push_back(Event::DecodeError(DecodeError::Json {
                    error,
                    excerpt: excerpt(text),
                }))
            }
            Err(_) => {
                // A batch: one JSON value per line (gorilla-hub style).
                for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
                    match V::parse(line) {
                        Ok(value) => self.dispatch(now, value),
                        Err(error) => {
                            self.events.push_back(Event::DecodeError(DecodeError::Json {
                                error,
                                excerpt: excerpt(line),
                            }))
                        }
                    }
                }
            }
        }
    }

    /// A frame that the shell parsed itself, by its [`Header`]: the fast path
    /// of a shell with its own JSON parser (the browser's `JSON.parse`), where
    /// an ordinary message never crosses into the core whole. On
    /// [`Admit::Deliver`] the shell hands the frame's payload to the
    /// application after draining the events this call queued; on
    /// [`Admit::Decode`] it feeds the whole value to
    /// [`handle_value`](Self::handle_value). `len` is the frame's length, held
    /// against [`Config::max_frame_bytes`] as [`handle_text`](Self::handle_text) does.
    pub fn handle_header(&mut self, now: u64, len: usize, header: &Header<'_>) -> Admit {
        if self.transport != Transport::Open {
            return Admit::Drop;
        }
        self.saw_traffic(now);
        if self.too_big(len) {
            return Admit::Drop;
        }
        match self.dialect.decode_header(header) {
            Some(m) if self.admit(m.topic, m.position) => Admit::Deliver,
            Some(_) => Admit::Drop,
            None => Admit::Decode,
        }
    }

    /// A frame (or one line of a `\n`-batched frame) that the shell parsed
    /// itself, as a whole value: what [`handle_text`](Self::handle_text) does
    /// after parsing. The shell has checked its length with
    /// [`handle_header`](Self::handle_header) or [`fits`](Self::fits).
    pub fn handle_value(&mut self, now: u64, value: V) {
        if self.transport != Transport::Open {
            return;
        }
        self.saw_traffic(now);
        self.dispatch(now, value);
    }

    /// A frame (or a line of one) that the shell's parser refused, with the
    /// parser's message: reported, the connection carries on.
    pub fn handle_unparsed(&mut self, now: u64, text: &str, error: String) {
        if self.transport != Transport::Open {
            return;
        }
        self.saw_traffic(now);
        self.events.push_back(Event::DecodeError(DecodeError::Json {
            error,
            excerpt: excerpt(text),
        }));
    }

    /// Whether a text frame of `len` bytes is within the limit; if not, it is
    /// reported (and counts as traffic), and the shell must not parse it.
    pub fn fits(&mut self, now: u64, len: usize) -> bool {
        if self.transport != Transport::Open {
            return false;
        }
        self.saw_traffic(now);
        !self.too_big(len)
    }

    fn too_big(&mut self, len: usize) -> bool {
        let limit = self.config.max_frame_bytes;
        if len > limit {
            self.events
                .push_back(Event::DecodeError(DecodeError::TooBig { len, limit }));
        }
        len > limit
    }

    /// A binary frame arrived: reported, the connection carries on.
    pub fn handle_binary(&mut self, now: u64, len: usize) {
        if self.transport != Transport::Open {
            return;
        }
        self.saw_traffic(now);
        self.events
            .push_back(Event::DecodeError(DecodeError::Binary { len }));
    }

    /// A WebSocket ping or pong frame arrived: proof of liveness only.
    pub fn handle_control_frame(&mut self, now: u64) {
        if self.transport == Transport::Open {
            self.saw_traffic(now);
        }
    }

    /// The transport closed or failed (also for a failed [`Transmit::Open`]).
    pub fn handle_close(&mut self, now: u64, info: CloseInfo) {
        let was_open = match self.transport {
            Transport::None => return,
            Transport::Opening => false,
            Transport::Open => true,
        };
        self.transport_gone();
        if let CloseInfo::Http { status } = &info {
            let status = *status;
            if (400..500).contains(&status) && ![401, 403, 408, 429].contains(&status) {
                return self.schedule_retry(now, Reason::UpgradeRefused { status }, Pace::Slowly);
            }
        }
        let code = info.code();
        match close_policy(code) {
            ClosePolicy::Stop => self.stop(now, Reason::Forbidden { code }),
            ClosePolicy::ReconnectSlowly => {
                self.schedule_retry(now, Reason::AuthRejected { code }, Pace::Slowly)
            }
            ClosePolicy::Reconnect => {
                let reason = match (was_open, info) {
                    (true, CloseInfo::Frame { code, reason }) => Reason::Closed { code, reason },
                    (true, CloseInfo::Failed { error }) => Reason::Closed {
                        code: close_code::ABNORMAL,
                        reason: error,
                    },
                    (_, CloseInfo::Http { status }) => Reason::ConnectFailed {
                        error: concat(&[
                            "the server answered the upgrade with HTTP ",
                            &u64_text(status.into()),
                        ]),
                    },
                    (false, CloseInfo::Frame { code, reason }) => Reason::ConnectFailed {
                        error: concat(&[
                            "closed with ",
                            &u64_text(code.into()),
                            " before opening: ",
                            &reason,
                        ]),
                    },
                    (false, CloseInfo::Failed { error }) => Reason::ConnectFailed { error },
                };
                self.schedule_retry(now, reason, Pace::Backoff)
            }
        }
    }

    /// Time passed. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: u64) {
        let expired = self.queue.take_expired(now);
        self.unsent(expired, Some(now));
        if self.timers.is_expired(Timer::Resend, now) {
            self.timers.stop(Timer::Resend);
            self.flush_queue();
        }
        match self.transport {
            Transport::Opening if self.timers.is_expired(Timer::Connect, now) => {
                self.drop_transport(close_code::GOING_AWAY, "connect timeout");
                let ms = u64_text(self.config.connect_timeout_ms);
                let error = concat(&["no open within ", &ms, " ms"]);
                self.schedule_retry(now, Reason::ConnectFailed { error }, Pace::Backoff);
            }
            Transport::None if self.timers.is_expired(Timer::Retry, now) => self.start_attempt(now),
            Transport::Open => {
                if now >= self.liveness_deadline() {
                    let silent_ms = now - self.last_inbound;
                    // An unanswered probe (`reconnect_now`) is replaced at once.
                    let pace = if self.timers.is_expired(Timer::Probe, now) {
                        Pace::AtOnce
                    } else {
                        Pace::Backoff
                    };
                    self.drop_transport(close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                    self.schedule_retry(now, Reason::HeartbeatTimeout { silent_ms }, pace);
                    return;
                }
                if self.idle_ping_at().is_some_and(|t| now >= t) {
                    if let Some(ping) = self.dialect.encode_ping() {
                        self.transmits.push_back(Transmit::Send(ping));
                    }
                    self.ping_sent = true;
                }
                if self.timers.is_expired(Timer::Stable, now) {
                    self.timers.stop(Timer::Stable);
                    self.attempt = 0;
                }
            }
            _ => {}
        }
    }

    // ----- Outputs ----------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) wants to be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        // The timers armed are those of the transport's state (see `timer`);
        // an open one also has the liveness deadline and the idle ping.
        debug_assert!(self.timers_fit_transport(), "{:?}", self.timers);
        let (liveness, idle_ping) = match self.transport {
            Transport::Open => (Some(self.liveness_deadline()), self.idle_ping_at()),
            Transport::None | Transport::Opening => (None, None),
        };
        [
            self.timers.next_timeout(),
            liveness,
            idle_ping,
            self.queue.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) or
    /// [`poll_event`](Self::poll_event) has something: lets a shell skip
    /// draining after an input that produced nothing (most messages).
    #[must_use]
    pub fn has_output(&self) -> bool {
        !self.transmits.is_empty() || !self.events.is_empty()
    }

    /// The next instruction for the transport.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<V>> {
        self.events.pop_front()
    }

    // ----- Internals ----------------------------------------------------------

    fn set_state(&mut self, to: State, reason: Reason, retry_in_ms: Option<u64>) {
        let from = core::mem::replace(&mut self.state, to);
        self.events.push_back(Event::StateChanged(StateChange {
            from,
            to,
            reason,
            attempt: self.attempt,
            retry_in_ms,
        }));
    }

    fn start_attempt(&mut self, now: u64) {
        self.timers.stop(Timer::Retry);
        self.transport = Transport::Opening;
        let deadline = now.saturating_add(self.config.connect_timeout_ms);
        self.timers.set(Timer::Connect, deadline);
        self.transmits.push_back(Transmit::Open);
    }

    fn drop_transport(&mut self, code: u16, reason: &str) {
        if self.transport != Transport::None {
            self.transmits.push_back(Transmit::Close {
                code,
                reason: reason.to_owned(),
            });
            self.transport_gone();
        }
    }

    /// Whether only the timers of the transport's state are armed.
    fn timers_fit_transport(&self) -> bool {
        let armed = |timer| self.timers.get(timer).is_some();
        match self.transport {
            Transport::None => {
                !armed(Timer::Connect)
                    && !armed(Timer::Probe)
                    && !armed(Timer::Stable)
                    && !armed(Timer::Resend)
            }
            Transport::Opening => {
                armed(Timer::Connect)
                    && !armed(Timer::Retry)
                    && !armed(Timer::Probe)
                    && !armed(Timer::Stable)
                    && !armed(Timer::Resend)
            }
            Transport::Open => !armed(Timer::Connect) && !armed(Timer::Retry),
        }
    }

    /// No transport any more: the timers of the other states stop with it.
    fn transport_gone(&mut self) {
        self.transport = Transport::None;
        self.queue.transport_gone();
        for timer in [Timer::Connect, Timer::Probe, Timer::Stable, Timer::Resend] {
            self.timers.stop(timer);
        }
    }

    fn unestablish_subscriptions(&mut self) {
        for (_, sub) in self.subs.iter_mut() {
            sub.unestablish();
        }
    }

    /// Ends in `Disconnected`, reporting queued frames as unsent.
    fn stop(&mut self, _now: u64, reason: Reason) {
        self.timers.stop(Timer::Retry);
        self.timers.stop(Timer::Stable);
        self.unestablish_subscriptions();
        self.set_state(State::Disconnected, reason, None);
        let all = self.queue.drain();
        self.unsent(all, None);
    }

    /// Reports frames that will not be sent and publishes that will not be
    /// answered: expired at `now`, or (`None`) closed.
    fn unsent(&mut self, frames: Vec<Queued>, expired_at: Option<u64>) {
        for q in frames {
            let waited = expired_at.map(|now| now - q.queued_at);
            self.events.push_back(match (q.publish, waited) {
                (Some(p), Some(waited_ms)) => Event::PublishFailed {
                    id: p.id,
                    topic: p.topic,
                    error: PublishError::Expired {
                        waited_ms,
                        sent: p.sent,
                    },
                },
                (Some(p), None) => Event::PublishFailed {
                    id: p.id,
                    topic: p.topic,
                    error: PublishError::Closed { sent: p.sent },
                },
                (None, Some(waited_ms)) => Event::Unsent {
                    frame: q.frame,
                    reason: UnsentReason::Expired { waited_ms },
                },
                (None, None) => Event::Unsent {
                    frame: q.frame,
                    reason: UnsentReason::Closed,
                },
            });
        }
    }

    fn schedule_retry(&mut self, now: u64, reason: Reason, pace: Pace) {
        self.unestablish_subscriptions();
        self.timers.stop(Timer::Stable);
        let backoff = &self.config.backoff;
        if backoff.max_attempts.is_some_and(|max| self.attempt >= max) {
            let attempts = self.attempt;
            self.stop(now, Reason::GaveUp { attempts });
            return;
        }
        let step = match pace {
            Pace::Slowly => self.attempt.max(backoff.capped_attempt()),
            Pace::Backoff | Pace::AtOnce => self.attempt,
        };
        let delay = match &reason {
            _ if pace == Pace::AtOnce => 0,
            Reason::ServerReconnect { retry_after_ms, .. } => {
                // Honoured up to an hour: a server (or a bug in one) must not
                // park its clients for a day.
                let retry_after_ms = (*retry_after_ms).min(MAX_RETRY_AFTER_MS);
                let spread = (retry_after_ms / 4).max(1_000);
                retry_after_ms + self.rng.u64(0..=spread)
            }
            _ => backoff.delay_ms(step, &mut self.rng),
        };
        self.attempt = self.attempt.saturating_add(1);
        self.timers.set(Timer::Retry, now.saturating_add(delay));
        self.set_state(State::Reconnecting, reason, Some(delay));
        if pace == Pace::AtOnce {
            self.start_attempt(now);
        }
    }

    fn saw_traffic(&mut self, now: u64) {
        self.last_inbound = now;
        self.ping_sent = false;
        self.timers.stop(Timer::Probe);
    }

    fn liveness_deadline(&self) -> u64 {
        let deadline = self.last_inbound.saturating_add(self.liveness_timeout_ms());
        self.timers
            .get(Timer::Probe)
            .map_or(deadline, |p| p.min(deadline))
    }

    fn idle_ping_at(&self) -> Option<u64> {
        let has_ping = self.config.heartbeat.idle_ping && !self.ping_sent;
        has_ping.then(|| {
            self.last_inbound
                .saturating_add(self.liveness_timeout_ms() / 2)
        })
    }

    fn send_subscribe(&mut self, topic: &str) {
        let recovery = self.dialect.supports_recovery();
        let acks = self.dialect.acks_subscriptions();
        let Some(sub) = self.subs.get_mut(topic) else {
            return;
        };
        let since = sub.since(recovery);
        let with_since = since.is_some();
        let frame = self.dialect.encode_subscribe(topic, since);
        // Without a frame nothing will ack it: established locally.
        let established = sub.sent(with_since, acks && frame.is_some());
        if let Some(frame) = frame {
            self.transmits.push_back(Transmit::Send(frame));
        }
        if let Some(recovery) = established {
            self.events.push_back(Event::Subscribed {
                topic: topic.to_owned(),
                recovery,
            });
        }
    }

    fn dispatch(&mut self, now: u64, value: V) {
        let inbound = match self.dialect.decode(value, &self.subs) {
            Ok(inbound) => inbound,
            Err(e) => {
                self.events.push_back(Event::DecodeError(e));
                return;
            }
        };
        match inbound {
            Inbound::Welcome {
                client_id,
                heartbeat_interval_ms,
            } => {
                self.server_heartbeat_ms = heartbeat_interval_ms;
                self.events.push_back(Event::Welcome {
                    client_id,
                    heartbeat_interval_ms,
                });
            }
            Inbound::SubscribeAck {
                topic,
                success,
                error,
                recovered,
                position,
            } => self.on_subscribe_ack(topic, success, error, recovered, position),
            // Not news when the application has subscribed to it again since.
            Inbound::UnsubscribeAck { topic, .. } if !self.subs.contains(&topic) => {
                self.events.push_back(Event::Unsubscribed { topic })
            }
            Inbound::UnsubscribeAck { .. } => {}
            Inbound::Topics(topics) => self.events.push_back(Event::Topics(topics)),
            Inbound::Message(message) => self.on_message(message),
            Inbound::Heartbeat { timestamp, .. } => {
                self.observed_heartbeat.beat(now);
                if let Some(echo) = self.dialect.encode_heartbeat_echo(timestamp.as_ref()) {
                    self.transmits.push_back(Transmit::Send(echo));
                }
            }
            Inbound::Pong | Inbound::Ignore => {}
            Inbound::PublishAck {
                id,
                topic,
                position,
            } => {
                // A second answer (to a copy sent again) finds nothing.
                if self.queue.take_publish(&id).is_some() {
                    self.unknowns = 0;
                    self.events.push_back(Event::Published {
                        id,
                        topic,
                        position,
                    });
                }
            }
            Inbound::Error(error) => self.on_server_error(now, error),
            Inbound::Reconnect {
                reason,
                retry_after_ms,
            } => {
                self.drop_transport(close_code::NORMAL, "reconnect requested by server");
                self.schedule_retry(
                    now,
                    Reason::ServerReconnect {
                        reason,
                        retry_after_ms,
                    },
                    Pace::Backoff,
                );
            }
            Inbound::Unknown(value) => self.events.push_back(Event::Unknown(value)),
        }
    }

    /// An error answering a held publish settles it, or (`publish_unknown`,
    /// `publish_failed`) schedules its retry; any other error is the
    /// application's.
    fn on_server_error(&mut self, now: u64, error: ServerError) {
        let Some(id) = error
            .id
            .clone()
            .filter(|id| self.queue.publish_mut(id).is_some())
        else {
            return self.events.push_back(Event::ServerError(error));
        };
        // Neither settles it: `publish_unknown` may have published it, and
        // `publish_failed` (the broker refused this copy, "a retry may
        // succeed") says nothing of a copy sent before (a frozen Redis runs
        // the scripts it held when it thaws). Sent again, with the others so
        // answered, after a backoff step that grows while the broker
        // struggles, until an ack or the time to live ends it.
        if error.code == PUBLISH_UNKNOWN || error.code == PUBLISH_FAILED {
            if let Some(p) = self.queue.publish_mut(&id) {
                p.in_flight = false;
            }
            if self.timers.get(Timer::Resend).is_none() {
                let step = self.unknowns;
                self.unknowns = step.saturating_add(1);
                let delay = self.config.backoff.delay_ms(step, &mut self.rng);
                self.timers.set(Timer::Resend, now.saturating_add(delay));
            }
            // Told, so that a dashboard can show the retry; nothing to do.
            return self.events.push_back(Event::ServerError(error));
        }
        if let Some(p) = self.queue.take_publish(&id) {
            self.events.push_back(Event::PublishFailed {
                id,
                topic: p.topic,
                error: PublishError::Refused {
                    code: error.code,
                    message: error.message,
                },
            });
        }
    }

    fn on_subscribe_ack(
        &mut self,
        topic: String,
        success: bool,
        error: Option<String>,
        recovered: Option<bool>,
        position: Option<Position>,
    ) {
        let supports_recovery = self.dialect.supports_recovery();
        let Some(sub) = self.subs.get_mut(&topic) else {
            return; // unsubscribed meanwhile
        };
        match sub.acked(success, error, recovered, position, supports_recovery) {
            Acked::Stale => {}
            Acked::Subscribed(recovery) => {
                self.events.push_back(Event::Subscribed { topic, recovery })
            }
            Acked::Failed(error) => self
                .events
                .push_back(Event::SubscribeFailed { topic, error }),
        }
    }

    fn on_message(&mut self, message: Message<V>) {
        let position = message.position.as_ref().map(|p| (p.epoch.as_str(), p.seq));
        if self.admit(&message.topic, position) {
            self.events.push_back(Event::Message(message));
        }
    }

    /// At-most-once delivery: whether a message at `position` on `topic` is
    /// new. Queues a [`Event::Gap`] when it is new but not the next one.
    fn admit(&mut self, topic: &str, position: Option<(&str, u64)>) -> bool {
        let (Some((epoch, seq)), Some(sub)) = (position, self.subs.get_mut(topic)) else {
            return true;
        };
        match sub.admit(epoch, seq) {
            Admitted::Old => false,
            Admitted::Next => true,
            Admitted::Gap(last) => {
                self.events.push_back(Event::Gap {
                    topic: topic.to_owned(),
                    last,
                    next: Position {
                        epoch: epoch.to_owned(),
                        seq,
                    },
                });
                true
            }
        }
    }
}

/// A topic name the core can subscribe or publish to: not empty (the server
/// refuses one, and the application learns why here, at once).
fn check_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::InvalidTopic {
            topic: topic.to_owned(),
            problem: "a topic name cannot be empty",
        });
    }
    Ok(())
}
