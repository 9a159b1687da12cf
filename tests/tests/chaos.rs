//! Chaos with nothing lost: 200 clients on 20 topics through the fault proxy,
//! publishers at a steady rate, while the test restarts the server, drops
//! every connection, refuses new ones, and black-holes the path then heals
//! it, over and over for 55 s. At the end every client has every message of
//! its topics exactly once and in order (the history window, 5,000 per topic,
//! holds the whole run), or was told `recovered: false` for the gap.

use hublink::{Client, Event, HeartbeatConfig, Recovery, Subscription};
use hublink_tests::{backoff, FaultProxy, Mode, TestServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const CLIENTS: usize = 200;
const TOPICS: usize = 20;
/// Messages per second per topic.
const RATE: u64 = 10;
const CHAOS: Duration = Duration::from_secs(55);

/// One client's account of one topic, checked against the publisher's
/// counter `n` in each message (independently of the client's own dedup).
#[derive(Default, Debug, Clone)]
struct Tally {
    received: u64,
    last_n: u64,
    duplicates: u64,
    out_of_order: u64,
    missing: u64,
    /// Messages skipped right after a `recovered: false` (reported gaps).
    reported_lost: u64,
    lost_recoveries: u64,
    recovered: u64,
}

fn topic(i: usize) -> String {
    format!("chaos.{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_lose_nothing_through_restarts_drops_and_black_holes() {
    let mut config = TestServer::config();
    config.history_size = 5_000;
    config.history_age = Duration::from_secs(600);
    config.stale_timeout = Some(Duration::from_millis(1500));
    let mut server = TestServer::start(config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let url = proxy.url("/ws");

    // Each client on two topics: 20 subscribers per topic.
    let tallies: Arc<Mutex<HashMap<(usize, usize), Tally>>> = Arc::default();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    let reconnects = Arc::new(AtomicU64::new(0));
    for c in 0..CLIENTS {
        let client = Client::builder(&url)
            .backoff(backoff(50, 1_000))
            .heartbeat(HeartbeatConfig {
                timeout_ms: Some(1_500),
                ..HeartbeatConfig::default()
            })
            .seed(c as u64)
            .connect()
            .unwrap();
        let mut events = client.events();
        for t in [c % TOPICS, (c * 7 + 3) % TOPICS] {
            let mut sub: Subscription<Value> = client.subscribe(&topic(t)).unwrap();
            let tallies = tallies.clone();
            tallies.lock().unwrap().insert((c, t), Tally::default());
            tasks.push(tokio::spawn(async move {
                while let Some(d) = sub.next().await {
                    let d = d.expect("decodes");
                    let n = d.data["n"].as_u64().expect("n");
                    let mut all = tallies.lock().unwrap();
                    let tally = all.get_mut(&(c, t)).unwrap();
                    tally.received += 1;
                    if n <= tally.last_n {
                        tally.duplicates += 1;
                        continue;
                    }
                    if n > tally.last_n + 1 {
                        let skipped = n - tally.last_n - 1;
                        if tally.lost_recoveries > 0 {
                            tally.reported_lost += skipped;
                        } else {
                            tally.out_of_order += 1;
                            tally.missing += skipped;
                        }
                    }
                    tally.last_n = n;
                }
            }));
        }
        let tallies = tallies.clone();
        let reconnects = reconnects.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(e) = events.next().await {
                match e {
                    Event::Subscribed { topic, recovery } => {
                        let t: usize = topic.trim_start_matches("chaos.").parse().unwrap();
                        let mut all = tallies.lock().unwrap();
                        let tally = all.get_mut(&(c, t)).unwrap();
                        match recovery {
                            Recovery::Lost => tally.lost_recoveries += 1,
                            Recovery::Recovered => tally.recovered += 1,
                            Recovery::Fresh => {}
                        }
                    }
                    Event::StateChanged(s) if s.to == hublink::State::Connected => {
                        reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
        clients.push(client);
    }
    for c in &clients {
        c.connected_within(Duration::from_secs(30)).await.unwrap();
    }
    // Until every subscription is acknowledged, so `n = 1` reaches everyone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reconnects.load(Ordering::Relaxed) < CLIENTS as u64 || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.state().broker.subscriptions() < CLIENTS * 2
    } {
        assert!(Instant::now() < deadline, "clients did not all subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_connects = reconnects.load(Ordering::Relaxed);

    // Publishers: one per topic, RATE per second, each message carrying its counter.
    let stop = Arc::new(AtomicBool::new(false));
    let state = server.state().clone();
    let publishers: Vec<_> = (0..TOPICS)
        .map(|t| {
            let stop = stop.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(1_000 / RATE));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    state
                        .publish(&topic(t), json!({ "n": n }), None)
                        .await
                        .expect("publish");
                }
                n
            })
        })
        .collect();

    // The faults, in rounds.
    let t0 = Instant::now();
    let mut faults: Vec<&str> = Vec::new();
    let mut round = 0;
    while t0.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        match round % 4 {
            0 => {
                // Restart: every client gets `reconnect` and 1012; new
                // connections are refused while it is down.
                proxy.set_mode(Mode::Refuse);
                server.stop().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                server.start_again().await;
                proxy.set_mode(Mode::Pass);
                faults.push("restart");
            }
            1 => {
                // Every connection reset at once, no close frame.
                proxy.drop_all();
                faults.push("drop all");
            }
            2 => {
                // A silent path: nothing either way until the clients give
                // up on it (1.5 s) and the server too; then it heals.
                proxy.set_mode(Mode::Blackhole);
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                proxy.set_mode(Mode::Pass);
                faults.push("black hole");
            }
            _ => {
                // A crash-like stop: connections reset, then the restart.
                proxy.set_mode(Mode::Refuse);
                proxy.drop_all();
                server.stop().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                server.start_again().await;
                proxy.set_mode(Mode::Pass);
                faults.push("drop + restart");
            }
        }
        round += 1;
    }
    proxy.set_mode(Mode::Pass);
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for p in publishers {
        last.push(p.await.unwrap());
    }
    let published: u64 = last.iter().sum();

    // Everyone catches up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind = tallies
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, t), tally)| tally.last_n < last[*t])
            .count();
        if behind == 0 {
            break;
        }
        if Instant::now() > deadline {
            println!("{behind} subscriptions still behind after 20 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = tallies.lock().unwrap().clone();
    let mut total = Tally::default();
    for ((_, t), tally) in &all {
        total.received += tally.received;
        total.duplicates += tally.duplicates;
        total.out_of_order += tally.out_of_order;
        total.missing += tally.missing + last[*t].saturating_sub(tally.last_n);
        total.reported_lost += tally.reported_lost;
        total.lost_recoveries += tally.lost_recoveries;
        total.recovered += tally.recovered;
    }
    let expected: u64 = all.keys().map(|(_, t)| last[*t]).sum();
    println!(
        "chaos: {} faults in {:?} ({}), {} reconnects; {published} messages published on {TOPICS} topics, \
         {expected} deliveries expected to {CLIENTS} clients ({} subscriptions)",
        faults.len(),
        t0.elapsed(),
        faults.join(", "),
        reconnects.load(Ordering::Relaxed) - start_connects,
        all.len()
    );
    println!(
        "chaos: received {}, duplicates {}, out of order {}, missing {}, \
         recovered resubscriptions {}, recovered:false {} (messages in reported gaps {})",
        total.received,
        total.duplicates,
        total.out_of_order,
        total.missing,
        total.recovered,
        total.lost_recoveries,
        total.reported_lost
    );
    assert!(faults.len() >= 8, "enough faults: {faults:?}");
    assert_eq!(total.duplicates, 0, "duplicates");
    assert_eq!(total.out_of_order, 0, "gaps without recovered:false");
    assert_eq!(total.missing, 0, "messages missing");
    // The window holds the whole run: nothing may be unrecoverable.
    assert_eq!(
        total.lost_recoveries, 0,
        "recovered:false within the window"
    );
    assert_eq!(total.received, expected);
    assert!(
        total.recovered > CLIENTS as u64,
        "resubscriptions recovered"
    );
    for c in &clients {
        c.close().await;
    }
    for t in tasks {
        t.abort();
    }
}
