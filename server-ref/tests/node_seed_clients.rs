//! Node clients written as the seed documents' JavaScript snippets behave
//! (tests/seed-clients/*.mjs, using the `ws` package) run against the matching
//! endpoints of a `--demo` server and must receive what the documents say.

mod common;

use std::path::PathBuf;
use std::process::Command;
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
