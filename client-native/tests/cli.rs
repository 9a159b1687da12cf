//! The `hublink` command, run as a process against a real hublink-server.

use hublink_server::{AppState, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hublink");
const WITHIN: Duration = Duration::from_secs(10);

async fn server(auth: bool) -> (SocketAddr, Arc<AppState>) {
    let mut config = Config::defaults();
    config.anonymous_publish = true;
    if auth {
        config.jwt_secret = Some("cli-tests-secret-0123456789".into());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (state, tx, creds) = AppState::new(config).unwrap();
    tokio::spawn(hublink_server::run_with_state(
        listener,
        state.clone(),
        tx,
        creds,
        std::future::pending::<()>(),
    ));
    (addr, state)
}

async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(WITHIN, Command::new(BIN).args(args).output())
        .await
        .expect("the command ends")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(lines[0].starts_with("hublink: error: "), "{stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?}");
}

#[tokio::test]
async fn watch_prints_json_lines_for_states_and_messages() {
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws");
    let mut child = Command::new(BIN)
        .args(["watch", &url, "--topic", "orders", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let result = tokio::time::timeout(WITHIN, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["event"] == "subscribed" {
                state
                    .publish("orders", serde_json::json!({"n": 1}), None)
                    .await
                    .unwrap();
                state
                    .publish("orders", serde_json::json!({"n": 2}), None)
                    .await
                    .unwrap();
            }
            seen.push(v);
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("watch --count 2 ends");
    assert!(result.success(), "{result:?}");
    let kinds: Vec<&str> = seen.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["state", "state"], "{seen:?}");
    assert_eq!(seen[0]["state"], "connecting");
    assert_eq!(seen[1]["state"], "connected");
    assert_eq!(seen[1]["reason"], "opened");
    let messages: Vec<&Value> = seen.iter().filter(|v| v["event"] == "message").collect();
    assert_eq!(messages.len(), 2, "{seen:?}");
    assert_eq!(messages[0]["topic"], "orders");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(messages[1]["data"]["n"], 2);
    assert!(messages[1]["epoch"].is_string());
}

#[tokio::test]
async fn publish_sends_one_message_and_exits_zero() {
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws");
    let (code, stdout, stderr) = run(&["publish", &url, "orders", r#"{"id":"A-17"}"#]).await;
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["event"], "published");
    let latest = state
        .broker
        .history()
        .latest("orders")
        .await
        .expect("history read")
        .expect("published");
    assert_eq!(latest.data, serde_json::json!({"id": "A-17"}));
}

#[tokio::test]
async fn publish_refused_by_the_server_fails_with_its_reason() {
    let (addr, _state) = server(true).await;
    let mut claims = hublink_server::auth::Claims {
        sub: Some("reader".into()),
        branch: None,
        role: None,
        topics: None,
        publish: None,
        exp: Some(hublink_server::now_ms() / 1000 + 3_600),
        nbf: None,
    };
    let token = hublink_server::auth::sign(b"cli-tests-secret-0123456789", &claims).unwrap();
    let url = format!("ws://{addr}/ws");
    let (code, _, stderr) = run(&["publish", &url, "orders", "1", "--token", &token]).await;
    assert_eq!(code, 1);
    assert_one_line_error(&stderr, "forbidden");
    claims.publish = Some(vec!["orders".into()]);
    let token = hublink_server::auth::sign(b"cli-tests-secret-0123456789", &claims).unwrap();
    let (code, _, stderr) = run(&["publish", &url, "orders", "1", "--token", &token]).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn usage_errors_are_one_line_with_exit_code_two() {
    let (code, _, stderr) = run(&["watch", "foo"]).await;
    assert_eq!(code, 2);
    assert_one_line_error(&stderr, "invalid URL \"foo\"");
    let (code, _, stderr) = run(&["watch", "ws://127.0.0.1:9/ws", "--dialect", "mqtt"]).await;
    assert_eq!(code, 2);
    assert_one_line_error(&stderr, "unknown dialect \"mqtt\"");
}

#[tokio::test]
async fn a_refused_token_exits_with_one_line_and_code_one() {
    let (addr, _state) = server(true).await;
    let url = format!("ws://{addr}/ws");
    let (code, stdout, stderr) = run(&["watch", &url, "--token", "bad"]).await;
    assert_eq!(code, 1, "{stdout}");
    assert_one_line_error(&stderr, "refused the token");
}

#[tokio::test]
async fn help_explains_every_flag() {
    let (code, stdout, _) = run(&["watch", "--help"]).await;
    assert_eq!(code, 0);
    for flag in [
        "--topic",
        "--dialect",
        "--token",
        "--json",
        "--keep-trying",
        "--backoff-initial",
        "--heartbeat-timeout",
    ] {
        assert!(stdout.contains(flag), "{flag} in {stdout}");
    }
}
