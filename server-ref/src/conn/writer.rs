//! The writer task: coalesced writes of what the queue holds, the close
//! handshake's first half, and giving up on a peer that stopped reading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use hublink_core::protocol::close_code;

use super::queue::Out;
use super::shared::{ConnShared, REPLAY_CHUNK};
use crate::metrics::Metrics;

/// The writer task: sends what is queued until a close request or a
/// failed write, then closes the socket.
pub(super) async fn run(sink: SplitSink<WebSocket, Message>, shared: Arc<ConnShared>) {
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
    let metrics = &shared.metrics;
    let mut frames: VecDeque<Out> = VecDeque::new();
    loop {
        if let Some(req) = shared.take_close() {
            // What was queued before the close leaves first, in order (the
            // errors before a 1008, the messages before a 1012), except for a
            // slow consumer: its queue is what overflowed.
            if req.code != close_code::SLOW_CONSUMER {
                shared.outbox().take_all(&mut frames);
                let n = frames.iter().filter(|f| matches!(f, Out::Frame(_))).count() as u64;
                if n > 0 {
                    match tokio::time::timeout(wt, write_batch(sink, &mut frames)).await {
                        Ok(Ok(())) => {
                            metrics.messages_out.inc_by(n);
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
            let ct = if req.code == close_code::SLOW_CONSUMER {
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
                        if shared.close_code() == Some(close_code::SLOW_CONSUMER) {
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
        metrics.messages_out.inc_by(n);
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
