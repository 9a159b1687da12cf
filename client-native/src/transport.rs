//! One WebSocket: dialing it (URL, token, subprotocol, TLS), reading it, and
//! writing it from a small writer task so that a stalled peer never blocks the
//! driver (a black-holed link must still time out).

use crate::{BoxError, Error, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hublink_core::CloseInfo;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a closing socket may take to flush its close frame and hear the
/// peer's answer before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Checks that `url` is a `ws://` or `wss://` URL with a host.
pub(crate) fn parse_url(url: &str) -> Result<Uri> {
    let bad = |problem: &str| Error::InvalidUrl {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") if cfg!(feature = "rustls") => {}
        Some("wss") => {
            return Err(bad(
                "wss:// needs the `rustls` feature of the hublink crate",
            ))
        }
        Some(other) => return Err(bad(&format!("scheme {other:?} is not ws or wss"))),
        None => return Err(bad("no scheme: expected ws://host[:port]/path or wss://…")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(bad("no host")),
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token provider's pending answer.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;

/// Where the token of each attempt comes from.
#[derive(Clone)]
pub(crate) enum TokenSource {
    Fixed(String),
    Provider(Arc<dyn Fn() -> TokenFuture + Send + Sync>),
}

/// Everything needed to dial, shared by every attempt of one client.
pub(crate) struct Dialer {
    pub(crate) uri: Uri,
    pub(crate) token: Option<TokenSource>,
    pub(crate) token_in_query: bool,
    pub(crate) subprotocol: Option<String>,
    /// Set once a server answered without selecting our subprotocol:
    /// PROTOCOL.md treats it as a `hublink.v1` server all the same, but
    /// tungstenite refuses such an answer, so later attempts do not offer it.
    pub(crate) server_ignores_subprotocol: AtomicBool,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer {
    /// Dials once: fetches the token, upgrades, and on a server that selects
    /// no subprotocol, upgrades again without offering one.
    pub(crate) async fn dial(self: Arc<Self>) -> Result<Transport, CloseInfo> {
        let token = match &self.token {
            None => None,
            Some(TokenSource::Fixed(t)) => Some(t.clone()),
            Some(TokenSource::Provider(p)) => match p().await {
                Ok(t) => Some(t),
                Err(e) => {
                    return Err(CloseInfo::Failed {
                        error: format!("token provider failed: {e}"),
                    })
                }
            },
        };
        let offer = !self.server_ignores_subprotocol.load(Ordering::Relaxed);
        match self.upgrade(token.as_deref(), offer).await {
            Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            ))) if offer => {
                self.server_ignores_subprotocol
                    .store(true, Ordering::Relaxed);
                self.upgrade(token.as_deref(), false).await
            }
            other => other,
        }
        .map(|(ws, selected)| Transport::new(ws, selected))
        .map_err(|e| match e {
            tungstenite::Error::Http(response) => CloseInfo::Http {
                status: response.status().as_u16(),
            },
            e => CloseInfo::Failed {
                error: e.to_string(),
            },
        })
    }

    /// Upgrades once; returns the socket and the subprotocol the server selected.
    async fn upgrade(
        &self,
        token: Option<&str>,
        offer: bool,
    ) -> tungstenite::Result<(Ws, Option<String>)> {
        let uri = match token {
            Some(t) if self.token_in_query => {
                let sep = if self.uri.query().is_some() { '&' } else { '?' };
                format!("{}{sep}token={}", self.uri, encode_query_value(t))
            }
            _ => self.uri.to_string(),
        };
        let mut request = uri.into_client_request()?;
        let headers = request.headers_mut();
        if let Some(t) = token.filter(|_| !self.token_in_query) {
            let value = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
            headers.insert("Authorization", value);
        }
        if let Some(p) = self.subprotocol.as_deref().filter(|_| offer) {
            let value =
                HeaderValue::from_str(p).map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
            headers.insert("Sec-WebSocket-Protocol", value);
        }
        #[cfg(feature = "rustls")]
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        #[cfg(not(feature = "rustls"))]
        let connector = None;
        let (ws, response) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
                .await?;
        let selected = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, selected))
    }
}

enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// An open WebSocket: the read half, polled by the driver, and a writer task
/// fed through an unbounded channel.
pub(crate) struct Transport {
    /// The subprotocol the server selected at the upgrade.
    pub(crate) subprotocol: Option<String>,
    reader: SplitStream<Ws>,
    writer: mpsc::UnboundedSender<Outgoing>,
    writer_task: JoinHandle<()>,
}

impl Transport {
    fn new(ws: Ws, subprotocol: Option<String>) -> Transport {
        let (sink, reader) = ws.split();
        let (writer, rx) = mpsc::unbounded_channel();
        let writer_task = tokio::spawn(write_loop(sink, rx));
        Transport {
            subprotocol,
            reader,
            writer,
            writer_task,
        }
    }

    /// Queues a text frame for the writer.
    pub(crate) fn send(&self, text: String) {
        let _ = self.writer.send(Outgoing::Text(text));
    }

    /// The next frame, or `None` when the socket ended.
    pub(crate) async fn next(&mut self) -> Option<tungstenite::Result<Message>> {
        self.reader.next().await
    }

    /// Sends a close frame after everything queued, and lets the peer answer,
    /// within [`CLOSE_GRACE`]. The returned task ends when the socket is gone.
    pub(crate) fn close(self, code: u16, reason: String) -> JoinHandle<()> {
        let _ = self.writer.send(Outgoing::Close(code, reason));
        self.finish()
    }

    /// Drops the socket after the writer flushed and the peer's close (or the
    /// end of the stream) was read, within [`CLOSE_GRACE`]. Reading on also
    /// lets tungstenite answer a close frame the peer sent.
    pub(crate) fn finish(self) -> JoinHandle<()> {
        let Transport {
            mut reader,
            writer,
            writer_task,
            ..
        } = self;
        drop(writer);
        tokio::spawn(async move {
            let abort = writer_task.abort_handle();
            let _ = tokio::time::timeout(CLOSE_GRACE, async move {
                let _ = writer_task.await;
                while let Some(Ok(_)) = reader.next().await {}
            })
            .await;
            abort.abort();
        })
    }
}

async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        match out {
            Outgoing::Text(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            Outgoing::Close(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_with_a_reason() {
        assert!(parse_url("ws://127.0.0.1:8080/ws").is_ok());
        assert!(parse_url("wss://example.com/ws?x=1").is_ok());
        for (url, needle) in [
            ("foo", "no scheme"),
            ("http://example.com/ws", "scheme \"http\""),
            ("ws://", ""),
            ("", ""),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(&format!("{url:?}")), "{e}");
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode_query_value("a b&c=d"), "a%20b%26c%3Dd");
    }
}
