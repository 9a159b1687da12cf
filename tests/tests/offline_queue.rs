//! Sends while offline: queued, delivered after the reconnect in order;
//! a full queue refuses the send; an expired frame is reported.

use hublink::{Client, Error, Event, QueueConfig, State, UnsentReason};
use hublink_tests::{backoff, wait_event, wait_state, FaultProxy, Mode, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn offline_sends_are_delivered_in_order_and_overflow_is_refused() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let reader = Client::builder(server.url("/ws")).connect().unwrap();
    let mut reader_events = reader.events();
    let mut orders = reader.subscribe::<Value>("orders").unwrap();
    wait_event(&mut reader_events, WITHIN, |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;

    let writer = Client::builder(proxy.url("/ws"))
        .backoff(backoff(50, 200))
        .queue(QueueConfig {
            max_frames: 5,
            ttl_ms: 10_000,
        })
        .connect()
        .unwrap();
    let mut events = writer.events();
    wait_state(&mut events, State::Connected, WITHIN).await;
    proxy.set_mode(Mode::Refuse);
    proxy.drop_all();
    wait_state(&mut events, State::Reconnecting, WITHIN).await;

    for n in 1..=5 {
        writer.publish("orders", &json!({ "n": n })).await.unwrap();
    }
    match writer.publish("orders", &json!({ "n": 6 })).await {
        Err(Error::Core(hublink_core::Error::QueueFull { limit: 5 })) => {}
        other => panic!("expected a full queue, got {other:?}"),
    }
    proxy.set_mode(Mode::Pass);
    wait_state(&mut events, State::Connected, WITHIN).await;
    for want in 1..=5u64 {
        let d = tokio::time::timeout(WITHIN, orders.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.data, json!({ "n": want }), "{d:?}");
        assert_eq!(d.seq(), Some(want));
    }
    writer.close().await;
    reader.close().await;
}

#[tokio::test]
async fn a_frame_that_waited_too_long_is_reported_unsent() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let writer = Client::builder(proxy.url("/ws"))
        .backoff(backoff(50, 200))
        .queue(QueueConfig {
            max_frames: 10,
            ttl_ms: 300,
        })
        .connect()
        .unwrap();
    let mut events = writer.events();
    wait_state(&mut events, State::Connected, WITHIN).await;
    proxy.set_mode(Mode::Refuse);
    proxy.drop_all();
    wait_state(&mut events, State::Reconnecting, WITHIN).await;
    writer
        .publish("orders", &json!({ "late": true }))
        .await
        .unwrap();
    let e = wait_event(&mut events, Duration::from_secs(2), |e| {
        matches!(e, Event::Unsent { .. })
    })
    .await;
    let Event::Unsent { frame, reason } = e else {
        unreachable!()
    };
    assert!(frame.contains("\"late\":true"), "{frame}");
    match reason {
        UnsentReason::Expired { waited_ms } => {
            assert!((300..500).contains(&waited_ms), "{waited_ms}")
        }
        other => panic!("{other:?}"),
    }
    // Closing with frames still queued reports them too.
    writer
        .publish("orders", &json!({ "never": true }))
        .await
        .unwrap();
    writer.close().await;
    let e = wait_event(&mut events, WITHIN, |e| matches!(e, Event::Unsent { .. })).await;
    assert!(
        matches!(
            e,
            Event::Unsent {
                reason: UnsentReason::Closed,
                ..
            }
        ),
        "{e:?}"
    );
}
