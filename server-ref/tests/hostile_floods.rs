//! Floods against hublink-server: one client sending as fast as it can, one
//! subscribing to 100,000 topics, 5,000 connections opened and dropped in a
//! loop. Each is stopped by its limit, leaves nothing behind, and a bystander
//! keeps receiving on time throughout.

mod common;
mod hostile_support;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use hostile_support::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_as_fast_as_it_can_is_closed_with_4029() {
    let s = start(config()).await; // defaults: 100 messages/s, burst 200
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    // 2,000 pings in one write, as fast as the socket takes them. (A client
    // that keeps writing after the close gets a reset instead of the close
    // frame, since the server drops a socket it has not read to the end.)
    let ping = Raw::frame(true, 1, b"{\"type\":\"ping\"}");
    let flood: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 2_000)
        .collect();
    c.send_raw(&flood).await;
    let end = c.read_to_end(Duration::from_secs(3)).await;
    assert_eq!(end.close, Some(4029), "{:?}", end.close);
    let pongs = end.texts.iter().filter(|m| m["type"] == "pong").count();
    assert!(
        (200..=210).contains(&pongs),
        "the burst of 200 is served, then the limit: {pongs}"
    );
    let err = end.texts.last().unwrap();
    assert_eq!(err["code"], "rate_limited", "{err}");
    assert_eq!(err["recoverable"], false);
    assert_eq!(
        metric_now(&s, "hublink_rate_limited_closes_total").await,
        1.0
    );
    by.assert_unharmed("a message flood").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_100_000_topics_stops_at_the_limit() {
    let mut cfg = config();
    // The rate limit would stop this client first; this test is about the
    // subscription limit (1,000) and the error limit (100) behind it.
    cfg.rate_limit = 1e9;
    cfg.rate_burst = 1e9;
    let s = start(cfg).await;
    let by = Bystander::start(&s).await;
    let (ws, _) = tokio_tungstenite::connect_async(s.url("/ws"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    // Greedy but reading: at most 128 subscribes without an answer (a client
    // that does not read its answers is a slow consumer, closed with 4009).
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer_answered = answered.clone();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer_sent = sent.clone();
    // Once the server closes, no answer comes any more and this task would
    // wait for one forever: the reader aborts it when the connection ends.
    let writer = tokio::spawn(async move {
        for i in 0..100_000u32 {
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            while writer_sent.load(relaxed) > writer_answered.load(relaxed) + 128 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let f = json!({"type":"subscribe","topic":format!("flood.{i}")}).to_string();
            if tx.send(Message::text(f)).await.is_err() {
                break;
            }
            writer_sent.fetch_add(1, relaxed);
        }
    });
    let (mut ok, mut refused, mut peak) = (0u32, 0u32, 0usize);
    let mut last_error = Value::Null;
    let close = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.next())
            .await
            .expect("the server answers or closes within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "subscribe_ack" {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                match v["type"].as_str() {
                    Some("subscribe_ack") if v["success"] == true => ok += 1,
                    Some("subscribe_ack") => refused += 1,
                    Some("error") => last_error = v,
                    _ => {}
                }
                peak = peak.max(s.state.broker.subscriptions());
            }
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    writer.abort();
    let _ = writer.await;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    println!("100,000-topic flood: sent {sent}, {ok} accepted, {refused} refused, peak {peak} subscriptions, close {close:?}");
    assert_eq!(ok, 1000, "exactly the limit is accepted");
    // 100 refusals with recoverable errors; the 101st is refused with the
    // final `too_many_errors` and the close.
    assert_eq!(refused, 101, "refused until past the error limit");
    assert_eq!(close, Some(1008));
    assert_eq!(last_error["code"], "too_many_errors", "{last_error}");
    assert!(
        peak <= 1001,
        "never more than the limit (+ the bystander): {peak}"
    );
    eventually(
        Duration::from_secs(3),
        "the flood's subscriptions are dropped",
        || s.state.broker.subscriptions() == 1,
    )
    .await;
    by.assert_unharmed("a 100,000-topic subscribe").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_connections_opened_and_dropped_leave_nothing_behind() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    let t0 = std::time::Instant::now();
    let addr = s.addr;
    // 50 workers x 100 connections, each dropped a different way: reset
    // mid-upgrade, reset after `connected`, reset after subscribing, or
    // a polite close frame.
    let workers: Vec<_> = (0..50u32)
        .map(|w| {
            tokio::spawn(async move {
                for i in 0..100u32 {
                    let n = w * 100 + i;
                    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let _ = tcp.set_zero_linger();
                    match n % 4 {
                        0 => {
                            let mut tcp = tcp;
                            use tokio::io::AsyncWriteExt;
                            let _ = tcp
                                .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
                                .await;
                        }
                        1 => {
                            let mut c = Raw::upgrade(tcp, addr, "/ws", &[]).await.unwrap();
                            c.next_json().await;
                        }
                        2 => {
                            let mut c = Raw::upgrade(tcp, addr, "/ws", &[]).await.unwrap();
                            c.next_json().await;
                            c.send_text(
                                &json!({"type":"subscribe","topic":format!("churn.{}", n % 7)})
                                    .to_string(),
                            )
                            .await;
                            c.next_json().await;
                        }
                        _ => {
                            let mut c = Raw::upgrade(tcp, addr, "/ws", &[]).await.unwrap();
                            c.next_json().await;
                            c.send_text(&json!({"type":"subscribe","topic":TOPIC}).to_string())
                                .await;
                            c.next_json().await;
                            c.send_frame(true, 8, &1000u16.to_be_bytes()).await;
                            let _ = c.read_to_end(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = t0.elapsed();
    eventually(Duration::from_secs(5), "only the bystander is left", || {
        s.state.live_connections() == 1 && s.state.broker.subscriptions() == 1
    })
    .await;
    let m = s.metrics().await;
    println!(
        "5,000 connections opened and dropped in {took:?}; connections_total {}",
        metric(&m, "hublink_connections_total")
    );
    assert_eq!(metric(&m, "hublink_connections{endpoint=\"ws\"}"), 1.0);
    assert_eq!(
        metric(&m, "hublink_active_streams"),
        1.0,
        "no topic kept alive by the dead"
    );
    assert!(metric(&m, "hublink_connections_total") >= 3_750.0);
    by.assert_unharmed("5,000 connections churning").await;
    s.stop().await;
}
