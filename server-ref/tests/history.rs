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
    let s = start(config()).await;
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

/// What a user gets out of the box: `Config::defaults()` with only a publish
/// key (the 1,000-message window, the 256-frame send queue, real intervals).
fn defaults() -> hublink_server::Config {
    let mut c = hublink_server::Config::defaults();
    c.publish_key = Some(KEY.into());
    c
}

/// Publishes `n` messages on `topic` in-process (data from their `seq`);
/// returns the topic's epoch.
async fn publish_many(
    s: &Server,
    topic: &str,
    n: u64,
    data: impl Fn(u64) -> serde_json::Value,
) -> String {
    let mut epoch = String::new();
    for i in 1..=n {
        epoch = s
            .state
            .publish(topic, data(i), None)
            .await
            .unwrap()
            .epoch
            .to_string();
    }
    epoch
}

/// Reads `subscribe_ack` then messages `from..=to` of `topic`, in order, each
/// once; then nothing more of the topic for a moment.
async fn recovers(c: &mut Client, topic: &str, from: u64, to: u64) {
    let ack = c.next_where("type", "subscribe_ack").await;
    assert_eq!(ack["topic"], topic);
    assert_eq!(ack["success"], true, "{ack}");
    assert_eq!(ack["recovered"], true, "{ack}");
    let mut expect = from;
    while expect <= to {
        let m = c.next_non_heartbeat().await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["seq"], expect, "gap or duplicate");
        expect += 1;
    }
    c.expect_silence(0.3).await;
}

/// Issue #12's reproduction: a client 600 behind (inside the default window of
/// 1,000) used to be closed 4009 before its `subscribe_ack`, on every attempt,
/// because the ack and the replay were pushed into the 256-frame send queue at once.
#[tokio::test]
async fn a_client_600_behind_recovers_at_the_default_settings() {
    let s = start(defaults()).await;
    let (st, out) = post_with_key(
        s.addr,
        "/api/publish",
        &json!({"topic":"orders","data":0}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap();
    let epoch = first["published"][0]["epoch"].as_str().unwrap().to_string();
    let batch: Vec<_> = (1..=600)
        .map(|i| json!({"topic":"orders","data":i}))
        .collect();
    let body = json!({ "messages": batch }).to_string();
    let (st, out) = post_with_key(s.addr, "/api/publish/batch", &body).await;
    assert_eq!(st, 200, "{out}");

    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"orders","since":{"epoch":epoch,"seq":1}}))
        .await;
    recovers(&mut c, "orders", 2, 601).await;
    assert_eq!(
        metric(&s.metrics().await, "hublink_slow_consumer_closes_total"),
        0.0
    );
    s.stop().await;
}

/// The whole of a window raised to 100,000 (the send queue stays at its
/// default): the replay is paced by the socket, not held in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_100000_is_recovered_whole_at_the_default_send_queue() {
    let mut cfg = defaults();
    cfg.history_size = 100_000;
    let s = start(cfg).await;
    let epoch = publish_many(&s, "t", 100_000, |i| json!(i)).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"t","since":{"epoch":epoch,"seq":1}}))
        .await;
    recovers(&mut c, "t", 2, 100_000).await;
    s.stop().await;
}

/// Live messages published while a long replay is under way come after it,
/// in order, once each; another topic's live messages are not held behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_messages_during_a_long_replay_follow_it_in_order() {
    let s = start(defaults()).await;
    let epoch = publish_many(&s, "t", 1000, |i| json!(i)).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"other"}))
        .await;
    c.next_where("type", "subscribe_ack").await;
    // 900 to replay: 3.5 send queues.
    c.send_json(json!({"type":"subscribe","topic":"t","since":{"epoch":epoch,"seq":100}}))
        .await;
    let (go, started) = tokio::sync::oneshot::channel::<()>();
    let state = s.state.clone();
    let publisher = tokio::spawn(async move {
        // From the ack on, while the replay is still going out.
        let _ = started.await;
        for i in 1001..=1500u64 {
            state.publish("t", json!(i), None).await.unwrap();
            state.publish("other", json!(i), None).await.unwrap();
            // A steady stream, not one burst: a burst of more than a send
            // queue (256) at once is a slow consumer's test, not this one.
            if i % 10 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    });
    let mut go = Some(go);
    let (mut next_t, mut next_other) = (101u64, 1001u64);
    while next_t <= 1500 || next_other <= 1500 {
        let m = c.next_non_heartbeat().await;
        match (m["type"].as_str(), m["topic"].as_str()) {
            (Some("subscribe_ack"), Some("t")) => {
                assert_eq!(m["recovered"], true, "{m}");
                let _ = go.take().expect("one ack").send(());
            }
            (Some("message"), Some("t")) => {
                assert!(go.is_none(), "a replayed message before its ack");
                assert_eq!(m["seq"], next_t, "gap or duplicate on t");
                next_t += 1;
            }
            (Some("message"), Some("other")) => {
                assert_eq!(m["data"], next_other, "gap or duplicate on other");
                next_other += 1;
            }
            _ => panic!("unexpected {m}"),
        }
    }
    publisher.await.unwrap();
    c.expect_silence(0.3).await;
    s.stop().await;
}

/// A replay is not a licence to stop reading: a client that subscribes with
/// `since` and then reads nothing while the topic goes on is still closed as
/// a slow consumer, and the server's memory for it stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_during_a_replay_is_still_a_slow_consumer() {
    let s = start(defaults()).await;
    let big = "x".repeat(2000);
    let epoch = publish_many(&s, "t", 1000, |_| json!(big)).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"t","since":{"epoch":epoch,"seq":0}}))
        .await;
    // The client reads nothing from here on; the topic goes on.
    let mut closed = false;
    for _ in 0..200 {
        for _ in 0..100 {
            s.publish("t", json!(big)).await;
        }
        if metric(&s.metrics().await, "hublink_slow_consumer_closes_total") == 1.0 {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        closed,
        "a client that reads nothing was never closed as a slow consumer"
    );
    drop(c);
    s.stop().await;
}
