//! JWT at the upgrade, claims-based topic authorization, origins.

mod common;

use common::*;
use hublink_server::auth::Claims;
use serde_json::json;

fn secured() -> hublink_server::Config {
    let mut c = config();
    c.jwt_secret = Some(SECRET.into());
    c
}

#[tokio::test]
async fn tokens_are_checked_at_the_upgrade() {
    let s = start(secured()).await;
    assert_eq!(
        Client::try_connect(&s.url("/ws"), &[]).await.err(),
        Some(401),
        "missing"
    );
    assert_eq!(
        Client::try_connect(&s.url("/ws?token=garbage"), &[])
            .await
            .err(),
        Some(401),
        "malformed"
    );
    let forged = hublink_server::auth::sign(b"another-secret", &claims("u", "b", "r")).unwrap();
    assert_eq!(
        Client::try_connect(&s.url(&format!("/ws?token={forged}")), &[])
            .await
            .err(),
        Some(401),
        "bad signature"
    );
    let mut expired = claims("u", "b", "r");
    expired.exp = Some(1_000_000);
    let t = s.token(&expired);
    assert_eq!(
        Client::try_connect(&s.url(&format!("/ws?token={t}")), &[])
            .await
            .err(),
        Some(401),
        "expired"
    );
    let mut early = claims("u", "b", "r");
    early.nbf = Some(hublink_server::now_ms() / 1000 + 3600);
    let t = s.token(&early);
    assert_eq!(
        Client::try_connect(&s.url(&format!("/ws?token={t}")), &[])
            .await
            .err(),
        Some(401),
        "not yet valid"
    );

    let good = s.token(&claims("u", "b", "r"));
    let mut c = Client::try_connect(&s.url(&format!("/ws?token={good}")), &[])
        .await
        .unwrap();
    assert_eq!(c.next_json().await["type"], "connected");
    let bearer = format!("Bearer {good}");
    let mut c = Client::try_connect(&s.url("/ws"), &[("Authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(c.next_json().await["type"], "connected");
    assert!(
        metric(
            &s.metrics().await,
            "hublink_rejected_connections_auth_total"
        ) >= 5.0
    );
    s.stop().await;
}

#[tokio::test]
async fn claims_restrict_subscribe_and_publish() {
    let s = start(secured()).await;
    let t = s.token(&Claims {
        sub: Some("u".into()),
        topics: Some(vec!["machines.*".into(), "orders".into()]),
        publish: Some(vec!["orders".into()]),
        ..Claims::default()
    });
    let mut c = Client::try_connect(&s.url(&format!("/ws?token={t}")), &[])
        .await
        .unwrap();
    c.next_json().await;
    c.send_json(json!({"type":"subscribe","topic":"machines.CNC-001"}))
        .await;
    assert_eq!(c.next_non_heartbeat().await["success"], true);
    c.send_json(json!({"type":"subscribe","topic":"admin"}))
        .await;
    let e = c.next_non_heartbeat().await;
    assert_eq!(e["code"], "forbidden");
    assert!(e["message"].as_str().unwrap().contains("\"admin\""));
    let ack = c.next_non_heartbeat().await;
    assert_eq!(ack["success"], false);
    assert!(ack["error"].as_str().unwrap().starts_with("forbidden"));
    c.send_json(json!({"type":"publish","topic":"machines.CNC-001","data":1}))
        .await;
    assert_eq!(c.next_non_heartbeat().await["code"], "forbidden");
    c.send_json(json!({"type":"subscribe","topic":"orders"}))
        .await;
    c.next_non_heartbeat().await;
    c.send_json(json!({"type":"publish","topic":"orders","data":{"id":1}}))
        .await;
    let m = c.next_non_heartbeat().await;
    assert_eq!(m["type"], "message");
    assert_eq!(m["data"], json!({"id":1}));
    s.stop().await;
}

#[tokio::test]
async fn anonymous_endpoints_and_auth_off() {
    let mut cfg = secured();
    cfg.anonymous_endpoints = vec!["machines".into()];
    let s = start(cfg).await;
    assert!(Client::try_connect(&s.url("/ws/machines"), &[])
        .await
        .is_ok());
    assert_eq!(
        Client::try_connect(&s.url("/api/v1/ws/"), &[]).await.err(),
        Some(401)
    );
    s.stop().await;

    // No secret: auth off everywhere except the actions endpoint.
    let s = start(config()).await;
    assert!(Client::try_connect(&s.url("/ws"), &[]).await.is_ok());
    assert_eq!(
        Client::try_connect(&s.url("/api/v1/actions?token=x"), &[])
            .await
            .err(),
        Some(401)
    );
    s.stop().await;
}

#[tokio::test]
async fn disallowed_origins_get_403() {
    let mut cfg = config();
    cfg.allowed_origins = vec!["https://app.example.com".into()];
    let s = start(cfg).await;
    assert_eq!(
        Client::try_connect(&s.url("/ws"), &[("Origin", "https://evil.example.com")])
            .await
            .err(),
        Some(403)
    );
    assert!(
        Client::try_connect(&s.url("/ws"), &[("Origin", "https://app.example.com")])
            .await
            .is_ok()
    );
    s.stop().await;
}
