//! Half-open TCP: 200 clients that vanish without a FIN (they stay connected
//! but never send, read or answer another byte) are cleaned up by the
//! heartbeat timeout, with their subscriptions, while a bystander keeps
//! receiving on time.

mod common;
mod hostile_support;

use std::time::Duration;

use common::*;
use hostile_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanish_without_a_fin_are_closed_by_the_heartbeat_timeout() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(200);
    cfg.stale_timeout = Some(Duration::from_millis(1500));
    let s = start(cfg).await;
    let by = Bystander::start(&s).await;
    let mut ghosts = Vec::new();
    for i in 0..200 {
        let mut g = Raw::connect(s.addr, "/ws").await;
        g.next_json().await;
        g.send_text(&json!({"type":"subscribe","topic":format!("ghost.{}", i % 10)}).to_string())
            .await;
        g.next_json().await;
        ghosts.push(g);
    }
    assert_eq!(s.state.live_connections(), 201);
    // From now on they are gone as far as the server can tell: no FIN, no
    // reset, no pong to its pings, no echo of its heartbeats.
    let t0 = tokio::time::Instant::now();
    eventually(Duration::from_secs(5), "the ghosts are closed", || {
        s.state.live_connections() == 1
    })
    .await;
    let took = t0.elapsed();
    println!("200 half-open connections cleaned up {took:?} after they went silent");
    assert!(
        took >= Duration::from_millis(1200),
        "not before the timeout: {took:?}"
    );
    let m = s.metrics().await;
    assert_eq!(metric(&m, "hublink_stale_closes_total"), 200.0);
    assert_eq!(metric(&m, "hublink_active_streams"), 1.0);
    assert_eq!(s.state.broker.subscriptions(), 1);
    // What a ghost would see if it came back: a 4008 close.
    let end = ghosts[0].read_to_end(Duration::from_secs(1)).await;
    assert_eq!(end.close, Some(4008), "{end:?}");
    by.assert_unharmed("200 half-open connections").await;
    s.stop().await;
}
