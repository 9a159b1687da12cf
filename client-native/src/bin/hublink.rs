//! `hublink`: follow and publish on hublink topics from a terminal or a script,
//! what `wscat`/`websocat` are for raw WebSockets.

use clap::{Args, Parser, Subcommand};
use hublink::{
    BackoffConfig, Client, DialectKind, Event, Events, HeartbeatConfig, Reason, Recovery, State,
    StateChange, UnsentReason,
};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Follow and publish on hublink topics (hublink-server or a seed backend).
///
/// Output: one line per event. On a terminal the lines are for people; when
/// stdout is piped, or with --json, each line is a JSON object with an
/// "event" field (state, welcome, subscribed, message, gap, server_error,
/// decode_error, unsent, ...).
///
/// Exit codes: 0 success (or Ctrl-C), 1 refused at run time (token refused,
/// forbidden, publish rejected, timeout), 2 usage errors (bad URL, unknown
/// dialect, bad flag).
#[derive(Parser, Debug)]
#[command(name = "hublink", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect, subscribe, and print every event; reconnects until Ctrl-C.
    Watch {
        #[command(flatten)]
        common: Common,
        /// Topic to subscribe to (repeatable). Stream dialects (machines,
        /// power) need none: their endpoint is the stream.
        #[arg(long = "topic", short = 't', value_name = "TOPIC")]
        topics: Vec<String>,
        /// Keep retrying when the server refuses the token on the first
        /// attempt (HTTP 401 / close 4001), instead of exiting with status 1.
        #[arg(long)]
        keep_trying: bool,
        /// Exit after this many messages (for scripts and tests).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Connect, publish one message, confirm, close cleanly.
    ///
    /// On the hublink and topics dialects the server's answer to a topics
    /// request after the publish confirms it was processed: an error the
    /// server sent for the publish makes the command fail with status 1.
    Publish {
        #[command(flatten)]
        common: Common,
        /// Topic to publish on.
        topic: String,
        /// The payload, as JSON (a bare word is sent as a JSON string).
        /// Read from stdin when absent.
        data: Option<String>,
        /// Give up when not connected and confirmed within this time.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Server URL, ws:// or wss:// (e.g. ws://127.0.0.1:8080/ws).
    url: String,
    /// Server dialect: hublink, machines, devices, topics, actions or power.
    #[arg(long, short = 'd', default_value = "hublink", env = "HUBLINK_DIALECT")]
    dialect: String,
    /// Token (a JWT for hublink-server), sent on every connection attempt.
    #[arg(long, env = "HUBLINK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Send the token as ?token= instead of an Authorization header (the
    /// default for the actions dialect).
    #[arg(long)]
    token_in_query: bool,
    /// Print JSON lines even on a terminal (the default when piped).
    #[arg(long)]
    json: bool,
    /// First reconnect delay, and the smallest one (e.g. 1s, 250ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_initial: Duration,
    /// Largest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Fixed liveness timeout; by default the server's advertised heartbeat
    /// interval, else the one observed between its heartbeats, plus 10 s
    /// (60 s until either is known).
    #[arg(long, value_parser = parse_duration)]
    heartbeat_timeout: Option<Duration>,
    /// Time allowed for one connection attempt.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!("{s:?} is not a duration like 250ms, 2s or 1.5")),
    }
}

/// A failure, with its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

fn refused(message: String) -> Failure {
    Failure { code: 1, message }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HUBLINK_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hublink: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hublink: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn build(common: &Common, all_messages: bool) -> Result<(Client, Events, Printer), Failure> {
    let dialect: DialectKind = common.dialect.parse().map_err(|e| usage(format!("{e}")))?;
    let mut builder = Client::builder(&common.url)
        .dialect(dialect)
        .backoff(BackoffConfig {
            initial_ms: common.backoff_initial.as_millis() as u64,
            max_ms: common
                .backoff_max
                .as_millis()
                .max(common.backoff_initial.as_millis()) as u64,
            ..BackoffConfig::default()
        })
        .heartbeat(HeartbeatConfig {
            timeout_ms: common.heartbeat_timeout.map(|d| d.as_millis() as u64),
            ..HeartbeatConfig::default()
        })
        .connect_timeout(common.connect_timeout);
    if let Some(token) = &common.token {
        builder = builder.token(token);
    }
    if common.token_in_query {
        builder = builder.token_in_query(true);
    }
    let events = if all_messages {
        builder.monitor()
    } else {
        builder.events()
    };
    let client = builder.connect().map_err(|e| usage(e.to_string()))?;
    let printer = Printer {
        json: common.json || !std::io::stdout().is_terminal(),
        start: std::time::Instant::now(),
    };
    Ok((client, events, printer))
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Watch {
            common,
            topics,
            keep_trying,
            count,
        } => watch(common, topics, keep_trying, count).await,
        Command::Publish {
            common,
            topic,
            data,
            timeout,
        } => publish(common, topic, data, timeout).await,
    }
}

async fn watch(
    common: Common,
    topics: Vec<String>,
    keep_trying: bool,
    count: Option<u64>,
) -> Result<(), Failure> {
    let (client, mut events, printer) = build(&common, true)?;
    // The subscriptions must live as long as the watch; their messages are
    // printed from the monitor, in the core's order with everything else.
    let _subscriptions = topics
        .iter()
        .map(|t| client.subscribe::<Value>(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(e.to_string()))?;
    let mut ever_connected = false;
    let mut messages = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut ctrl_c => {
                client.close().await;
                return Ok(());
            }
        };
        let Some(event) = event else {
            return Ok(()); // the client stopped; its last state was printed
        };
        printer.event(&event);
        match &event {
            Event::StateChanged(c) if c.to == State::Connected => ever_connected = true,
            Event::StateChanged(StateChange {
                reason: Reason::AuthRejected { code },
                ..
            }) if !ever_connected && !keep_trying => {
                client.close().await;
                return Err(refused(format!(
                    "the server refused the token ({}); use --keep-trying to retry anyway",
                    if *code == 4001 {
                        "HTTP 401 / close 4001".to_owned()
                    } else {
                        code.to_string()
                    }
                )));
            }
            Event::StateChanged(StateChange {
                to: State::Disconnected,
                reason,
                ..
            }) => {
                return match reason {
                    Reason::ClosedByUser => Ok(()),
                    Reason::Forbidden { code } => Err(refused(format!(
                        "the server refused access (forbidden, {code}); not retrying"
                    ))),
                    other => Err(refused(format!("stopped: {}", other.name()))),
                };
            }
            Event::Message(_) => {
                messages += 1;
                if count.is_some_and(|n| messages >= n) {
                    client.close().await;
                    return Ok(());
                }
            }
            _ => {}
        }
    }
}

async fn publish(
    common: Common,
    topic: String,
    data: Option<String>,
    timeout: Duration,
) -> Result<(), Failure> {
    let text = match data {
        Some(d) => d,
        None => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| usage(format!("cannot read the payload from stdin: {e}")))?;
            s
        }
    };
    let data: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.trim().to_owned()));
    let (client, mut events, printer) = build(&common, false)?;
    let result = tokio::time::timeout(timeout, async {
        // Connect, refusing early on a refused token: a publish has no use
        // for slow retries. The state watch cannot miss the transition.
        let mut state = client.state_changes();
        let snapshot = state
            .wait_for(|s| {
                s.state == State::Connected
                    || s.state == State::Disconnected
                    || matches!(s.reason, Some(Reason::AuthRejected { .. }))
            })
            .await
            .map_err(|_| refused("the client stopped before connecting".to_owned()))?
            .clone();
        match snapshot.reason {
            _ if snapshot.state == State::Connected => {}
            Some(Reason::AuthRejected { .. }) => {
                return Err(refused("the server refused the token".to_owned()))
            }
            Some(Reason::Forbidden { code }) => {
                return Err(refused(format!(
                    "the server refused access (forbidden, {code})"
                )))
            }
            other => {
                return Err(refused(format!(
                    "stopped before connecting: {}",
                    other.map_or("unknown", |r| r.name())
                )))
            }
        }
        client
            .publish(&topic, &data)
            .await
            .map_err(|e| refused(e.to_string()))?;
        // A topics request answered after the publish proves the server
        // processed it; an error before the answer is the publish's.
        if client.request_topics().await.is_ok() {
            loop {
                match events.next().await {
                    Some(Event::Topics(_)) => break,
                    Some(Event::ServerError(e)) => {
                        return Err(refused(format!(
                            "the server rejected the publish: {} ({})",
                            e.message, e.code
                        )))
                    }
                    Some(Event::StateChanged(c)) if c.from == State::Connected => {
                        return Err(refused(format!(
                            "the connection dropped before the publish was confirmed ({})",
                            c.reason.name()
                        )))
                    }
                    Some(_) => {}
                    None => return Err(refused("the client stopped".to_owned())),
                }
            }
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|_| {
        Err(refused(format!(
            "not connected and confirmed within {} ms",
            timeout.as_millis()
        )))
    });
    client.close().await;
    result?;
    if printer.json {
        printer.line(json!({"event": "published", "topic": topic}));
    } else {
        printer.text(&format!("published to {topic}"));
    }
    Ok(())
}

/// Prints events as JSON lines or human lines.
struct Printer {
    json: bool,
    start: std::time::Instant,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn recovery_name(r: Recovery) -> &'static str {
    match r {
        Recovery::Fresh => "fresh",
        Recovery::Recovered => "recovered",
        Recovery::Lost => "lost",
    }
}

fn reason_detail(reason: &Reason) -> Value {
    match reason {
        Reason::Closed { code, reason } => json!({"code": code, "detail": reason}),
        Reason::ConnectFailed { error } => json!({"detail": error}),
        Reason::HeartbeatTimeout { silent_ms } => json!({"silent_ms": silent_ms}),
        Reason::ServerReconnect {
            reason,
            retry_after_ms,
        } => json!({"detail": reason, "retry_after_ms": retry_after_ms}),
        Reason::AuthRejected { code } | Reason::Forbidden { code } => json!({"code": code}),
        Reason::GaveUp { attempts } => json!({"attempts": attempts}),
        _ => json!({}),
    }
}

impl Printer {
    fn line(&self, mut value: Value) {
        if let Some(obj) = value.as_object_mut() {
            obj.insert("ts".to_owned(), json!(unix_ms()));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    fn text(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{:>8.3}s] {text}", self.start.elapsed().as_secs_f64());
        let _ = out.flush();
    }

    fn state(&self, c: &StateChange) {
        if self.json {
            let mut v = json!({
                "event": "state",
                "state": c.to.name(),
                "from": c.from.name(),
                "reason": c.reason.name(),
                "attempt": c.attempt,
            });
            if let Some(ms) = c.retry_in_ms {
                v["retry_in_ms"] = json!(ms);
            }
            if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), reason_detail(&c.reason))
            {
                obj.extend(extra);
            }
            self.line(v);
        } else {
            let detail = match &c.reason {
                Reason::Closed { code, reason } if reason.is_empty() => format!("closed {code}"),
                Reason::Closed { code, reason } => format!("closed {code}: {reason}"),
                Reason::ConnectFailed { error } => format!("connect failed: {error}"),
                Reason::HeartbeatTimeout { silent_ms } => {
                    format!("heartbeat timeout after {silent_ms} ms of silence")
                }
                Reason::ServerReconnect {
                    reason,
                    retry_after_ms,
                } => format!("server asked to reconnect after {retry_after_ms} ms: {reason}"),
                Reason::AuthRejected { code } => format!("token refused ({code})"),
                Reason::Forbidden { code } => format!("forbidden ({code})"),
                Reason::GaveUp { attempts } => format!("gave up after {attempts} attempts"),
                other => other.name().replace('_', " "),
            };
            let retry = c
                .retry_in_ms
                .map(|ms| {
                    format!(
                        ", retrying in {:.1} s (attempt {})",
                        ms as f64 / 1000.0,
                        c.attempt
                    )
                })
                .unwrap_or_default();
            self.text(&format!("{} ({detail}){retry}", c.to.name()));
        }
    }

    fn event(&self, event: &Event) {
        if let Event::StateChanged(c) = event {
            return self.state(c);
        }
        let (value, text) = match event {
            Event::StateChanged(_) => unreachable!("handled above"),
            Event::Welcome {
                client_id,
                heartbeat_interval_ms,
            } => (
                json!({"event": "welcome", "client_id": client_id, "heartbeat_interval_ms": heartbeat_interval_ms}),
                format!(
                    "welcome: client id {}, heartbeat every {} ms",
                    client_id.as_deref().unwrap_or("?"),
                    heartbeat_interval_ms.map_or("?".to_owned(), |ms| ms.to_string())
                ),
            ),
            Event::Message(m) => (
                json!({
                    "event": "message",
                    "topic": m.topic,
                    "seq": m.seq(),
                    "epoch": m.position.as_ref().map(|p| &p.epoch),
                    "kind": m.kind,
                    "data": m.data,
                    "timestamp": m.timestamp,
                }),
                format!(
                    "{}{} {}",
                    m.topic,
                    m.seq().map(|s| format!(" #{s}")).unwrap_or_default(),
                    m.data
                ),
            ),
            Event::Subscribed { topic, recovery } => (
                json!({"event": "subscribed", "topic": topic, "recovery": recovery_name(*recovery)}),
                match recovery {
                    Recovery::Fresh => format!("subscribed to {topic}"),
                    Recovery::Recovered => {
                        format!("resubscribed to {topic}, missed messages recovered")
                    }
                    Recovery::Lost => {
                        format!("resubscribed to {topic}, missed messages LOST: refetch")
                    }
                },
            ),
            Event::SubscribeFailed { topic, error } => (
                json!({"event": "subscribe_failed", "topic": topic, "error": error}),
                format!("subscribe to {topic} refused: {error}"),
            ),
            Event::Unsubscribed { topic } => (
                json!({"event": "unsubscribed", "topic": topic}),
                format!("unsubscribed from {topic}"),
            ),
            Event::Gap { topic, last, next } => (
                json!({"event": "gap", "topic": topic,
                       "last": {"epoch": last.epoch, "seq": last.seq},
                       "next": {"epoch": next.epoch, "seq": next.seq}}),
                format!(
                    "GAP on {topic}: after #{} ({}) came #{} ({})",
                    last.seq, last.epoch, next.seq, next.epoch
                ),
            ),
            Event::Topics(topics) => (
                json!({"event": "topics", "topics": topics}),
                format!("topics: {}", topics.join(", ")),
            ),
            Event::ServerError(e) => (
                json!({"event": "server_error", "code": e.code, "message": e.message,
                       "recoverable": e.recoverable, "error_count": e.error_count}),
                format!("server error {}: {}", e.code, e.message),
            ),
            Event::DecodeError(e) => (
                json!({"event": "decode_error", "error": e.to_string()}),
                format!("decode error: {e}"),
            ),
            Event::Unsent { frame, reason } => {
                let why = match reason {
                    UnsentReason::Expired { waited_ms } => format!("expired after {waited_ms} ms"),
                    UnsentReason::Closed => "closed".to_owned(),
                };
                (
                    json!({"event": "unsent", "frame": frame, "reason": why}),
                    format!("not sent ({why}): {frame}"),
                )
            }
            Event::Unknown(v) => (
                json!({"event": "unknown", "data": v}),
                format!("unknown message: {v}"),
            ),
        };
        if self.json {
            self.line(value);
        } else {
            self.text(&text);
        }
    }
}
