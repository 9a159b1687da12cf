//! The HTTP publish API, `/healthz` and `/metrics`.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn publish_api_needs_the_key_and_delivers_to_subscribers() {
    let s = start(config()).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"orders"}))
        .await;
    c.next_non_heartbeat().await;

    let body = json!({"topic":"orders","data":{"id":"A-17"}}).to_string();
    let (st, _) = http(s.addr, "POST", "/api/publish", &[], &body).await;
    assert_eq!(st, 401);
    let (st, _) = http(
        s.addr,
        "POST",
        "/api/publish",
        &[("Authorization", "Bearer nope")],
        &body,
    )
    .await;
    assert_eq!(st, 401);
    let (st, out) = post_with_key(s.addr, "/api/publish", &body).await;
    assert_eq!(st, 200, "{out}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["published"][0]["seq"], 1);
    let m = c.next_non_heartbeat().await;
    assert_eq!(m["data"], json!({"id":"A-17"}));

    let (st, out) = post_with_key(s.addr, "/api/publish", "{\"topic\":\"a b\",\"data\":1}").await;
    assert_eq!(st, 400);
    assert!(out.contains("a b"), "{out}");
    let (st, _) = post_with_key(s.addr, "/api/publish", "nope").await;
    assert_eq!(st, 400);

    // Batch: validated as a whole, published in order.
    let batch =
        json!({"messages":[{"topic":"orders","data":2},{"topic":"orders","data":3}]}).to_string();
    let (st, out) = post_with_key(s.addr, "/api/publish/batch", &batch).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(c.next_non_heartbeat().await["data"], 2);
    assert_eq!(c.next_non_heartbeat().await["data"], 3);
    let bad = json!([{"topic":"orders","data":4},{"data":5}]).to_string();
    let (st, out) = post_with_key(s.addr, "/api/publish/batch", &bad).await;
    assert_eq!(st, 400);
    assert!(out.contains("message 1"), "{out}");
    c.expect_silence(0.3).await;
    s.stop().await;
}

#[tokio::test]
async fn publish_api_is_disabled_without_a_key() {
    let mut cfg = config();
    cfg.publish_key = None;
    let s = start(cfg).await;
    let (st, out) = http(
        s.addr,
        "POST",
        "/api/publish",
        &[("Authorization", "Bearer x")],
        "{}",
    )
    .await;
    assert_eq!(st, 503);
    assert!(out.contains("--publish-key"));
    s.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics() {
    let s = start(config()).await;
    let (st, body) = http(s.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"t"})).await;
    c.next_non_heartbeat().await;
    s.publish("t", json!(1)).await;
    c.next_non_heartbeat().await;
    let m = s.metrics().await;
    assert_eq!(metric(&m, "hublink_connections{endpoint=\"ws\"}"), 1.0);
    assert_eq!(metric(&m, "hublink_subscriptions"), 1.0);
    assert_eq!(metric(&m, "hublink_history_messages"), 1.0);
    assert!(metric(&m, "hublink_messages_in_total") >= 1.0);
    assert!(metric(&m, "hublink_messages_out_total") >= 3.0);
    assert_eq!(metric(&m, "hublink_connections_total"), 1.0);
    s.stop().await;
}
