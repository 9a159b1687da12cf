//! Limits: frame size (1009), connections (503), rate (4029), slow consumer
//! (4009), subscriptions, publish size, stale cleanup (4008).

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let mut cfg = config();
    cfg.max_message_size = 1024;
    let s = start(cfg).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_text(&format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(2000)
    ))
    .await;
    assert_eq!(c.expect_close().await.code, 1009);
    assert_eq!(
        metric(&s.metrics().await, "hublink_too_big_closes_total"),
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn over_the_connection_limit_the_upgrade_gets_503() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let s = start(cfg).await;
    let a = s.client("/ws").await;
    let _b = s.client("/ws/machines").await;
    assert_eq!(
        Client::try_connect(&s.url("/ws"), &[]).await.err(),
        Some(503)
    );
    a.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        Client::try_connect(&s.url("/ws"), &[]).await.is_ok(),
        "a slot is free again"
    );
    s.stop().await;
}

#[tokio::test]
async fn too_many_messages_per_second_get_rate_limited_then_4029() {
    let mut cfg = config();
    cfg.rate_limit = 5.0;
    cfg.rate_burst = 5.0;
    let s = start(cfg).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    for _ in 0..20 {
        c.send_json(json!({"type":"ping"})).await;
    }
    let closed = c.expect_close().await;
    assert_eq!(closed.code, 4029);
    let err = closed
        .before
        .iter()
        .find(|m| m["type"] == "error")
        .expect("an error before the close");
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["recoverable"], false);
    let pongs = closed.before.iter().filter(|m| m["type"] == "pong").count();
    assert!(pongs <= 5, "burst of 5, got {pongs} pongs");
    s.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4009_and_others_keep_receiving() {
    let mut cfg = config();
    cfg.send_queue = 8;
    let s = start(cfg).await;
    // The slow client subscribes and then never reads.
    let mut slow = s.client("/ws").await;
    slow.next_json().await;
    slow.send_json(json!({"type":"subscribe","topic":"firehose"}))
        .await;
    slow.next_json().await;
    let mut fast = s.client("/ws").await;
    fast.next_json().await;
    fast.send_json(json!({"type":"subscribe","topic":"firehose"}))
        .await;
    fast.next_non_heartbeat().await;

    let big = "y".repeat(16 * 1024);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < 300 {
            let m = fast.next_non_heartbeat().await;
            n += 1;
            assert_eq!(m["seq"], n);
        }
        n
    });
    for _ in 0..300 {
        s.publish("firehose", json!(big)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(reader.await.unwrap(), 300, "the fast client got everything");
    let closed = slow.expect_close_within(5.0).await;
    assert_eq!(closed.code, 4009);
    let m = s.metrics().await;
    assert_eq!(metric(&m, "hublink_slow_consumer_closes_total"), 1.0);
    assert!(metric(&m, "hublink_dropped_total") >= 1.0);
    s.stop().await;
}

#[tokio::test]
async fn subscription_and_publish_size_limits_answer_with_errors() {
    let mut cfg = config();
    cfg.max_subscriptions = 2;
    cfg.max_publish_size = 100;
    cfg.anonymous_publish = true;
    let s = start(cfg).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    for t in ["a", "b"] {
        c.send_json(json!({"type":"subscribe","topic":t})).await;
        assert_eq!(c.next_non_heartbeat().await["success"], true);
    }
    c.send_json(json!({"type":"subscribe","topic":"c"})).await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "too_many_subscriptions");
    assert_eq!(c.next_non_heartbeat().await["success"], false);
    c.send_json(json!({"type":"publish","topic":"a","data":"z".repeat(200)}))
        .await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "message_too_big");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("over the limit of 100"));
    c.send_json(json!({"type":"ping"})).await;
    assert_eq!(c.next_non_heartbeat().await["type"], "pong");
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_echoes_heartbeats_stays_and_a_silent_one_is_closed_with_4008() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.stale_timeout = Some(Duration::from_millis(500));
    let s = start(cfg).await;
    let mut echo = s.client("/ws").await;
    echo.next_json().await;
    let mut silent = s.client("/ws").await;
    silent.next_json().await;
    let silent_task = tokio::spawn(async move {
        // Neither reads nor writes (reading would make tungstenite answer the
        // server's WebSocket pings, which counts as liveness).
        tokio::time::sleep(Duration::from_millis(900)).await;
        // By now the server has closed: what is left is heartbeats, the close
        // frame, and possibly a broken pipe when tungstenite answers a stale ping.
        loop {
            match tokio::time::timeout(Duration::from_secs(2), silent.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(c))))) => return Some(u16::from(c.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    });
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        let hb = echo.next_where("type", "heartbeat").await;
        echo.send_json(json!({"type":"heartbeat","timestamp":hb["timestamp"]}))
            .await;
    }
    echo.send_json(json!({"type":"ping"})).await;
    assert_eq!(echo.next_where("type", "pong").await["type"], "pong");
    let code = silent_task.await.unwrap();
    assert!(code.is_none() || code == Some(4008), "close code {code:?}");
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, "hublink_connections{endpoint=\"ws\"}"),
        1.0,
        "only the echoing client is left"
    );
    assert_eq!(metric(&m, "hublink_stale_closes_total"), 1.0);
    assert!(metric(&m, "hublink_heartbeat_echoes_total") >= 5.0);
    s.stop().await;
}
