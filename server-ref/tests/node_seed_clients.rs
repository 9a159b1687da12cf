//! The seed documents' clients against hublink-server.
//!
//! - The documents' own code, byte for byte (tests/seed-clients/snippets/ and
//!   sessions/), run in Node with the `ws` package as `WebSocket`
//!   (run-snippets.mjs) and replayed as their wscat / Postman sessions
//!   (run-sessions.mjs), against the built `hublink-server --demo`.
//! - Node clients that behave as the documents' frontends do
//!   (tests/seed-clients/*.mjs) against each endpoint of an in-process server.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn repo_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.canonicalize().unwrap_or(dir).join("..")
}

/// `None` when node or `ws` is missing (a failure under CI=true).
fn node_ready() -> Option<()> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let ws = repo_root()
        .join("tools/node/node_modules/ws/package.json")
        .exists();
    if node.is_some() && ws {
        return Some(());
    }
    let why = if node.is_none() {
        "`node` is not on PATH"
    } else {
        "tools/node/node_modules/ws is missing (run scripts/setup)"
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("node seed clients cannot run under CI: {why}");
    }
    eprintln!("SKIPPED node seed clients: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_document_clients_receive_what_the_documents_promise() {
    if node_ready().is_none() {
        return;
    }
    let mut cfg = config();
    cfg.demo = true;
    cfg.jwt_secret = Some(SECRET.into());
    cfg.anonymous_endpoints = vec![
        "machines".into(),
        "devices".into(),
        "topics".into(),
        "power".into(),
    ];
    cfg.demo_machine_period = Duration::from_millis(200);
    cfg.demo_order_period = Duration::from_millis(200);
    cfg.demo_power_period = Duration::from_millis(50);
    cfg.demo_device_speedup = 60.0;
    let s = start(cfg).await;
    let base = format!("ws://{}", s.addr);
    let token = s.token(&claims("demo-user", "demo-branch", "admin"));

    let scripts: &[(&str, &[&str])] = &[
        (
            "machines.mjs",
            &[
                "OK sensor_data-all",
                "OK sensor_data-one CNC-001",
                "OK machine_status",
            ],
        ),
        (
            "devices.mjs",
            &[
                "OK connected",
                "OK pong",
                "OK system-info",
                "OK processes",
                "OK history",
                "OK network-interfaces",
            ],
        ),
        (
            "topics.mjs",
            &[
                "OK ack task_completion_update",
                "OK topics",
                "OK heartbeat",
                "OK task update",
                "OK event update",
                "OK task completion update",
            ],
        ),
        (
            "actions.mjs",
            &[
                "OK refused without token",
                "OK pong",
                "OK getRooms",
                "OK subscribeToOrder",
                "OK order event order:",
            ],
        ),
        ("power.mjs", &["OK data", "OK heartbeat", "OK health pong"]),
    ];
    let mut handles = Vec::new();
    for (script, expected) in scripts {
        let path = repo_root().join("tests/seed-clients").join(script);
        let base = base.clone();
        let token = token.clone();
        let script = script.to_string();
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        handles.push(tokio::task::spawn_blocking(move || {
            let out = Command::new("node")
                .arg(&path)
                .arg(&base)
                .arg(&token)
                .output()
                .expect("run node");
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
            for e in expected {
                assert!(
                    stdout.lines().any(|l| l.starts_with(&e)),
                    "{script} did not print {e:?}:\n{stdout}"
                );
            }
            script
        }));
    }
    for h in handles {
        let name = h.await.unwrap();
        eprintln!("{name}: ok");
    }
    s.stop().await;
}

/// Kills the server when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The built `hublink-server --demo` with snippets.mjs's SERVER_ARGS, on a
/// free port; returns it with the `ws://` base and the JWT secret its banner
/// printed. Its output is drained (and kept, for failure messages).
fn spawn_demo_server() -> (Proc, String, String, Arc<Mutex<String>>) {
    // As SERVER_ARGS in tests/seed-clients/snippets.mjs: faster feeds than the
    // defaults only so that a few seconds see several of each.
    let child = Command::new(env!("CARGO_BIN_EXE_hublink-server"))
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .args([
            "--demo-machine-period",
            "200ms",
            "--demo-order-period",
            "300ms",
        ])
        .args(["--heartbeat-interval", "1s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hublink-server");
    let mut p = Proc(child);
    let out = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = p.0.stdout.take().unwrap();
    let log = out.clone();
    std::thread::spawn(move || {
        let (mut addr, mut secret) = (None, None);
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(a) = line.split("demo mode on http://").nth(1) {
                addr = Some(a.trim().to_string());
            }
            if let Some(s) = line.split("(HUBLINK_JWT_SECRET): ").nth(1) {
                secret = Some(s.trim().to_string());
            }
            if let (Some(a), Some(s)) = (&addr, &secret) {
                let _ = tx.send((a.clone(), s.clone()));
            }
        }
    });
    let (addr, secret) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no demo banner: {}", out.lock().unwrap()));
    (p, format!("ws://{addr}"), secret, out)
}

#[test]
fn seed_documents_own_code_runs_unchanged_against_the_demo_server() {
    if node_ready().is_none() {
        return;
    }
    let (_server, base, secret, log) = spawn_demo_server();
    let runners = ["run-snippets.mjs", "run-sessions.mjs"].map(|script| {
        let path = repo_root().join("tests/seed-clients").join(script);
        let (base, secret) = (base.clone(), secret.clone());
        std::thread::spawn(move || {
            let out = Command::new("node")
                .arg(&path)
                .arg(&base)
                .arg(&secret)
                .output()
                .expect("run node");
            (script, out)
        })
    });
    let mut failed = Vec::new();
    for r in runners {
        let (script, out) = r.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{script}:\n{stdout}");
        if !out.status.success() {
            failed.push(format!(
                "{script}:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "seed code failed against hublink-server:\n{}\nserver output:\n{}",
        failed.join("\n"),
        log.lock().unwrap()
    );
}
