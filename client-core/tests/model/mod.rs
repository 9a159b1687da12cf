//! A model shell that drives a [`Connection`] with an arbitrary sequence of
//! inputs decoded from bytes, and checks the core's invariants after each one.
//! Shared by the proptest in `tests/invariants.rs` and the cargo-fuzz target
//! `fuzz/fuzz_targets/state_machine.rs`.
//!
//! Invariants:
//! - at most one transport exists: `Transmit::Open` only when the shell has
//!   none, `Transmit::Close` only when it has one;
//! - `Connected` only with an open transport; `Disconnected` with none and no
//!   timer; `Connecting`, `Connected`, `Reconnecting` always have a timer (the
//!   core is never stuck);
//! - a timer is never in the past after `handle_timeout`;
//! - the outbound queue stays within its bound;
//! - messages of one topic and epoch are delivered with strictly increasing
//!   `seq` (at most once, in order).
#![allow(dead_code, unreachable_pub, missing_docs)]

use hublink_core::{
    CloseInfo, Config, Connection, DialectKind, Event, HeartbeatConfig, QueueConfig, State,
    Transmit,
};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Socket {
    None,
    Dialing,
    Open,
}

const TOPICS: [&str; 3] = ["a", "b", "central_1"];
const EPOCHS: [&str; 2] = ["e1", "e2"];

pub struct Model {
    conn: Connection<Value>,
    socket: Socket,
    now: u64,
    max_queue: usize,
    /// The highest seq delivered per (topic, epoch).
    delivered: HashMap<(String, String), u64>,
    pub steps: usize,
}

/// Reads one byte, or 0 at the end.
fn byte(input: &mut &[u8]) -> u8 {
    match input.split_first() {
        Some((b, rest)) => {
            *input = rest;
            *b
        }
        None => 0,
    }
}

fn u16le(input: &mut &[u8]) -> u16 {
    u16::from_le_bytes([byte(input), byte(input)])
}

impl Model {
    pub fn new(dialect: DialectKind, seed: u64) -> Self {
        let config = Config {
            queue: QueueConfig {
                max_frames: 4,
                ttl_ms: 3_000,
            },
            heartbeat: HeartbeatConfig {
                probe_timeout_ms: 700,
                ..Default::default()
            },
            seed,
            ..Config::default()
        };
        let max_queue = config.queue.max_frames;
        Model {
            conn: Connection::new(config, dialect.build()),
            socket: Socket::None,
            now: 0,
            max_queue,
            delivered: HashMap::new(),
            steps: 0,
        }
    }

    /// Runs every input encoded in `bytes`; panics on a broken invariant.
    pub fn run(bytes: &[u8]) {
        let mut input = bytes;
        let dialect = DialectKind::ALL[byte(&mut input) as usize % DialectKind::ALL.len()];
        let seed = byte(&mut input) as u64;
        let mut model = Model::new(dialect, seed);
        while !input.is_empty() {
            model.step(&mut input);
        }
    }

    fn text(&self, input: &mut &[u8]) -> String {
        let topic = TOPICS[byte(input) as usize % TOPICS.len()];
        let epoch = EPOCHS[byte(input) as usize % EPOCHS.len()];
        let seq = byte(input) % 8;
        match byte(input) % 12 {
            0 => format!(
                r#"{{"type":"message","topic":"{topic}","seq":{seq},"epoch":"{epoch}","data":{seq}}}"#
            ),
            1 => format!(
                r#"{{"type":"subscribe_ack","topic":"{topic}","success":{},"recovered":{},"epoch":"{epoch}","seq":{seq}}}"#,
                !seq.is_multiple_of(3),
                seq.is_multiple_of(2)
            ),
            2 => format!(
                r#"{{"type":"reconnect","reason":"r","retry_after":{}}}"#,
                seq
            ),
            3 => r#"{"type":"heartbeat","timestamp":1}"#.to_owned(),
            4 => format!(r#"{{"type":"connected","heartbeat_interval":{}}}"#, seq),
            5 => format!(r#"{{"type":"sensor_data","data":{{"v":{seq}}}}}"#),
            6 => format!(r#"{{"action":"subscribe","success":true,"room":"{topic}"}}"#),
            7 => format!(r#"{{"Result":"Event Task Updated","Events":{{"n":{seq}}}}}"#),
            8 => {
                let a = format!(
                    r#"{{"type":"message","topic":"{topic}","seq":{seq},"epoch":"{epoch}","data":1}}"#
                );
                format!("{a}\n{a}\n{{bad")
            }
            9 => r#"{"type":"error","code":"x","message":"m","recoverable":false}"#.to_owned(),
            10 => r#"{"type":"pong"}"#.to_owned(),
            _ => {
                let len = byte(input) as usize % 16;
                let raw: Vec<u8> = (0..len).map(|_| byte(input)).collect();
                String::from_utf8_lossy(&raw).into_owned()
            }
        }
    }

    pub fn step(&mut self, input: &mut &[u8]) {
        self.steps += 1;
        let op = byte(input) % 19;
        let now = self.now;
        let trace = std::env::var_os("HUBLINK_MODEL_TRACE").is_some();
        if trace {
            eprintln!(
                "step {} at {} ms: op {op} ({:?}, socket {:?})",
                self.steps,
                now,
                self.conn.state(),
                self.socket
            );
        }
        match op {
            0 => self.conn.connect(now),
            1 => {
                if self.socket == Socket::Dialing {
                    self.socket = Socket::Open;
                }
                self.conn.handle_open(now); // a stale open is ignored by the core
            }
            2 => {
                let text = self.text(input);
                if trace {
                    eprintln!("  text {text:?}");
                }
                self.conn.handle_text(now, &text);
            }
            3 => self.conn.handle_binary(now, byte(input) as usize),
            4 => self.conn.handle_control_frame(now),
            5..=7 => {
                let info = match op {
                    5 => CloseInfo::Frame {
                        code: [1000, 1006, 1012, 4001, 4003, 4008, 4009][byte(input) as usize % 7],
                        reason: String::new(),
                    },
                    6 => CloseInfo::Http {
                        status: [401, 403, 404, 503][byte(input) as usize % 4],
                    },
                    _ => CloseInfo::Failed {
                        error: "reset".into(),
                    },
                };
                self.socket = Socket::None;
                self.conn.handle_close(now, info);
            }
            8 => self.now += u16le(input) as u64,
            9 | 10 => {
                if let Some(t) = self.conn.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.conn.handle_timeout(self.now);
                if let Some(t) = self.conn.poll_timeout() {
                    assert!(
                        t > self.now,
                        "timer at {t} not after now {} right after handle_timeout",
                        self.now
                    );
                }
            }
            11 => {
                let _ = self
                    .conn
                    .subscribe(now, TOPICS[byte(input) as usize % TOPICS.len()]);
            }
            12 => {
                let topic = TOPICS[byte(input) as usize % TOPICS.len()];
                self.conn.unsubscribe(now, topic);
                self.delivered.retain(|(t, _), _| t != topic);
            }
            13 => {
                let _ = self.conn.publish(now, "a", &Value::from(1));
            }
            14 => {
                let _ = self
                    .conn
                    .send_frame_with_ttl(now, "x".into(), byte(input) as u64 * 50);
            }
            15 => self.conn.reconnect_now(now),
            16 => self.conn.network_offline(now),
            18 => self.conn.suspend(now),
            _ => self.conn.close(now),
        }
        self.drain_and_check();
    }

    fn drain_and_check(&mut self) {
        while let Some(t) = self.conn.poll_transmit() {
            match t {
                Transmit::Open => {
                    assert_eq!(self.socket, Socket::None, "a second transport was opened");
                    self.socket = Socket::Dialing;
                }
                Transmit::Close { .. } => {
                    assert_ne!(self.socket, Socket::None, "close without a transport");
                    self.socket = Socket::None;
                }
                Transmit::Send(_) => {
                    assert_eq!(
                        self.socket,
                        Socket::Open,
                        "a frame sent without an open transport"
                    )
                }
            }
        }
        while let Some(e) = self.conn.poll_event() {
            if std::env::var_os("HUBLINK_MODEL_TRACE").is_some() {
                eprintln!("  event {e:?}");
            }
            if let Event::Message(m) = e {
                if let Some(p) = &m.position {
                    if self.conn.subscriptions().contains(&m.topic) {
                        let key = (m.topic.clone(), p.epoch.clone());
                        if let Some(seq) = self.delivered.get(&key) {
                            assert!(
                                p.seq > *seq,
                                "{} delivered seq {} after {} in epoch {}",
                                m.topic,
                                p.seq,
                                seq,
                                p.epoch
                            );
                        }
                        self.delivered.insert(key, p.seq);
                    }
                }
            }
        }
        assert!(self.conn.queued() <= self.max_queue);
        let timer = self.conn.poll_timeout();
        match self.conn.state() {
            State::Connected => {
                assert_eq!(
                    self.socket,
                    Socket::Open,
                    "connected without an open transport"
                );
                assert!(timer.is_some(), "connected without a liveness timer");
            }
            State::Connecting | State::Reconnecting => {
                assert_ne!(self.socket, Socket::Open);
                assert!(
                    timer.is_some(),
                    "{:?} with no timer: stuck",
                    self.conn.state()
                );
            }
            State::Disconnected => {
                assert_eq!(self.socket, Socket::None);
                assert_eq!(self.conn.queued(), 0);
                assert_eq!(timer, None, "disconnected with a timer");
            }
        }
    }
}
