//! The file-backed outbox (issue #17) against a real hublink-server on
//! loopback: what one client left unanswered, the next client built on the
//! same file sends, once, with the same ids and the time to live left.

use futures_util::{SinkExt, StreamExt};
use hublink::{Client, DialectKind, Error, Event, PublishError, QueueConfig, Subscription};
use hublink_server::{AppState, Config};
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

const WITHIN: Duration = Duration::from_secs(5);

async fn server() -> (SocketAddr, Arc<AppState>) {
    let mut config = Config::defaults();
    config.heartbeat_interval = Duration::from_millis(300);
    config.anonymous_publish = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config).unwrap();
    tokio::spawn(hublink_server::run(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    (addr, state)
}

/// A loopback port nothing listens on: the server is down.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A fresh, empty directory for one test's outbox, and the file's path in it.
fn outbox_path(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("outbox-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("outbox.jsonl")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn add_line(id: &str, data: Value, published_at_ms: u64, expires_at_ms: u64) -> String {
    json!({"add": id, "topic": "orders", "data": data,
           "published_at_ms": published_at_ms, "expires_at_ms": expires_at_ms})
    .to_string()
}

async fn next_event(events: &mut hublink::Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    tokio::time::timeout(WITHIN, async {
        loop {
            let e = events.next().await.expect("client running");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

/// The outcome of publish `id`, whichever it is.
async fn outcome(events: &mut hublink::Events, id: &str) -> Event {
    next_event(events, |e| match e {
        Event::Published { id: i, .. } | Event::PublishFailed { id: i, .. } => i == id,
        _ => false,
    })
    .await
}

/// A client subscribed to `orders` (and the subscription established).
async fn subscriber(addr: SocketAddr) -> (Client, Subscription<Value>) {
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut events = client.events();
    let sub = client.subscribe::<Value>("orders").unwrap();
    next_event(&mut events, |e| matches!(e, Event::Subscribed { .. })).await;
    (client, sub)
}

/// The next message of `sub`: its payload and seq.
async fn next_message(sub: &mut Subscription<Value>) -> (Value, u64) {
    let d = tokio::time::timeout(WITHIN, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
        .expect("decodes");
    let seq = d.seq().expect("hublink messages have a seq");
    (d.data, seq)
}

/// Proves nothing else reached `sub` since: a marker published now by the
/// server itself is the very next message.
async fn nothing_else(state: &AppState, sub: &mut Subscription<Value>) {
    let marker = json!({"marker": true});
    state.publish("orders", marker.clone(), None).await.unwrap();
    assert_eq!(next_message(sub).await.0, marker, "nothing between");
}

/// Lets the tool "exit": drops the client without `close()`, and waits for
/// its driver to stop (the event stream ends), which releases the lock.
async fn exit(client: Client, mut events: hublink::Events) {
    drop(client);
    tokio::time::timeout(WITHIN, async { while events.next().await.is_some() {} })
        .await
        .expect("the client stops once its last handle is gone");
}

#[tokio::test]
async fn a_publish_made_offline_is_sent_by_the_next_client_on_the_file_once() {
    let path = outbox_path("offline");
    // The tool runs while the server is down, publishes, and exits.
    let down = closed_port().await;
    let builder = Client::builder(format!("ws://{down}/ws")).outbox(&path);
    let events = builder.events();
    let first = builder.connect().unwrap();
    let id = first
        .queue_publish("orders", &json!({"order": 1}))
        .await
        .unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(log.contains(&id), "recorded once the id is known: {log:?}");
    exit(first, events).await;
    assert!(
        std::fs::read_to_string(&path).unwrap().contains(&id),
        "still there after the tool exited unanswered"
    );

    // It restarts with the server up.
    let (addr, state) = server().await;
    let (_watcher, mut sub) = subscriber(addr).await;
    let builder = Client::builder(format!("ws://{addr}/ws")).outbox(&path);
    let mut events = builder.events();
    let second = builder.connect().unwrap();
    let Event::Published {
        id: answered,
        position,
        ..
    } = outcome(&mut events, &id).await
    else {
        panic!("the outbox's publish is published");
    };
    assert_eq!(answered, id, "with the id of the first run");
    assert_eq!(
        next_message(&mut sub).await,
        (json!({"order": 1}), position.seq)
    );
    nothing_else(&state, &mut sub).await;
    assert_eq!(
        state.metrics.publish_repeats.get(),
        0,
        "never reached it before"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "nothing left in the outbox"
    );
    second.close().await;
}

#[tokio::test]
async fn a_publish_the_server_took_before_the_restart_is_not_published_twice() {
    let path = outbox_path("repeat");
    let (addr, state) = server().await;
    let (_watcher, mut sub) = subscriber(addr).await;
    // The first copy reaches the server from the run that then crashed
    // before its answer was handled: a raw socket, since a client on the
    // outbox would have settled it.
    let id = "3f2a9c0e5b7d41e6a8c2f0b1d9e7a6c4";
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "hublink.v1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let publish = json!({"type": "publish", "topic": "orders", "id": id, "data": {"order": 2}});
    ws.send(Message::text(publish.to_string())).await.unwrap();
    let first_seq = tokio::time::timeout(WITHIN, async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.unwrap() {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["type"] == "publish_ack" && v["id"] == id {
                    return v["seq"].as_u64().unwrap();
                }
            }
        }
        panic!("the socket ended before the ack");
    })
    .await
    .expect("acked in time");
    drop(ws);
    assert_eq!(
        next_message(&mut sub).await,
        (json!({"order": 2}), first_seq)
    );
    // What that run's outbox held when it died.
    let now = unix_ms();
    std::fs::write(
        &path,
        add_line(id, json!({"order": 2}), now - 1_000, now + 59_000) + "\n",
    )
    .unwrap();

    let builder = Client::builder(format!("ws://{addr}/ws")).outbox(&path);
    let mut events = builder.events();
    let client = builder.connect().unwrap();
    let Event::Published { position, .. } = outcome(&mut events, id).await else {
        panic!("the repeat is answered as published");
    };
    assert_eq!(
        position.seq, first_seq,
        "answered with the first copy's seq"
    );
    nothing_else(&state, &mut sub).await;
    assert_eq!(state.metrics.publish_repeats.get(), 1, "seen as a repeat");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    client.close().await;
}

#[tokio::test]
async fn a_publish_that_expired_while_the_tool_was_down_is_reported_and_not_sent() {
    let path = outbox_path("expired");
    // A short time to live, so that it runs out while the tool is down
    // without the test waiting the default minute.
    let queue = QueueConfig {
        ttl_ms: 300,
        ..QueueConfig::default()
    };
    let down = closed_port().await;
    let builder = Client::builder(format!("ws://{down}/ws"))
        .queue(queue)
        .outbox(&path);
    let events = builder.events();
    let first = builder.connect().unwrap();
    let published_at = unix_ms();
    let id = first
        .queue_publish("orders", &json!({"order": 3}))
        .await
        .unwrap();
    exit(first, events).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (addr, state) = server().await;
    let (_watcher, mut sub) = subscriber(addr).await;
    let builder = Client::builder(format!("ws://{addr}/ws")).outbox(&path);
    let mut events = builder.events();
    let second = builder.connect().unwrap();
    // First thing on the stream, before the connection's first state.
    let first_event = tokio::time::timeout(WITHIN, events.next())
        .await
        .unwrap()
        .unwrap();
    let Event::PublishFailed {
        id: failed,
        topic,
        error: PublishError::Expired { waited_ms, sent },
    } = first_event
    else {
        panic!("reported as expired first: {first_event:?}");
    };
    assert_eq!((failed.as_str(), topic.as_str()), (id.as_str(), "orders"));
    assert!(sent, "it may have been published before the restart");
    assert!(
        waited_ms >= 300 && waited_ms <= unix_ms() - published_at,
        "counted from the first publish, downtime included: {waited_ms}"
    );
    second.connected_within(WITHIN).await.unwrap();
    nothing_else(&state, &mut sub).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    second.close().await;
}

/// A writer for tracing's output that the test can read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_torn_last_line_is_skipped_with_a_warning_and_the_rest_replayed() {
    let path = outbox_path("torn");
    let now = unix_ms();
    let (a, b, c) = (
        "aaaa0000000000000000000000000001",
        "bbbb0000000000000000000000000002",
        "cccc0000000000000000000000000003",
    );
    let log = [
        add_line(a, json!({"order": "a"}), now, now + 60_000),
        add_line(b, json!({"order": "b"}), now, now + 60_000),
        json!({"done": a}).to_string(),
        add_line(c, json!({"order": "c"}), now, now + 60_000),
    ]
    .join("\n");
    // The crash cut the fifth line short: no end, no newline.
    let torn = &add_line("dddd", json!({"order": "d"}), now, now + 60_000)[..25];
    std::fs::write(&path, format!("{log}\n{torn}")).unwrap();

    let (addr, state) = server().await;
    let (_watcher, mut sub) = subscriber(addr).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let logger = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let builder = Client::builder(format!("ws://{addr}/ws")).outbox(&path);
    let mut events = builder.events();
    let client = tracing::subscriber::with_default(logger, || builder.connect()).unwrap();
    let warning = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!("{}: line 5 skipped", path.display())),
        "names the file and the line: {warning}"
    );
    assert!(
        !std::fs::read_to_string(&path).unwrap().contains("dddd"),
        "the compacted log drops the torn line"
    );

    // b then c, in their order; a was settled before the crash.
    assert!(matches!(
        outcome(&mut events, b).await,
        Event::Published { .. }
    ));
    assert!(matches!(
        outcome(&mut events, c).await,
        Event::Published { .. }
    ));
    assert_eq!(next_message(&mut sub).await.0, json!({"order": "b"}));
    assert_eq!(next_message(&mut sub).await.0, json!({"order": "c"}));
    nothing_else(&state, &mut sub).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    client.close().await;
}

#[tokio::test]
async fn new_publishes_wait_behind_the_outbox_and_a_second_client_on_it_is_refused() {
    let path = outbox_path("order");
    let now = unix_ms();
    let old = "0e0e0000000000000000000000000001";
    std::fs::write(
        &path,
        add_line(old, json!({"order": "old"}), now, now + 60_000) + "\n",
    )
    .unwrap();
    let (addr, _state) = server().await;
    let (_watcher, mut sub) = subscriber(addr).await;
    let builder = Client::builder(format!("ws://{addr}/ws")).outbox(&path);
    let mut events = builder.events();
    let client = builder.connect().unwrap();
    // Published at once, before the connection is up: still after the old one.
    let new = client
        .queue_publish("orders", &json!({"order": "new"}))
        .await
        .unwrap();
    assert_eq!(next_message(&mut sub).await.0, json!({"order": "old"}));
    assert_eq!(next_message(&mut sub).await.0, json!({"order": "new"}));
    outcome(&mut events, &new).await;

    let e = Client::builder(format!("ws://{addr}/ws"))
        .outbox(&path)
        .connect()
        .unwrap_err();
    assert!(matches!(e, Error::Outbox { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "outbox {}: in use by another client",
            path.display()
        )),
        "{text}"
    );
    // Released when the first one is closed.
    client.close().await;
    let again = Client::builder(format!("ws://{addr}/ws"))
        .outbox(&path)
        .connect()
        .unwrap();
    again.close().await;
}

#[tokio::test]
async fn an_unusable_outbox_is_an_error_from_connect_naming_the_file_and_why() {
    let dir = outbox_path("unusable").parent().unwrap().to_owned();
    let missing = dir.join("no-such-dir").join("outbox.jsonl");
    let e = Client::builder("ws://127.0.0.1:9/ws")
        .outbox(&missing)
        .connect()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("outbox {}: ", missing.display())),
        "{text}"
    );
    assert!(text.contains("(os error 2)"), "the OS's error: {text}");

    // A directory where the file should be.
    let e = Client::builder("ws://127.0.0.1:9/ws")
        .outbox(&dir)
        .connect()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("outbox {}: cannot read it: ", dir.display())),
        "{e}"
    );

    // Nothing would ever settle a publish on a dialect without acks.
    let e = Client::builder("ws://127.0.0.1:9/api/v1/ws/")
        .dialect(DialectKind::Topics)
        .outbox(dir.join("topics.jsonl"))
        .connect()
        .unwrap_err();
    assert!(
        e.to_string().contains("does not acknowledge publishes"),
        "{e}"
    );
}
