//! `/ws`: every message type of hublink.v1 and every bad-input error.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn connected_selects_subprotocol_and_describes_the_server() {
    let s = start(config()).await;
    let mut c = Client::try_connect(&s.url("/ws"), &[("Sec-WebSocket-Protocol", "hublink.v1")])
        .await
        .unwrap();
    assert_eq!(c.protocol.as_deref(), Some("hublink.v1"));
    let m = c.next_json().await;
    assert_eq!(m["type"], "connected");
    assert!(m["client_id"].as_str().unwrap().starts_with("c-"));
    assert_eq!(m["heartbeat_interval"], 0.2);
    assert_eq!(m["protocol"], "hublink.v1");
    assert!(m["server_time"].as_u64().unwrap() > 1_700_000_000_000);
    s.stop().await;
}

#[tokio::test]
async fn subscribe_publish_unsubscribe_get_topics_ping() {
    let mut cfg = config();
    cfg.anonymous_publish = true;
    let s = start(cfg).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"machines.CNC-001"}))
        .await;
    let ack = c.next_non_heartbeat().await;
    assert_eq!(ack["type"], "subscribe_ack");
    assert_eq!(ack["success"], true);
    assert_eq!(ack["seq"], 0);
    assert!(
        ack.get("recovered").is_none(),
        "no since, no recovered: {ack}"
    );
    let epoch = ack["epoch"].as_str().unwrap().to_string();

    c.send_json(json!({"type":"subscribe","topic":"orders"}))
        .await;
    c.next_non_heartbeat().await;
    c.send_json(json!({"type":"get_topics"})).await;
    assert_eq!(
        c.next_non_heartbeat().await,
        json!({"type":"topics","topics":["machines.CNC-001","orders"]})
    );

    // A client publish reaches every subscriber, the publisher included.
    let mut other = s.client("/ws").await;
    other.next_json().await;
    other
        .send_json(json!({"type":"subscribe","topic":"machines.CNC-001"}))
        .await;
    other.next_non_heartbeat().await;
    c.send_json(json!({"type":"publish","topic":"machines.CNC-001","data":{"temperature":25.5}}))
        .await;
    for cl in [&mut c, &mut other] {
        let m = cl.next_non_heartbeat().await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["topic"], "machines.CNC-001");
        assert_eq!(m["seq"], 1);
        assert_eq!(m["epoch"], epoch.as_str());
        assert_eq!(m["data"], json!({"temperature":25.5}));
        assert!(m["timestamp"].as_u64().is_some());
    }

    c.send_json(json!({"type":"ping"})).await;
    let p = c.next_non_heartbeat().await;
    assert_eq!(p["type"], "pong");
    assert!(p["timestamp"].as_u64().is_some());

    c.send_json(json!({"type":"unsubscribe","topic":"machines.CNC-001"}))
        .await;
    assert_eq!(
        c.next_non_heartbeat().await,
        json!({"type":"unsubscribe_ack","topic":"machines.CNC-001","success":true})
    );
    c.send_json(json!({"type":"unsubscribe","topic":"machines.CNC-001"}))
        .await;
    let nack = c.next_non_heartbeat().await;
    assert_eq!(nack["success"], false);
    assert!(nack["error"].as_str().unwrap().contains("machines.CNC-001"));

    s.publish("machines.CNC-001", json!(2)).await;
    assert_eq!(other.next_non_heartbeat().await["seq"], 2);
    c.expect_silence(0.3).await;
    s.stop().await;
}

#[tokio::test]
async fn heartbeats_carry_active_streams() {
    let s = start(config()).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"a"})).await;
    c.next_json().await;
    let hb = c.next_where("type", "heartbeat").await;
    assert_eq!(hb["active_streams"], 1);
    assert!(hb["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_named_errors_and_the_connection_carries_on() {
    let s = start(config()).await;
    let mut c = s.client("/ws").await;
    let mut bystander = s.client("/ws").await;
    c.next_json().await;
    bystander.next_json().await;
    bystander
        .send_json(json!({"type":"subscribe","topic":"t"}))
        .await;
    bystander.next_non_heartbeat().await;

    let cases: Vec<(&str, &str, &str)> = vec![
        ("not json", "invalid_json", "not JSON"),
        ("[1,2]", "invalid_message", "not a JSON object"),
        (
            "{\"topic\":\"x\"}",
            "invalid_message",
            "\"type\" is missing",
        ),
        (
            "{\"type\":5}",
            "invalid_message",
            "\"type\" must be a string",
        ),
        (
            "{\"type\":\"frobnicate\"}",
            "unknown_type",
            "\"frobnicate\"",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":42}",
            "invalid_message",
            "\"topic\" must be a string",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"a b\"}",
            "invalid_topic",
            "\"a b\"",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"\"}",
            "invalid_topic",
            "empty",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"t\",\"since\":{\"seq\":\"x\"}}",
            "invalid_message",
            "since",
        ),
        (
            "{\"type\":\"publish\",\"topic\":\"t\",\"data\":1}",
            "forbidden",
            "publish",
        ),
    ];
    let mut count = 0;
    for (input, code, needle) in &cases {
        c.send_text(input).await;
        let e = c.next_non_heartbeat().await;
        count += 1;
        assert_eq!(e["type"], "error", "{input} -> {e}");
        assert_eq!(e["code"], *code, "{input} -> {e}");
        assert_eq!(e["recoverable"], true);
        assert_eq!(e["error_count"], count);
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{input} -> {e}"
        );
        if input.contains("subscribe") && !input.contains(":42") {
            let ack = c.next_non_heartbeat().await;
            assert_eq!(ack["type"], "subscribe_ack");
            assert_eq!(ack["success"], false);
        }
    }
    let long = "x".repeat(300);
    c.send_json(json!({"type":"subscribe","topic":long})).await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "invalid_topic");
    assert!(e["message"].as_str().unwrap().contains("300 bytes"));
    c.next_non_heartbeat().await;

    c.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1u8, 2, 3,
    ]))
    .await
    .unwrap();
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "binary_frame");

    // Batched frame: two JSON values separated by a newline.
    c.send_text("{\"type\":\"ping\"}\n{\"type\":\"get_topics\"}")
        .await;
    assert_eq!(c.next_non_heartbeat().await["type"], "pong");
    assert_eq!(c.next_non_heartbeat().await["type"], "topics");

    // Still alive, and so is everyone else.
    c.send_json(json!({"type":"ping"})).await;
    assert_eq!(c.next_non_heartbeat().await["type"], "pong");
    s.publish("t", json!("hi")).await;
    assert_eq!(bystander.next_non_heartbeat().await["data"], "hi");
    s.stop().await;
}

use futures_util::SinkExt;

#[tokio::test]
async fn resubscribing_is_acked_again_not_an_error() {
    let s = start(config()).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    for _ in 0..2 {
        c.send_json(json!({"type":"subscribe","topic":"t"})).await;
        let ack = c.next_non_heartbeat().await;
        assert_eq!(ack["success"], true);
    }
    s.publish("t", json!(1)).await;
    assert_eq!(c.next_non_heartbeat().await["seq"], 1);
    c.expect_silence(0.3).await; // delivered once, not twice
    s.stop().await;
}
