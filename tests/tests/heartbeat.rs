//! A silent path (black hole): the client declares the link dead at its
//! liveness timeout, not before and not much after, and reconnects when the
//! path heals; a slow but alive path is not declared dead.

use hublink::{Client, Event, HeartbeatConfig, Reason, State};
use hublink_tests::{backoff, wait_event, wait_state, FaultProxy, Mode, TestServer};
use std::time::Duration;
use tokio::time::Instant;

const WITHIN: Duration = Duration::from_secs(5);
const TIMEOUT_MS: u64 = 600;

fn heartbeat() -> HeartbeatConfig {
    HeartbeatConfig {
        timeout_ms: Some(TIMEOUT_MS),
        ..Default::default()
    }
}

#[tokio::test]
async fn black_hole_is_declared_dead_at_the_timeout_and_heals() {
    let server = TestServer::start(TestServer::config()).await; // heartbeats every 200 ms
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::builder(proxy.url("/ws"))
        .heartbeat(heartbeat())
        .backoff(backoff(50, 200))
        .connect_timeout(Duration::from_millis(400))
        .connect()
        .unwrap();
    let mut events = client.events();
    wait_event(&mut events, WITHIN, |e| matches!(e, Event::Welcome { .. })).await;

    proxy.set_mode(Mode::Blackhole);
    let t0 = Instant::now();
    let dead = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    let detected_ms = t0.elapsed().as_millis() as u64;
    let Reason::HeartbeatTimeout { silent_ms } = dead.reason else {
        panic!("expected a heartbeat timeout, got {dead:?}");
    };
    println!(
        "black hole: declared dead {detected_ms} ms after the path went silent, \
         {silent_ms} ms after the last frame (timeout {TIMEOUT_MS} ms)"
    );
    assert!(
        silent_ms >= TIMEOUT_MS,
        "declared dead early: {silent_ms} ms"
    );
    assert!(
        silent_ms <= TIMEOUT_MS + 100,
        "declared dead late: {silent_ms} ms"
    );
    // The last heartbeat came at most one interval (200 ms) before t0.
    assert!(detected_ms >= TIMEOUT_MS - 250, "{detected_ms} ms");
    assert!(detected_ms <= TIMEOUT_MS + 100, "{detected_ms} ms");

    // Attempts into the black hole time out at connect...
    let failed = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    assert_eq!(failed.reason.name(), "connect_failed", "{failed:?}");
    // ...until it heals.
    proxy.set_mode(Mode::Pass);
    wait_state(&mut events, State::Connected, WITHIN).await;
    client.close().await;
}

#[tokio::test]
async fn slow_but_alive_path_stays_connected() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::builder(proxy.url("/ws"))
        .heartbeat(heartbeat())
        .connect()
        .unwrap();
    let mut events = client.events();
    wait_state(&mut events, State::Connected, WITHIN).await;
    proxy.set_mode(Mode::Delay(Duration::from_millis(150)));
    // Three timeouts' worth of a slow path: heartbeats still arrive.
    let quiet = tokio::time::timeout(Duration::from_millis(3 * TIMEOUT_MS), async {
        loop {
            if let Some(Event::StateChanged(c)) = events.next().await {
                return c;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a slow path was declared dead: {quiet:?}");
    assert_eq!(client.state(), State::Connected);
    client.close().await;
}
