//! Server restarts and dropped connections: the client goes Connected,
//! Reconnecting, Connected, resubscribes, and gets every message published
//! meanwhile once and in order; a restart that lost the history says so.

use hublink::{Client, Event, Recovery, State, Subscription};
use hublink_tests::{backoff, wait_event, wait_state, FaultProxy, Mode, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);

async fn expect_seqs(sub: &mut Subscription<Value>, seqs: std::ops::RangeInclusive<u64>) {
    for want in seqs {
        let d = tokio::time::timeout(WITHIN, sub.next())
            .await
            .unwrap_or_else(|_| panic!("message #{want} did not come"))
            .expect("stream open")
            .expect("decodes");
        assert_eq!(d.seq(), Some(want), "out of order or duplicated: {d:?}");
        assert_eq!(d.data, json!({ "n": want }));
    }
}

async fn nothing_more(sub: &mut Subscription<Value>) {
    // Long enough for a replayed duplicate to arrive on loopback.
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
        panic!("unexpected extra message: {extra:?}");
    }
}

#[tokio::test]
async fn restart_with_history_redelivers_every_missed_message_once_in_order() {
    let mut server = TestServer::start(TestServer::config()).await;
    let client = Client::builder(server.url("/ws"))
        .backoff(backoff(50, 500))
        .connect()
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe::<Value>("orders").unwrap();
    wait_state(&mut events, State::Connected, WITHIN).await;
    wait_event(&mut events, WITHIN, |e| {
        matches!(
            e,
            Event::Subscribed {
                recovery: Recovery::Fresh,
                ..
            }
        )
    })
    .await;
    for n in 1..=5 {
        server.publish("orders", json!({ "n": n })).await;
    }
    expect_seqs(&mut sub, 1..=5).await;

    server.stop().await;
    let down = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    assert_eq!(down.reason.name(), "server_reconnect", "{down:?}");
    for n in 6..=10 {
        server.publish("orders", json!({ "n": n })).await;
    }
    server.start_again().await;

    wait_state(&mut events, State::Connected, WITHIN).await;
    wait_event(&mut events, WITHIN, |e| {
        matches!(
            e,
            Event::Subscribed {
                recovery: Recovery::Recovered,
                ..
            }
        )
    })
    .await;
    expect_seqs(&mut sub, 6..=10).await;
    server.publish("orders", json!({ "n": 11 })).await;
    expect_seqs(&mut sub, 11..=11).await;
    nothing_more(&mut sub).await;
    client.close().await;
}

#[tokio::test]
async fn abrupt_drop_and_refusals_recover_through_the_proxy() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::builder(proxy.url("/ws"))
        .backoff(backoff(50, 200))
        .connect()
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe::<Value>("machines.CNC-001").unwrap();
    wait_event(&mut events, WITHIN, |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    server.publish("machines.CNC-001", json!({ "n": 1 })).await;
    expect_seqs(&mut sub, 1..=1).await;

    proxy.set_mode(Mode::Refuse);
    proxy.drop_all();
    let down = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    assert!(
        matches!(down.reason, hublink::Reason::Closed { code: 1006, .. }),
        "no close frame, so 1006: {down:?}"
    );
    for n in 2..=6 {
        server.publish("machines.CNC-001", json!({ "n": n })).await;
    }
    // A refused attempt or two, then the path heals.
    wait_event(
        &mut events,
        WITHIN,
        |e| matches!(e, Event::StateChanged(c) if c.reason.name() == "connect_failed"),
    )
    .await;
    proxy.set_mode(Mode::Pass);
    wait_state(&mut events, State::Connected, WITHIN).await;
    expect_seqs(&mut sub, 2..=6).await;
    nothing_more(&mut sub).await;
    client.close().await;
}

#[tokio::test]
async fn restart_that_lost_the_history_reports_lost_and_carries_on() {
    let mut server = TestServer::start(TestServer::config()).await;
    let client = Client::builder(server.url("/ws"))
        .backoff(backoff(50, 500))
        .connect()
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe::<Value>("orders").unwrap();
    wait_event(&mut events, WITHIN, |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    for n in 1..=3 {
        server.publish("orders", json!({ "n": n })).await;
    }
    expect_seqs(&mut sub, 1..=3).await;
    let old_epoch = server
        .state()
        .broker
        .history()
        .position("orders")
        .await
        .expect("position")
        .epoch;

    server.stop().await;
    server.start_fresh().await;
    wait_state(&mut events, State::Connected, WITHIN).await;
    wait_event(&mut events, WITHIN, |e| {
        matches!(
            e,
            Event::Subscribed {
                recovery: Recovery::Lost,
                ..
            }
        )
    })
    .await;
    // The new epoch starts at 1 again and flows without a reported gap.
    server.publish("orders", json!({ "n": 1 })).await;
    let d = tokio::time::timeout(WITHIN, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.seq(), Some(1));
    assert_ne!(d.epoch(), Some(&*old_epoch));
    client.close().await;
    while let Some(e) = events.next().await {
        assert!(
            !matches!(e, Event::Gap { .. }),
            "no gap after a lost recovery: {e:?}"
        );
    }
}
