//! Refused connections: the delays between attempts follow the backoff's
//! bounds, jittered; a server `reconnect` with `retry_after` is honoured.

use hublink::{BackoffConfig, Client, Event, Reason, State};
use hublink_tests::{backoff, wait_state, FaultProxy, Mode, TestServer};
use std::time::Duration;
use tokio::time::Instant;

const WITHIN: Duration = Duration::from_secs(5);
/// Scheduling and a loopback connect on a shared machine.
const SLACK_MS: u64 = 60;

#[tokio::test]
async fn refused_attempts_are_spaced_within_the_backoff_bounds() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    proxy.set_mode(Mode::Refuse);
    let config: BackoffConfig = backoff(100, 800);
    let client = Client::builder(proxy.url("/ws"))
        .backoff(config.clone())
        .connect()
        .unwrap();
    let mut events = client.events();
    let mut scheduled = Vec::new();
    while scheduled.len() < 7 {
        let c = wait_state(&mut events, State::Reconnecting, WITHIN).await;
        assert_eq!(c.reason.name(), "connect_failed", "{c:?}");
        let delay = c.retry_in_ms.expect("a retry delay");
        let (lo, hi) = config.range_ms(c.attempt - 1);
        assert!(
            (lo..=hi).contains(&delay),
            "attempt {}: {delay} ms outside [{lo}, {hi}]",
            c.attempt
        );
        scheduled.push((c.attempt, delay));
    }
    // The attempts the proxy saw are spaced as scheduled.
    let seen = proxy.accepted();
    let gaps: Vec<u64> = seen
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    println!("scheduled delays (attempt, ms): {scheduled:?}");
    println!("observed gaps between attempts (ms): {gaps:?}");
    for (i, (attempt, delay)) in scheduled.iter().take(gaps.len()).enumerate() {
        let (lo, hi) = config.range_ms(attempt - 1);
        assert!(
            gaps[i] + 5 >= lo && gaps[i] <= hi + SLACK_MS,
            "gap {i}: {} ms outside [{lo}, {hi}]",
            gaps[i]
        );
        assert!(
            gaps[i].abs_diff(*delay) <= SLACK_MS,
            "gap {i}: {} vs {delay}",
            gaps[i]
        );
    }
    proxy.set_mode(Mode::Pass);
    wait_state(&mut events, State::Connected, Duration::from_secs(2)).await;
    client.close().await;
}

#[tokio::test]
async fn clients_refused_together_retry_at_different_times() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = FaultProxy::start(server.addr).await;
    proxy.set_mode(Mode::Refuse);
    let mut streams = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let c = Client::builder(proxy.url("/ws"))
            .backoff(backoff(100, 2_000))
            .connect()
            .unwrap();
        streams.push(c.events());
        clients.push(c);
    }
    // The third retry of each client: range [200, 600] ms.
    let mut third = Vec::new();
    for events in &mut streams {
        loop {
            let c = wait_state(events, State::Reconnecting, WITHIN).await;
            if c.attempt == 3 {
                third.push(c.retry_in_ms.unwrap());
                break;
            }
        }
    }
    third.sort_unstable();
    third.dedup();
    println!("third retry delays of 20 clients (distinct, ms): {third:?}");
    assert!(third.len() >= 15, "clients retry in lockstep: {third:?}");
    assert!(
        third.last().unwrap() - third.first().unwrap() >= 150,
        "{third:?}"
    );
    for c in &clients {
        c.close().await;
    }
}

#[tokio::test]
async fn server_reconnect_retry_after_is_honoured() {
    let mut config = TestServer::config();
    config.retry_after = 1;
    let mut server = TestServer::start(config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::builder(proxy.url("/ws"))
        .backoff(backoff(50, 200))
        .connect()
        .unwrap();
    let mut events = client.events();
    wait_state(&mut events, State::Connected, WITHIN).await;
    let before = proxy.accepted().len();

    let t0 = Instant::now();
    server.stop().await;
    server.start_again().await;
    let down = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    let Reason::ServerReconnect { retry_after_ms, .. } = down.reason else {
        panic!("expected a server reconnect, got {down:?}");
    };
    assert_eq!(retry_after_ms, 1_000);
    let delay = down.retry_in_ms.unwrap();
    assert!((1_000..=2_000).contains(&delay), "{delay} ms");
    wait_state(&mut events, State::Connected, Duration::from_secs(4)).await;
    let next = proxy.accepted()[before];
    let waited = (next - t0).as_millis() as u64;
    println!(
        "retry_after 1 s: scheduled {delay} ms, next attempt {waited} ms after the restart began"
    );
    assert!(waited >= 1_000, "came back before retry_after: {waited} ms");
    assert!(waited <= 2_000 + SLACK_MS, "{waited} ms");
    client.close().await;
}

#[tokio::test]
async fn a_refused_token_backs_off_to_the_cap() {
    let server = TestServer::start(TestServer::config_with_auth()).await;
    let client = Client::builder(server.url("/ws"))
        .token("not-a-jwt")
        .backoff(backoff(50, 2_000))
        .connect()
        .unwrap();
    let mut events = client.events();
    let c = wait_state(&mut events, State::Reconnecting, WITHIN).await;
    assert!(
        matches!(c.reason, Reason::AuthRejected { code: 4001 }),
        "{c:?}"
    );
    // The backoff jumps to its cap: no hammering with a bad token.
    assert!(c.retry_in_ms.unwrap() >= 1_000, "{c:?}");
    client.close().await;
    let e = events.next().await;
    assert!(
        matches!(e, Some(Event::StateChanged(ref c)) if c.to == State::Disconnected),
        "{e:?}"
    );
}
