//! What every hostile-client test shares: a well-behaved bystander that must
//! keep receiving on time while the attack runs, and a raw WebSocket client
//! that writes frames by hand (tungstenite refuses to produce the broken ones).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::common::Server;

/// The bystander's topic.
pub const TOPIC: &str = "bystander.feed";
/// How often the bystander's feed publishes.
pub const PERIOD: Duration = Duration::from_millis(20);
/// Later than this after its scheduled time, a message is late.
pub const ON_TIME: Duration = Duration::from_secs(1);

/// A subscriber on [`TOPIC`] plus a publisher on a fixed schedule. Each
/// message carries its scheduled time, so a server (or publisher) that stalls
/// shows up as lateness even when everything arrives eventually.
pub struct Bystander {
    stop: Arc<AtomicBool>,
    publisher: JoinHandle<u64>,
    reader: JoinHandle<()>,
    stats: Arc<Mutex<Stats>>,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub published: u64,
    pub received: u64,
    pub max_latency_ms: u64,
    pub out_of_order: u64,
}

impl Bystander {
    /// Connects to `/ws`, subscribes, and starts the feed.
    pub async fn start(server: &Server) -> Bystander {
        Self::start_at(server, &server.url("/ws")).await
    }

    /// Connects to `url` (with a token in it if the server needs one).
    pub async fn start_at(server: &Server, url: &str) -> Bystander {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("bystander connects");
        ws.send(Message::text(
            json!({"type":"subscribe","topic":TOPIC}).to_string(),
        ))
        .await
        .unwrap();
        // Until the ack, so that no publication precedes the subscription.
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("bystander ack")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "subscribe_ack" {
                    assert_eq!(v["success"], true, "bystander subscribe: {v}");
                    break;
                }
            }
        }
        let origin = tokio::time::Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let state = server.state.clone();
        let publisher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut tick = tokio::time::interval(PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    // The scheduled time, not the actual one: a stalled
                    // runtime counts against the server.
                    let at = (n - 1) * PERIOD.as_millis() as u64;
                    state
                        .publish(TOPIC, json!({"n": n, "at": at}), None)
                        .await
                        .expect("bystander publish");
                }
                n
            })
        };
        let reader = {
            let stats = stats.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Text(t) = m else { continue };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("heartbeat") => {
                            let echo = json!({"type":"heartbeat","timestamp":v["timestamp"]});
                            if ws.send(Message::text(echo.to_string())).await.is_err() {
                                break;
                            }
                        }
                        Some("message") => {
                            let n = v["data"]["n"].as_u64().unwrap();
                            let at = v["data"]["at"].as_u64().unwrap();
                            let late = (origin.elapsed().as_millis() as u64).saturating_sub(at);
                            let mut s = stats.lock().unwrap();
                            if n != s.received + 1 {
                                s.out_of_order += 1;
                            }
                            s.received = n;
                            s.max_latency_ms = s.max_latency_ms.max(late);
                        }
                        _ => {}
                    }
                }
            })
        };
        Bystander {
            stop,
            publisher,
            reader,
            stats,
        }
    }

    /// Stops the feed and asserts the bystander got every message, in order,
    /// each within [`ON_TIME`] of its schedule. Returns the figures.
    pub async fn assert_unharmed(self, what: &str) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let published = self.publisher.await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.stats.lock().unwrap().received < published
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.reader.abort();
        let mut s = self.stats.lock().unwrap().clone();
        s.published = published;
        println!("bystander during {what}: {s:?}");
        assert!(published > 0, "{what}: the feed published nothing");
        assert_eq!(
            s.received, published,
            "{what}: bystander missed messages: {s:?}"
        );
        assert_eq!(
            s.out_of_order, 0,
            "{what}: bystander saw gaps or reordering: {s:?}"
        );
        assert!(
            s.max_latency_ms <= ON_TIME.as_millis() as u64,
            "{what}: bystander got a message {} ms late: {s:?}",
            s.max_latency_ms
        );
        s
    }
}

/// A WebSocket client over a bare TCP stream: the upgrade and every frame are
/// written by hand, so it can send what no WebSocket library would.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
}

/// What a raw client read until the connection ended.
#[derive(Debug, Default)]
pub struct RawEnd {
    pub texts: Vec<Value>,
    pub close: Option<u16>,
    pub binary: usize,
}

impl Raw {
    /// Upgrades `path`; panics unless the answer is 101.
    pub async fn connect(addr: SocketAddr, path: &str) -> Raw {
        match Raw::try_connect(addr, path, &[]).await {
            Ok(r) => r,
            Err(status) => panic!("upgrade of {path}: HTTP {status}"),
        }
    }

    /// Upgrades `path` with extra header lines; `Err(status)` when refused.
    pub async fn try_connect(addr: SocketAddr, path: &str, headers: &[&str]) -> Result<Raw, u16> {
        let s = TcpStream::connect(addr).await.expect("tcp connect");
        Raw::upgrade(s, addr, path, headers).await
    }

    /// Upgrades over an already connected stream.
    pub async fn upgrade(
        mut s: TcpStream,
        addr: SocketAddr,
        path: &str,
        headers: &[&str],
    ) -> Result<Raw, u16> {
        let _ = s.set_nodelay(true);
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: hublink.v1\r\n"
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.expect("write upgrade");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .expect("upgrade answer within 5 s")
                .expect("read upgrade answer");
            assert!(n > 0, "connection closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status != 101 {
            return Err(status);
        }
        Ok(Raw {
            s,
            buf: buf[head_end..].to_vec(),
        })
    }

    /// Writes one frame header announcing `len` bytes (masked, as a client must).
    pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= u16::MAX as u64 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&len.to_be_bytes());
        }
        f.extend_from_slice(&MASK);
        f
    }

    /// A whole masked frame.
    pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = Raw::header(fin, opcode, payload.len() as u64);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.s
            .write_all(&Raw::frame(fin, opcode, payload))
            .await
            .expect("write frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, 1, text.as_bytes()).await;
    }

    /// Writes `bytes` until done or the peer stops taking them.
    pub async fn send_raw_lossy(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write bytes");
    }

    /// The next frame from the server: (opcode, payload), or `None` at EOF,
    /// reset or timeout.
    pub async fn read_frame(&mut self, within: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some((op, payload, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some((op, payload));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text frame as JSON, skipping heartbeats and control frames.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let (op, p) = self
                .read_frame(Duration::from_secs(3))
                .await
                .expect("a frame within 3 s");
            if op == 1 {
                let v: Value = serde_json::from_slice(&p).expect("server sends JSON");
                if v["type"] != "heartbeat" {
                    return v;
                }
            }
            assert_ne!(op, 8, "closed while waiting for a message");
        }
    }

    /// Reads (answering nothing) until the close frame or the end, within `secs`.
    pub async fn read_to_end(&mut self, within: Duration) -> RawEnd {
        let deadline = tokio::time::Instant::now() + within;
        let mut end = RawEnd::default();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => return end,
                Some((1, p)) => {
                    let v: Value = serde_json::from_slice(&p).expect("server sends JSON");
                    if v["type"] != "heartbeat" {
                        end.texts.push(v);
                    }
                }
                Some((2, _)) => end.binary += 1,
                Some((8, p)) => {
                    end.close = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                    return end;
                }
                Some(_) => {}
            }
        }
    }
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn parse_server_frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    assert_eq!(b[1] & 0x80, 0, "the server masked a frame");
    let (len, mut at) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([b[2], b[3]]) as usize, 4)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            )
        }
        n => (n as usize, 2),
    };
    if b.len() < at + len {
        return None;
    }
    let payload = b[at..at + len].to_vec();
    at += len;
    Some((op, payload, at))
}

/// A metric from the server's Prometheus text.
pub async fn metric_now(server: &Server, name: &str) -> f64 {
    crate::common::metric(&server.metrics().await, name)
}

/// Waits until `f` holds (checked every 20 ms), failing after `within`.
pub async fn eventually<F: FnMut() -> bool>(within: Duration, what: &str, mut f: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
