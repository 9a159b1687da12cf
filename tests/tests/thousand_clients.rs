//! 1,000 clients in one process through a server restart: all return, and
//! their reconnect attempts are spread in time, not bunched.

use hublink::{Client, Event, State};
use hublink_tests::{backoff, TestServer};
use std::time::Duration;
use tokio::time::Instant;

const CLIENTS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_return_after_a_restart_spread_in_time() {
    let mut config = TestServer::config();
    config.retry_after = 2; // clients come back within [2 s, 3 s]
    config.heartbeat_interval = Duration::from_secs(5);
    let mut server = TestServer::start(config).await;
    let url = server.url("/ws");

    let mut clients = Vec::with_capacity(CLIENTS);
    let mut streams = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let c = Client::builder(&url)
            .backoff(backoff(1_000, 5_000))
            .connect()
            .unwrap();
        streams.push(c.events());
        clients.push(c);
    }
    let up = Instant::now();
    for c in &clients {
        c.connected_within(Duration::from_secs(20)).await.unwrap();
    }
    println!(
        "{CLIENTS} clients connected in {} ms",
        up.elapsed().as_millis()
    );

    // Each client reports the delay it drew and when it was back.
    let t0 = Instant::now();
    let watchers: Vec<_> = streams
        .into_iter()
        .map(|mut events| {
            tokio::spawn(async move {
                let mut drawn = None;
                while let Some(e) = events.next().await {
                    if let Event::StateChanged(c) = e {
                        match c.to {
                            State::Reconnecting if drawn.is_none() => drawn = c.retry_in_ms,
                            State::Connected if drawn.is_some() => {
                                return (drawn, t0.elapsed().as_millis() as u64)
                            }
                            _ => {}
                        }
                    }
                }
                panic!("client stopped");
            })
        })
        .collect();
    server.stop().await;
    server.start_again().await;

    let mut drawn = Vec::new();
    let mut back = Vec::new();
    for w in watchers {
        let (d, t) = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("every client returns within 10 s")
            .unwrap();
        drawn.push(d.expect("a drawn delay"));
        back.push(t);
    }
    assert_eq!(back.len(), CLIENTS);
    drawn.sort_unstable();
    back.sort_unstable();
    let pct = |v: &[u64], p: usize| v[(v.len() - 1) * p / 100];
    let (lo, hi) = (2_000u64, 3_000u64);
    let n_buckets = ((hi - lo) / 100) as usize;
    let mut buckets = vec![0usize; n_buckets];
    for d in &drawn {
        buckets[(((d - lo) / 100) as usize).min(n_buckets - 1)] += 1;
    }
    println!(
        "first retry delays drawn (ms): min {} p10 {} median {} p90 {} max {}",
        drawn[0],
        pct(&drawn, 10),
        pct(&drawn, 50),
        pct(&drawn, 90),
        drawn[CLIENTS - 1]
    );
    println!(
        "back online after the restart began (ms): min {} median {} max {}",
        back[0],
        pct(&back, 50),
        back[CLIENTS - 1]
    );
    println!("clients per 100 ms bucket from 2,000 ms: {buckets:?}");
    assert!(
        drawn.iter().all(|d| (lo..=hi).contains(d)),
        "{:?}",
        (drawn[0], drawn[CLIENTS - 1])
    );
    assert!(
        drawn[CLIENTS - 1] - drawn[0] > (hi - lo) * 3 / 10,
        "bunched"
    );
    let max_bucket = *buckets.iter().max().unwrap();
    assert!(
        max_bucket * 100 <= CLIENTS * 15,
        "{max_bucket} clients in one 100 ms bucket"
    );
    let back_span = back[CLIENTS - 1] - back[0];
    assert!(back_span > 300, "returns bunched within {back_span} ms");

    for c in &clients {
        c.close().await;
    }
}
