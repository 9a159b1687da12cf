//! The load behind `scripts/soak`: `--connections` WebSocket clients on
//! hublink-server's `/ws`, each subscribed to one of `--topics` topics and
//! echoing heartbeats, a publisher at `--rate` messages per second through the
//! HTTP publish API, and churn: every 10 s, a `--churn` share of the
//! connections, picked at random, drop and connect again (alternately with a
//! close frame and with a reset). Progress every 10 s on stderr, a JSON
//! summary on stdout. Source addresses are spread over 127.0.0.2-51 so that
//! ten thousand connections and their TIME_WAITs never run out of ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Soak load for hublink-server: connections with churn")]
struct Args {
    /// The server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Connections held open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// How long to run, minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Share of the connections dropped and reopened every 10 s.
    #[arg(long, default_value_t = 0.05)]
    churn: f64,
    /// Topics the connections spread over.
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Messages published per second (over all topics).
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// The server's `--publish-key`.
    #[arg(long, default_value = "soak")]
    publish_key: String,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    received: AtomicU64,
    published: AtomicU64,
    publish_errors: AtomicU64,
    unexpected_closes: AtomicU64,
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8))
}

async fn connection(
    i: usize,
    args: Arc<Args>,
    kick: Arc<Notify>,
    gate: Arc<Semaphore>,
    c: Arc<Counters>,
) {
    let topic = format!("soak.{}", i % args.topics);
    let mut round = 0u64;
    loop {
        round += 1;
        let permit = gate.acquire().await.unwrap();
        let sock = TcpSocket::new_v4().unwrap();
        let _ = sock.bind(SocketAddr::new(source(i), 0));
        let stream = match sock.connect(args.addr).await {
            Ok(s) => s,
            Err(_) => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let url = format!("ws://{}/ws", args.addr);
        let ws = match tokio_tungstenite::client_async(url, stream).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        drop(permit);
        let (mut tx, mut rx) = ws.split();
        let sub = json!({"type":"subscribe","topic":topic}).to_string();
        if tx.send(Message::text(sub)).await.is_err() {
            c.failures.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        c.connects.fetch_add(1, Ordering::Relaxed);
        c.connected.fetch_add(1, Ordering::Relaxed);
        let kicked = loop {
            tokio::select! {
                _ = kick.notified() => break true,
                m = rx.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        match v["type"].as_str() {
                            Some("message") => { c.received.fetch_add(1, Ordering::Relaxed); }
                            Some("heartbeat") => {
                                let echo = json!({"type":"heartbeat","timestamp":v["timestamp"]});
                                if tx.send(Message::text(echo.to_string())).await.is_err() {
                                    break false;
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break false,
                }
            }
        };
        c.connected.fetch_sub(1, Ordering::Relaxed);
        if !kicked {
            c.unexpected_closes.fetch_add(1, Ordering::Relaxed);
        } else if round.is_multiple_of(2) {
            // Every other churn is polite; the rest just vanish (reset).
            let _ = tx.send(Message::Close(None)).await;
        }
        drop(tx);
        drop(rx);
        tokio::time::sleep(Duration::from_millis(fastrand_ms(i, round))).await;
    }
}

/// A small spread (0-999 ms) without a random-number crate.
fn fastrand_ms(i: usize, round: u64) -> u64 {
    ((i as u64).wrapping_mul(2_654_435_761) ^ round.wrapping_mul(40_503)) % 1_000
}

async fn publish(addr: SocketAddr, key: &str, topic: &str, n: u64) -> bool {
    let body =
        json!({"topic": topic, "data": {"n": n, "pad": "soak-payload-0123456789"}}).to_string();
    let req = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.1 200")
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let c = Arc::new(Counters::default());
    let gate = Arc::new(Semaphore::new(256));
    let kicks: Vec<Arc<Notify>> = (0..args.connections)
        .map(|_| Arc::new(Notify::new()))
        .collect();
    for (i, kick) in kicks.iter().enumerate() {
        tokio::spawn(connection(
            i,
            args.clone(),
            kick.clone(),
            gate.clone(),
            c.clone(),
        ));
    }
    {
        let (args, c) = (args.clone(), c.clone());
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                let topic = format!("soak.{}", n as usize % args.topics);
                if publish(args.addr, &args.publish_key, &topic, n).await {
                    c.published.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.publish_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let start = Instant::now();
    let end = Duration::from_secs_f64(args.minutes * 60.0);
    let mut churned = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    while start.elapsed() < end {
        tick.tick().await;
        let k = (args.connections as f64 * args.churn) as usize;
        for _ in 0..k {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            kicks[(seed % args.connections as u64) as usize].notify_one();
        }
        churned += k as u64;
        eprintln!(
            "soak {:>5.0} s: connected {} connects {} failures {} unexpected closes {} received {} published {} publish errors {}",
            start.elapsed().as_secs_f64(),
            c.connected.load(Ordering::Relaxed),
            c.connects.load(Ordering::Relaxed),
            c.failures.load(Ordering::Relaxed),
            c.unexpected_closes.load(Ordering::Relaxed),
            c.received.load(Ordering::Relaxed),
            c.published.load(Ordering::Relaxed),
            c.publish_errors.load(Ordering::Relaxed),
        );
    }
    println!(
        "{}",
        json!({
            "seconds": start.elapsed().as_secs(),
            "connections": args.connections,
            "connected_at_end": c.connected.load(Ordering::Relaxed),
            "connects": c.connects.load(Ordering::Relaxed),
            "churned": churned,
            "failures": c.failures.load(Ordering::Relaxed),
            "unexpected_closes": c.unexpected_closes.load(Ordering::Relaxed),
            "received": c.received.load(Ordering::Relaxed),
            "published": c.published.load(Ordering::Relaxed),
            "publish_errors": c.publish_errors.load(Ordering::Relaxed),
        })
    );
}
