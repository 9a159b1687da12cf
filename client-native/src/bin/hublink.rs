//! `hublink`: follow and publish on hublink topics from a terminal or a script,
//! what `wscat`/`websocat` are for raw WebSockets.

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use futures_util::FutureExt;
use hublink::core::SUBPROTOCOL;
use hublink::{
    BackoffConfig, Client, DialectKind, Event, Events, HeartbeatConfig, Reason, Recovery, State,
    StateChange, UnsentReason,
};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::{StatusCode, Uri};

/// Follow and publish on hublink topics (hublink-server or a seed backend).
///
/// Output: one line per event. On a terminal the lines are for people; when
/// stdout is piped, or with --json, each line is a JSON object with an
/// "event" field (state, welcome, subscribed, message, gap, server_error,
/// decode_error, unsent, published, sent, ...), and the last one is
/// {"event":"stopped","reason":...,"exit":N} saying why the command ended.
///
/// Ctrl-C, SIGTERM and a closed stdout (`| head -2`) end the command at once
/// with status 0, closing the WebSocket with a close frame (1000).
///
/// Exit codes: 0 success (also Ctrl-C, SIGTERM, closed stdout), 1 refused or
/// failed at run time (token refused or missing, forbidden, upgrade refused
/// with an HTTP status such as 404, publish rejected, timeout), 2 usage errors
/// (bad URL, unknown dialect, bad flag or duration, publish on a dialect
/// without publish).
#[derive(Parser, Debug)]
#[command(name = "hublink", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect, subscribe, and print every event; reconnects until Ctrl-C,
    /// SIGTERM or a closed stdout.
    Watch {
        #[command(flatten)]
        common: Common,
        /// Topic to subscribe to (repeatable). Stream dialects (machines,
        /// power) need none: their endpoint is the stream.
        #[arg(long = "topic", short = 't', value_name = "TOPIC")]
        topics: Vec<String>,
        /// Keep retrying when the first attempt is refused, the token (HTTP
        /// 401 / close 4001) or the upgrade (another HTTP 4xx, such as 404 for
        /// a wrong path), instead of exiting with status 1.
        #[arg(long)]
        keep_trying: bool,
        /// Exit after this many messages (for scripts and tests).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Connect, publish one message, close cleanly.
    ///
    /// Only the hublink dialect can publish. A server that selects the
    /// hublink.v1 subprotocol (hublink-server's /ws) answers the publish,
    /// which carries an id, with publish_ack (its seq), or with an error for
    /// a publish it refuses: the command prints "published" with the seq and
    /// exits 0, or exits 1 with the server's error. The publish is sent again
    /// with the same id after a reconnect, so it is published once; one still
    /// unanswered at --timeout exits 1 ("timeout": it may have been
    /// published).
    ///
    /// Any other server (a seed backend, hublink-server's other endpoints, or
    /// a proxy that drops the subprotocol header) gives no confirmation: a
    /// publish it ignores looks the same as one it took. The command then
    /// prints "sent ..., not confirmed" and exits 0 once the message was
    /// written to the open connection, unless the server reports an error or
    /// drops the connection within a second.
    ///
    /// With --outbox FILE, a publish left unanswered (timed out, or the
    /// connection lost) stays in FILE, and the next `hublink publish --outbox
    /// FILE ...` sends it again with the same id before its own message, so
    /// the server publishes it once (hublink-server dedupes ids for 10 min);
    /// past its time to live (60 s from the first try) it is reported as
    /// publish_failed instead. A run that never connects publishes nothing
    /// and records nothing.
    Publish {
        #[command(flatten)]
        common: Common,
        /// Topic to publish on.
        topic: String,
        /// The payload, as JSON (a bare word is sent as a JSON string).
        /// Read from stdin when absent.
        data: Option<String>,
        /// Give up when not connected and confirmed within this time.
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
        timeout: Duration,
        /// Keep unanswered publishes in FILE, and first resend those an
        /// earlier run left there (JSON lines; FILE.lock beside it keeps two
        /// runs from using it at once).
        #[arg(long, value_name = "FILE")]
        outbox: Option<PathBuf>,
    },
}

impl Command {
    fn common(&self) -> &Common {
        match self {
            Command::Watch { common, .. } | Command::Publish { common, .. } => common,
        }
    }
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
    /// First reconnect delay, and the smallest one (e.g. 1s, 250ms; at
    /// least 1ms).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    backoff_initial: Duration,
    /// Largest reconnect delay.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Fixed liveness timeout, at least 1s; by default the server's
    /// advertised heartbeat interval, else the one observed between its
    /// heartbeats, plus 10 s (60 s until either is known).
    #[arg(long, value_name = "DURATION", value_parser = parse_liveness_timeout)]
    heartbeat_timeout: Option<Duration>,
    /// Time allowed for one connection attempt.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    connect_timeout: Duration,
}

/// Longer than this is a typo, not a wish.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A duration like `250ms`, `2s`, `1.5m` (`humantime`'s forms) or `3` (bare
/// seconds, which `humantime` alone refuses), from 1 ms (the client's unit:
/// anything shorter would be zero) to 24 h.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| e.to_string()),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
    .map_err(|e| format!("{s:?} is not a duration like 250ms, 2s, 1.5m or 3 (seconds): {e}"))?;
    if d < Duration::from_millis(1) {
        Err(format!(
            "{s:?} is zero or under 1ms: durations run from 1ms to 24h"
        ))
    } else if d > MAX_DURATION {
        Err(format!("{s:?} is over 24h: durations run from 1ms to 24h"))
    } else {
        Ok(d)
    }
}

/// A liveness timeout: a duration of at least a second. The idle ping goes
/// out at half the timeout and its answer must come within the other half,
/// so a shorter one drops healthy links.
fn parse_liveness_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?} is under 1s: shorter liveness timeouts drop healthy connections"
        ));
    }
    Ok(d)
}

/// How the command ended: its exit code, a name for the JSON `stopped` line,
/// and for failures the one-line error.
struct Stop {
    code: u8,
    reason: &'static str,
    error: Option<String>,
}

impl Stop {
    fn ok(reason: &'static str) -> Stop {
        Stop {
            code: 0,
            reason,
            error: None,
        }
    }

    fn failed(reason: &'static str, error: String) -> Stop {
        Stop {
            code: 1,
            reason,
            error: Some(error),
        }
    }

    fn usage(error: String) -> Stop {
        Stop {
            code: 2,
            reason: "usage",
            error: Some(error),
        }
    }
}

/// Writes the one-line error; a closed stderr is no reason to panic.
fn error_line(message: &str) {
    let _ = writeln!(std::io::stderr(), "hublink: error: {message}");
}

/// clap's error on one line: its first paragraph, without the "error: ".
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.split("\n\n").next().unwrap_or_default();
    let joined = first
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    format!("{joined} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            error_line(&one_line(&e));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HUBLINK_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let printer = Printer {
        json: cli.command.common().json || !std::io::stdout().is_terminal(),
        start: std::time::Instant::now(),
    };
    let stop = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli.command, &printer)),
        Err(e) => Stop::failed("runtime", format!("cannot start the runtime: {e}")),
    };
    // Nobody reads a closed stdout; and a failing one gets no more lines.
    if printer.json && !matches!(stop.reason, "stdout_closed" | "stdout_failed") {
        let mut line = json!({"event": "stopped", "reason": stop.reason, "exit": stop.code});
        if let Some(error) = &stop.error {
            line["error"] = json!(error);
        }
        let _ = printer.line(line);
    }
    if let Some(error) = &stop.error {
        error_line(error);
    }
    ExitCode::from(stop.code)
}

fn build(
    common: &Common,
    all_messages: bool,
    outbox: Option<&PathBuf>,
) -> Result<(Client, Events), Stop> {
    let dialect: DialectKind = common
        .dialect
        .parse()
        .map_err(|e| Stop::usage(format!("{e}")))?;
    if common.backoff_max < common.backoff_initial {
        // Raising it silently would hide a typo in either flag.
        return Err(Stop::usage(format!(
            "--backoff-max ({:?}) is below --backoff-initial ({:?}): the largest reconnect delay cannot be smaller than the first",
            common.backoff_max, common.backoff_initial
        )));
    }
    let mut builder = Client::builder(&common.url)
        .dialect(dialect)
        .backoff(BackoffConfig {
            initial_ms: common.backoff_initial.as_millis() as u64,
            max_ms: common.backoff_max.as_millis() as u64,
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
    if let Some(path) = outbox {
        builder = builder.outbox(path);
    }
    let events = if all_messages {
        builder.monitor()
    } else {
        builder.events()
    };
    let client = builder.connect().map_err(|e| match e {
        // The file, not the command line: in use, unreadable, unwritable.
        hublink::Error::Outbox { .. } => Stop::failed("outbox", e.to_string()),
        e => Stop::usage(e.to_string()),
    })?;
    Ok((client, events))
}

async fn run(command: Command, printer: &Printer) -> Stop {
    match command {
        Command::Watch {
            common,
            topics,
            keep_trying,
            count,
        } => watch(common, topics, keep_trying, count, printer).await,
        Command::Publish {
            common,
            topic,
            data,
            timeout,
            outbox,
        } => publish(common, topic, data, timeout, outbox, printer).await,
    }
}

/// The one-line error for a refusal at the upgrade (or a close 4001).
fn refusal(common: &Common, reason: &Reason, retry_hint: bool) -> Stop {
    let hint = if retry_hint {
        "; use --keep-trying to retry anyway"
    } else {
        ""
    };
    match reason {
        Reason::AuthRejected { code } => {
            let how = if *code == 4001 {
                "HTTP 401 / close 4001".to_owned()
            } else {
                code.to_string()
            };
            let error = if common.token.is_some() {
                format!("the server refused the token ({how}){hint}")
            } else {
                format!(
                    "the server requires a token ({how}): give one with --token or HUBLINK_TOKEN"
                )
            };
            Stop::failed(reason.name(), error)
        }
        Reason::UpgradeRefused { status } => {
            let path = common
                .url
                .parse::<Uri>()
                .map(|u| u.path().to_owned())
                .unwrap_or_default();
            let text = StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let why = match status {
                404 => ": no WebSocket endpoint at this path",
                400 => ": the endpoint does not take this request (a query parameter missing?)",
                _ => "",
            };
            Stop::failed(
                reason.name(),
                format!("the server refused the upgrade to {path:?} with HTTP {status}{text}{why}{hint}"),
            )
        }
        Reason::Forbidden { code } => Stop::failed(
            reason.name(),
            format!("the server refused access (forbidden, {code}); not retrying"),
        ),
        other => Stop::failed(other.name(), format!("stopped: {}", describe(other))),
    }
}

/// Ctrl-C and SIGTERM, registered at once so that none is missed.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The name of the next signal, for the `stopped` line.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => "interrupted",
                () = next(&mut self.terminate) => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}

/// Notices that the reader of a piped stdout went away (`| head -2`)
/// without waiting for the next write to fail: `watch` may have nothing to
/// print for a long time. Other outputs (a terminal, a file, /dev/null)
/// never close this way; a failed write still tells for them.
struct StdoutWatch {
    #[cfg(unix)]
    pipe: Option<tokio::net::unix::pipe::Sender>,
}

impl StdoutWatch {
    fn new() -> StdoutWatch {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            use std::os::unix::fs::FileTypeExt;
            let pipe = (|| {
                let stdout = std::io::stdout();
                let file = std::fs::File::from(stdout.as_fd().try_clone_to_owned().ok()?);
                if !file.metadata().ok()?.file_type().is_fifo() {
                    return None;
                }
                // Unchecked: the checked constructor would make stdout
                // non-blocking, and the printer's writes are blocking ones.
                // This copy of the descriptor is only watched, never written.
                tokio::net::unix::pipe::Sender::from_file_unchecked(file).ok()
            })();
            StdoutWatch { pipe }
        }
        #[cfg(not(unix))]
        StdoutWatch {}
    }

    /// Completes when the pipe's reader is gone; never for other outputs.
    async fn closed(&self) {
        #[cfg(unix)]
        if let Some(pipe) = &self.pipe {
            // The pipe reports an error condition once nobody can read it.
            if let Ok(ready) = pipe.ready(tokio::io::Interest::ERROR).await {
                if ready.is_error() || ready.is_write_closed() {
                    return;
                }
            }
        }
        std::future::pending().await
    }
}

async fn watch(
    common: Common,
    topics: Vec<String>,
    keep_trying: bool,
    count: Option<u64>,
    printer: &Printer,
) -> Stop {
    let mut signals = Signals::new();
    let stdout = StdoutWatch::new();
    let (client, mut events) = match build(&common, true, None) {
        Ok(built) => built,
        Err(stop) => return stop,
    };
    // The subscriptions must live as long as the watch; their messages are
    // printed from the monitor, in the core's order with everything else.
    let _subscriptions = match topics
        .iter()
        .map(|t| client.subscribe::<Value>(t))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(subscriptions) => subscriptions,
        Err(e) => {
            client.close().await;
            return Stop::usage(e.to_string());
        }
    };
    let mut ever_connected = false;
    let mut messages = 0u64;
    let stop = loop {
        let event = tokio::select! {
            event = events.next() => event,
            signal = signals.recv() => break Stop::ok(signal),
            () = stdout.closed() => break Stop::ok("stdout_closed"),
        };
        let Some(event) = event else {
            break Stop::ok("client_stopped"); // its last state was printed
        };
        if let Err(stop) = printer.event(&event) {
            break stop;
        }
        match &event {
            Event::StateChanged(c) if c.to == State::Connected => ever_connected = true,
            Event::StateChanged(StateChange {
                reason: reason @ (Reason::AuthRejected { .. } | Reason::UpgradeRefused { .. }),
                ..
            }) if !ever_connected && !keep_trying => break refusal(&common, reason, true),
            Event::StateChanged(StateChange {
                to: State::Disconnected,
                reason,
                ..
            }) => {
                break match reason {
                    Reason::ClosedByUser => Stop::ok(reason.name()),
                    other => refusal(&common, other, false),
                };
            }
            Event::Message(_) => {
                messages += 1;
                if count.is_some_and(|n| messages >= n) {
                    break Stop::ok("count_reached");
                }
            }
            _ => {}
        }
    };
    client.close().await;
    stop
}

/// How long a server that gives no confirmation has to report an error.
const UNCONFIRMED_WAIT: Duration = Duration::from_secs(1);

async fn publish(
    common: Common,
    topic: String,
    data: Option<String>,
    timeout: Duration,
    outbox: Option<PathBuf>,
    printer: &Printer,
) -> Stop {
    match common.dialect.parse::<DialectKind>() {
        Ok(d)
            if d.build::<Value>()
                .encode_publish(&topic, &Value::Null, None)
                .is_none() =>
        {
            return Stop::usage(format!(
                "the {d} dialect cannot publish: of the built-in dialects only hublink has a publish message"
            ))
        }
        _ => {}
    }
    let text = match data {
        Some(d) => d,
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                return Stop::usage(format!("cannot read the payload from stdin: {e}"));
            }
            s
        }
    };
    let data: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.trim().to_owned()));
    let (client, mut events) = match build(&common, false, outbox.as_ref()) {
        Ok(built) => built,
        Err(stop) => return stop,
    };
    // The outbox's publishes whose time to live ran out while no run
    // was there to send them: reported by `connect()` already.
    while let Some(Some(event)) = events.next().now_or_never() {
        if let Event::PublishFailed { .. } = event {
            if let Err(stop) = printer.outbox_outcome(&event) {
                client.close().await;
                return stop;
            }
        }
    }
    let kept = match &outbox {
        Some(path) => format!(
            "; kept in the outbox {}: the next `hublink publish --outbox` on it sends it \
             again with the same id",
            path.display()
        ),
        None => String::new(),
    };
    let deadline = Instant::now() + timeout;
    let result = async {
        connect_for_publish(&client, &common, deadline, timeout).await?;
        let confirms = client.subprotocol().as_deref() == Some(SUBPROTOCOL);
        if confirms {
            // Answered with publish_ack: sent again with the same id after a
            // reconnect or a publish_unknown, so published once, until the
            // deadline. The outcomes of an outbox's earlier publishes, sent
            // before this one, are printed as they come.
            let id = client
                .queue_publish(&topic, &data)
                .await
                .map_err(|e| Stop::failed("publish_failed", e.to_string()))?;
            let outcome = tokio::time::timeout_at(deadline, async {
                loop {
                    match events.next().await {
                        Some(Event::Published {
                            id: done,
                            topic,
                            position,
                        }) if done == id => {
                            return Ok(Ok(hublink::Published {
                                id: done,
                                topic,
                                position,
                            }))
                        }
                        Some(Event::PublishFailed {
                            id: failed, error, ..
                        }) if failed == id => return Ok(Err(error)),
                        Some(e @ (Event::Published { .. } | Event::PublishFailed { .. })) => {
                            printer.outbox_outcome(&e)?;
                        }
                        Some(_) => {}
                        None => {
                            return Err(Stop::failed(
                                "connection_lost",
                                "the client stopped".to_owned(),
                            ))
                        }
                    }
                }
            })
            .await;
            return match outcome {
                Ok(Ok(Ok(published))) => Ok(Some(published)),
                Ok(Ok(Err(e))) => {
                    let reason = if e.maybe_published() {
                        "publish_unknown"
                    } else {
                        "publish_rejected"
                    };
                    // Closed unanswered: the outbox keeps it.
                    let kept = match e {
                        hublink::PublishError::Closed { .. } => kept.as_str(),
                        _ => "",
                    };
                    Err(Stop::failed(reason, format!("{e}{kept}")))
                }
                Ok(Err(stop)) => Err(stop),
                Err(_) => Err(Stop::failed(
                    "timeout",
                    format!(
                        "no answer to the publish within {} ms; it may have been published{kept}",
                        timeout.as_millis()
                    ),
                )),
            };
        }
        client
            .queue_publish(&topic, &data)
            .await
            .map_err(|e| Stop::failed("publish_failed", e.to_string()))?;
        // No acks without hublink.v1: a server error within a second is
        // taken for the publish's.
        let window = deadline.min(Instant::now() + UNCONFIRMED_WAIT);
        let answer = tokio::time::timeout_at(window, async {
            loop {
                match events.next().await {
                    Some(Event::ServerError(e)) => {
                        return Stop::failed(
                            "publish_rejected",
                            format!(
                                "the server rejected the publish: {} ({})",
                                e.message, e.code
                            ),
                        )
                    }
                    Some(_) => {}
                    None => {
                        return Stop::failed("connection_lost", "the client stopped".to_owned())
                    }
                }
            }
        })
        .await;
        match answer {
            Ok(stop) => Err(stop),
            Err(_) => Ok(None),
        }
    }
    .await;
    client.close().await;
    let printed = match result {
        Err(stop) => return stop,
        Ok(Some(p)) => if printer.json {
            printer.line(
                json!({"event": "published", "topic": topic, "confirmed": true,
                "id": p.id, "seq": p.position.seq, "epoch": p.position.epoch}),
            )
        } else {
            printer.text(&format!(
                "published to {topic} at #{} ({})",
                p.position.seq, p.position.epoch
            ))
        }
        .map(|()| Stop::ok("published")),
        Ok(None) => {
            let detail = format!(
                "the server did not select the {SUBPROTOCOL} subprotocol, so it gives no \
                 confirmation (a seed backend, or a proxy that drops the header)"
            );
            if printer.json {
                printer.line(
                    json!({"event": "sent", "topic": topic, "confirmed": false, "detail": detail}),
                )
            } else {
                printer.text(&format!("sent to {topic}, not confirmed: {detail}"))
            }
            .map(|()| Stop::ok("sent"))
        }
    };
    printed.unwrap_or_else(|stop| stop)
}

/// Waits until connected; refuses early on a refusal, since a publish has no
/// use for slow retries.
async fn connect_for_publish(
    client: &Client,
    common: &Common,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), Stop> {
    let mut state = client.state_changes();
    let waited = tokio::time::timeout_at(deadline, async {
        state
            .wait_for(|s| {
                s.state == State::Connected
                    || s.state == State::Disconnected
                    || matches!(
                        s.reason,
                        Some(Reason::AuthRejected { .. } | Reason::UpgradeRefused { .. })
                    )
            })
            .await
            .map(|s| s.clone())
    })
    .await;
    let snapshot = match waited {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(_)) => {
            return Err(Stop::failed(
                "connection_lost",
                "the client stopped before connecting".to_owned(),
            ))
        }
        Err(_) => {
            let last = state
                .borrow()
                .reason
                .as_ref()
                .map(|r| format!(" (last attempt: {})", describe(r)))
                .unwrap_or_default();
            return Err(Stop::failed(
                "timeout",
                format!("not connected within {} ms{last}", timeout.as_millis()),
            ));
        }
    };
    match snapshot.reason {
        _ if snapshot.state == State::Connected => Ok(()),
        Some(reason) => Err(refusal(common, &reason, false)),
        None => Err(Stop::failed(
            "connection_lost",
            "stopped before connecting".to_owned(),
        )),
    }
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
        Reason::UpgradeRefused { status } => json!({"status": status}),
        Reason::GaveUp { attempts } => json!({"attempts": attempts}),
        _ => json!({}),
    }
}

/// A reason for people.
fn describe(reason: &Reason) -> String {
    match reason {
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
        Reason::AuthRejected { code } => format!("token refused or missing ({code})"),
        Reason::Forbidden { code } => format!("forbidden ({code})"),
        Reason::UpgradeRefused { status } => format!("upgrade refused with HTTP {status}"),
        Reason::GaveUp { attempts } => format!("gave up after {attempts} attempts"),
        other => other.name().replace('_', " "),
    }
}

/// A failed write to stdout: a reader that went away ends the command
/// quietly with 0 (`| head`); any other failure is an error.
fn write_failed(e: std::io::Error) -> Stop {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Stop::ok("stdout_closed")
    } else {
        Stop {
            code: 1,
            reason: "stdout_failed",
            error: Some(format!("cannot write to stdout: {e}")),
        }
    }
}

impl Printer {
    fn line(&self, mut value: Value) -> Result<(), Stop> {
        if let Some(obj) = value.as_object_mut() {
            obj.insert("ts".to_owned(), json!(unix_ms()));
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{value}")
            .and_then(|()| out.flush())
            .map_err(write_failed)
    }

    fn text(&self, text: &str) -> Result<(), Stop> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "[{:>8.3}s] {text}", self.start.elapsed().as_secs_f64())
            .and_then(|()| out.flush())
            .map_err(write_failed)
    }

    fn state(&self, c: &StateChange) -> Result<(), Stop> {
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
            self.line(v)
        } else {
            let detail = describe(&c.reason);
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
            self.text(&format!("{} ({detail}){retry}", c.to.name()))
        }
    }

    fn event(&self, event: &Event) -> Result<(), Stop> {
        if let Event::StateChanged(c) = event {
            return self.state(c);
        }
        let (value, text) = Self::describe(event);
        if self.json {
            self.line(value)
        } else {
            self.text(&text)
        }
    }

    /// The outcome of a publish an earlier run left in the outbox: the
    /// event's line with `"outbox": true` (or "outbox: " before the text).
    fn outbox_outcome(&self, event: &Event) -> Result<(), Stop> {
        let (mut value, text) = Self::describe(event);
        if self.json {
            value["outbox"] = json!(true);
            self.line(value)
        } else {
            self.text(&format!("outbox: {text}"))
        }
    }

    /// An event other than a state change as its JSON line and its human line.
    fn describe(event: &Event) -> (Value, String) {
        match event {
            Event::StateChanged(c) => (
                json!({"event": "state", "state": c.to.name()}),
                c.to.name().to_owned(),
            ),
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
                json!({"event": "subscribed", "topic": topic, "recovery": recovery.name()}),
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
                    UnsentReason::Closed => reason.name().to_owned(),
                };
                (
                    json!({"event": "unsent", "frame": frame, "reason": why}),
                    format!("not sent ({why}): {frame}"),
                )
            }
            Event::Published {
                id,
                topic,
                position,
            } => (
                json!({"event": "published", "id": id, "topic": topic,
                       "seq": position.seq, "epoch": position.epoch}),
                format!(
                    "published {id} to {topic} at #{} ({})",
                    position.seq, position.epoch
                ),
            ),
            Event::PublishFailed { id, topic, error } => (
                json!({"event": "publish_failed", "id": id, "topic": topic,
                       "reason": error.name(), "maybe_published": error.maybe_published(),
                       "error": error.to_string()}),
                format!("publish {id} to {topic} failed: {error}"),
            ),
            Event::Unknown(v) => (
                json!({"event": "unknown", "data": v}),
                format!("unknown message: {v}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_fractions_and_bare_seconds() {
        for (text, ms) in [
            ("250ms", 250),
            ("2s", 2_000),
            ("1.5", 1_500),
            ("1.5m", 90_000),
            ("1ms", 1),
            ("24m", 1_440_000),
            ("86400", 86_400_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn zero_tiny_huge_and_nonsense_durations_are_refused_with_the_value() {
        for text in [
            "0", "0s", "-0", "0.4ms", "86401", "-1s", "NaN", "inf", "1e400", "", "s", "2d",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.starts_with(&format!("{text:?} ")), "{e}");
        }
        assert!(parse_liveness_timeout("999ms").is_err());
        assert_eq!(parse_liveness_timeout("1s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["hublink", "watch"]).unwrap_err();
        let line = one_line(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("<URL>"), "{line}");
        assert!(!line.starts_with("error:"), "{line}");
    }
}
