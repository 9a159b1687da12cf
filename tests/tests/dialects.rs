//! The same client against each seed-style endpoint of hublink-server,
//! through its dialect.

use hublink::{Client, DialectKind, Event, Events, Message, State};
use hublink_server::auth::Claims;
use hublink_tests::{wait_state, TestServer};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);

/// Publishes until a message reaches the client: a stream endpoint may
/// register its server-side subscription just after the upgrade.
async fn first_message<F, Fut>(events: &mut Events, mut publish: F) -> Message<Value>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..50 {
        publish().await;
        let got = tokio::time::timeout(Duration::from_millis(100), async {
            loop {
                match events.next().await {
                    Some(Event::Message(m)) => return m,
                    Some(Event::DecodeError(e)) => panic!("decode error: {e}"),
                    Some(_) => {}
                    None => panic!("client stopped"),
                }
            }
        })
        .await;
        if let Ok(m) = got {
            return m;
        }
    }
    panic!("no message reached the client");
}

async fn connect(url: String, dialect: DialectKind, token: Option<String>) -> (Client, Events) {
    let mut builder = Client::builder(url).dialect(dialect);
    if let Some(t) = token {
        builder = builder.token(t);
    }
    let client = builder.connect().unwrap();
    let mut events = client.monitor();
    wait_state(&mut events, State::Connected, WITHIN).await;
    (client, events)
}

#[tokio::test]
async fn machines_stream() {
    let server = TestServer::start(TestServer::config()).await;
    let (client, mut events) =
        connect(server.url("/ws/machines"), DialectKind::Machines, None).await;
    let m = first_message(&mut events, || async {
        server
            .publish(
                "machines.CNC-001",
                json!({"type": "sensor_data", "data": {"machine_id": "CNC-001", "temperature": 25.5}}),
            )
            .await;
    })
    .await;
    assert_eq!(m.topic, "sensor_data");
    assert_eq!(m.data["temperature"], json!(25.5), "{m:?}");
    client.close().await;
}

#[tokio::test]
async fn devices_channels() {
    let server = TestServer::start(TestServer::config()).await;
    let (client, mut events) = connect(
        server.url("/api/v1/devices/dev-1/ws"),
        DialectKind::Devices,
        None,
    )
    .await;
    let mut info = client.subscribe::<Value>("system-info").unwrap();
    let m = first_message(&mut events, || async {
        server
            .publish("devices.dev-1.system-info", json!({"cpu": 12}))
            .await;
    })
    .await;
    assert_eq!(m.topic, "system-info");
    let d = tokio::time::timeout(WITHIN, info.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.data["cpu"], json!(12), "{d:?}");
    client.close().await;
}

#[tokio::test]
async fn topics_with_acks() {
    let server = TestServer::start(TestServer::config()).await;
    let (client, mut events) = connect(server.url("/api/v1/ws/"), DialectKind::Topics, None).await;
    let mut orders = client.subscribe::<Value>("orders").unwrap();
    let m = first_message(&mut events, || async {
        server.publish("orders", json!({"order_id": "A-17"})).await;
    })
    .await;
    assert_eq!(m.topic, "orders");
    let d = tokio::time::timeout(WITHIN, orders.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.data["order_id"], json!("A-17"), "{d:?}");
    client.close().await;
}

#[tokio::test]
async fn actions_rooms_with_a_token_in_the_query() {
    let server = TestServer::start(TestServer::config_with_auth()).await;
    let token = TestServer::sign(&Claims {
        sub: Some("u1".into()),
        branch: Some("b1".into()),
        role: Some("admin".into()),
        topics: None,
        publish: None,
        exp: Some(hublink_server::now_ms() / 1000 + 3_600),
        nbf: None,
    });
    let (client, mut events) = connect(
        server.url("/api/v1/actions"),
        DialectKind::Actions,
        Some(token),
    )
    .await;
    let m = first_message(&mut events, || async {
        server
            .state()
            .publish_event(
                &["branch:b1".into()],
                "order:created",
                json!({"order_id": "A-17"}),
            )
            .await
            .unwrap();
    })
    .await;
    assert_eq!(m.kind.as_deref(), Some("order:created"), "{m:?}");
    client.close().await;
}

#[tokio::test]
async fn actions_without_a_token_is_refused() {
    let server = TestServer::start(TestServer::config_with_auth()).await;
    let client = Client::builder(server.url("/api/v1/actions"))
        .dialect(DialectKind::Actions)
        .connect()
        .unwrap();
    let mut events = client.events();
    let c = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    assert_eq!(c.reason.name(), "auth_rejected", "{c:?}");
    client.close().await;
}

#[tokio::test]
async fn power_stream() {
    let server = TestServer::start(TestServer::config()).await;
    let (client, mut events) = connect(
        server.url("/api/v1/ws/v2/power?module=4&interval=0"),
        DialectKind::Power,
        None,
    )
    .await;
    let m = first_message(&mut events, || async {
        server.publish("power.4", json!({"ch1_power": 1.5})).await;
    })
    .await;
    assert_eq!(m.topic, "data");
    assert_eq!(m.data["ch1_power"], json!(1.5), "{m:?}");
    client.close().await;
}
