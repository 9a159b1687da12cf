//! The `hublink` command, run as a process against a real hublink-server.

use hublink_server::{AppState, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_hublink");
const WITHIN: Duration = Duration::from_secs(10);

fn config(auth: bool) -> Config {
    let mut config = Config::defaults();
    config.anonymous_publish = true;
    if auth {
        config.jwt_secret = Some("cli-tests-secret-0123456789".into());
    }
    config
}

async fn start(config: Config) -> (SocketAddr, Arc<AppState>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config).unwrap();
    tokio::spawn(hublink_server::run(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    (addr, state)
}

async fn server(auth: bool) -> (SocketAddr, Arc<AppState>) {
    start(config(auth)).await
}

/// A loopback port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        WITHIN,
        Command::new(BIN).args(args).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("`hublink {}` ends", args.join(" ")))
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spawn(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads JSON lines until one matches `pred`; returns them all.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    mut pred: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    tokio::time::timeout(WITHIN, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before the wanted line: {seen:?}"));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let done = pred(&v);
            seen.push(v);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the wanted line in time; got {seen:?}"));
    seen
}

/// Every JSON line of an output.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn exits(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(WITHIN, child.wait())
        .await
        .expect("the command ends")
        .unwrap()
}

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(lines[0].starts_with("hublink: error: "), "{stderr:?}");
    assert!(lines[0].contains(needle), "{needle:?} in {stderr:?}");
}

/// The last JSON line, which says why the command stopped.
fn assert_stopped(lines: &[Value], reason: &str, exit: i64) {
    let last = lines.last().expect("some output");
    assert_eq!(last["event"], "stopped", "{lines:?}");
    assert_eq!(last["reason"], reason, "{lines:?}");
    assert_eq!(last["exit"], exit, "{lines:?}");
}

/// What one relayed client sent, and whether it ended.
type Record = Arc<Mutex<(Vec<u8>, bool)>>;

/// A TCP relay in front of a server that keeps what each client sent, to
/// tell whether the client ended its WebSocket with a close frame.
struct Spy {
    addr: SocketAddr,
    /// Per connection: the bytes from the client, and whether it ended.
    conns: Arc<Mutex<Vec<Record>>>,
}

impl Spy {
    async fn start(upstream: SocketAddr) -> Spy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Record>>> = Arc::default();
        let list = conns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = Arc::new(Mutex::new((Vec::new(), false)));
                list.lock().unwrap().push(record.clone());
                tokio::spawn(async move {
                    let server = TcpStream::connect(upstream).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    });
                    let mut buf = [0u8; 4096];
                    loop {
                        match cr.read(&mut buf).await {
                            Ok(n) if n > 0 => {
                                record.lock().unwrap().0.extend_from_slice(&buf[..n]);
                                if sw.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            _ => break,
                        }
                    }
                    record.lock().unwrap().1 = true;
                    let _ = sw.shutdown().await;
                });
            }
        });
        Spy { addr, conns }
    }

    /// Once every connection ended: the code of the close frame each client
    /// sent last, `None` for one that ended without.
    async fn close_codes(&self) -> Vec<Option<u16>> {
        tokio::time::timeout(WITHIN, async {
            loop {
                let done = {
                    let conns = self.conns.lock().unwrap();
                    conns.iter().all(|c| c.lock().unwrap().1)
                };
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every relayed connection ends");
        let conns = self.conns.lock().unwrap();
        conns
            .iter()
            .map(|c| client_close_code(&c.lock().unwrap().0))
            .collect()
    }
}

/// The code of the last close frame in what a client sent: the HTTP
/// upgrade request, then masked WebSocket frames.
fn client_close_code(bytes: &[u8]) -> Option<u16> {
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut rest = &bytes[start..];
    let mut code = None;
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let masked = rest[1] & 0x80 != 0;
        let (len, mut at) = match rest[1] & 0x7f {
            126 => (
                u16::from_be_bytes(rest.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask: [u8; 4] = if masked {
            let m = rest.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            m
        } else {
            [0; 4]
        };
        let payload = rest.get(at..at + len)?;
        if opcode == 8 && len >= 2 {
            code = Some(u16::from_be_bytes([
                payload[0] ^ mask[0],
                payload[1] ^ mask[1],
            ]));
        }
        rest = &rest[at + len..];
    }
    code
}

/// What no hublink-server endpoint does, and the seed topic backend does:
/// answer `get_topics`, and ignore a `publish` (its log says `unknown message
/// type "publish" ignored`).
async fn seed_topics_backend() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let hello =
                    r#"{"type":"connected","client_id":"127.0.0.1-seed","timestamp":1763769600}"#;
                let _ = ws.send(Message::text(hello)).await;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if v["type"] == "get_topics" {
                        let _ = ws
                            .send(Message::text(r#"{"type":"topics","topics":[]}"#))
                            .await;
                    }
                }
            });
        }
    });
    addr
}

fn kill(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn watch_prints_json_lines_for_states_and_messages() {
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws");
    let (mut child, mut lines) = spawn(&["watch", &url, "--topic", "orders", "--count", "2"]);
    let mut seen = read_until(&mut lines, |v| v["event"] == "subscribed").await;
    state
        .publish("orders", serde_json::json!({"n": 1}), None)
        .await
        .unwrap();
    state
        .publish("orders", serde_json::json!({"n": 2}), None)
        .await
        .unwrap();
    seen.extend(read_until(&mut lines, |v| v["event"] == "stopped").await);
    let result = exits(&mut child).await;
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
    assert_stopped(&seen, "count_reached", 0);
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "stopped is the last line"
    );
}

#[tokio::test]
async fn publish_sends_one_message_and_exits_zero() {
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws");
    let (code, stdout, stderr) = run(&["publish", &url, "orders", r#"{"id":"A-17"}"#]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines[0]["event"], "published", "{lines:?}");
    assert_eq!(lines[0]["confirmed"], true, "{lines:?}");
    assert_stopped(&lines, "published", 0);
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
    assert_stopped(&json_lines(&stdout), "auth_rejected", 1);
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

// ----- issue #12: the command behaves as scripts and people expect ----------

/// `hublink watch URL --dialect power | head -2`.
#[tokio::test]
async fn watch_ends_with_a_close_frame_when_stdout_is_closed() {
    let mut config = config(false);
    config.demo = true; // power readings every 100 ms
    let (addr, _state) = start(config).await;
    let spy = Spy::start(addr).await;
    let url = format!("ws://{}/api/v1/ws/v2/power?module=1", spy.addr);
    let (mut child, mut lines) = spawn(&["watch", &url, "--dialect", "power"]);
    for _ in 0..2 {
        tokio::time::timeout(WITHIN, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("a line");
    }
    drop(lines);
    let status = exits(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(spy.close_codes().await, [Some(1000)]);
}

/// Nothing more to print after the reader went away: the closed pipe itself
/// ends the command, not the next write.
#[tokio::test]
async fn watch_ends_when_stdout_is_closed_on_a_quiet_topic() {
    let (addr, _state) = server(false).await;
    let spy = Spy::start(addr).await;
    let url = format!("ws://{}/ws", spy.addr);
    let (mut child, mut lines) = spawn(&["watch", &url, "--topic", "quiet"]);
    read_until(&mut lines, |v| v["event"] == "subscribed").await;
    drop(lines);
    let status = exits(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(spy.close_codes().await, [Some(1000)]);
}

#[tokio::test]
async fn sigterm_and_ctrl_c_close_with_a_close_frame_and_exit_zero() {
    let (addr, _state) = server(false).await;
    for (signal, reason) in [("TERM", "terminated"), ("INT", "interrupted")] {
        let spy = Spy::start(addr).await;
        let url = format!("ws://{}/ws", spy.addr);
        let (mut child, mut lines) = spawn(&["watch", &url, "--topic", "orders"]);
        read_until(&mut lines, |v| v["event"] == "subscribed").await;
        kill(&child, signal);
        let rest = read_until(&mut lines, |v| v["event"] == "stopped").await;
        let status = exits(&mut child).await;
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status:?}");
        assert_stopped(&rest, reason, 0);
        assert_eq!(spy.close_codes().await, [Some(1000)], "SIG{signal}");
    }
}

#[tokio::test]
async fn zero_and_nonsense_durations_are_usage_errors() {
    let closed = format!("ws://{}/ws", closed_port().await);
    // The issue's reproduction: a tight retry loop against a closed port.
    let (code, stdout, stderr) = run(&["watch", &closed, "--backoff-initial", "0"]).await;
    assert_eq!(code, 2, "{stdout}");
    assert_one_line_error(&stderr, "--backoff-initial");
    for (flag, value) in [
        ("--backoff-initial", "0"),
        ("--backoff-initial", "0ms"),
        ("--backoff-initial", "0.1ms"),
        ("--backoff-initial", "-1s"),
        ("--backoff-initial", "soon"),
        ("--backoff-initial", "10x"),
        ("--backoff-initial", ""),
        ("--backoff-max", "0s"),
        ("--heartbeat-timeout", "0"),
        ("--heartbeat-timeout", "1e30s"),
        ("--heartbeat-timeout", "NaN"),
        ("--connect-timeout", "0"),
        ("--connect-timeout", "inf"),
        ("--connect-timeout", "1e400"),
        ("--timeout", "0"),
    ] {
        // `--flag=value`: a value like -1s would be taken for a flag.
        let arg = format!("{flag}={value}");
        let mut args = vec!["publish", &closed, "orders", "1", &arg];
        if flag != "--timeout" {
            args.extend(["--timeout", "2s"]);
        }
        let (code, stdout, stderr) = run(&args).await;
        assert_eq!(code, 2, "{flag} {value:?}: {stdout} {stderr}");
        assert_one_line_error(&stderr, flag);
        assert!(stderr.contains(&format!("{value:?}")), "{stderr}");
    }
}

#[tokio::test]
async fn a_backoff_max_below_the_initial_delay_is_a_usage_error() {
    let closed = format!("ws://{}/ws", closed_port().await);
    let args = [
        "watch",
        &closed,
        "--backoff-initial",
        "10s",
        "--backoff-max",
        "5s",
    ];
    let (code, stdout, stderr) = run(&args).await;
    assert_eq!(code, 2, "{stdout}");
    assert_one_line_error(
        &stderr,
        "--backoff-max (5s) is below --backoff-initial (10s)",
    );
}

#[tokio::test]
async fn publish_on_a_dialect_without_publish_is_a_usage_error() {
    let closed = format!("ws://{}/ws", closed_port().await);
    for dialect in ["topics", "machines", "devices", "actions", "power"] {
        let (code, stdout, stderr) = run(&[
            "publish",
            &closed,
            "orders",
            "1",
            "--timeout",
            "2s",
            "--dialect",
            dialect,
        ])
        .await;
        assert_eq!(code, 2, "{dialect}: {stdout}");
        assert_one_line_error(&stderr, &format!("the {dialect} dialect cannot publish"));
        assert_stopped(&json_lines(&stdout), "usage", 2);
    }
}

/// The default dialect against the seed topic backend: it answers the
/// topics request that follows the publish, and ignored the publish.
#[tokio::test]
async fn publish_to_a_server_that_ignores_it_is_not_reported_as_published() {
    let url = format!("ws://{}/api/v1/ws/", seed_topics_backend().await);
    let (code, stdout, stderr) = run(&["publish", &url, "orders", "1"]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert!(lines.iter().all(|v| v["event"] != "published"), "{lines:?}");
    assert_eq!(lines[0]["event"], "sent", "{lines:?}");
    assert_eq!(lines[0]["confirmed"], false);
    assert!(
        lines[0]["detail"]
            .as_str()
            .unwrap()
            .contains("no confirmation"),
        "{lines:?}"
    );
    assert_stopped(&lines, "sent", 0);
    // People read the same.
    let (code, stdout, stderr) = run(&["publish", &url, "orders", "1", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("\"published\""), "{stdout}");
}

/// hublink-server's `/ws/machines` reads and discards what clients send, and
/// answers nothing: the publish is sent, and not confirmed.
#[tokio::test]
async fn publish_to_an_endpoint_that_discards_it_says_it_is_unconfirmed() {
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws/machines");
    let (code, stdout, stderr) = run(&["publish", &url, "orders", "1", "--timeout", "5s"]).await;
    assert_eq!(code, 0, "{stdout} {stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines[0]["event"], "sent", "{lines:?}");
    assert_eq!(lines[0]["confirmed"], false);
    assert_stopped(&lines, "sent", 0);
    assert!(state
        .broker
        .history()
        .latest("orders")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn publish_help_says_which_servers_confirm() {
    let (code, stdout, _) = run(&["publish", "--help"]).await;
    assert_eq!(code, 0);
    assert!(!stdout.contains("hublink and topics dialects"), "{stdout}");
    assert!(stdout.contains("hublink.v1"), "{stdout}");
    assert!(stdout.contains("no confirmation"), "{stdout}");
    assert!(stdout.contains("--outbox <FILE>"), "{stdout}");
}

#[tokio::test]
async fn a_wrong_path_ends_the_command_with_the_status_and_path() {
    let (addr, _state) = server(false).await;
    for (path, status) in [
        ("/nope", "404"),
        ("/api/v1/ws/v2/power", "400"), // no ?module=
    ] {
        let url = format!("ws://{addr}{path}");
        let (code, stdout, stderr) = run(&["watch", &url]).await;
        assert_eq!(code, 1, "{path}: {stdout}");
        assert_one_line_error(&stderr, &format!("HTTP {status}"));
        assert!(stderr.contains(path), "{stderr}");
        assert!(!stderr.contains("token"), "{stderr}");
        let lines = json_lines(&stdout);
        assert_stopped(&lines, "upgrade_refused", 1);

        let (code, _, stderr) = run(&["publish", &url, "orders", "1", "--timeout", "5s"]).await;
        assert_eq!(code, 1, "{path}");
        assert_one_line_error(&stderr, &format!("HTTP {status}"));
        assert!(stderr.contains(path), "{stderr}");
    }
}

#[tokio::test]
async fn a_wrong_path_with_keep_trying_retries_with_backoff() {
    let (addr, _state) = server(false).await;
    let url = format!("ws://{addr}/nope");
    let (mut child, mut lines) = spawn(&[
        "watch",
        &url,
        "--keep-trying",
        "--backoff-initial",
        "50ms",
        "--backoff-max",
        "100ms",
    ]);
    let mut refused = 0;
    let seen = read_until(&mut lines, |v| {
        if v["reason"] == "upgrade_refused" {
            assert_eq!(v["state"], "reconnecting", "{v}");
            assert_eq!(v["status"], 404, "{v}");
            assert!(v["retry_in_ms"].as_u64().unwrap() > 0, "{v}");
            refused += 1;
        }
        refused == 2
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running: {seen:?}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_missing_token_is_not_called_a_refused_one() {
    let (addr, _state) = server(true).await;
    let url = format!("ws://{addr}/ws");
    let (code, stdout, stderr) = run(&["watch", &url]).await;
    assert_eq!(code, 1, "{stdout}");
    assert_one_line_error(&stderr, "requires a token");
    assert!(!stderr.contains("refused the token"), "{stderr}");
    let (code, _, stderr) = run(&["publish", &url, "orders", "1"]).await;
    assert_eq!(code, 1);
    assert_one_line_error(&stderr, "requires a token");
    assert!(!stderr.contains("refused the token"), "{stderr}");
    let (code, _, stderr) = run(&["publish", &url, "orders", "1", "--token", "bad"]).await;
    assert_eq!(code, 1);
    assert_one_line_error(&stderr, "refused the token");
}

// ----- issue #17: an outbox for a publish whose answer never came -----------

/// A server that speaks hublink.v1 and takes publishes without ever
/// answering them, as if every ack were lost; it keeps the ids it got.
async fn unanswering_hublink() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = ids.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // The signature is tungstenite's handshake callback's.
                #[allow(clippy::result_large_err)]
                let select =
                    |_: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
                        response.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static("hublink.v1"),
                        );
                        Ok(response)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, select).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if v["type"] == "publish" {
                        seen.lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_owned());
                    }
                }
            });
        }
    });
    (addr, ids)
}

#[tokio::test]
async fn publish_with_an_outbox_resends_an_unanswered_publish_with_the_same_id() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-outbox");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let outbox = dir.join("outbox.jsonl");
    let outbox = outbox.to_str().unwrap();

    // The first run's publish gets no answer: it times out.
    let (silent, ids) = unanswering_hublink().await;
    let url = format!("ws://{silent}/ws");
    let args = [
        "publish",
        &url,
        "orders",
        r#"{"n":1}"#,
        "--timeout",
        "1s",
        "--outbox",
        outbox,
    ];
    let (code, stdout, stderr) = run(&args).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_stopped(&json_lines(&stdout), "timeout", 1);
    assert_one_line_error(&stderr, "kept in the outbox");
    let first_id = ids.lock().unwrap().first().cloned().expect("it was sent");

    // The next run sends it again, with its id, before its own message.
    let (addr, state) = server(false).await;
    let url = format!("ws://{addr}/ws");
    let (code, stdout, stderr) =
        run(&["publish", &url, "orders", r#"{"n":2}"#, "--outbox", outbox]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines[0]["event"], "published", "{lines:?}");
    assert_eq!(lines[0]["outbox"], true, "{lines:?}");
    assert_eq!(lines[0]["id"], first_id.as_str(), "{lines:?}");
    assert_eq!(lines[0]["seq"], 1, "{lines:?}");
    assert_eq!(lines[1]["event"], "published", "{lines:?}");
    assert_eq!(lines[1]["confirmed"], true, "{lines:?}");
    assert_eq!(lines[1]["seq"], 2, "{lines:?}");
    assert_stopped(&lines, "published", 0);
    let latest = state
        .broker
        .history()
        .latest("orders")
        .await
        .expect("history read")
        .expect("published");
    assert_eq!(
        (latest.seq, &latest.data),
        (2, &serde_json::json!({"n": 2}))
    );
    assert_eq!(std::fs::read_to_string(outbox).unwrap(), "", "nothing left");
}
