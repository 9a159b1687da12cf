//! Per-topic history: replay with `since`, with and without a gap, under
//! concurrent publishing.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn subscribed(
    s: &Server,
    topic: &str,
    since: Option<(String, u64)>,
) -> (Client, serde_json::Value) {
    let mut c = s.client("/ws").await;
    c.next_json().await;
    let mut m = json!({"type":"subscribe","topic":topic});
    if let Some((e, seq)) = since {
        m["since"] = json!({"epoch": e, "seq": seq});
    }
    c.send_json(m).await;
    let ack = c.next_non_heartbeat().await;
    assert_eq!(ack["type"], "subscribe_ack");
    (c, ack)
}

#[tokio::test]
async fn replay_after_a_disconnect_recovers_exactly_the_missed_messages() {
    let s = start(config()).await;
    let (c, ack) = subscribed(&s, "orders", None).await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    for i in 1..=3 {
        s.publish("orders", json!(i)).await;
    }
    c.close().await;
    for i in 4..=6 {
        s.publish("orders", json!(i)).await;
    }
    let (mut c, ack) = subscribed(&s, "orders", Some((epoch.clone(), 3))).await;
    assert_eq!(ack["recovered"], true);
    assert_eq!(ack["seq"], 6);
    for seq in 4..=6 {
        let m = c.next_non_heartbeat().await;
        assert_eq!(m["seq"], seq);
        assert_eq!(m["data"], seq);
    }
    s.publish("orders", json!(7)).await;
    assert_eq!(c.next_non_heartbeat().await["seq"], 7);

    // since == latest: recovered, nothing replayed.
    let (mut c2, ack) = subscribed(&s, "orders", Some((epoch, 7))).await;
    assert_eq!(ack["recovered"], true);
    c2.expect_silence(0.3).await;
    s.stop().await;
}

#[tokio::test]
async fn a_gap_outside_the_window_or_another_epoch_is_not_recovered() {
    let mut cfg = config();
    cfg.history_size = 3;
    let s = start(cfg).await;
    let (_c, ack) = subscribed(&s, "t", None).await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    for i in 1..=10 {
        s.publish("t", json!(i)).await;
    }
    let (mut c, ack) = subscribed(&s, "t", Some((epoch.clone(), 2))).await;
    assert_eq!(ack["recovered"], false);
    assert_eq!(ack["seq"], 10);
    c.expect_silence(0.3).await;
    // Still in the window: 8, 9, 10 are kept.
    let (mut c, ack) = subscribed(&s, "t", Some((epoch, 7))).await;
    assert_eq!(ack["recovered"], true);
    assert_eq!(c.next_non_heartbeat().await["seq"], 8);
    let (_c, ack) = subscribed(&s, "t", Some(("other-epoch".into(), 9))).await;
    assert_eq!(ack["recovered"], false);
    s.stop().await;
}

#[tokio::test]
async fn messages_older_than_the_age_bound_leave_the_window() {
    let mut cfg = config();
    cfg.history_age = Duration::from_millis(300);
    let s = start(cfg).await;
    let (_c, ack) = subscribed(&s, "t", None).await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    s.publish("t", json!(1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_c2, ack) = subscribed(&s, "t", Some((epoch, 0))).await;
    assert_eq!(ack["recovered"], false);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_under_concurrent_publishing_has_no_gap_and_no_duplicate() {
    let mut cfg = config();
    cfg.send_queue = 4096;
    let s = start(cfg).await;
    let (_c, ack) = subscribed(&s, "hot", None).await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    for i in 1..=50 {
        s.publish("hot", json!(i)).await;
    }
    let state = s.state.clone();
    let publisher = tokio::spawn(async move {
        for i in 51..=400 {
            state.publish("hot", json!(i), None).await.unwrap();
            if i % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let (mut c, ack) = subscribed(&s, "hot", Some((epoch, 20))).await;
    assert_eq!(ack["recovered"], true);
    publisher.await.unwrap();
    let mut expect = 21;
    while expect <= 400 {
        let m = c.next_non_heartbeat().await;
        assert_eq!(m["seq"], expect, "gap or duplicate");
        expect += 1;
    }
    c.expect_silence(0.2).await;
    s.stop().await;
}
