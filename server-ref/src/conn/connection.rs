//! One connection's reader loop, in the shape of mini-redis's `Handler::run`:
//! a short `select!` over its inputs (a frame, the heartbeat and ping ticks,
//! the stale deadline, shutdown, the writer ending), each handed to one
//! `handle_*`.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use hublink_core::protocol::close_code;
use tokio::task::JoinHandle;
use tungstenite::protocol::frame::coding::CloseCode;

use super::limit::ConnPermit;
use super::shared::ConnShared;
use super::{writer, Ctx, DriveOptions, Handler};
use crate::auth::Claims;
use crate::config::Config;
use crate::frames::reconnect_frame;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Inbound messages allowed per second, refilled continuously, with a burst.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(config: &Config) -> TokenBucket {
        let burst = config.rate_burst.max(1.0);
        TokenBucket {
            tokens: burst,
            rate: config.rate_limit,
            burst,
            last: Instant::now(),
        }
    }

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
                tungstenite::Error::Capacity(_) => Some((close_code::TOO_BIG, "message too big")),
                tungstenite::Error::Utf8(_) => {
                    Some((CloseCode::Invalid.into(), "text frame is not UTF-8"))
                }
                tungstenite::Error::Protocol(_) => {
                    Some((CloseCode::Protocol.into(), "protocol error"))
                }
                _ => None,
            };
        }
        src = err.source();
    }
    None
}

/// The reader's side of one connection.
struct Connection<H> {
    ctx: Ctx,
    handler: H,
    bucket: TokenBucket,
    last_inbound: tokio::time::Instant,
    /// Silence after which the connection is stale (4008).
    stale: Duration,
    reconnect_on_shutdown: bool,
}

/// Runs one upgraded connection until it ends.
pub(super) async fn run<H: Handler>(
    socket: WebSocket,
    state: Arc<AppState>,
    permit: ConnPermit,
    claims: Option<Claims>,
    opts: DriveOptions,
    handler: H,
) {
    let _permit = permit;
    let endpoint = opts.endpoint;
    let m = state.metrics.clone();
    m.connections[endpoint as usize].inc();
    Metrics::inc(&m.connections_total);
    let id = state.next_id();
    tracing::debug!(conn = id, endpoint = endpoint.name(), "connected");

    let (sink, mut stream) = socket.split();
    let conn = ConnShared::new(id, state.config.send_queue, m.clone());
    let mut writer = tokio::spawn(writer::run(sink, conn.clone()));
    let config = &state.config;
    // A silent client is alive while it answers pings: the derived default
    // also leaves room for this endpoint's own ping period (the machines
    // endpoints ping every 54 s, whatever the heartbeat interval).
    let stale = match config.stale_timeout {
        Some(explicit) => explicit,
        None => config
            .stale_timeout()
            .max(opts.ping_interval * 2 + Duration::from_secs(10)),
    };
    let period = |p: Duration| {
        let p = p.max(Duration::from_millis(10));
        tokio::time::interval_at(tokio::time::Instant::now() + p, p)
    };
    let mut heartbeat = period(config.heartbeat_interval);
    let mut ping = period(opts.ping_interval);
    let mut shutdown = state.shutdown.subscribe();
    let mut shutting_down = *shutdown.borrow();
    let mut c = Connection {
        bucket: TokenBucket::new(config),
        ctx: Ctx::new(conn, state.clone(), claims, opts.iso_errors),
        handler,
        last_inbound: tokio::time::Instant::now(),
        stale,
        reconnect_on_shutdown: opts.reconnect_on_shutdown,
    };
    c.handler.on_open(&mut c.ctx).await;

    let writer_done = loop {
        tokio::select! {
            _ = &mut writer => break true,
            msg = stream.next() => {
                if c.handle_frame(msg).await.is_break() {
                    break false;
                }
            }
            _ = heartbeat.tick(), if opts.heartbeat => c.handler.on_heartbeat(&mut c.ctx),
            _ = ping.tick() => c.ctx.conn.ping(),
            _ = tokio::time::sleep_until(c.last_inbound + c.stale) => c.handle_stale(),
            r = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                c.handle_shutdown(r.is_ok() && *shutdown.borrow());
            }
        }
    };
    c.handler.on_close(&mut c.ctx);
    finish(stream, writer, writer_done, &c.ctx.conn).await;
    m.connections[endpoint as usize].dec();
    tracing::debug!(conn = id, endpoint = endpoint.name(), "disconnected");
}

impl<H: Handler> Connection<H> {
    /// What the socket read: a message, a read error, or the end.
    async fn handle_frame(&mut self, msg: Option<Result<Message, axum::Error>>) -> ControlFlow<()> {
        let m = &self.ctx.state.metrics;
        let id = self.ctx.conn.id;
        let msg = match msg {
            None => return ControlFlow::Break(()),
            Some(Ok(msg)) => msg,
            // The stream ends after any error; continuing lets the writer
            // send the close while the loop winds down.
            Some(Err(e)) => {
                match client_fault(&e) {
                    Some((close_code::TOO_BIG, reason)) => {
                        Metrics::inc(&m.too_big_closes);
                        self.ctx.conn.close(close_code::TOO_BIG, reason, None);
                        tracing::info!(
                            conn = id,
                            "inbound message over the size limit: closing with 1009"
                        );
                    }
                    Some((code, reason)) => {
                        Metrics::inc(&m.messages_in);
                        let kind = if code == u16::from(CloseCode::Invalid) {
                            "invalid_json"
                        } else {
                            "invalid_message"
                        };
                        self.ctx
                            .fatal(kind, &format!("{reason}: {e}"), code, reason);
                        tracing::info!(conn = id, "{reason}: closing with {code}");
                    }
                    None => {
                        tracing::debug!(conn = id, "read error: {e}");
                        return ControlFlow::Break(());
                    }
                }
                return ControlFlow::Continue(());
            }
        };
        self.last_inbound = tokio::time::Instant::now();
        if self.ctx.conn.closing() {
            return ControlFlow::Continue(());
        }
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                Metrics::inc(&m.messages_in);
                if !self.bucket.allow() {
                    self.handle_rate_limited();
                } else if let Message::Text(t) = msg {
                    self.handler.on_text(&mut self.ctx, t.as_str()).await;
                } else {
                    self.handler.on_binary(&mut self.ctx);
                }
            }
            Message::Close(_) => {
                self.ctx.conn.close(close_code::NORMAL, "", None);
            }
            Message::Ping(_) | Message::Pong(_) => {}
        }
        ControlFlow::Continue(())
    }

    /// More messages than the token bucket allows: a final error and 4029.
    fn handle_rate_limited(&mut self) {
        let limit = self.ctx.state.config.rate_limit;
        Metrics::inc(&self.ctx.state.metrics.rate_limited_closes);
        self.ctx.fatal(
            "rate_limited",
            &format!("more than {limit} messages per second"),
            close_code::RATE_LIMITED,
            "rate limited",
        );
    }

    /// Nothing from the client for the stale timeout: close with 4008.
    fn handle_stale(&mut self) {
        if self
            .ctx
            .conn
            .close(close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout", None)
        {
            Metrics::inc(&self.ctx.state.metrics.stale_closes);
            tracing::info!(
                conn = self.ctx.conn.id,
                "no inbound frame for {:?}: closing with 4008",
                self.stale
            );
        }
        self.last_inbound = tokio::time::Instant::now() + Duration::from_secs(3600);
    }

    /// The server is stopping: `reconnect` (where the endpoint has it), then 1012.
    fn handle_shutdown(&mut self, stopping: bool) {
        if stopping {
            let retry_after = self.ctx.state.config.retry_after;
            let last = self
                .reconnect_on_shutdown
                .then(|| reconnect_frame(retry_after));
            self.ctx
                .conn
                .close(close_code::RESTART, "server restarting", last);
        }
    }
}

/// After the loop: finish the closing handshake and let the writer end.
async fn finish(
    mut stream: SplitStream<WebSocket>,
    mut writer: JoinHandle<()>,
    writer_done: bool,
    conn: &ConnShared,
) {
    if writer_done {
        // The closing handshake: read (and discard) until the peer's close
        // frame or EOF, at most a second. Dropping a socket with unread bytes
        // resets it, and a reset can destroy the close frame still in flight
        // to the client (a flooding client would never learn its 4029).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
        return;
    }
    conn.close(close_code::NORMAL, "", None);
    if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}
