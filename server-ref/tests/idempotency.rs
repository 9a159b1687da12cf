//! Publishes with idempotency keys, on the memory broker: a repeated key is
//! answered with the first publish's `seq` and delivers nothing new, over
//! the WebSocket (`publish_ack`) and the HTTP API (`Idempotency-Key`, batch
//! `id`s); the window forgets keys by count and by age. (The Redis broker's
//! keys, across nodes: redis_cluster.rs.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Anonymous publishing allowed (the default needs a token with a publish claim).
fn cfg() -> hublink_server::Config {
    let mut c = config();
    c.anonymous_publish = true;
    c
}

/// A client subscribed to `topic`.
async fn publisher(s: &Server, topic: &str) -> Client {
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":topic})).await;
    assert_eq!(c.next_non_heartbeat().await["type"], "subscribe_ack");
    c
}

#[tokio::test]
async fn a_repeated_id_is_acked_with_the_first_seq_and_delivers_nothing_new() {
    let s = start(cfg()).await;
    let mut c = publisher(&s, "orders").await;
    c.send_json(json!({"type":"publish","topic":"orders","id":"k1","data":{"n":1}}))
        .await;
    let (mut ack, mut msg) = (Value::Null, Value::Null);
    for _ in 0..2 {
        let f = c.next_non_heartbeat().await;
        match f["type"].as_str() {
            Some("publish_ack") => ack = f,
            Some("message") => msg = f,
            _ => panic!("unexpected {f}"),
        }
    }
    assert_eq!(msg["seq"], 1);
    assert_eq!(
        ack,
        json!({"type":"publish_ack","id":"k1","topic":"orders","seq":1,"epoch":msg["epoch"]})
    );
    // The same id again (a client that did not see the ack): the same answer, no message.
    c.send_json(json!({"type":"publish","topic":"orders","id":"k1","data":{"n":1}}))
        .await;
    assert_eq!(c.next_non_heartbeat().await, ack);
    c.expect_silence(0.3).await;
    // Another id is another message.
    c.send_json(json!({"type":"publish","topic":"orders","id":"k2","data":{"n":2}}))
        .await;
    let mut types = vec![];
    for _ in 0..2 {
        let f = c.next_non_heartbeat().await;
        assert_eq!(f["seq"], 2, "{f}");
        types.push(f["type"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["message", "publish_ack"]);
    // Keys are per topic: k1 on another topic publishes there.
    c.send_json(json!({"type":"publish","topic":"other","id":"k1","data":0}))
        .await;
    let ack = c.next_non_heartbeat().await;
    assert_eq!(
        (ack["topic"].as_str(), ack["seq"].as_u64()),
        (Some("other"), Some(1))
    );
    let m = s.metrics().await;
    assert_eq!(metric(&m, "hublink_publish_repeats_total"), 1.0);
    s.stop().await;
}

#[tokio::test]
async fn a_publish_without_an_id_is_not_acked_and_errors_name_the_id() {
    let s = start(cfg()).await;
    let mut c = publisher(&s, "orders").await;
    c.send_json(json!({"type":"publish","topic":"orders","data":1}))
        .await;
    assert_eq!(c.next_non_heartbeat().await["type"], "message");
    c.expect_silence(0.3).await;
    // A refusal answers with the id it refuses.
    c.send_json(json!({"type":"publish","topic":"a b","id":"bad-1","data":1}))
        .await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["id"].as_str()),
        (Some("error"), Some("invalid_topic"), Some("bad-1"))
    );
    // An id that is not a string is refused, saying so.
    c.send_json(json!({"type":"publish","topic":"orders","id":7,"data":1}))
        .await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "invalid_message");
    assert!(e["message"].as_str().unwrap().contains("\"id\""), "{e}");
    c.expect_silence(0.3).await;
    s.stop().await;
}

/// Publishes `id` on topic `t` and returns the `seq` its ack names.
async fn seq_of(c: &mut Client, id: &str) -> u64 {
    c.send_json(json!({"type":"publish","topic":"t","id":id,"data":id}))
        .await;
    loop {
        let f = c.next_non_heartbeat().await;
        if f["type"] == "publish_ack" {
            return f["seq"].as_u64().unwrap();
        }
    }
}

#[tokio::test]
async fn the_window_forgets_the_oldest_key_past_its_count_and_every_key_past_its_age() {
    let mut cfg = cfg();
    // Small bounds, so that the test reaches them (defaults: 10,000 keys, 10 min).
    cfg.dedup_max = 2;
    cfg.dedup_window = Duration::from_millis(400);
    let s = start(cfg).await;
    let mut c = publisher(&s, "t").await;
    assert_eq!(seq_of(&mut c, "a").await, 1);
    assert_eq!(seq_of(&mut c, "b").await, 2);
    assert_eq!(seq_of(&mut c, "a").await, 1, "within the count");
    assert_eq!(seq_of(&mut c, "c").await, 3);
    assert_eq!(
        seq_of(&mut c, "a").await,
        4,
        "a was the oldest of three keys over a max of two"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seq_of(&mut c, "c").await, 5, "older than the window");
    s.stop().await;
}

#[tokio::test]
async fn the_http_api_takes_an_idempotency_key_and_batch_ids() {
    let s = start(cfg()).await;
    let mut c = publisher(&s, "orders").await;
    let body = json!({"topic":"orders","data":{"id":"A-17"}}).to_string();
    let auth = format!("Bearer {KEY}");
    let keyed = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "order-A-17"),
    ];
    let (st, first) = http(s.addr, "POST", "/api/publish", &keyed, &body).await;
    assert_eq!(st, 200, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["published"][0]["id"], "order-A-17");
    assert_eq!(first["published"][0]["seq"], 1);
    assert_eq!(c.next_non_heartbeat().await["seq"], 1);
    let (st, again) = http(s.addr, "POST", "/api/publish", &keyed, &body).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), first);
    c.expect_silence(0.3).await;

    // Batch: an id per message, repeats answered in place.
    let batch = json!({"messages":[
        {"topic":"orders","id":"order-A-17","data":"again"},
        {"topic":"orders","id":"order-A-18","data":"new"},
        {"topic":"orders","data":"no id"},
    ]})
    .to_string();
    let (st, out) = post_with_key(s.addr, "/api/publish/batch", &batch).await;
    assert_eq!(st, 200, "{out}");
    let out: Value = serde_json::from_str(&out).unwrap();
    let seqs: Vec<_> = out["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(out["published"][1]["id"], "order-A-18");
    assert_eq!(c.next_non_heartbeat().await["data"], "new");
    assert_eq!(c.next_non_heartbeat().await["data"], "no id");
    c.expect_silence(0.3).await;

    // A key on a batch, or an empty one, is refused saying why.
    let (st, out) = http(s.addr, "POST", "/api/publish/batch", &keyed, &batch).await;
    assert_eq!(st, 400);
    assert!(
        out.contains("Idempotency-Key applies to one topic message"),
        "{out}"
    );
    let empty = [("Authorization", auth.as_str()), ("Idempotency-Key", "")];
    let (st, out) = http(s.addr, "POST", "/api/publish", &empty, &body).await;
    assert_eq!(st, 400, "{out}");
    s.stop().await;
}
