//! Sends while offline: queued, delivered after the reconnect in order;
//! a full queue refuses the send; an expired frame or publish is reported.

use hublink::{Client, Error, Event, PublishError, QueueConfig, State, UnsentReason};
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

    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(
            writer
                .queue_publish("orders", &json!({ "n": n }))
                .await
                .unwrap(),
        );
    }
    // The waiting call is refused at once too, not after a wait.
    match writer.publish("orders", &json!({ "n": 6 })).await {
        Err(Error::Core(hublink_core::Error::QueueFull { limit: 5 })) => {}
        other => panic!("expected a full queue, got {other:?}"),
    }
    proxy.set_mode(Mode::Pass);
    wait_state(&mut events, State::Connected, WITHIN).await;
    for (want, id) in (1..=5u64).zip(&ids) {
        let e = wait_event(&mut events, WITHIN, |e| {
            matches!(e, Event::Published { .. })
        })
        .await;
        assert!(
            matches!(&e, Event::Published { id: got, position, .. } if got == id && position.seq == want),
            "{e:?}"
        );
    }
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
async fn frames_and_publishes_that_waited_too_long_are_reported() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    // A short time to live, so that expiry happens within the test.
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
        .send(&json!({ "type": "ping", "late": true }))
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
    // A publish that never left fails as expired, and says nothing was published.
    match writer.publish("orders", &json!({ "late": true })).await {
        Err(Error::Publish(e @ PublishError::Expired { sent: false, .. })) => {
            assert!(!e.maybe_published());
            assert!(e.to_string().ends_with("nothing was published"), "{e}");
        }
        other => panic!("expected an expired publish, got {other:?}"),
    }
    // Closing with a publish still queued reports it too.
    let id = writer
        .queue_publish("orders", &json!({ "never": true }))
        .await
        .unwrap();
    writer.close().await;
    let e = wait_event(
        &mut events,
        WITHIN,
        |e| matches!(e, Event::PublishFailed { id: got, .. } if *got == id),
    )
    .await;
    assert!(
        matches!(
            &e,
            Event::PublishFailed {
                id: got,
                error: PublishError::Closed { sent: false },
                ..
            } if *got == id
        ),
        "{e:?}"
    );
}
