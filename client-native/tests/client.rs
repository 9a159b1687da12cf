//! The client's API against a real hublink-server on loopback.

use hublink::{Client, DecodeError, Error, Event, Recovery, State};
use hublink_server::auth::Claims;
use hublink_server::{AppState, Config};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);
const SECRET: &str = "client-tests-secret-0123456789";

async fn server(auth: bool) -> (SocketAddr, Arc<AppState>) {
    let mut config = Config::defaults();
    config.heartbeat_interval = Duration::from_millis(300);
    config.anonymous_publish = true;
    if auth {
        config.jwt_secret = Some(SECRET.into());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config).unwrap();
    tokio::spawn(hublink_server::run(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    (addr, state)
}

async fn next_event(events: &mut hublink::Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    tokio::time::timeout(WITHIN, async {
        loop {
            let e = events.next().await.expect("client running");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

#[derive(Debug, Deserialize, PartialEq)]
struct Reading {
    temperature: f64,
}

#[tokio::test]
async fn typed_subscription_decodes_and_reports_bad_payloads() {
    let (addr, state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut events = client.events();
    let mut readings = client.subscribe::<Reading>("machines.CNC-001").unwrap();
    next_event(&mut events, |e| {
        matches!(
            e,
            Event::Subscribed {
                recovery: Recovery::Fresh,
                ..
            }
        )
    })
    .await;
    state
        .publish("machines.CNC-001", json!({"temperature": 25.5}), None)
        .await
        .unwrap();
    state
        .publish("machines.CNC-001", json!({"temperature": "hot"}), None)
        .await
        .unwrap();
    let d = readings.next().await.unwrap().unwrap();
    assert_eq!(d.data, Reading { temperature: 25.5 });
    assert_eq!((d.topic.as_str(), d.seq()), ("machines.CNC-001", Some(1)));
    assert!(d.epoch().is_some());
    match readings.next().await.unwrap() {
        Err(DecodeError::Payload { topic, .. }) => assert_eq!(topic, "machines.CNC-001"),
        other => panic!("{other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn the_last_dropped_subscription_unsubscribes_on_the_wire() {
    let (addr, _state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut events = client.events();
    let first = client.subscribe::<Value>("orders").unwrap();
    let second = client.subscribe::<Value>("orders").unwrap();
    next_event(&mut events, |e| matches!(e, Event::Subscribed { .. })).await;
    drop(first);
    client.request_topics().await.unwrap();
    let e = next_event(&mut events, |e| matches!(e, Event::Topics(_))).await;
    assert_eq!(e, Event::Topics(vec!["orders".into()]));
    drop(second);
    next_event(&mut events, |e| matches!(e, Event::Unsubscribed { .. })).await;
    client.request_topics().await.unwrap();
    let e = next_event(&mut events, |e| matches!(e, Event::Topics(_))).await;
    assert_eq!(e, Event::Topics(vec![]));
    client.close().await;
}

#[tokio::test]
async fn publish_reaches_subscribers_and_the_monitor_sees_everything() {
    let (addr, _state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut monitor = client.monitor();
    let mut events = client.events();
    let mut sub = client.subscribe::<Value>("orders").unwrap();
    next_event(&mut events, |e| matches!(e, Event::Subscribed { .. })).await;
    let published = client.publish("orders", &json!({"id": 1})).await.unwrap();
    let d = tokio::time::timeout(WITHIN, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.data, json!({"id": 1}));
    assert_eq!(published.topic, "orders");
    assert_eq!(
        d.position.as_ref(),
        Some(&published.position),
        "the ack names where it went"
    );
    // The monitor gets the message too; plain events do not (it was claimed).
    next_event(&mut monitor, |e| matches!(e, Event::Message(_))).await;
    client.close().await;
    while let Some(e) = events.next().await {
        assert!(!matches!(e, Event::Message(_)), "{e:?}");
    }
}

#[tokio::test]
async fn close_says_goodbye_ends_streams_and_refuses_later_calls() {
    let (addr, state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut sub = client.subscribe::<Value>("orders").unwrap();
    client.connected_within(WITHIN).await.unwrap();
    let mut watch = client.state_changes();
    client.close().await;
    assert!(sub.next().await.is_none(), "the stream ends");
    assert_eq!(client.state(), State::Disconnected);
    assert_eq!(
        watch.borrow_and_update().reason.as_ref().map(|r| r.name()),
        Some("closed_by_user")
    );
    assert!(matches!(
        client.publish("orders", &1).await,
        Err(Error::Closed)
    ));
    // The server saw a clean close: its connection is gone at once.
    tokio::time::timeout(Duration::from_secs(1), async {
        while state.live_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server closed its side");
    client.close().await; // idempotent
}

#[tokio::test]
async fn the_token_provider_is_asked_before_every_attempt() {
    let (addr, state) = server(true).await;
    let claims = Claims {
        sub: Some("u1".into()),
        branch: None,
        role: None,
        topics: None,
        publish: None,
        exp: Some(hublink_server::now_ms() / 1000 + 3_600),
        nbf: None,
    };
    let good = state.sign(&claims).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let client = Client::builder(format!("ws://{addr}/ws"))
        .backoff(hublink::BackoffConfig {
            initial_ms: 50,
            max_ms: 200,
            ..Default::default()
        })
        .token_provider(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let token = if n == 0 {
                "expired".to_owned()
            } else {
                good.clone()
            };
            async move { Ok(token) }
        })
        .connect()
        .unwrap();
    let mut events = client.events();
    let e = next_event(
        &mut events,
        |e| matches!(e, Event::StateChanged(c) if c.to == State::Reconnecting),
    )
    .await;
    assert!(
        matches!(e, Event::StateChanged(ref c) if c.reason.name() == "auth_rejected"),
        "{e:?}"
    );
    client.connected_within(WITHIN).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    client.close().await;
}

#[tokio::test]
async fn bad_urls_and_topics_are_refused_with_the_value() {
    let e = Client::builder("foo").connect().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid URL \"foo\": no scheme: expected ws://host[:port]/path or wss://…"
    );
    let e = Client::builder("http://x/ws").connect().unwrap_err();
    assert!(e.to_string().contains("scheme \"http\""), "{e}");
    let client = Client::builder("ws://127.0.0.1:9/ws").connect().unwrap();
    assert!(client.subscribe::<Value>("").is_err());
    client.close().await;
}

#[test]
fn connect_outside_a_runtime_is_an_error() {
    let e = Client::builder("ws://127.0.0.1:9/ws")
        .connect()
        .unwrap_err();
    assert!(matches!(e, Error::NoRuntime), "{e}");
}

#[tokio::test]
async fn a_wrong_path_is_an_upgrade_refusal_with_its_status_retried_slowly() {
    let (addr, _state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/nope"))
        .connect()
        .unwrap();
    let mut events = client.events();
    let e = next_event(
        &mut events,
        |e| matches!(e, Event::StateChanged(c) if c.to == State::Reconnecting),
    )
    .await;
    let Event::StateChanged(change) = e else {
        unreachable!()
    };
    assert_eq!(change.reason.name(), "upgrade_refused", "{change:?}");
    assert!(format!("{:?}", change.reason).contains("404"), "{change:?}");
    // Not fixed by retrying at once: the backoff jumps to its cap (30 s).
    assert!(change.retry_in_ms.unwrap() >= 15_000, "{change:?}");
    client.close().await;
}

#[tokio::test]
async fn the_subprotocol_the_server_selected_is_known_once_connected() {
    let (addr, _state) = server(false).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    assert_eq!(client.subprotocol(), None, "before the first connection");
    client.connected_within(WITHIN).await.unwrap();
    assert_eq!(client.subprotocol().as_deref(), Some("hublink.v1"));
    client.close().await;
    // The topics endpoint speaks a dialect, not hublink.v1: it selects none.
    let client = Client::builder(format!("ws://{addr}/api/v1/ws/"))
        .connect()
        .unwrap();
    client.connected_within(WITHIN).await.unwrap();
    assert_eq!(client.subprotocol(), None);
    client.close().await;
}
