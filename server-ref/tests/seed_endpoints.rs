//! The seed backends' endpoints, driven as their documents show.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn machines_endpoints_stream_go_hub_frames_with_pings() {
    let s = start(config()).await;
    let mut all = s.client("/ws/machines").await;
    let mut one = s.client("/ws/machines/CNC-001").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reading = json!({"machine_id":"CNC-001","temperature":25.5,"spindle_speed":8500});
    s.publish(
        "machines.CNC-001",
        json!({"type":"sensor_data","data":reading}),
    )
    .await;
    s.publish(
        "machines.CNC-002",
        json!({"type":"machine_status","data":{"machine_id":"CNC-002","status":"idle"}}),
    )
    .await;
    let m = one.next_json().await;
    assert_eq!(m["type"], "sensor_data");
    assert_eq!(m["data"], reading);
    assert!(m["timestamp"].as_str().unwrap().ends_with('Z'));
    // CNC-002 is not for this one; the all-machines client gets both, one per frame.
    one.expect_silence(0.3).await;
    assert_eq!(all.next_json().await["type"], "sensor_data");
    assert_eq!(all.next_json().await["type"], "machine_status");
    // WebSocket ping frames arrive.
    let ping = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = one.ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "a ping frame within 2 s");
    s.stop().await;
}

/// The seed frontend (000) runs `JSON.parse(event.data)` on every frame, so a
/// frame must hold exactly one message even when many are queued at once
/// (the Go hub would join them with `\n`). The test's runtime has one thread:
/// the writer cannot run until all of them are queued.
#[tokio::test]
async fn machines_frames_hold_one_message_each_however_many_are_queued() {
    let s = start(config()).await;
    let mut all = s.client("/ws/machines").await;
    let mut one = s.client("/ws/machines/CNC-001").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..100 {
        s.publish(
            "machines.CNC-001",
            json!({"type":"sensor_data","data":{"machine_id":"CNC-001","n":i}}),
        )
        .await;
    }
    for c in [&mut all, &mut one] {
        for i in 0..100 {
            let t = c.next_text_within(3.0).await.expect("a frame within 3 s");
            let m: serde_json::Value = serde_json::from_str(&t)
                .unwrap_or_else(|e| panic!("frame {i} is not one JSON message ({e}): {t:.200}"));
            assert_eq!(m["data"]["n"], i);
        }
    }
    s.stop().await;
}

/// `/ws/machines/` routes as the Go seed's `/ws/machines/` handler does: the
/// machine id is the first path segment; an empty one is `400 Machine ID required`.
#[tokio::test]
async fn machines_path_routes_as_the_go_handler() {
    let s = start(config()).await;
    for path in ["/ws/machines/", "/ws/machines/?id=CNC-001"] {
        let (status, body) = http(s.addr, "GET", path, &[], "").await;
        assert_eq!(
            (status, body.as_str()),
            (400, "Machine ID required\n"),
            "{path}"
        );
        assert_eq!(
            Client::try_connect(&s.url(path), &[]).await.err(),
            Some(400)
        );
    }
    let mut slash = s.client("/ws/machines/CNC-001/").await;
    let mut deeper = s.client("/ws/machines/CNC-001/live").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.publish("machines.CNC-002", json!({"temperature": 2}))
        .await;
    s.publish("machines.CNC-001", json!({"temperature": 1}))
        .await;
    assert_eq!(slash.next_json().await["data"]["temperature"], 1);
    assert_eq!(deeper.next_json().await["data"]["temperature"], 1);
    s.stop().await;
}

/// A token as the serverless seed (003) mints it, with raw JSON claims.
fn seed_token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Status and body of a refused upgrade.
async fn refusal(url: &str) -> (u16, String) {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(url).await {
        Err(Error::Http(r)) => (
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("{url}: {e}"),
        Ok(_) => panic!("{url}: upgraded"),
    }
}

/// The serverless seed's tokens name the user `userId` and the branch
/// `branchId` (its getStatus reply and broadcast helpers use those names);
/// such a token joins the rooms the document's wscat session shows, in its order.
#[tokio::test]
async fn actions_accept_the_serverless_seeds_claim_names() {
    let mut cfg = config();
    cfg.jwt_secret = Some(SECRET.into());
    let s = start(cfg).await;
    let exp = hublink_server::now_ms() / 1000 + 3600;
    let iat = exp - 3600;
    let t = seed_token(
        json!({"userId":"def456","branchId":"abc123","role":"admin","iat":iat,"exp":exp}),
    );
    let mut c = s.client(&format!("/dev?token={t}")).await;
    c.send_json(json!({"action":"getRooms"})).await;
    assert_eq!(
        c.next_json().await,
        json!({"action":"getRooms","rooms":["branch:abc123","user:def456","role:admin:abc123"],"count":3})
    );
    c.send_json(json!({"action":"getStatus"})).await;
    let st = c.next_json().await;
    assert_eq!(
        (&st["userId"], &st["branchId"], &st["role"]),
        (&json!("def456"), &json!("abc123"), &json!("admin"))
    );
    // broadcastToBranch / sendToUser / broadcastToRole reach it.
    for room in ["branch:abc123", "user:def456", "role:admin:abc123"] {
        s.state
            .publish_event(&[room.into()], "notification:alert", json!({"to": room}))
            .await
            .unwrap();
        assert_eq!(c.next_json().await["data"]["to"], room);
    }
    // Its branch is the token's: another branch's room is refused.
    c.send_json(json!({"action":"subscribe","data":{"room":"branch:other"}}))
        .await;
    assert_eq!(c.next_json().await["code"], "forbidden");

    // Both names for the same thing: fine when they agree, refused (naming
    // both claims) when they do not.
    let same = seed_token(json!({"sub":"def456","userId":"def456","branchId":"abc123","exp":exp}));
    let mut c2 = s.client(&format!("/dev?token={same}")).await;
    c2.send_json(json!({"action":"getRooms"})).await;
    assert_eq!(
        c2.next_json().await["rooms"],
        json!(["branch:abc123", "user:def456"])
    );
    for (claims, names) in [
        (
            json!({"sub":"u1","userId":"u2","exp":exp}),
            ["\"sub\"", "\"userId\""],
        ),
        (
            json!({"branch":"b1","branchId":"b2","exp":exp}),
            ["\"branch\"", "\"branchId\""],
        ),
    ] {
        let (status, body) = refusal(&s.url(&format!("/dev?token={}", seed_token(claims)))).await;
        assert_eq!(status, 401, "{body}");
        for n in names {
            assert!(body.contains(n), "{body:?} names {n}");
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn devices_endpoint_connected_subscribe_channels_ping() {
    let s = start(config()).await;
    s.publish(
        "devices.dev-1.system-info",
        json!({"os":"Ubuntu","hostname":"h"}),
    )
    .await;
    let mut c = s.client("/api/v1/devices/dev-1/ws").await;
    let m = c.next_json().await;
    assert_eq!(m["type"], "connected");
    assert_eq!(m["data"]["deviceUuid"], "dev-1");
    c.send_json(json!({"type":"subscribe","channels":["metrics","processes","system-info","history","network-interfaces"]})).await;
    // The current value comes at once.
    let m = c.next_json().await;
    assert_eq!(
        m,
        json!({"type":"system-info","data":{"os":"Ubuntu","hostname":"h"}})
    );
    s.publish("devices.dev-1.processes", json!({"top_processes":[]}))
        .await;
    assert_eq!(
        c.next_json().await,
        json!({"type":"processes","data":{"top_processes":[]}})
    );
    s.publish("devices.dev-2.processes", json!({"top_processes":[1]}))
        .await;
    c.send_json(json!({"type":"ping"})).await;
    let p = c.next_json().await;
    assert_eq!(p["type"], "pong");
    assert!(p["data"]["timestamp"].as_str().is_some());
    c.send_json(json!({"type":"unsubscribe","channels":["processes"]}))
        .await;
    c.send_json(json!({"type":"subscribe","channels":"processes"}))
        .await;
    assert_eq!(c.next_json().await["code"], "invalid_message");
    s.publish("devices.dev-1.processes", json!({"top_processes":[2]}))
        .await;
    c.expect_silence(0.3).await;
    s.stop().await;
}

#[tokio::test]
async fn devices_demo_feed_sends_every_stream() {
    let mut cfg = config();
    cfg.demo = true;
    cfg.demo_device_speedup = 100.0; // 30 s -> 0.3 s
    cfg.demo_power_period = Duration::from_secs(3600);
    cfg.demo_machine_period = Duration::from_secs(3600);
    cfg.demo_order_period = Duration::from_secs(3600);
    let s = start(cfg).await;
    let mut c = s.client("/api/v1/devices/abc/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","channels":["system-info","processes","history","network-interfaces"]})).await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 {
        let m = c.next_json().await;
        if m["type"] == "history" {
            // As the seed labels points: toLocaleTimeString('en-US', {hour:'2-digit', minute:'2-digit'}).
            let t = m["data"]["cpu"][0]["time"].as_str().unwrap().to_string();
            let b = t.as_bytes();
            assert!(
                t.len() == 8 && b[2] == b':' && (t.ends_with(" AM") || t.ends_with(" PM")),
                "history time {t:?} is not like \"02:30 PM\""
            );
        }
        seen.insert(m["type"].as_str().unwrap().to_string());
    }
    s.stop().await;
}

#[tokio::test]
async fn topics_dialect_acks_heartbeats_and_tagged_data() {
    let s = start(config()).await;
    let mut c = s.client("/api/v1/ws/").await;
    let m = c.next_json().await;
    assert_eq!(m["type"], "connected");
    assert!(m["client_id"].as_str().unwrap().starts_with("127.0.0.1-"));
    assert!(
        m["timestamp"].as_u64().unwrap() < 10_000_000_000,
        "unix seconds"
    );
    for t in ["task_completion_update", "event_updates", "central_ABC123"] {
        c.send_json(json!({"type":"subscribe","topic":t})).await;
        assert_eq!(
            c.next_non_heartbeat().await,
            json!({"type":"subscribe_ack","topic":t,"success":true})
        );
    }
    c.send_json(json!({"type":"get_topics"})).await;
    assert_eq!(
        c.next_non_heartbeat().await["topics"],
        json!(["central_ABC123", "event_updates", "task_completion_update"])
    );
    let hb = c.next_where("type", "heartbeat").await;
    // The seed's shape (002), nothing more: `{"type":"heartbeat","timestamp"}`.
    let keys: Vec<&String> = hb.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["timestamp", "type"], "{hb}");
    c.send_json(json!({"type":"heartbeat","timestamp":hb["timestamp"]}))
        .await;
    s.publish(
        "task_completion_update",
        json!({"Result":"Event Task Updated","Events":{"uuid":"u"}}),
    )
    .await;
    let m = c.next_non_heartbeat().await;
    assert_eq!(m["Result"], "Event Task Updated");
    assert_eq!(m["topic"], "task_completion_update");
    c.send_json(json!({"type":"unsubscribe","topic":"event_updates"}))
        .await;
    assert_eq!(
        c.next_non_heartbeat().await,
        json!({"type":"unsubscribe_ack","topic":"event_updates","success":true})
    );
    s.stop().await;
}

#[tokio::test]
async fn actions_dialect_rooms_are_scoped_by_branch() {
    let mut cfg = config();
    cfg.jwt_secret = Some(SECRET.into());
    let s = start(cfg).await;
    assert_eq!(
        Client::try_connect(&s.url("/api/v1/actions"), &[])
            .await
            .err(),
        Some(401)
    );
    let t1 = s.token(&claims("u1", "b1", "admin"));
    let t2 = s.token(&claims("u2", "b2", "operator"));
    let mut a = s.client(&format!("/api/v1/actions?token={t1}")).await;
    let mut b = s.client(&format!("/dev?token={t2}")).await;

    a.send_json(json!({"action":"ping"})).await;
    let p = a.next_json().await;
    assert_eq!(p["action"], "pong");
    assert!(p["timestamp"].as_str().is_some());
    a.send_json(json!({"action":"getRooms"})).await;
    assert_eq!(
        a.next_json().await,
        json!({"action":"getRooms","rooms":["branch:b1","user:u1","role:admin:b1"],"count":3})
    );

    // Another branch's rooms are refused.
    a.send_json(json!({"action":"subscribe","data":{"room":"branch:b2"}}))
        .await;
    assert_eq!(a.next_json().await["code"], "forbidden");
    let r = a.next_json().await;
    assert_eq!(r["action"], "subscribe");
    assert_eq!(r["success"], false);

    // An order of b1 (learnt from a publication) is open to b1, not to b2.
    s.state
        .publish_event(
            &["branch:b1".into(), "order:42".into()],
            "order:created",
            json!({"orderId":"42"}),
        )
        .await
        .unwrap();
    let ev = a.next_json().await;
    assert_eq!(ev["type"], "order:created");
    assert_eq!(ev["data"], json!({"orderId":"42"}));
    assert_eq!(ev["room"], "branch:b1");
    a.send_json(json!({"action":"subscribeToOrder","data":{"orderId":"42"}}))
        .await;
    assert_eq!(
        a.next_json().await,
        json!({"action":"subscribeToOrder","success":true,"orderId":"42"})
    );
    b.send_json(json!({"action":"subscribeToOrder","data":{"orderId":"42"}}))
        .await;
    assert_eq!(b.next_json().await["code"], "forbidden");
    assert_eq!(b.next_json().await["success"], false);

    // An event to both rooms arrives once.
    s.state
        .publish_event(
            &["branch:b1".into(), "order:42".into()],
            "order:status_changed",
            json!({"orderId":"42","newStatus":"ready"}),
        )
        .await
        .unwrap();
    let ev = a.next_json().await;
    assert_eq!(ev["type"], "order:status_changed");
    for t in [
        "machine:status_changed",
        "operator:logged_in",
        "dashboard:refresh",
        "notification:broadcast",
    ] {
        s.state
            .publish_event(&["branch:b1".into()], t, json!({}))
            .await
            .unwrap();
        assert_eq!(a.next_json().await["type"], t);
    }
    a.expect_silence(0.3).await;
    b.expect_silence(0.1).await;

    a.send_json(json!({"action":"subscribe","data":{"room":"machine:M-01"}}))
        .await;
    assert_eq!(
        a.next_json().await,
        json!({"action":"subscribe","success":true,"room":"machine:M-01"})
    );
    a.send_json(json!({"action":"fly"})).await;
    assert_eq!(a.next_json().await["code"], "unknown_type");
    a.send_json(json!({"nope":1})).await;
    assert_eq!(a.next_json().await["code"], "invalid_message");
    s.stop().await;
}

#[tokio::test]
async fn power_stream_throttles_to_interval_and_health_answers_ping() {
    let s = start(config()).await;
    assert_eq!(
        Client::try_connect(&s.url("/api/v1/ws/v2/power"), &[])
            .await
            .err(),
        Some(400)
    );
    let mut p = s.client("/api/v1/ws/v2/power?module=4&interval=0.5").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..5 {
        s.publish(
            "power.4",
            json!({"wavelength_nm":1310.0,"unit":"dBm","ch1_power":-17.85 - i as f64}),
        )
        .await;
    }
    let m = p.next_non_heartbeat().await;
    assert_eq!(m["type"], "data");
    assert_eq!(m["module"], 4);
    assert_eq!(m["ch1_power"], -17.85);
    assert_eq!(m["unit"], "dBm");
    assert!(m["timestamp"].as_f64().unwrap() > 1.7e9);
    p.expect_silence(0.2).await; // the other four were within the interval
    s.publish(
        "power.4",
        json!({"type":"error","message":"Hardware temporarily unavailable"}),
    )
    .await;
    let e = p.next_non_heartbeat().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["recoverable"], true);
    let hb = p.next_where("type", "heartbeat").await;
    assert!(hb["active_streams"].as_u64().unwrap() >= 1);
    p.send_text("ping").await;
    assert_eq!(p.next_non_heartbeat().await["type"], "pong");

    let mut h = s.client("/api/v1/ws/v2/health").await;
    h.send_text("ping").await;
    let pong = h.next_non_heartbeat().await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].as_str().is_some());
    h.send_text("hello").await;
    let e = h.next_non_heartbeat().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["recoverable"], true);
    assert_eq!(e["error_count"], 1);
    s.stop().await;
}

#[tokio::test]
async fn machines_data_is_the_same_topic_on_ws() {
    let s = start(config()).await;
    let mut c = s.client("/ws").await;
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"machines.CNC-001"}))
        .await;
    c.next_non_heartbeat().await;
    let mut m = s.client("/ws/machines/CNC-001").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (st, _) = http(
        s.addr,
        "POST",
        "/api/publish",
        &[("Authorization", &format!("Bearer {KEY}"))],
        &json!({"topic":"machines.CNC-001","data":{"type":"sensor_data","data":{"temperature":20}}}).to_string(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        c.next_non_heartbeat().await["data"]["data"]["temperature"],
        20
    );
    assert_eq!(m.next_json().await["data"]["temperature"], 20);
    s.stop().await;
}

/// The seed's machines frontend sends nothing and answers only the
/// endpoint's WebSocket pings. With a heartbeat interval short enough that
/// 2 x heartbeat + 10 s is below the ping period, it used to be closed 4008
/// before its first ping; the derived stale timeout now covers the ping period.
#[tokio::test]
async fn a_silent_machines_client_outlives_a_short_heartbeat_interval() {
    let mut cfg = config();
    // A ping period above 2 x heartbeat + 10 s (10.4 s here) reproduces what
    // `--heartbeat-interval 10` does to the default 54 s period, in 12 s.
    cfg.machines_ping_interval = std::time::Duration::from_secs(11);
    cfg.stale_timeout = None;
    let s = start(cfg).await;
    let mut c = s.client("/ws/machines/CNC-001").await;
    // Reading answers the pings (tungstenite pongs by itself).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    while tokio::time::Instant::now() < deadline {
        let _ = c.next_text_within(0.5).await;
    }
    assert_eq!(
        metric(&s.metrics().await, "hublink_stale_closes_total"),
        0.0
    );
    s.stop().await;
}
