//! A socketless harness over the endpoints' text handlers, for the
//! `server_parse` fuzz target in `fuzz/` (and anything else that wants to feed
//! the server's message parser directly).
//!
//! A [`Session`] is one connection as the reader loop sees it after the size
//! and rate checks: frames go to the endpoint's handler, and what the handler
//! queued (frames, a close request) comes back as an [`Output`]. Publications
//! go through the real broker and history of the given [`AppState`].

use std::sync::Arc;

use crate::auth::Claims;
use crate::conn::{ConnShared, Ctx, Handler};
use crate::endpoints::{actions, hublink};
use crate::state::AppState;

/// Which endpoint's parser a [`Session`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws`, hublink.v1.
    Hublink,
    /// `/api/v1/ws/`, the topics dialect.
    Topics,
    /// `/api/v1/actions`, the actions dialect.
    Actions,
}

/// What the server queued in answer to a frame.
#[derive(Debug, Default)]
pub struct Output {
    /// Text frames, in order.
    pub frames: Vec<String>,
    /// The close code requested, with the final frame sent before it.
    pub close: Option<(u16, Option<String>)>,
}

/// One connection without a socket.
pub struct Session {
    ctx: Ctx,
    handler: Box<dyn Handler>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a connection on `endpoint` with `claims` (as admitted at the
    /// upgrade) and returns it with its greeting.
    pub async fn open(
        state: &Arc<AppState>,
        endpoint: Endpoint,
        claims: Option<Claims>,
    ) -> (Session, Output) {
        let conn = ConnShared::new(
            state.next_id(),
            state.config.send_queue,
            state.metrics.clone(),
        );
        let handler = match endpoint {
            Endpoint::Hublink => hublink::handler(false),
            Endpoint::Topics => hublink::handler(true),
            Endpoint::Actions => actions::handler(),
        };
        let mut s = Session {
            ctx: Ctx::new(conn, state.clone(), claims, false),
            handler,
        };
        s.handler.on_open(&mut s.ctx).await;
        let out = s.drain();
        (s, out)
    }

    /// Feeds one text frame, as the reader loop does; `None` once the
    /// connection is closing (the reader ignores frames then).
    pub async fn text(&mut self, text: &str) -> Option<Output> {
        if self.ctx.conn.closing() {
            return None;
        }
        self.handler.on_text(&mut self.ctx, text).await;
        Some(self.drain())
    }

    /// A heartbeat tick.
    pub fn heartbeat(&mut self) -> Output {
        self.handler.on_heartbeat(&mut self.ctx);
        self.drain()
    }

    /// Ends the connection: the handler drops its subscriptions.
    pub fn close(mut self) {
        self.handler.on_close(&mut self.ctx);
    }

    fn drain(&self) -> Output {
        let (frames, close) = self.ctx.conn.drain();
        Output {
            frames: frames.iter().map(|f| f.as_str().to_owned()).collect(),
            close: close.map(|(code, last)| (code, last.map(|f| f.as_str().to_owned()))),
        }
    }
}
