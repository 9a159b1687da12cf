//! Slow consumers against a hublink-server running as its own process: 100
//! clients subscribe to a firehose and stop reading. The server closes each
//! by policy (send queue full: 4009), its memory (VmRSS from /proc) stays
//! bounded while they hang and comes back down once they are gone, and a
//! reading subscriber on the same firehose gets every message on time.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{http, metric};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "slow-test-key";
const SLOW: usize = 100;
const TOPIC: &str = "firehose";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/pid/status")
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn spawn_server() -> (Proc, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hublink-server"))
        .args(["--listen", &addr.to_string(), "--publish-key", KEY])
        .args(["--heartbeat-interval", "1s", "--worker-threads", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hublink-server");
    let p = Proc(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (p, addr);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("hublink-server did not listen on {addr}");
}

/// Upgrades with a 4 KiB receive buffer, subscribes, reads the ack, and from
/// then on never reads again.
async fn slow_consumer(addr: SocketAddr) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let sub = json!({"type":"subscribe","topic":TOPIC}).to_string();
    let mut frame = vec![0x81u8, 0x80 | sub.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(sub.as_bytes());
    s.write_all(&frame).await.unwrap();
    // The 101, `connected` and the ack: enough to know it is subscribed.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("subscribe_ack") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("ack within 5 s")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_are_closed_by_policy_and_memory_stays_bounded() {
    let (server, addr) = spawn_server().await;
    let pid = server.0.id();

    // The reading subscriber.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type":"subscribe","topic":TOPIC}).to_string(),
    ))
    .await
    .unwrap();
    let origin = tokio::time::Instant::now();
    let reader = tokio::spawn(async move {
        let (mut n, mut max_late) = (0u64, 0u64);
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str() {
                Some("heartbeat") => {
                    let echo = json!({"type":"heartbeat","timestamp":v["timestamp"]});
                    let _ = ws.send(Message::text(echo.to_string())).await;
                }
                Some("message") => {
                    n += 1;
                    assert_eq!(v["seq"], n, "the reader gets every message in order");
                    let at = v["data"]["at"].as_u64().unwrap();
                    max_late =
                        max_late.max((origin.elapsed().as_millis() as u64).saturating_sub(at));
                    if v["data"]["last"] == true {
                        break;
                    }
                }
                _ => {}
            }
        }
        (n, max_late, ws)
    });

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(slow_consumer(addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid);
    let fds_before = fds(pid);

    // 2,000 messages of 8 KiB in batches of 20, as fast as the API takes them:
    // 16 MB through every subscriber, 1.6 GB if the server buffered it all.
    let pad = "x".repeat(8 * 1024);
    let auth = format!("Bearer {KEY}");
    let mut rss_peak = rss_before;
    let batches = 100;
    for b in 0..batches {
        let at = origin.elapsed().as_millis() as u64;
        let msgs: Vec<Value> = (0..20)
            .map(|i| {
                json!({"topic": TOPIC, "data": {"at": at, "pad": pad, "last": b == batches - 1 && i == 19}})
            })
            .collect();
        let body = json!({ "messages": msgs }).to_string();
        let (status, resp) = http(
            addr,
            "POST",
            "/api/publish/batch",
            &[("Authorization", &auth)],
            &body,
        )
        .await;
        assert_eq!(status, 200, "{resp}");
        rss_peak = rss_peak.max(rss_kib(pid));
    }
    let (received, max_late, _reader_ws) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the reader gets the last message")
        .unwrap();

    // Every slow consumer is closed by policy and its memory handed back.
    let t0 = tokio::time::Instant::now();
    let mut closes = 0.0;
    while t0.elapsed() < Duration::from_secs(15) {
        let m = http(addr, "GET", "/metrics", &[], "").await.1;
        closes = metric(&m, "hublink_slow_consumer_closes_total");
        rss_peak = rss_peak.max(rss_kib(pid));
        if closes as usize == SLOW && metric(&m, "hublink_connections{endpoint=\"ws\"}") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleaned_in = t0.elapsed();
    drop(slow);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid);
    let fds_after = fds(pid);
    let m = http(addr, "GET", "/metrics", &[], "").await.1;
    println!(
        "slow consumers: {SLOW} closed by policy ({closes} 4009s, {} frames dropped) within {cleaned_in:?} \
         of the last publish; server VmRSS {rss_before} KiB before, {rss_peak} KiB peak, {rss_after} KiB after; \
         fds {fds_before} -> {fds_after}; reader got {received} messages, at most {max_late} ms late",
        metric(&m, "hublink_dropped_total")
    );
    assert_eq!(received, 2000);
    assert!(max_late < 1000, "the reader was {max_late} ms late");
    assert_eq!(
        closes as usize, SLOW,
        "every slow consumer closed with 4009"
    );
    assert_eq!(metric(&m, "hublink_connections{endpoint=\"ws\"}"), 1.0);
    // Bounded: per slow connection, at most its queue (256 shared frames)
    // and the WebSocket write buffer; nowhere near the 1.6 GB sent.
    let growth_mib = (rss_peak.saturating_sub(rss_before)) / 1024;
    assert!(
        growth_mib < 160,
        "peak grew {growth_mib} MiB for {SLOW} slow consumers"
    );
    assert!(
        fds_after <= fds_before - SLOW + 5,
        "sockets released: {fds_before} -> {fds_after}"
    );
}
