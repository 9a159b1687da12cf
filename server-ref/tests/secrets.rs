//! Secrets never reach clients or logs. A real `hublink-server` process runs
//! with a known Redis password (in the URL's userinfo, or as a `pass=` query),
//! JWT secret and publish key; every surface is searched for them: `/healthz`,
//! `/metrics`, the HTTP publish API's errors, WebSocket `error` and
//! `subscribe_ack` texts, upgrade refusals, and everything the process wrote
//! (its log at `RUST_LOG=debug`, start-up errors).

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/redis.rs"]
mod redis_server;

use std::time::Duration;

use common::{http, Client};
use process::ServerProcess;
use redis_server::RedisServer;
use serde_json::{json, Value};

const REDIS_PW: &str = "s3cretpw-redis-7f3a";
const JWT: &str = "s3cret-jwt-9c1e5d";
const PUBKEY: &str = "s3cret-publish-key-42b8";
const SECRETS: [&str; 3] = [REDIS_PW, JWT, PUBKEY];

/// Collects every surface that shows a secret, so that one run names them all.
#[derive(Default)]
struct Leaks(Vec<String>);

impl Leaks {
    fn check(&mut self, surface: &str, text: &str) {
        for s in SECRETS {
            if text.contains(s) {
                self.0.push(format!("{surface} shows {s:?}: {text}"));
            }
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "secrets leaked on {} surface(s):\n{}",
            self.0.len(),
            self.0.join("\n---\n")
        );
    }
}

async fn get(p: &ServerProcess, path: &str) -> (u16, String) {
    http(p.addr, "GET", path, &[], "").await
}

async fn wait_health(p: &ServerProcess, want: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(p, "/healthz").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz not {want} within 10 s: {status} {body}\nlog:\n{}",
            p.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish_http(p: &ServerProcess, key: &str, path: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {key}");
    http(p.addr, "POST", path, &[("Authorization", &auth)], body).await
}

/// A WebSocket upgrade of `path` that the server refuses: its status and body.
async fn upgrade_refused(p: &ServerProcess, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        p.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body.to_string());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed after {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

fn text(v: &Value) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_reaches_no_client_and_no_log() {
    let Some(mut redis) = RedisServer::start_with(&["--requirepass", REDIS_PW]) else {
        return;
    };
    let where_ = format!("127.0.0.1:{}", redis.port);
    let url = format!("redis://:{REDIS_PW}@{where_}");
    let p = ServerProcess::start(&[
        "--broker",
        "redis",
        "--redis-url",
        &url,
        "--jwt-secret",
        JWT,
        "--publish-key",
        PUBKEY,
        "--anonymous-endpoints",
        "ws,machines",
        "--anonymous-publish",
    ])
    .await;
    let mut leaks = Leaks::default();

    // Up: the node authenticated with the password.
    let body = wait_health(&p, 200).await;
    leaks.check("/healthz (up)", &body);
    leaks.check("/metrics (up)", &get(&p, "/metrics").await.1);
    let mut sub = Client::connect(&format!("ws://{}/ws", p.addr)).await;
    sub.next_json().await;
    sub.send_json(json!({"type":"subscribe","topic":"orders"}))
        .await;
    let ack = sub.next_non_heartbeat().await;
    assert_eq!(ack["success"], true, "{ack}");

    // Down: every error names Redis, by host and port.
    redis.kill();
    let body = wait_health(&p, 503).await;
    assert!(body.contains(&where_), "the reason names the Redis: {body}");
    leaks.check("/healthz reason", &body);
    leaks.check("/metrics (down)", &get(&p, "/metrics").await.1);

    sub.send_json(json!({"type":"publish","topic":"orders","data":1}))
        .await;
    let err = sub.next_where("type", "error").await;
    assert_eq!(err["code"], "publish_failed", "{err}");
    leaks.check("WebSocket error (publish)", &text(&err));

    let mut late = Client::connect(&format!("ws://{}/ws", p.addr)).await;
    late.next_json().await;
    late.send_json(json!({"type":"subscribe","topic":"other"}))
        .await;
    let closed = late.expect_close_within(5.0).await;
    let nack = closed
        .before
        .iter()
        .find(|m| m["type"] == "subscribe_ack")
        .unwrap_or_else(|| panic!("no subscribe_ack: {closed:?}"));
    assert_eq!(nack["success"], false, "{nack}");
    leaks.check("WebSocket subscribe_ack", &text(nack));
    leaks.check("WebSocket close reason", &closed.reason);

    let mut machine = Client::connect(&format!("ws://{}/ws/machines/CNC-001", p.addr)).await;
    let closed = machine.expect_close_within(5.0).await;
    assert!(
        closed
            .before
            .iter()
            .any(|m| m["code"] == "broker_unavailable"),
        "{closed:?}"
    );
    leaks.check("WebSocket error (seed endpoint)", &format!("{closed:?}"));

    let (status, body) =
        publish_http(&p, PUBKEY, "/api/publish", r#"{"topic":"orders","data":2}"#).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&where_), "{body}");
    leaks.check("HTTP publish 503", &body);
    let (status, body) = publish_http(
        &p,
        PUBKEY,
        "/api/publish/batch",
        r#"[{"topic":"orders","data":3}]"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    leaks.check("HTTP publish batch 503", &body);

    // Back: the reconnect is logged too.
    redis.restart();
    wait_health(&p, 200).await;
    let log = p.stop().await;
    assert!(
        log.contains(&where_),
        "the log names the Redis it used: {log}"
    );
    leaks.check("the log", &log);
    leaks.assert_none();
}

/// A password given as a query (`pass=`, the form of a Unix socket URL) is
/// redacted as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_query_is_not_shown_either() {
    let sock = std::env::temp_dir().join(format!("hublink-no-such-{}.sock", std::process::id()));
    let url = format!("redis+unix://{}?pass={REDIS_PW}", sock.display());
    let p = ServerProcess::start(&["--broker", "redis", "--redis-url", &url]).await;
    let mut leaks = Leaks::default();
    let body = wait_health(&p, 503).await;
    assert!(
        body.contains(&*sock.to_string_lossy()),
        "the reason names the socket: {body}"
    );
    leaks.check("/healthz reason", &body);
    leaks.check("/metrics", &get(&p, "/metrics").await.1);
    leaks.check("the log", &p.stop().await);
    leaks.assert_none();
}

/// A URL the redis crate cannot use stops the start with an error that names
/// the flag and the problem, without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_redis_url_is_refused_without_showing_its_password() {
    let url = format!("redis://:{REDIS_PW}@127.0.0.1:6379/not-a-db");
    let mut p = ServerProcess::spawn(&["--broker", "redis", "--redis-url", &url]);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running with {url}:\n{}", p.output()));
    let out = p.output();
    assert!(!status.success(), "{status}: {out}");
    assert!(out.contains("--redis-url"), "names the flag: {out}");
    assert!(out.contains("database"), "names the problem: {out}");
    let mut leaks = Leaks::default();
    leaks.check("the start-up error", &out);
    leaks.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_secret_and_publish_key_reach_no_client_and_no_log() {
    let p = ServerProcess::start(&[
        "--jwt-secret",
        JWT,
        "--publish-key",
        PUBKEY,
        "--anonymous-endpoints",
        "ws",
    ])
    .await;
    let mut leaks = Leaks::default();
    leaks.check("/healthz", &get(&p, "/healthz").await.1);
    leaks.check("/metrics", &get(&p, "/metrics").await.1);

    // Refused tokens: malformed, signed with another secret, expired.
    let other = hublink_server::auth::sign(b"another-secret", &common::claims("u", "b", "r"))
        .expect("sign");
    let mut expired = common::claims("u", "b", "r");
    expired.exp = Some(1);
    let expired = hublink_server::auth::sign(JWT.as_bytes(), &expired).expect("sign");
    for (what, path) in [
        ("malformed token", "/ws?token=not.a.token".to_string()),
        (
            "token signed with another secret",
            format!("/ws?token={other}"),
        ),
        ("expired token", format!("/ws?token={expired}")),
        ("no token (actions)", "/api/v1/actions".to_string()),
    ] {
        let (status, body) = upgrade_refused(&p, &path).await;
        assert_eq!(status, 401, "{what}: {body}");
        leaks.check(what, &body);
    }

    // A valid token without a publish claim, and an anonymous client.
    let token =
        hublink_server::auth::sign(JWT.as_bytes(), &common::claims("u", "b", "r")).expect("sign");
    let mut c = Client::connect(&format!("ws://{}/ws?token={token}", p.addr)).await;
    c.next_json().await;
    c.send_json(json!({"type":"publish","topic":"orders","data":1}))
        .await;
    let err = c.next_where("type", "error").await;
    leaks.check("WebSocket error (publish refused)", &text(&err));
    let mut anon = Client::connect(&format!("ws://{}/ws", p.addr)).await;
    anon.next_json().await;
    anon.send_json(json!({"type":"subscribe","topic":"room:secret"}))
        .await;
    let refused = anon.next_non_heartbeat().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    leaks.check("WebSocket error (subscribe forbidden)", &text(&refused));
    anon.send_text("not json").await;
    let err = anon.next_where("type", "error").await;
    leaks.check("WebSocket error (bad frame)", &text(&err));

    // The publish API: a wrong key, no key, a bad body, a good one.
    for (what, key, body, want) in [
        (
            "wrong publish key",
            "wrong",
            r#"{"topic":"t","data":1}"#,
            401,
        ),
        ("bad body", PUBKEY, "{", 400),
        ("good publish", PUBKEY, r#"{"topic":"t","data":1}"#, 200),
    ] {
        let (status, body) = publish_http(&p, key, "/api/publish", body).await;
        assert_eq!(status, want, "{what}: {body}");
        leaks.check(what, &body);
    }
    let (status, body) = http(p.addr, "POST", "/api/publish", &[], "{}").await;
    assert_eq!(status, 401, "{body}");
    leaks.check("missing publish key", &body);

    leaks.check("the log", &p.stop().await);
    leaks.assert_none();
}
