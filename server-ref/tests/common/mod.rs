//! Shared harness: a server on 127.0.0.1:0 with short intervals, a WebSocket
//! client with JSON helpers, and a tiny HTTP client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hublink_server::auth::Claims;
use hublink_server::{AppState, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret-0123456789";
pub const KEY: &str = "test-publish-key";

/// A config with short intervals for tests.
pub fn config() -> Config {
    let mut c = Config::defaults();
    c.heartbeat_interval = Duration::from_millis(200);
    c.stale_timeout = Some(Duration::from_millis(1500));
    c.machines_ping_interval = Duration::from_millis(200);
    c.shutdown_grace = Duration::from_secs(2);
    c.retry_after = 3;
    c.publish_key = Some(KEY.into());
    c
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<hublink_server::Result<()>>>,
}

pub async fn start(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(hublink_server::run(listener, state.clone(), async {
        let _ = rx.await;
    }));
    Server {
        addr,
        state,
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn client(&self, path: &str) -> Client {
        Client::connect(&self.url(path)).await
    }

    /// Triggers the graceful shutdown; returns the server task.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<hublink_server::Result<()>> {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap()
    }

    pub async fn stop(mut self) {
        let h = self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }

    pub fn token(&self, claims: &Claims) -> String {
        self.state.sign(claims).unwrap()
    }

    pub async fn publish(&self, topic: &str, data: Value) {
        self.state.publish(topic, data, None).await.unwrap();
    }

    pub async fn metrics(&self) -> String {
        http(self.addr, "GET", "/metrics", &[], "").await.1
    }
}

pub fn claims(sub: &str, branch: &str, role: &str) -> Claims {
    Claims {
        sub: Some(sub.into()),
        branch: Some(branch.into()),
        role: Some(role.into()),
        exp: Some(hublink_server::now_ms() / 1000 + 3600),
        ..Claims::default()
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
}

/// Outcome of reading until the close.
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    pub before: Vec<Value>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client::try_connect(url, &[])
            .await
            .unwrap_or_else(|s| panic!("connect {url}: HTTP {s}"))
    }

    /// Connects with extra headers; `Err(status)` when the upgrade is refused.
    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, resp)) => {
                let protocol = resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|h| h.to_str().unwrap().to_string());
                Ok(Client { ws, protocol })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect {url}: {e}"),
        }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::text(t.to_string())).await.unwrap();
    }

    /// The next text frame, raw (ping/pong skipped), within `secs`.
    pub async fn next_text_within(&mut self, secs: f64) -> Option<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match m {
                Ok(Message::Text(t)) => return Some(t.to_string()),
                Ok(Message::Close(c)) => panic!("closed while waiting for a message: {c:?}"),
                Ok(_) => continue,
                Err(e) => panic!("read error while waiting for a message: {e}"),
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        let t = self
            .next_text_within(3.0)
            .await
            .expect("a message within 3 s");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// The next JSON message, skipping heartbeats.
    pub async fn next_non_heartbeat(&mut self) -> Value {
        self.next_such("a non-heartbeat message", |v| v["type"] != "heartbeat")
            .await
    }

    /// The next message whose `key` equals `value`, skipping others.
    pub async fn next_where(&mut self, key: &str, value: &str) -> Value {
        let what = format!("a message with {key} = {value}");
        self.next_such(&what, |v| v[key] == value).await
    }

    /// The next JSON message that is `wanted`, skipping others, within 3 s.
    async fn next_such(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let t = self
                .next_text_within(left.as_secs_f64())
                .await
                .unwrap_or_else(|| panic!("no {what} within 3 s"));
            let v: Value =
                serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"));
            if wanted(&v) {
                return v;
            }
        }
    }

    /// Nothing but heartbeats arrives within `secs`.
    pub async fn expect_silence(&mut self, secs: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_text_within(left.as_secs_f64()).await {
                None => return,
                Some(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    assert_eq!(v["type"], "heartbeat", "expected silence, got {t}");
                }
            }
        }
    }

    /// Reads until the close frame (within `secs`); returns its code and what came before.
    pub async fn expect_close_within(&mut self, secs: f64) -> Closed {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let mut before = Vec::new();
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no close within {secs} s; got {before:?}"));
            match m {
                Some(Ok(Message::Text(t))) => {
                    before.push(serde_json::from_str(&t).unwrap_or(Value::String(t.to_string())))
                }
                Some(Ok(Message::Close(Some(c)))) => {
                    return Closed {
                        code: u16::from(c.code),
                        reason: c.reason.to_string(),
                        before,
                    }
                }
                Some(Ok(Message::Close(None))) => {
                    return Closed {
                        code: 1005,
                        reason: String::new(),
                        before,
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("read error before close: {e}; got {before:?}"),
                None => panic!("stream ended without close frame; got {before:?}"),
            }
        }
    }

    pub async fn expect_close(&mut self) -> Closed {
        self.expect_close_within(3.0).await
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// `POST path` (the publish API) of `body` with the publish key ([`KEY`]);
/// returns (status, body).
pub async fn post_with_key(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {KEY}");
    http(addr, "POST", path, &[("Authorization", &auth)], body).await
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A metric's value from the Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
}
