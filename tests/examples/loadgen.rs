//! The load generator behind `bench/run` (see BENCHMARKS.md).
//!
//! Each mode starts the server under test itself (`--server-cmd`, a shell
//! command that `exec`s the server so that its pid is the server's), waits for
//! its port, drives it, reads its CPU time and RSS from `/proc/<pid>`, and
//! prints one JSON object on stdout. Progress goes to stderr. A run in which any
//! message is lost or duplicated, or a connection drops, exits with status 1.
//!
//! - `fanout`: `--subs` subscribers and one publisher; a fixed-rate run for
//!   latency and CPU per delivery, then rising rates until delivery falls short
//!   or p99 exceeds 100 ms. Every message carries its index (`bi`) and its send
//!   time in µs since the generator started (`bt`), so each subscriber counts
//!   every index and measures publish-to-receive latency on one monotonic clock.
//! - `idle`: `--conns` connected (authenticated and subscribed on hublink)
//!   connections that answer heartbeats; server RSS before and after.
//! - `storm`: `--conns` clients of the `hublink` crate connecting with JWTs at
//!   once; then the server is killed and restarted and the same clients come
//!   back with their own backoff and jitter.
//!
//! `--kind hublink` speaks hublink.v1 on `/ws` (subscribe, publish, heartbeat
//! echo); `--kind plain` is for the baselines, which broadcast every message a
//! client sends to every other client.
//!
//! Latencies are kept as exact per-delivery samples (a `Vec<u32>` of µs per
//! step, sorted once): at a few million samples per run that is a few MB, so
//! a histogram crate would buy nothing but a dependency.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hublink_server::auth::{sign, Claims};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

#[derive(Parser)]
#[command(about = "hublink benchmark load generator (see BENCHMARKS.md)")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// hublink.v1 on /ws.
    Hublink,
    /// A broadcast-to-everyone-else baseline.
    Plain,
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Shell command starting the server under test; it must `exec` the server.
    #[arg(long)]
    server_cmd: String,
    /// Port the server listens on (127.0.0.1).
    #[arg(long)]
    port: u16,
    /// Protocol of the server.
    #[arg(long, value_enum)]
    kind: Kind,
    /// URL path of the WebSocket endpoint.
    #[arg(long, default_value = "/ws")]
    path: String,
    /// JWT secret of the server (hublink kind): clients then send tokens.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Bind client sockets to this many source addresses 127.0.0.2.. (0: let
    /// the kernel choose): every source address has its own ephemeral ports.
    #[arg(long, default_value_t = 8)]
    src_ips: u8,
}

#[derive(Subcommand)]
enum Mode {
    /// Fan-out: one publisher, many subscribers on one topic.
    Fanout {
        #[command(flatten)]
        server: ServerArgs,
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Messages per second of the fixed-rate run.
        #[arg(long, default_value_t = 100)]
        fixed_rate: u64,
        /// Rising rates (messages per second), tried in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "50,100,150,200,250,300,400,500,600,800,1000"
        )]
        rates: Vec<u64>,
        /// Seconds of publishing per step.
        #[arg(long, default_value_t = 5.0)]
        step_secs: f64,
        /// Size in bytes of the published message.
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Longest wait for the last deliveries of a step, seconds.
        #[arg(long, default_value_t = 10.0)]
        drain_secs: f64,
    },
    /// Idle memory: many connected, subscribed connections answering heartbeats.
    Idle {
        #[command(flatten)]
        server: ServerArgs,
        /// Connections.
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Seconds to hold them (at least two heartbeat periods) before reading RSS.
        #[arg(long, default_value_t = 12.0)]
        hold_secs: f64,
    },
    /// Connect storm with hublink clients, then a server restart.
    Storm {
        #[command(flatten)]
        server: ServerArgs,
        /// Clients.
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Longest wait for a storm to complete, seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout_secs: f64,
    },
}

/// µs since the generator started: the clock of every timestamp in a payload.
fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: FAIL: {msg}");
    std::process::exit(1);
}

// ------------------------------------------------------------------ the server

struct Server {
    child: Child,
    args: ServerArgs,
}

impl Server {
    async fn start(args: &ServerArgs) -> Server {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", args.server_cmd))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {:?}: {e}", args.server_cmd)));
        let server = Server {
            child,
            args: args.clone(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.args.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fail(&format!(
            "server {:?} did not listen on port {} within 20 s",
            self.args.server_cmd, self.args.port
        ));
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime of the server, in µs.
    fn cpu_us(&self) -> u64 {
        proc_cpu_us(&format!("/proc/{}/stat", self.pid()))
    }

    /// VmRSS of the server, in bytes.
    fn rss(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn clock_ticks() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

fn proc_cpu_us(path: &str) -> u64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm)": state is field 3, utime 14 and stime 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) * 1_000_000 / clock_ticks()
}

// ------------------------------------------------------------------ connections

fn token(secret: &str, sub: &str, publish: bool) -> String {
    let claims = Claims {
        sub: Some(sub.into()),
        publish: publish.then(|| vec!["**".into()]),
        exp: Some(hublink_server::now_ms() / 1000 + 3600),
        ..Default::default()
    };
    sign(secret.as_bytes(), &claims).unwrap_or_else(|e| fail(&format!("signing a JWT: {e}")))
}

async fn dial(args: &ServerArgs, i: usize, token: Option<&str>) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if args.src_ips > 0 {
        let ip = Ipv4Addr::new(127, 0, 0, 2 + (i % args.src_ips as usize) as u8);
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut url = format!("ws://127.0.0.1:{}{}", args.port, args.path);
    if let Some(t) = token {
        url.push_str("?token=");
        url.push_str(t);
    }
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if args.kind == Kind::Hublink {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("hublink.v1"),
        );
    }
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    Ok(ws)
}

/// Reads until a text frame whose `type` is `ty`; answers heartbeats on the way.
async fn expect_type(ws: &mut Ws, ty: &str) -> Result<Value, String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .map_err(|_| format!("no {ty:?} within 20 s"))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                if v["type"] == ty {
                    return Ok(v);
                }
                if v["type"] == "error" {
                    return Err(format!("server error: {t}"));
                }
                if v["type"] == "heartbeat" {
                    echo_heartbeat(ws, &v).await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("closed before {ty:?}")),
        }
    }
}

async fn echo_heartbeat<S>(ws: &mut S, v: &Value) -> Result<(), String>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let echo = json!({"type": "heartbeat", "timestamp": v["timestamp"]}).to_string();
    ws.send(Message::text(echo))
        .await
        .map_err(|e| e.to_string())
}

/// Connects one subscriber: upgrade, then (hublink) `connected`, `subscribe`, ack.
async fn subscriber(args: &ServerArgs, i: usize, topic: &str) -> Result<Ws, String> {
    let tok = args
        .jwt_secret
        .as_deref()
        .map(|s| token(s, &format!("bench-{i}"), false));
    let mut ws = dial(args, i, tok.as_deref()).await?;
    if args.kind == Kind::Hublink {
        expect_type(&mut ws, "connected").await?;
        let sub = json!({"type": "subscribe", "topic": topic}).to_string();
        ws.send(Message::text(sub))
            .await
            .map_err(|e| e.to_string())?;
        let ack = expect_type(&mut ws, "subscribe_ack").await?;
        if ack["success"] != true {
            return Err(format!("subscribe refused: {ack}"));
        }
    }
    Ok(ws)
}

/// Connects `n` subscribers, at most `parallel` handshakes at a time.
async fn connect_all(args: &ServerArgs, n: usize, topic: &str, parallel: usize) -> Vec<Ws> {
    let sem = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let sem = sem.clone();
        let args = args.clone();
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            subscriber(&args, i, &topic).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(ws)) => out.push(ws),
            Ok(Err(e)) => fail(&format!("subscriber {i}: {e}")),
            Err(e) => fail(&format!("subscriber {i} task: {e}")),
        }
    }
    out
}

// ------------------------------------------------------------------ fan-out

/// What one subscriber saw in the current step.
#[derive(Default)]
struct StepLog {
    /// Deliveries per message index (relative to the step's first index).
    counts: Vec<u8>,
    /// Latency of every delivery, µs.
    lat_us: Vec<u32>,
    /// Deliveries of indices outside the step (late from an earlier one).
    stray: u64,
}

struct Step {
    base: AtomicU64,
    len: AtomicU64,
}

/// Finds the integer after `"key":` in a frame without parsing it all.
fn field(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

struct Shared {
    step: Step,
    delivered: AtomicU64,
    dropped_conns: AtomicUsize,
    stopping: AtomicBool,
}

async fn receive(
    mut rx: SplitStream<Ws>,
    tx: Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>,
    log: Arc<Mutex<StepLog>>,
    shared: Arc<Shared>,
) {
    while let Some(msg) = rx.next().await {
        let text = match &msg {
            Ok(Message::Text(t)) => t.as_str(),
            Ok(Message::Binary(b)) => std::str::from_utf8(b).unwrap_or(""),
            Ok(_) => continue,
            Err(_) => break,
        };
        let (Some(i), Some(t)) = (field(text, "\"bi\":"), field(text, "\"bt\":")) else {
            if text.contains("\"type\":\"heartbeat\"") {
                if let Ok(v) = serde_json::from_str::<Value>(text) {
                    let _ = echo_heartbeat(&mut *tx.lock().await, &v).await;
                }
            }
            continue;
        };
        let lat = now_us().saturating_sub(t).min(u32::MAX as u64) as u32;
        let base = shared.step.base.load(Ordering::Acquire);
        let len = shared.step.len.load(Ordering::Acquire);
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        if i >= base && i < base + len {
            let k = (i - base) as usize;
            if l.counts.len() < len as usize {
                l.counts.resize(len as usize, 0);
            }
            l.counts[k] = l.counts[k].saturating_add(1);
            l.lat_us.push(lat);
        } else {
            l.stray += 1;
        }
        drop(l);
        shared.delivered.fetch_add(1, Ordering::Relaxed);
    }
    if !shared.stopping.load(Ordering::Relaxed) {
        shared.dropped_conns.fetch_add(1, Ordering::Relaxed);
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k] as f64 / 1000.0
}

fn publish_frame(kind: Kind, i: u64, size: usize) -> String {
    let t = now_us();
    let head = format!("{{\"bi\":{i},\"bt\":{t},\"pad\":\"");
    let body_len = match kind {
        Kind::Hublink => size.saturating_sub(49),
        Kind::Plain => size.saturating_sub(49),
    };
    let pad = body_len.saturating_sub(head.len() + 2);
    let data = format!("{head}{}\"}}", "x".repeat(pad));
    // Same bytes on every stack: the baselines relay the frame as it is.
    format!("{{\"type\":\"publish\",\"topic\":\"bench\",\"data\":{data}}}")
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    server: &Server,
    publisher: &mut SplitSink<Ws, Message>,
    logs: &[Arc<Mutex<StepLog>>],
    shared: &Shared,
    next_index: &mut u64,
    rate: u64,
    secs: f64,
    size: usize,
    drain: f64,
    kind: Kind,
) -> Value {
    let n = ((rate as f64) * secs).round().max(1.0) as u64;
    let subs = logs.len() as u64;
    let base = *next_index;
    *next_index += n;
    for l in logs {
        let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
        *l = StepLog {
            counts: vec![0; n as usize],
            lat_us: Vec::with_capacity(n as usize),
            stray: 0,
        };
    }
    shared.step.len.store(n, Ordering::Release);
    shared.step.base.store(base, Ordering::Release);
    shared.delivered.store(0, Ordering::Relaxed);
    let cpu0 = server.cpu_us();
    let gen0 = proc_cpu_us("/proc/self/stat");
    let t0 = Instant::now();
    let period = 1.0 / rate as f64;
    for k in 0..n {
        let due = t0 + Duration::from_secs_f64(k as f64 * period);
        if due > Instant::now() {
            if publisher.flush().await.is_err() {
                fail("publisher connection lost");
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let f = publish_frame(kind, base + k, size);
        if publisher.feed(Message::text(f)).await.is_err() {
            fail("publisher connection lost");
        }
    }
    if publisher.flush().await.is_err() {
        fail("publisher connection lost");
    }
    let sent_secs = t0.elapsed().as_secs_f64();
    let expected = n * subs;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(drain);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Anything still in flight now would be a duplicate or a straggler: give
    // it a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_us() - cpu0;
    let gen = proc_cpu_us("/proc/self/stat") - gen0;
    let (mut lost, mut dup, mut stray) = (0u64, 0u64, 0u64);
    let mut lat: Vec<u32> = Vec::with_capacity(expected as usize);
    for l in logs {
        let l = std::mem::take(&mut *l.lock().unwrap_or_else(|e| e.into_inner()));
        for &c in &l.counts {
            match c {
                0 => lost += 1,
                1 => {}
                c => dup += (c - 1) as u64,
            }
        }
        stray += l.stray;
        lat.extend_from_slice(&l.lat_us);
    }
    lat.sort_unstable();
    let delivered = lat.len() as u64;
    json!({
        "rate": rate,
        "messages": n,
        "expected": expected,
        "delivered": delivered,
        "lost": lost,
        "duplicated": dup,
        "stray": stray,
        "deliveries_per_s": expected as f64 / sent_secs,
        "publish_secs": sent_secs,
        "wall_secs": wall,
        "server_cpu_us": cpu,
        "cpu_us_per_delivery": cpu as f64 / delivered.max(1) as f64,
        "generator_cpu_share": gen as f64 / 1e6 / wall,
        "p50_ms": pct(&lat, 0.50),
        "p99_ms": pct(&lat, 0.99),
        "max_ms": lat.last().map(|&v| v as f64 / 1000.0).unwrap_or(f64::NAN),
        "dropped_conns": shared.dropped_conns.load(Ordering::Relaxed),
    })
}

#[allow(clippy::too_many_arguments)]
async fn fanout(
    args: ServerArgs,
    subs: usize,
    fixed_rate: u64,
    rates: Vec<u64>,
    step_secs: f64,
    size: usize,
    drain_secs: f64,
) -> Value {
    let server = Server::start(&args).await;
    eprintln!("fanout: connecting {subs} subscribers");
    let conns = connect_all(&args, subs, "bench", 100).await;
    let shared = Arc::new(Shared {
        step: Step {
            base: AtomicU64::new(u64::MAX / 2),
            len: AtomicU64::new(0),
        },
        delivered: AtomicU64::new(0),
        dropped_conns: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
    });
    let mut logs = Vec::with_capacity(subs);
    for ws in conns {
        let (tx, rx) = ws.split();
        let log = Arc::new(Mutex::new(StepLog::default()));
        logs.push(log.clone());
        tokio::spawn(receive(
            rx,
            Arc::new(tokio::sync::Mutex::new(tx)),
            log,
            shared.clone(),
        ));
    }
    // The publisher: on hublink a client with a publish claim (or anonymous
    // publishing); it subscribes to nothing, so it receives no copy.
    let tok = args
        .jwt_secret
        .as_deref()
        .map(|s| token(s, "bench-publisher", true));
    let mut pubws = dial(&args, subs, tok.as_deref())
        .await
        .unwrap_or_else(|e| fail(&format!("publisher: {e}")));
    if args.kind == Kind::Hublink {
        expect_type(&mut pubws, "connected")
            .await
            .unwrap_or_else(|e| fail(&format!("publisher: {e}")));
    }
    let (mut publisher, mut pub_rx) = pubws.split();
    tokio::spawn(async move {
        while let Some(Ok(m)) = pub_rx.next().await {
            if let Message::Text(t) = m {
                if t.contains("\"type\":\"error\"") {
                    fail(&format!("publisher got an error: {t}"));
                }
            }
        }
    });
    let rss = server.rss();
    let mut next_index = 0u64;
    let check = |step: &Value, what: &str| {
        if step["duplicated"].as_u64() != Some(0) || step["stray"].as_u64() != Some(0) {
            fail(&format!(
                "{what}: messages duplicated or out of their step: {step}"
            ));
        }
        if step["dropped_conns"].as_u64() != Some(0) {
            fail(&format!("{what}: subscriber connections dropped: {step}"));
        }
    };
    // Warm-up (not reported): fills caches and the history window.
    let warm = run_step(
        &server,
        &mut publisher,
        &logs,
        &shared,
        &mut next_index,
        fixed_rate.min(50),
        1.0,
        size,
        drain_secs,
        args.kind,
    )
    .await;
    check(&warm, "warm-up");
    eprintln!("fanout: fixed rate {fixed_rate}/s");
    let fixed = run_step(
        &server,
        &mut publisher,
        &logs,
        &shared,
        &mut next_index,
        fixed_rate,
        step_secs,
        size,
        drain_secs,
        args.kind,
    )
    .await;
    eprintln!("  {fixed}");
    check(&fixed, "fixed-rate run");
    if fixed["lost"].as_u64() != Some(0) {
        fail(&format!("fixed-rate run lost messages: {fixed}"));
    }
    let mut steps = Vec::new();
    let mut best: Option<Value> = None;
    // On a shared machine a neighbour's burst can push one step's p99 over
    // the line: a step gets a second try before the ramp ends.
    'ramp: for &rate in &rates {
        for attempt in 0..2 {
            let s = run_step(
                &server,
                &mut publisher,
                &logs,
                &shared,
                &mut next_index,
                rate,
                step_secs,
                size,
                drain_secs,
                args.kind,
            )
            .await;
            eprintln!("  {s}");
            check(&s, "ramp");
            let ok = s["lost"] == 0 && s["p99_ms"].as_f64().is_some_and(|p| p < 100.0);
            steps.push(s.clone());
            if ok {
                best = Some(s);
                continue 'ramp;
            }
            if attempt == 1 {
                break 'ramp;
            }
        }
    }
    shared.stopping.store(true, Ordering::Relaxed);
    json!({
        "mode": "fanout",
        "subs": subs,
        "size": size,
        "rss_with_subs": rss,
        "fixed": fixed,
        "max_rate": best.as_ref().map(|b| b["rate"].clone()).unwrap_or(json!(0)),
        "max_deliveries_per_s": best.as_ref().map(|b| b["deliveries_per_s"].clone()).unwrap_or(json!(0)),
        "max_step": best,
        "steps": steps,
    })
}

// ------------------------------------------------------------------ idle memory

async fn idle(args: ServerArgs, conns: usize, hold_secs: f64) -> Value {
    let server = Server::start(&args).await;
    // One connection through the whole path first, so that lazily built state
    // (the topic, the JWT verifier, the runtime's buffers) is in the baseline.
    let warm = subscriber(&args, 0, "idle")
        .await
        .unwrap_or_else(|e| fail(&format!("warm-up connection: {e}")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = server.rss();
    let t0 = Instant::now();
    eprintln!("idle: connecting {conns}");
    let ws = connect_all(&args, conns, "idle", 200).await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let shared = Arc::new(Shared {
        step: Step {
            base: AtomicU64::new(0),
            len: AtomicU64::new(0),
        },
        delivered: AtomicU64::new(0),
        dropped_conns: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
    });
    let heartbeats = Arc::new(AtomicU64::new(0));
    for w in ws {
        let (tx, mut rx) = w.split();
        let shared = shared.clone();
        let heartbeats = heartbeats.clone();
        tokio::spawn(async move {
            let mut tx = tx;
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = &m {
                    if t.contains("\"type\":\"heartbeat\"") {
                        if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                            heartbeats.fetch_add(1, Ordering::Relaxed);
                            let _ = echo_heartbeat(&mut tx, &v).await;
                        }
                    }
                } else if let Message::Ping(_) = &m {
                    // tungstenite queued the pong; flush it.
                    let _ = tx.flush().await;
                }
            }
            if !shared.stopping.load(Ordering::Relaxed) {
                shared.dropped_conns.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let rss_connected = server.rss();
    tokio::time::sleep(Duration::from_secs_f64(hold_secs)).await;
    let rss1 = server.rss();
    let dropped = shared.dropped_conns.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Relaxed);
    drop(warm);
    if dropped > 0 {
        fail(&format!("{dropped} idle connections dropped while held"));
    }
    let per = (rss1.saturating_sub(rss0)) as f64 / conns as f64;
    json!({
        "mode": "idle",
        "conns": conns,
        "connect_secs": connect_secs,
        "rss_before": rss0,
        "rss_connected": rss_connected,
        "rss_after": rss1,
        "bytes_per_conn": per,
        "heartbeats_answered": heartbeats.load(Ordering::Relaxed),
        "hold_secs": hold_secs,
    })
}

// ------------------------------------------------------------------ connect storm

struct StormLog {
    /// Per client: ms (since storm start) of its latest `Subscribed`.
    subscribed: Vec<AtomicU64>,
    /// Per client: how many times it subscribed.
    rounds: Vec<AtomicU64>,
    /// Per client: ms of its latest transition to connected.
    connected: Vec<AtomicU64>,
    t0: Mutex<Instant>,
}

fn storm_ms(log: &StormLog) -> u64 {
    log.t0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .elapsed()
        .as_millis() as u64
}

async fn wait_round(log: &StormLog, round: u64, timeout: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let done = log
            .rounds
            .iter()
            .filter(|r| r.load(Ordering::Relaxed) >= round)
            .count();
        if done == log.rounds.len() {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("storm: only {done}/{} back", log.rounds.len());
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn storm_figures(log: &StormLog) -> Value {
    let mut conn: Vec<u64> = log
        .connected
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    conn.sort_unstable();
    let sub_max = log
        .subscribed
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    // Peak accept rate: most connections completed in any 100 ms window.
    let mut peak = 0usize;
    let mut j = 0;
    for i in 0..conn.len() {
        while conn[i] - conn[j] >= 100 {
            j += 1;
        }
        peak = peak.max(i - j + 1);
    }
    json!({
        "all_subscribed_secs": sub_max as f64 / 1000.0,
        "first_connected_secs": conn.first().copied().unwrap_or(0) as f64 / 1000.0,
        "median_connected_secs": conn.get(conn.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
        "all_connected_secs": conn.last().copied().unwrap_or(0) as f64 / 1000.0,
        "peak_accepts_per_s": peak as f64 * 10.0,
    })
}

async fn storm(args: ServerArgs, conns: usize, timeout: f64) -> Value {
    let secret = args
        .jwt_secret
        .clone()
        .unwrap_or_else(|| fail("storm needs --jwt-secret"));
    let mut server = Server::start(&args).await;
    let url = format!("ws://127.0.0.1:{}{}", args.port, args.path);
    let tokens: Vec<String> = (0..conns)
        .map(|i| token(&secret, &format!("storm-{i}"), false))
        .collect();
    let log = Arc::new(StormLog {
        subscribed: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        rounds: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        connected: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        t0: Mutex::new(Instant::now()),
    });
    eprintln!("storm: {conns} hublink clients at once");
    let mut clients = Vec::with_capacity(conns);
    for (i, tok) in tokens.into_iter().enumerate() {
        let builder = hublink::Client::builder(url.clone()).token(tok);
        let mut events = builder.events();
        let client = builder
            .connect()
            .unwrap_or_else(|e| fail(&format!("client {i}: {e}")));
        let sub = client
            .subscribe::<Value>("storm")
            .unwrap_or_else(|e| fail(&format!("client {i} subscribe: {e}")));
        let log = log.clone();
        tokio::spawn(async move {
            let _sub = sub;
            while let Some(ev) = events.next().await {
                match ev {
                    hublink::Event::StateChanged(c) if c.to == hublink::State::Connected => {
                        log.connected[i].store(storm_ms(&log), Ordering::Relaxed);
                    }
                    hublink::Event::Subscribed { .. } => {
                        log.subscribed[i].store(storm_ms(&log), Ordering::Relaxed);
                        log.rounds[i].fetch_add(1, Ordering::Relaxed);
                    }
                    hublink::Event::SubscribeFailed { error, .. } => {
                        fail(&format!("client {i}: subscribe failed: {error}"))
                    }
                    _ => {}
                }
            }
        });
        clients.push(client);
    }
    // Building 10,000 clients takes the generator a few seconds; on this
    // current-thread runtime none of them has dialled yet, so the storm
    // starts now.
    *log.t0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    if !wait_round(&log, 1, timeout).await {
        fail("cold storm did not complete");
    }
    let cold = storm_figures(&log);
    eprintln!("  cold: {cold}");
    let rss = server.rss();
    // Restart: the server dies (SIGKILL, as in a crash or an OOM kill) and
    // comes back on the same port; the clients return on their own backoff.
    tokio::time::sleep(Duration::from_millis(500)).await;
    *log.t0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    server.kill();
    let restart_begin = Instant::now();
    let server2 = Server::start(&args).await;
    let listening_secs = restart_begin.elapsed().as_secs_f64();
    if !wait_round(&log, 2, timeout).await {
        fail("restart storm did not complete");
    }
    let warm = storm_figures(&log);
    eprintln!("  restart: {warm}");
    for c in &clients {
        c.close().await;
    }
    drop(server2);
    json!({
        "mode": "storm",
        "conns": conns,
        "cold": cold,
        "restart": warm,
        "restart_listening_secs": listening_secs,
        "rss_after_cold": rss,
    })
}

fn main() {
    let args = Args::parse();
    now_us();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    let out = rt.block_on(async move {
        match args.mode {
            Mode::Fanout {
                server,
                subs,
                fixed_rate,
                rates,
                step_secs,
                size,
                drain_secs,
            } => fanout(server, subs, fixed_rate, rates, step_secs, size, drain_secs).await,
            Mode::Idle {
                server,
                conns,
                hold_secs,
            } => idle(server, conns, hold_secs).await,
            Mode::Storm {
                server,
                conns,
                timeout_secs,
            } => storm(server, conns, timeout_secs).await,
        }
    });
    println!("{out}");
    // Clients and servers die with the process; no need to wait for closes.
    std::process::exit(0);
}
