//! A silent path (black hole): the client declares the link dead at its
//! liveness timeout, not before and not much after, and reconnects when the
//! path heals; a slow but alive path is not declared dead; and against servers
//! that do not advertise their heartbeat interval, the client learns it.

use hublink::{Client, DialectKind, Event, HeartbeatConfig, Reason, State};
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

// ----- Servers that do not advertise their interval -------------------------

/// The server's heartbeat interval here. Production servers beat every 30 s;
/// 1 s keeps the test fast and is the shortest interval the client learns
/// (closer beats count as one batch).
const SERVER_INTERVAL: Duration = Duration::from_secs(1);
/// The client's grace, down from 10 s so that detection takes 2 s, not 11 s.
const GRACE_MS: u64 = 1_000;

/// Against a server that beats every second without saying so (the topics
/// and power endpoints), the client learns the interval from the beats, and
/// a black hole is declared dead after about interval + grace of silence,
/// not after the 60 s fallback.
async fn black_hole_is_noticed_within_the_observed_interval_plus_grace(
    path: &str,
    dialect: DialectKind,
) {
    let mut config = TestServer::config();
    config.heartbeat_interval = SERVER_INTERVAL;
    // The test config's 3 s stale cleanup would close a client that only
    // answers with WebSocket pongs; the default (2 x interval + 10 s) does not.
    config.stale_timeout = None;
    let server = TestServer::start(config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::builder(proxy.url(path))
        .dialect(dialect)
        .heartbeat(HeartbeatConfig {
            grace_ms: GRACE_MS,
            ..Default::default()
        })
        .connect()
        .unwrap();
    let mut events = client.events();
    wait_state(&mut events, State::Connected, WITHIN).await;

    // Three beats, two intervals: learned. The learned timeout (about 2 s)
    // must not kill the live link meanwhile.
    let learning = tokio::time::timeout(Duration::from_millis(3_500), async {
        loop {
            if let Some(Event::StateChanged(c)) = events.next().await {
                return c;
            }
        }
    })
    .await;
    assert!(learning.is_err(), "{dialect}: {learning:?}");

    proxy.set_mode(Mode::Blackhole);
    let t0 = Instant::now();
    // Without the learned interval this waits for the 60 s fallback.
    let dead = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    let detected_ms = t0.elapsed().as_millis() as u64;
    let Reason::HeartbeatTimeout { silent_ms } = dead.reason else {
        panic!("{dialect}: expected a heartbeat timeout, got {dead:?}");
    };
    let expected = SERVER_INTERVAL.as_millis() as u64 + GRACE_MS;
    println!(
        "{dialect}: declared dead {detected_ms} ms after the path went silent, \
         {silent_ms} ms after the last frame (interval + grace {expected} ms)"
    );
    assert!(
        silent_ms >= expected - 200,
        "{dialect}: declared dead early: {silent_ms} ms"
    );
    // Far below the 60 s fallback it replaces. Loose above: the learned
    // interval is the longest of the last few, so on a loaded machine one
    // late beat lengthens it (to 3 s in one CI-like run).
    assert!(
        silent_ms <= 3 * expected,
        "{dialect}: declared dead late: {silent_ms} ms"
    );
    client.close().await;
}

#[tokio::test]
async fn topics_black_hole_is_noticed_within_the_observed_interval_plus_grace() {
    black_hole_is_noticed_within_the_observed_interval_plus_grace(
        "/api/v1/ws/",
        DialectKind::Topics,
    )
    .await;
}

#[tokio::test]
async fn power_black_hole_is_noticed_within_the_observed_interval_plus_grace() {
    black_hole_is_noticed_within_the_observed_interval_plus_grace(
        "/api/v1/ws/v2/power?module=4",
        DialectKind::Power,
    )
    .await;
}
