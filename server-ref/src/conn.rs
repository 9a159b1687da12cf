//! The per-connection machinery shared by every endpoint: admission (origin,
//! connection limit, token), the socket split into a reader loop and a writer
//! task joined by a bounded queue, heartbeats, stale cleanup, rate limiting,
//! error accounting and graceful shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Notify;

use crate::auth::{token_from, Claims};
use crate::broker::Subscriber;
use crate::frames::{error_frame, frame, reconnect_frame};
use crate::metrics::{Endpoint, Metrics};
use crate::outbox::{Out, Outbox, Pushed};
use crate::published::{Published, Shape};
use crate::AppState;

/// Close codes used by the server.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Protocol error: a frame that breaks RFC 6455 (unmasked, reserved bits, bad opcode).
    pub const PROTOCOL: u16 = 1002;
    /// Invalid frame payload data: a text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation (too many errors).
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// Service restart.
    pub const RESTART: u16 = 1012;
    /// Try again later: this node cannot serve the stream now (its broker is
    /// unreachable), so the client comes back with backoff, perhaps elsewhere.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Heartbeat timeout.
    pub const STALE: u16 = 4008;
    /// Slow consumer.
    pub const SLOW_CONSUMER: u16 = 4009;
    /// Rate limited.
    pub const RATE_LIMITED: u16 = 4029;
}

struct CloseRequest {
    code: u16,
    reason: &'static str,
    last: Option<Utf8Bytes>,
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
    notify: Notify,
    metrics: Arc<AppState>,
}

/// How many replayed messages the writer takes at once: a replay leaves in
/// writes of this many, each waiting for the socket to drain.
const REPLAY_CHUNK: usize = 256;

impl ConnShared {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
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
                Metrics::inc(&self.metrics.metrics.dropped);
                if self.close(close::SLOW_CONSUMER, "slow consumer", None) {
                    Metrics::inc(&self.metrics.metrics.slow_consumer_closes);
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
    fn ping(&self) {
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
    fn take_queued(&self, batch: &mut VecDeque<Out>) {
        self.outbox().take(batch, REPLAY_CHUNK);
    }

    fn writer_stopped(&self) {
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

    fn close_code(&self) -> Option<u16> {
        self.close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(code, _)| code)
    }

    pub(crate) fn closing(&self) -> bool {
        self.close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ConnShared {
    /// A connection without a socket (the fuzz harness drives handlers with it).
    pub(crate) fn detached(id: u64, capacity: usize, state: Arc<AppState>) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            id,
            outbox: Mutex::new(Outbox::new(capacity)),
            writer_gone: AtomicBool::new(false),
            close: Mutex::new(None),
            pending: Mutex::new(None),
            notify: Notify::new(),
            metrics: state,
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
        let close = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|r| (r.code, r.last));
        (frames, close)
    }
}

/// A subscriber that queues one shape of every message.
pub(crate) struct ShapeSubscriber {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) shape: Shape,
}

impl Subscriber for ShapeSubscriber {
    fn deliver(&self, msg: &Arc<Published>) {
        self.conn.send_published(msg, self.shape);
    }

    fn catch_up(&self, topic: &Arc<str>, msgs: Vec<Arc<Published>>) {
        self.conn.replay(topic, self.shape, None, msgs);
    }
}

/// What a handler works with.
pub(crate) struct Ctx {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) state: Arc<AppState>,
    pub(crate) claims: Option<Claims>,
    pub(crate) errors: u64,
    /// Power-style errors carry an RFC 3339 `timestamp`.
    pub(crate) iso_errors: bool,
}

impl Ctx {
    pub(crate) fn send_json(&self, v: &Value) {
        self.conn.send(frame(v));
    }

    /// Sends a recoverable `error`; past the error limit, a final one and close 1008.
    pub(crate) fn error(&mut self, code: &str, message: &str) {
        self.errors += 1;
        Metrics::inc(&self.state.metrics.errors_sent);
        if self.errors > self.state.config.max_errors {
            let f = self.error_frame(
                "too_many_errors",
                &format!(
                    "{message} (error limit of {} reached)",
                    self.state.config.max_errors
                ),
                false,
            );
            self.conn.close(close::POLICY, "too many errors", Some(f));
            return;
        }
        let f = self.error_frame(code, message, true);
        self.conn.send(f);
    }

    /// A subscription this node cannot take because its broker is unreachable:
    /// sends a non-recoverable `error` naming the cause (unless `told`, when
    /// the endpoint already answered the subscribe), then closes with 1013.
    /// Keeping the connection would leave the stream silently dead until some
    /// other fault made the client reconnect; after the close it resubscribes
    /// with backoff, on this node when the broker is back or on another one.
    pub(crate) fn broker_unavailable(&mut self, e: &crate::Error, told: bool) {
        Metrics::inc(&self.state.metrics.errors_sent);
        let last = (!told).then(|| self.error_frame("broker_unavailable", &e.to_string(), false));
        self.conn.close(
            close::TRY_AGAIN_LATER,
            "broker unavailable: try again later",
            last,
        );
    }

    /// Sends a non-recoverable `error`, then closes with `code`.
    pub(crate) fn fatal(
        &mut self,
        code: &str,
        message: &str,
        close_code: u16,
        reason: &'static str,
    ) {
        self.errors += 1;
        Metrics::inc(&self.state.metrics.errors_sent);
        let f = self.error_frame(code, message, false);
        self.conn.close(close_code, reason, Some(f));
    }

    fn error_frame(&self, code: &str, message: &str, recoverable: bool) -> Utf8Bytes {
        if self.iso_errors {
            frame(&serde_json::json!({
                "type": "error", "code": code, "message": message,
                "timestamp": crate::frames::iso8601(crate::now_ms()),
                "recoverable": recoverable, "error_count": self.errors,
            }))
        } else {
            error_frame(code, message, recoverable, self.errors)
        }
    }
}

/// One endpoint's protocol.
pub(crate) trait Handler: Send + 'static {
    /// After the upgrade: greet, start fixed subscriptions.
    fn on_open<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, ()>;
    /// A text message from the client.
    fn on_text<'a>(&'a mut self, ctx: &'a mut Ctx, text: &'a str) -> BoxFuture<'a, ()>;
    /// A binary message from the client.
    fn on_binary(&mut self, ctx: &mut Ctx) {
        ctx.error(
            "binary_frame",
            "binary frames are not accepted: send JSON in text frames",
        );
    }
    /// Every heartbeat interval, when the endpoint has heartbeats.
    fn on_heartbeat(&mut self, _ctx: &mut Ctx) {}
    /// The connection ended: drop subscriptions.
    fn on_close(&mut self, ctx: &mut Ctx);
}

/// Per-endpoint options of the driver.
pub(crate) struct DriveOptions {
    pub(crate) endpoint: Endpoint,
    pub(crate) ping_interval: Duration,
    pub(crate) heartbeat: bool,
    pub(crate) reconnect_on_shutdown: bool,
    pub(crate) iso_errors: bool,
}

impl DriveOptions {
    /// The common case: JSON frames one by one, WebSocket pings every
    /// heartbeat interval, no application heartbeats, `reconnect` on
    /// shutdown, `error` frames without the power backend's ISO 8601
    /// `timestamp`. Endpoints override what differs.
    pub(crate) fn new(endpoint: Endpoint, config: &crate::Config) -> DriveOptions {
        DriveOptions {
            endpoint,
            ping_interval: config.heartbeat_interval,
            heartbeat: false,
            reconnect_on_shutdown: true,
            iso_errors: false,
        }
    }
}

/// Holds one slot of `--max-connections` until dropped.
pub(crate) struct ConnPermit {
    state: Arc<AppState>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.state.live.fetch_sub(1, Ordering::AcqRel);
        self.state.live_changed.notify_waiters();
    }
}

/// Origin, connection limit and token checks before an upgrade.
pub(crate) fn admit(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(ConnPermit, Option<Claims>), Box<Response>> {
    let m = &state.metrics;
    let origins = &state.config.allowed_origins;
    if !origins.is_empty() {
        if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !origins.iter().any(|o| o == origin) {
                Metrics::inc(&m.rejected_forbidden);
                return Err(Box::new(
                    (
                        StatusCode::FORBIDDEN,
                        format!("origin {origin:?} is not allowed\n"),
                    )
                        .into_response(),
                ));
            }
        }
    }
    if *state.shutdown.borrow() {
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n").into_response(),
        ));
    }
    let live = state.live.fetch_add(1, Ordering::AcqRel);
    let permit = ConnPermit {
        state: state.clone(),
    };
    if live >= state.config.max_connections {
        Metrics::inc(&m.rejected_limit);
        return Err(Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many connections (limit {})\n",
                    state.config.max_connections
                ),
            )
                .into_response(),
        ));
    }
    let token = token_from(query, headers);
    let unauthorized = |why: String| {
        Metrics::inc(&m.rejected_auth);
        Box::new((StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response())
    };
    let claims = match (&state.verifier, token) {
        (Some(v), Some(t)) => Some(v.verify(&t).map_err(|e| unauthorized(e.to_string()))?),
        (Some(_), None) => {
            let anonymous = endpoint != Endpoint::Actions
                && state.config.anonymous_endpoints.iter().any(|e| {
                    e == endpoint.name() || (e == "power" && endpoint == Endpoint::Health)
                });
            if !anonymous {
                return Err(unauthorized(
                    "unauthorized: a token is required (?token= or Authorization: Bearer)".into(),
                ));
            }
            None
        }
        (None, _) if endpoint == Endpoint::Actions => {
            tracing::warn!("actions endpoint refused: it always needs a token, and no --jwt-secret is configured");
            return Err(unauthorized(
                "unauthorized: this endpoint needs a JWT and the server has no --jwt-secret configured".into(),
            ));
        }
        (None, _) => None,
    };
    Ok((permit, claims))
}

/// Upgrades with the configured limits and runs `handler` on the socket.
pub(crate) fn upgrade<H: Handler>(
    ws: WebSocketUpgrade,
    state: Arc<AppState>,
    admitted: (ConnPermit, Option<Claims>),
    opts: DriveOptions,
    handler: H,
) -> Response {
    let c = &state.config;
    let ws = ws
        .read_buffer_size(c.read_buffer_size)
        .write_buffer_size(c.write_buffer_size)
        .max_write_buffer_size(c.write_buffer_size + (4 << 20))
        .max_message_size(c.max_message_size)
        .max_frame_size(c.max_message_size);
    let ws = if opts.endpoint == Endpoint::Ws {
        ws.protocols(["hublink.v1"])
    } else {
        ws
    };
    let (permit, claims) = admitted;
    ws.on_upgrade(move |socket| drive(socket, state, permit, claims, opts, handler))
}

struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A read error the client caused, with the close code that answers it:
/// a message or frame over the size limit (1009), a text frame that is not
/// UTF-8 (1007), a frame that breaks RFC 6455 (1002). `None`: the socket
/// failed (reset, EOF), nothing left to answer.
fn client_fault(e: &axum::Error) -> Option<(u16, &'static str)> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if let Some(te) = err.downcast_ref::<tungstenite::Error>() {
            return match te {
                tungstenite::Error::Capacity(_) => Some((close::TOO_BIG, "message too big")),
                tungstenite::Error::Utf8(_) => {
                    Some((close::INVALID_DATA, "text frame is not UTF-8"))
                }
                tungstenite::Error::Protocol(_) => Some((close::PROTOCOL, "protocol error")),
                _ => None,
            };
        }
        src = err.source();
    }
    None
}

async fn drive<H: Handler>(
    socket: WebSocket,
    state: Arc<AppState>,
    permit: ConnPermit,
    claims: Option<Claims>,
    opts: DriveOptions,
    mut handler: H,
) {
    let _permit = permit;
    let m = &state.metrics;
    let endpoint = opts.endpoint;
    m.connections[endpoint as usize].fetch_add(1, Ordering::Relaxed);
    Metrics::inc(&m.connections_total);
    let id = state.next_id();
    tracing::debug!(conn = id, endpoint = endpoint.name(), "connected");

    let (sink, mut stream) = socket.split();
    let shared = Arc::new(ConnShared {
        id,
        outbox: Mutex::new(Outbox::new(state.config.send_queue)),
        writer_gone: AtomicBool::new(false),
        close: Mutex::new(None),
        pending: Mutex::new(None),
        notify: Notify::new(),
        metrics: state.clone(),
    });
    let mut writer = tokio::spawn(write_loop(sink, shared.clone()));
    let mut ctx = Ctx {
        conn: shared.clone(),
        state: state.clone(),
        claims,
        errors: 0,
        iso_errors: opts.iso_errors,
    };
    let mut bucket = TokenBucket {
        tokens: state.config.rate_burst.max(1.0),
        rate: state.config.rate_limit,
        burst: state.config.rate_burst.max(1.0),
        last: Instant::now(),
    };
    handler.on_open(&mut ctx).await;

    let hb_period = state
        .config
        .heartbeat_interval
        .max(Duration::from_millis(10));
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + hb_period, hb_period);
    let ping_period = opts.ping_interval.max(Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_period, ping_period);
    // A silent client is alive while it answers pings: the derived default
    // also leaves room for this endpoint's own ping period (the machines
    // endpoints ping every 54 s, whatever the heartbeat interval).
    let stale = match state.config.stale_timeout {
        Some(explicit) => explicit,
        None => state
            .config
            .stale_timeout()
            .max(opts.ping_interval * 2 + Duration::from_secs(10)),
    };
    let mut last_inbound = tokio::time::Instant::now();
    let mut shutdown = state.shutdown.clone();
    let mut shutting_down = *shutdown.borrow();
    let mut writer_done = false;

    loop {
        tokio::select! {
            _ = &mut writer => { writer_done = true; break; }
            msg = stream.next() => {
                match msg {
                    None => break,
                    Some(Err(e)) => {
                        // The stream ends after any error; `continue` lets the
                        // writer send the close while the loop winds down.
                        match client_fault(&e) {
                            Some((close::TOO_BIG, reason)) => {
                                Metrics::inc(&m.too_big_closes);
                                shared.close(close::TOO_BIG, reason, None);
                                tracing::info!(conn = id, "inbound message over the size limit: closing with 1009");
                                continue;
                            }
                            Some((code, reason)) => {
                                Metrics::inc(&m.messages_in);
                                let kind = if code == close::INVALID_DATA { "invalid_json" } else { "invalid_message" };
                                ctx.fatal(kind, &format!("{reason}: {e}"), code, reason);
                                tracing::info!(conn = id, "{reason}: closing with {code}");
                                continue;
                            }
                            None => {
                                tracing::debug!(conn = id, "read error: {e}");
                                break;
                            }
                        }
                    }
                    Some(Ok(msg)) => {
                        last_inbound = tokio::time::Instant::now();
                        if shared.closing() {
                            continue;
                        }
                        match msg {
                            Message::Text(t) => {
                                Metrics::inc(&m.messages_in);
                                if !bucket.allow() {
                                    Metrics::inc(&m.rate_limited_closes);
                                    let limit = state.config.rate_limit;
                                    ctx.fatal("rate_limited", &format!("more than {limit} messages per second"), close::RATE_LIMITED, "rate limited");
                                    continue;
                                }
                                handler.on_text(&mut ctx, t.as_str()).await;
                            }
                            Message::Binary(_) => {
                                Metrics::inc(&m.messages_in);
                                if !bucket.allow() {
                                    Metrics::inc(&m.rate_limited_closes);
                                    ctx.fatal("rate_limited", "too many messages per second", close::RATE_LIMITED, "rate limited");
                                    continue;
                                }
                                handler.on_binary(&mut ctx);
                            }
                            Message::Close(_) => {
                                shared.close(close::NORMAL, "", None);
                            }
                            Message::Ping(_) | Message::Pong(_) => {}
                        }
                    }
                }
            }
            _ = heartbeat.tick(), if opts.heartbeat => {
                handler.on_heartbeat(&mut ctx);
            }
            _ = ping.tick() => {
                shared.ping();
            }
            _ = tokio::time::sleep_until(last_inbound + stale) => {
                if shared.close(close::STALE, "heartbeat timeout", None) {
                    Metrics::inc(&m.stale_closes);
                    tracing::info!(conn = id, "no inbound frame for {stale:?}: closing with 4008");
                }
                last_inbound = tokio::time::Instant::now() + Duration::from_secs(3600);
            }
            r = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                if r.is_ok() && *shutdown.borrow() {
                    let last = opts.reconnect_on_shutdown.then(|| reconnect_frame(state.config.retry_after));
                    shared.close(close::RESTART, "server restarting", last);
                }
            }
        }
    }

    handler.on_close(&mut ctx);
    if writer_done {
        // The closing handshake: read (and discard) until the peer's close
        // frame or EOF, at most a second. Dropping a socket with unread bytes
        // resets it, and a reset can destroy the close frame still in flight
        // to the client (a flooding client would never learn its 4029).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    }
    if !writer_done {
        shared.close(close::NORMAL, "", None);
        if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
    m.connections[endpoint as usize].fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(conn = id, endpoint = endpoint.name(), "disconnected");
}

async fn write_loop(sink: SplitSink<WebSocket, Message>, shared: Arc<ConnShared>) {
    let mut sink = sink;
    write_frames(&mut sink, &shared).await;
    shared.writer_stopped();
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Writes whatever is queued, coalesced: every queued frame is fed into the
/// WebSocket's write buffer and flushed once, so frames that piled up while the
/// previous write was under way leave in one `write`. Returns on a close request
/// (after sending it) or a write error or timeout.
async fn write_frames(sink: &mut SplitSink<WebSocket, Message>, shared: &ConnShared) {
    let wt = Duration::from_secs(10);
    let metrics = &shared.metrics.metrics;
    let mut frames: VecDeque<Out> = VecDeque::new();
    loop {
        let req = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(req) = req {
            // What was queued before the close leaves first, in order (the
            // errors before a 1008, the messages before a 1012), except for a
            // slow consumer: its queue is what overflowed.
            if req.code != close::SLOW_CONSUMER {
                shared.outbox().take_all(&mut frames);
                let n = frames.iter().filter(|f| matches!(f, Out::Frame(_))).count() as u64;
                if n > 0 {
                    match tokio::time::timeout(wt, write_batch(sink, &mut frames)).await {
                        Ok(Ok(())) => {
                            metrics.messages_out.fetch_add(n, Ordering::Relaxed);
                        }
                        _ => return,
                    }
                }
            }
            if let Some(last) = req.last {
                if let Ok(Ok(())) = tokio::time::timeout(wt, sink.send(Message::Text(last))).await {
                    Metrics::inc(&metrics.messages_out);
                }
            }
            let cf = CloseFrame {
                code: req.code,
                reason: Utf8Bytes::from_static(req.reason),
            };
            // A slow consumer is not reading: a second for its close frame.
            let ct = if req.code == close::SLOW_CONSUMER {
                Duration::from_secs(1)
            } else {
                wt
            };
            let _ = tokio::time::timeout(ct, sink.send(Message::Close(Some(cf)))).await;
            return;
        }
        shared.take_queued(&mut frames);
        if frames.is_empty() {
            shared.notify.notified().await;
            continue;
        }
        let n = frames.iter().filter(|f| matches!(f, Out::Frame(_))).count() as u64;
        // A peer that stopped reading blocks the write until the timeout; once
        // it is declared a slow consumer, give up on it at once rather than
        // hold its buffers for the rest of the timeout.
        let written = {
            let write = tokio::time::timeout(wt, write_batch(sink, &mut frames));
            tokio::pin!(write);
            loop {
                tokio::select! {
                    r = &mut write => break Some(matches!(r, Ok(Ok(())))),
                    _ = shared.notify.notified() => {
                        if shared.close_code() == Some(close::SLOW_CONSUMER) {
                            break None;
                        }
                    }
                }
            }
        };
        match written {
            // Abandoned: the top of the loop sends the close, briefly.
            None => {
                frames.clear();
                continue;
            }
            Some(false) => return,
            Some(true) => {}
        }
        metrics.messages_out.fetch_add(n, Ordering::Relaxed);
        // Keep a small buffer for the next batch, not the largest burst's.
        if frames.capacity() > 2 * REPLAY_CHUNK {
            frames = VecDeque::new();
        }
    }
}

/// Feeds every frame of `frames` into the WebSocket, then flushes once.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: &mut VecDeque<Out>,
) -> Result<(), axum::Error> {
    while let Some(out) = frames.pop_front() {
        let msg = match out {
            Out::Ping => Message::Ping(Bytes::new()),
            Out::Frame(f) => Message::Text(f),
        };
        sink.feed(msg).await?;
    }
    sink.flush().await
}

/// Parses a frame as one JSON value or, failing that, as `\n`-separated values.
/// Lines that are not JSON come back as `Err` with the parser's message.
pub(crate) fn parse_batch(text: &str) -> Vec<Result<Value, String>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![Ok(v)],
        Err(e) => {
            if !text.contains('\n') {
                return vec![Err(format!("frame is not JSON: {e}"))];
            }
            text.split('\n')
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| format!("line is not JSON: {e}")))
                .collect()
        }
    }
}

/// The `type` of a client message, or an `invalid_message` description.
pub(crate) fn message_type<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    let Some(obj) = v.as_object() else {
        return Err(format!("message is not a JSON object: {}", short(v)));
    };
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "field {field:?} must be a string, got {}",
            short(other)
        )),
        None => Err(format!("field {field:?} is missing")),
    }
}

/// A short rendering of a value for error messages.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// The query string of a request as a map (values percent-decoded).
pub(crate) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::auth::percent_decode(k),
                crate::auth::percent_decode(v),
            )
        })
        .collect()
}
