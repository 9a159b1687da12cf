//! Shared harness: a simulated clock driving a [`Connection`], and a scripted
//! fake server that answers the canonical protocol with real history.
#![allow(dead_code, unreachable_pub, missing_docs)]

use hublink_core::{
    CloseInfo, Config, Connection, DialectKind, Event, Reason, State, StateChange, Transmit,
};
use serde_json::{json, Value};
use std::collections::HashMap;

pub type Conn = Connection<Value>;

/// A connection under a simulated clock. `now` only moves when a test moves it.
pub struct Sim {
    pub conn: Conn,
    pub now: u64,
    pub transmits: Vec<Transmit>,
    pub events: Vec<Event<Value>>,
}

impl Sim {
    pub fn new(config: Config, dialect: DialectKind) -> Self {
        Sim {
            conn: Connection::new(config, dialect.build()),
            now: 1_000,
            transmits: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn hublink() -> Self {
        Self::new(Config::default(), DialectKind::Hublink)
    }

    /// Drains every output into `transmits` and `events`, as a shell does after
    /// each input.
    pub fn drain(&mut self) {
        while let Some(t) = self.conn.poll_transmit() {
            self.transmits.push(t);
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
    }

    pub fn take_transmits(&mut self) -> Vec<Transmit> {
        self.drain();
        std::mem::take(&mut self.transmits)
    }

    pub fn take_events(&mut self) -> Vec<Event<Value>> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    /// Frames sent, parsed, dropping opens and closes.
    pub fn take_sent(&mut self) -> Vec<Value> {
        self.take_transmits()
            .into_iter()
            .filter_map(|t| match t {
                Transmit::Send(text) => {
                    Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
                }
                _ => None,
            })
            .collect()
    }

    pub fn state_changes(&mut self) -> Vec<StateChange> {
        self.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::StateChanged(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.conn.handle_timeout(self.now);
        self.drain();
    }

    /// Jumps to the core's next deadline and fires it; returns the jump.
    pub fn fire_next_timeout(&mut self) -> u64 {
        let at = self.conn.poll_timeout().expect("a timer is armed");
        assert!(
            at >= self.now,
            "timer at {at} is in the past (now {})",
            self.now
        );
        let jumped = at - self.now;
        self.now = at;
        self.conn.handle_timeout(self.now);
        self.drain();
        jumped
    }

    pub fn connect_and_open(&mut self) {
        self.conn.connect(self.now);
        assert_eq!(
            self.take_transmits(),
            vec![Transmit::Open],
            "connect() asks for a transport"
        );
        self.conn.handle_open(self.now);
        self.drain();
        // Keep what opening produced (subscribes, flushed frames, Subscribed
        // events) but not the two state changes every test goes through.
        self.events.retain(|e| !matches!(e, Event::StateChanged(_)));
        assert_eq!(self.conn.state(), State::Connected);
    }

    pub fn recv(&mut self, frame: &str) {
        self.conn.handle_text(self.now, frame);
        self.drain();
    }

    pub fn recv_json(&mut self, value: Value) {
        self.recv(&value.to_string());
    }

    pub fn close(&mut self, code: u16) {
        self.conn.handle_close(
            self.now,
            CloseInfo::Frame {
                code,
                reason: String::new(),
            },
        );
        self.drain();
    }

    /// Waits out the backoff and opens the next transport.
    pub fn retry_and_open(&mut self) -> u64 {
        assert_eq!(self.conn.state(), State::Reconnecting);
        let waited = self.fire_next_timeout();
        assert!(self.take_transmits().contains(&Transmit::Open));
        self.conn.handle_open(self.now);
        self.drain();
        waited
    }

    pub fn messages(&mut self) -> Vec<(String, Option<u64>, Value)> {
        self.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some((m.topic.clone(), m.seq(), m.data)),
                _ => None,
            })
            .collect()
    }
}

pub fn reason_names(changes: &[StateChange]) -> Vec<(State, &'static str)> {
    changes.iter().map(|c| (c.to, c.reason.name())).collect()
}

pub fn last_reason(changes: &[StateChange]) -> Reason {
    changes.last().expect("a state change").reason.clone()
}

/// A scripted server for the canonical protocol, with per-topic history
/// bounded by count, so that recovery is tested against real replay logic.
pub struct FakeServer {
    pub epoch: String,
    pub window: usize,
    topics: HashMap<String, Vec<(u64, Value)>>,
    subscribed: Vec<String>,
    /// The dedupe window: `(topic, id)` to the seq its first publish got.
    pub ids: HashMap<(String, String), u64>,
    /// Publishes answered from the window instead of published again.
    pub repeats: u64,
}

impl FakeServer {
    pub fn new(epoch: &str, window: usize) -> Self {
        FakeServer {
            epoch: epoch.to_owned(),
            window,
            topics: HashMap::new(),
            subscribed: Vec::new(),
            ids: HashMap::new(),
            repeats: 0,
        }
    }

    /// A new connection: nothing subscribed.
    pub fn accept(&mut self) -> String {
        self.subscribed.clear();
        json!({"type":"connected","client_id":"c-1","heartbeat_interval":30,"server_time":0,"protocol":"hublink.v1"}).to_string()
    }

    /// A restart that loses history: new epoch, empty topics.
    pub fn restart_fresh(&mut self, epoch: &str) {
        self.epoch = epoch.to_owned();
        self.topics.clear();
        self.subscribed.clear();
    }

    /// The payloads in `topic`'s history, oldest first.
    pub fn history(&self, topic: &str) -> Vec<Value> {
        self.topics
            .get(topic)
            .map(|h| h.iter().map(|(_, d)| d.clone()).collect())
            .unwrap_or_default()
    }

    fn latest(&self, topic: &str) -> u64 {
        self.topics
            .get(topic)
            .and_then(|h| h.last())
            .map_or(0, |(s, _)| *s)
    }

    fn message(&self, topic: &str, seq: u64, data: &Value) -> String {
        json!({"type":"message","topic":topic,"seq":seq,"epoch":self.epoch,"data":data,"timestamp":0}).to_string()
    }

    /// Publishes; returns the frame for the client when it is subscribed now.
    pub fn publish(&mut self, topic: &str, data: Value) -> Option<String> {
        let seq = self.latest(topic) + 1;
        let history = self.topics.entry(topic.to_owned()).or_default();
        history.push((seq, data.clone()));
        if history.len() > self.window {
            history.remove(0);
        }
        self.subscribed
            .iter()
            .any(|t| t == topic)
            .then(|| self.message(topic, seq, &data))
    }

    /// Answers one client frame.
    pub fn handle(&mut self, frame: &Value) -> Vec<String> {
        match frame["type"].as_str() {
            Some("subscribe") => {
                let topic = frame["topic"].as_str().unwrap().to_owned();
                self.subscribed.push(topic.clone());
                let latest = self.latest(&topic);
                let mut ack = json!({"type":"subscribe_ack","topic":topic,"success":true,"epoch":self.epoch,"seq":latest});
                let mut out = Vec::new();
                if let Some(since) = frame.get("since") {
                    let seq = since["seq"].as_u64().unwrap();
                    let history = self.topics.get(&topic).cloned().unwrap_or_default();
                    let oldest = history.first().map_or(latest + 1, |(s, _)| *s);
                    let recovered =
                        since["epoch"] == self.epoch.as_str() && seq + 1 >= oldest && seq <= latest;
                    ack["recovered"] = json!(recovered);
                    out.push(ack.to_string());
                    if recovered {
                        for (s, d) in history.iter().filter(|(s, _)| *s > seq) {
                            out.push(self.message(&topic, *s, d));
                        }
                    }
                } else {
                    out.push(ack.to_string());
                }
                out
            }
            Some("ping") => vec![json!({"type":"pong"}).to_string()],
            Some("publish") => {
                let topic = frame["topic"].as_str().unwrap().to_owned();
                let mut out = Vec::new();
                let seq = match frame["id"].as_str() {
                    Some(id) => match self.ids.get(&(topic.clone(), id.to_owned())) {
                        Some(&seq) => {
                            self.repeats += 1;
                            seq
                        }
                        None => {
                            out.extend(self.publish(&topic, frame["data"].clone()));
                            let seq = self.latest(&topic);
                            self.ids.insert((topic.clone(), id.to_owned()), seq);
                            seq
                        }
                    },
                    None => {
                        out.extend(self.publish(&topic, frame["data"].clone()));
                        return out;
                    }
                };
                out.push(json!({"type":"publish_ack","id":frame["id"],"topic":topic,"seq":seq,"epoch":self.epoch}).to_string());
                out
            }
            _ => Vec::new(),
        }
    }

    /// Feeds every frame the client sent to the server and the answers back.
    pub fn exchange(&mut self, sim: &mut Sim) -> Vec<Value> {
        let sent = sim.take_sent();
        for frame in &sent {
            for answer in self.handle(frame) {
                sim.recv(&answer);
            }
        }
        sent
    }
}
