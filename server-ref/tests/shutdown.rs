//! Graceful shutdown: `reconnect` with `retry_after`, then 1012, on every JSON endpoint.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn shutdown_sends_reconnect_then_1012_to_every_client_and_exits() {
    let mut cfg = config();
    cfg.jwt_secret = Some(SECRET.into());
    cfg.anonymous_endpoints = vec![
        "ws".into(),
        "topics".into(),
        "devices".into(),
        "power".into(),
        "machines".into(),
    ];
    let mut s = start(cfg).await;
    let token = s.token(&claims("u1", "b1", "admin"));
    let mut clients = Vec::new();
    for path in [
        "/ws".to_string(),
        "/api/v1/ws/".to_string(),
        "/api/v1/devices/dev-1/ws".to_string(),
        "/api/v1/ws/v2/power?module=4".to_string(),
        "/api/v1/ws/v2/health".to_string(),
        format!("/api/v1/actions?token={token}"),
    ] {
        clients.push((path.clone(), s.client(&path).await));
    }
    let mut machines = s.client("/ws/machines").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = s.begin_shutdown();
    for (path, c) in clients.iter_mut() {
        let closed = c.expect_close().await;
        assert_eq!(closed.code, 1012, "{path}");
        let last = closed
            .before
            .last()
            .unwrap_or_else(|| panic!("{path}: nothing before the close"));
        assert_eq!(last["type"], "reconnect", "{path}");
        assert_eq!(last["retry_after"], 3, "{path}");
        assert_eq!(last["reason"], "server restarting", "{path}");
    }
    assert_eq!(machines.expect_close().await.code, 1012);
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("server exits")
        .unwrap()
        .unwrap();
}
