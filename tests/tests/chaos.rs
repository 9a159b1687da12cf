//! Chaos with nothing lost.
//!
//! In memory: 200 clients on 20 topics through the fault proxy, publishers at
//! a steady rate, while the test restarts the server, drops every connection,
//! refuses new ones, and black-holes the path then heals it, over and over
//! for 55 s.
//!
//! With Redis: two nodes sharing topics and history through a real
//! redis-server, behind a load balancer; one node is killed (its connections
//! reset) and brought back again and again, so clients keep moving between
//! nodes and must recover on a node other than the one they lost.
//!
//! At the end every client has every message of its topics exactly once and
//! in order (the history window holds the whole run), or was told
//! `recovered: false` for the gap.

#[path = "../../server-ref/tests/common/redis.rs"]
mod redis;

use hublink::{Client, Event, HeartbeatConfig, Recovery, Subscription};
use hublink_server::config::BrokerKind;
use hublink_server::AppState;
use hublink_tests::{backoff, Balancer, FaultProxy, Mode, TestServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The two chaos tests each load both cores: never at the same time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Messages per second per topic.
const RATE: u64 = 10;

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
    /// Refused subscribes: the servers stay up, so none is expected.
    subscribe_failures: u64,
}

type Tallies = Arc<Mutex<HashMap<(usize, usize), Tally>>>;

fn topic(i: usize) -> String {
    format!("chaos.{i}")
}

/// The clients under test and their accounts.
struct Fleet {
    clients: Vec<Client>,
    tallies: Tallies,
    connects: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// `n` clients on `url`, each on two of `topics` topics, with short
    /// intervals so that a minute holds many faults.
    fn connect(url: &str, n: usize, topics: usize) -> Fleet {
        let mut fleet = Fleet {
            clients: Vec::new(),
            tallies: Arc::default(),
            connects: Arc::default(),
            tasks: Vec::new(),
        };
        for c in 0..n {
            let client = Client::builder(url)
                .backoff(backoff(50, 1_000))
                .heartbeat(HeartbeatConfig {
                    timeout_ms: Some(1_500),
                    ..HeartbeatConfig::default()
                })
                .seed(c as u64)
                .connect()
                .unwrap();
            let mut events = client.events();
            for t in [c % topics, (c * 7 + 3) % topics] {
                let sub: Subscription<Value> = client.subscribe(&topic(t)).unwrap();
                fleet
                    .tallies
                    .lock()
                    .unwrap()
                    .insert((c, t), Tally::default());
                fleet
                    .tasks
                    .push(tokio::spawn(count(sub, c, t, fleet.tallies.clone())));
            }
            let tallies = fleet.tallies.clone();
            let connects = fleet.connects.clone();
            fleet.tasks.push(tokio::spawn(async move {
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
                            connects.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::SubscribeFailed { topic, error } => {
                            println!("client {c}: subscribe to {topic} failed: {error}");
                            let t: usize = topic.trim_start_matches("chaos.").parse().unwrap();
                            tallies
                                .lock()
                                .unwrap()
                                .get_mut(&(c, t))
                                .unwrap()
                                .subscribe_failures += 1;
                        }
                        _ => {}
                    }
                }
            }));
            fleet.clients.push(client);
        }
        fleet
    }

    /// Until every client is connected and the servers hold every
    /// subscription, so that `n = 1` reaches everyone.
    async fn wait_subscribed(&self, subscriptions: impl Fn() -> usize) {
        for c in &self.clients {
            c.connected_within(Duration::from_secs(30)).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while subscriptions() < self.clients.len() * 2 {
            assert!(Instant::now() < deadline, "clients did not all subscribe");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Acks travel after the server registered the subscription.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Waits until every subscription saw the last message of its topic (or
    /// 20 s), then sums the accounts and checks them.
    async fn settle_and_check(self, name: &str, faults: &[&str], elapsed: Duration, last: &[u64]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let behind = self
                .tallies
                .lock()
                .unwrap()
                .iter()
                .filter(|((_, t), tally)| tally.last_n < last[*t])
                .count();
            if behind == 0 {
                break;
            }
            if Instant::now() > deadline {
                println!("{name}: {behind} subscriptions still behind after 20 s:");
                for ((c, t), tally) in self.tallies.lock().unwrap().iter() {
                    if tally.last_n < last[*t] {
                        println!(
                            "  client {c} topic {t}: last n {} of {} (received {}, recovered {}, lost {})",
                            tally.last_n, last[*t], tally.received, tally.recovered, tally.lost_recoveries
                        );
                    }
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let all = self.tallies.lock().unwrap().clone();
        let mut total = Tally::default();
        for ((_, t), tally) in &all {
            total.received += tally.received;
            total.duplicates += tally.duplicates;
            total.out_of_order += tally.out_of_order;
            total.missing += tally.missing + last[*t].saturating_sub(tally.last_n);
            total.reported_lost += tally.reported_lost;
            total.lost_recoveries += tally.lost_recoveries;
            total.recovered += tally.recovered;
            total.subscribe_failures += tally.subscribe_failures;
        }
        let expected: u64 = all.keys().map(|(_, t)| last[*t]).sum();
        let published: u64 = last.iter().sum();
        println!(
            "{name}: {} faults in {elapsed:?} ({}), {} connects; {published} messages published on {} topics, \
             {expected} deliveries expected to {} clients ({} subscriptions)",
            faults.len(),
            faults.join(", "),
            self.connects.load(Ordering::Relaxed),
            last.len(),
            self.clients.len(),
            all.len()
        );
        println!(
            "{name}: received {}, duplicates {}, out of order {}, missing {}, \
             recovered resubscriptions {}, recovered:false {} (messages in reported gaps {}), \
             refused subscribes {}",
            total.received,
            total.duplicates,
            total.out_of_order,
            total.missing,
            total.recovered,
            total.lost_recoveries,
            total.reported_lost,
            total.subscribe_failures
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
        assert_eq!(total.subscribe_failures, 0, "refused subscribes");
        assert_eq!(total.received, expected);
        assert!(
            total.recovered > self.clients.len() as u64,
            "resubscriptions recovered"
        );
        for c in &self.clients {
            c.close().await;
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Counts one subscription's deliveries against the publisher's counter.
async fn count(mut sub: Subscription<Value>, c: usize, t: usize, tallies: Tallies) {
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
}

type PublishFn = Arc<dyn Fn(usize, u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One publisher per topic, [`RATE`] per second, each message carrying its
/// counter; returns the stop flag and the tasks, which yield their last `n`.
fn publishers(topics: usize, publish: PublishFn) -> (Arc<AtomicBool>, Vec<JoinHandle<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..topics)
        .map(|t| {
            let stop = stop.clone();
            let publish = publish.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(1_000 / RATE));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    publish(t, n).await;
                }
                n
            })
        })
        .collect();
    (stop, tasks)
}

async fn stop_publishers(stop: Arc<AtomicBool>, tasks: Vec<JoinHandle<u64>>) -> Vec<u64> {
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for p in tasks {
        last.push(p.await.unwrap());
    }
    last
}

fn publish_on(state: Arc<AppState>) -> PublishFn {
    Arc::new(move |t, n| {
        let state = state.clone();
        Box::pin(async move {
            state
                .publish(&topic(t), json!({ "n": n }), None)
                .await
                .expect("publish");
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_lose_nothing_through_restarts_drops_and_black_holes() {
    const CLIENTS: usize = 200;
    const TOPICS: usize = 20;
    const CHAOS: Duration = Duration::from_secs(55);
    let _serial = SERIAL.lock().await;
    let mut config = TestServer::config();
    // A window of 5,000 messages and 10 minutes (defaults: 1,000 and 5
    // minutes) so that no client falls out of it during 55 s of faults: this
    // test counts losses inside the window, where every message is promised.
    // Recovery at the default window and send queue is in
    // server-ref/tests/history.rs.
    config.history_size = 5_000;
    config.history_age = Duration::from_secs(600);
    config.stale_timeout = Some(Duration::from_millis(1500));
    let mut server = TestServer::start(config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let fleet = Fleet::connect(&proxy.url("/ws"), CLIENTS, TOPICS);
    let state = server.state().clone();
    fleet.wait_subscribed(|| state.broker.subscriptions()).await;
    let (stop, tasks) = publishers(TOPICS, publish_on(server.state().clone()));

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
    let elapsed = t0.elapsed();
    let last = stop_publishers(stop, tasks).await;
    fleet
        .settle_and_check("chaos", &faults, elapsed, &last)
        .await;
}

// This test found that a node's pub/sub link to Redis dropped every second
// (its PING answer failed to parse once channels were subscribed): subscribes
// landing in the gap were refused and, as nothing made the client retry, its
// stream stayed silent until the next fault; a refusal at the very end showed
// as a topic's last message missing. Refused subscribes are now counted, and
// a refusal sends the client away with 1013 so it retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_nodes_lose_nothing_when_one_is_killed_again_and_again() {
    const CLIENTS: usize = 100;
    const TOPICS: usize = 10;
    const CHAOS: Duration = Duration::from_secs(40);
    let _serial = SERIAL.lock().await;
    let Some(redis) = redis::RedisServer::start() else {
        return; // printed why; CI=true fails inside start()
    };
    let node_config = || {
        let mut config = TestServer::config();
        config.broker = BrokerKind::Redis;
        config.redis_url = redis.url();
        // As above: a window no client falls out of; the defaults' twin is
        // in server-ref/tests/redis_cluster.rs.
        config.history_size = 5_000;
        config.history_age = Duration::from_secs(600);
        config.stale_timeout = Some(Duration::from_millis(1500));
        config
    };
    let a = TestServer::start(node_config()).await;
    let mut b = TestServer::start(node_config()).await;
    // B first: every client starts on B and moves to A when B dies.
    let balancer = Balancer::start(vec![b.addr, a.addr]).await;
    let fleet = Fleet::connect(&balancer.url("/ws"), CLIENTS, TOPICS);
    let (state_a, state_b) = (a.state().clone(), b.state().clone());
    fleet
        .wait_subscribed(|| state_a.broker.subscriptions() + state_b.broker.subscriptions())
        .await;

    // Even topics are published on A, odd ones on B while B is up (on A while
    // it is down): every delivery crosses nodes through Redis at some point.
    let b_up = Arc::new(AtomicBool::new(true));
    let publish: PublishFn = {
        let (state_a, state_b, b_up) = (a.state().clone(), b.state().clone(), b_up.clone());
        Arc::new(move |t, n| {
            let state = if t % 2 == 1 && b_up.load(Ordering::Relaxed) {
                state_b.clone()
            } else {
                state_a.clone()
            };
            Box::pin(async move {
                state
                    .publish(&topic(t), json!({ "n": n }), None)
                    .await
                    .expect("publish");
            })
        })
    };
    let (stop, tasks) = publishers(TOPICS, publish);

    let t0 = Instant::now();
    let mut faults: Vec<&str> = Vec::new();
    let mut round = 0;
    while t0.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        match round % 3 {
            0 => {
                // B crashes: its connections reset, its port closed. Clients
                // come back through the balancer to A and recover there.
                b_up.store(false, Ordering::Relaxed);
                balancer.drop_node(0);
                b.stop().await;
                faults.push("kill node B");
            }
            1 => {
                // B is back; every connection is reset, so clients return to
                // B (first in the list) and recover there.
                b.start_again().await;
                b_up.store(true, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                balancer.drop_all();
                faults.push("restart B, drop all");
            }
            _ => {
                // A graceful restart of B: `reconnect`, 1012, and A takes
                // over while B is down.
                b_up.store(false, Ordering::Relaxed);
                b.stop().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                b.start_again().await;
                b_up.store(true, Ordering::Relaxed);
                faults.push("graceful restart B");
            }
        }
        round += 1;
    }
    if !b_up.load(Ordering::Relaxed) {
        b.start_again().await;
    }
    let elapsed = t0.elapsed();
    let last = stop_publishers(stop, tasks).await;
    fleet
        .settle_and_check("chaos redis", &faults, elapsed, &last)
        .await;
    drop(redis);
}
