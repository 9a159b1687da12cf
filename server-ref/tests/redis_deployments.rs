//! Redis deployments the broker does not support are refused, not half-run:
//! a Redis Cluster node, a Sentinel or a read-only replica stops the start with a message that says
//! so (and what to use instead); one found behind the address after a
//! reconnect marks the broker down with that reason. `/healthz` names the node.

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/redis.rs"]
mod redis_server;

use std::time::Duration;

use common::{http, post_with_key, start, KEY};
use hublink_server::config::BrokerKind;
use process::ServerProcess;
use redis_server::RedisServer;
use serde_json::Value;

/// Starts the binary with `args` and waits for it to give up; returns what it wrote.
async fn refused_start(args: &[&str]) -> String {
    let mut p = ServerProcess::spawn(args);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running 10 s after start with {args:?}:\n{}",
                p.output()
            )
        });
    let out = p.output();
    assert!(!status.success(), "{status}: {out}");
    out
}

async fn health(addr: std::net::SocketAddr) -> (u16, Value) {
    let (status, body) = http(addr, "GET", "/healthz", &[], "").await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_node_is_refused_at_start() {
    let Some(redis) = RedisServer::start_cluster_node() else {
        return;
    };
    let out = refused_start(&["--broker", "redis", "--redis-url", &redis.url()]).await;
    assert!(out.contains("Redis Cluster"), "names Cluster: {out}");
    assert!(out.contains("not supported"), "says so: {out}");
    assert!(out.contains("standalone"), "says what to use: {out}");
    assert!(
        out.contains(&format!("127.0.0.1:{}", redis.port)),
        "names the address: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_is_refused_at_start() {
    let Some(sentinel) = RedisServer::start_sentinel() else {
        return;
    };
    let out = refused_start(&["--broker", "redis", "--redis-url", &sentinel.url()]).await;
    assert!(out.contains("Sentinel"), "names Sentinel: {out}");
    assert!(out.contains("not supported"), "says so: {out}");
    assert!(out.contains("primary"), "says what to use: {out}");
}

/// A replica answers reads but refuses every write (`READONLY`): before
/// this check, `/healthz` said ok while every publish failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_replica_is_refused_at_start() {
    // Its primary need not exist: a replica with its link down is still one.
    let Some(replica) = RedisServer::start_with(&["--replicaof", "127.0.0.1", "1"]) else {
        return;
    };
    let out = refused_start(&["--broker", "redis", "--redis-url", &replica.url()]).await;
    assert!(
        out.contains("read-only replica of 127.0.0.1:1"),
        "names it and its primary: {out}"
    );
    assert!(
        out.contains("point --redis-url at the primary"),
        "says what to use: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_url_is_refused_with_a_clear_message() {
    for url in [
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "sentinel://127.0.0.1:26379",
    ] {
        let out = refused_start(&["--broker", "redis", "--redis-url", url]).await;
        assert!(out.contains("--redis-url"), "names the flag: {out}");
        assert!(out.contains("Sentinel"), "names Sentinel: {out}");
        assert!(out.contains("not supported"), "says so: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_found_after_a_reconnect_marks_the_broker_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mut c = common::config();
    c.broker = BrokerKind::Redis;
    c.redis_url = redis.url();
    c.anonymous_publish = true;
    let s = start(c).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !s.state.broker.status().up {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The same address now answers as a Redis Cluster node.
    redis.restart_as_cluster_node();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = health(s.addr).await;
        let reason = body["reason"].as_str().unwrap_or_default();
        if status == 503 && reason.contains("Redis Cluster") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reported down as a Cluster within 10 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["broker_up"], false, "{body}");
    assert!(!s.state.broker.status().up);
    // Publishes fail with that reason rather than with CLUSTERDOWN or MOVED.
    let (status, body) =
        post_with_key(s.addr, "/api/publish", r#"{"topic":"orders","data":1}"#).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Redis Cluster"), "{body}");
    // It keeps checking: a standalone Redis back at the address is used again.
    redis.restart_as_standalone(&[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health(s.addr).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not back up within 10 s: {:?}",
            health(s.addr).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.state
        .publish("orders", serde_json::json!(2), None)
        .await
        .expect("publishes again");
    s.stop().await;
}

#[tokio::test]
async fn healthz_names_the_node() {
    let mut c = common::config();
    c.node_id = Some("node-a".into());
    let s = start(c).await;
    let (status, body) = health(s.addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_id"], "node-a", "{body}");
    s.stop().await;

    // Without --node-id: a generated one, the same on every request.
    let s = start(common::config()).await;
    let first = health(s.addr).await.1["node_id"].clone();
    assert!(first.as_str().is_some_and(|id| !id.is_empty()), "{first}");
    assert_eq!(health(s.addr).await.1["node_id"], first);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_the_node_on_redis_too() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut c = common::config();
    c.broker = BrokerKind::Redis;
    c.redis_url = redis.url();
    c.node_id = Some("node-r".into());
    let s = start(c).await;
    let (_, body) = health(s.addr).await;
    assert_eq!(body["node_id"], "node-r", "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_rediss_url_is_refused_at_start() {
    let out = refused_start(&[
        "--broker",
        "redis",
        "--redis-url",
        "rediss://127.0.0.1:6380/#insecure",
    ])
    .await;
    assert!(out.contains("#insecure"), "names it: {out}");
    assert!(out.contains("SSL_CERT_FILE"), "says what to do: {out}");
}

/// A CA and a server certificate for 127.0.0.1 it signed, made with the
/// `openssl` command in a fresh directory; `None` (printed) without it.
struct Certs {
    dir: std::path::PathBuf,
}

impl Certs {
    fn make() -> Option<Certs> {
        let have = std::process::Command::new("openssl")
            .arg("version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            let msg = "the openssl command is not installed: skipping the rediss:// test";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}, which CI=true does not allow");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "hublink-test-tls-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for (name, cn) in [("ca", "hublink test CA"), ("other-ca", "another CA")] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN={cn}"),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        Some(Certs { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn wait_health(addr: std::net::SocketAddr, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(addr).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz not {want} within 10 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `rediss://` connects over TLS and verifies the server's certificate
/// against the system's roots, or those of `SSL_CERT_FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_are_served_over_verified_tls() {
    let Some(certs) = Certs::make() else {
        return;
    };
    let Some(redis) = RedisServer::start_tls(
        std::path::Path::new(&certs.path("server.pem")),
        std::path::Path::new(&certs.path("server.key")),
    ) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.tls_port.unwrap());
    let args = [
        "--broker",
        "redis",
        "--redis-url",
        &url,
        "--publish-key",
        KEY,
    ];

    let p = ServerProcess::start_env(&args, &[("SSL_CERT_FILE", &certs.path("ca.pem"))]).await;
    wait_health(p.addr, 200).await;
    let mut c = common::Client::connect(&format!("ws://{}/ws", p.addr)).await;
    c.next_json().await;
    c.send_json(serde_json::json!({"type":"subscribe","topic":"orders"}))
        .await;
    assert_eq!(c.next_non_heartbeat().await["success"], true);
    let (status, body) = post_with_key(
        p.addr,
        "/api/publish",
        r#"{"topic":"orders","data":"over tls"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = c.next_non_heartbeat().await;
    assert_eq!(m["data"], "over tls", "{m}");
    // It went through that Redis: the stream is there on its plain port.
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("hublink:stream:{orders}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists);
    p.stop().await;

    // A certificate from a CA it does not trust: down, and the reason says why.
    let p =
        ServerProcess::start_env(&args, &[("SSL_CERT_FILE", &certs.path("other-ca.pem"))]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(p.addr).await;
        assert_eq!(status, 503, "{body}");
        // The first answer may still be "connecting to Redis".
        if body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("certificate"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate error within 10 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.stop().await;
}
