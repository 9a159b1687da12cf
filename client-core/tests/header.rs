//! The header path (`handle_header`): a shell that parsed a frame itself hands
//! the core its top-level fields, and the core decides exactly as it does for
//! the frame's text.
mod common;

use common::Sim;
use hublink_core::raw::RawFrame;
use hublink_core::{Admit, Config, DialectKind, Event, Header, Position};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The header a shell reads from a parsed frame.
fn header_of(v: &Value) -> Header<'_> {
    Header {
        kind: v.get("type").and_then(Value::as_str),
        topic: v.get("topic").and_then(Value::as_str),
        seq: v.get("seq").and_then(Value::as_u64),
        epoch: v.get("epoch").and_then(Value::as_str),
        has_data: v.get("data").is_some(),
    }
}

/// What an application sees, with messages delivered by the header path
/// recorded as the events the text path queues for them.
fn via_header(sim: &mut Sim, frame: &Value) -> Admit {
    let text = frame.to_string();
    let admit = sim
        .conn
        .handle_header(sim.now, text.len(), &header_of(frame));
    match admit {
        Admit::Deliver => {
            sim.drain();
            sim.events.push(Event::Message(hublink_core::Message {
                topic: frame["topic"].as_str().unwrap().to_owned(),
                kind: None,
                position: frame["seq"].as_u64().map(|seq| Position {
                    epoch: frame["epoch"].as_str().unwrap().to_owned(),
                    seq,
                }),
                data: frame["data"].clone(),
                timestamp: frame.get("timestamp").cloned(),
            }));
        }
        Admit::Decode => sim.conn.handle_value(sim.now, frame.clone()),
        Admit::Drop => {}
    }
    sim.drain();
    admit
}

/// The native shell's path: the header read by `RawFrame` from the text,
/// the payload kept as text (parsed here only to compare events); a frame
/// it cannot read, or one the core wants whole, goes down the text path.
fn via_raw(sim: &mut Sim, text: &str) {
    let Some(frame) = RawFrame::parse(text) else {
        return sim.recv(text);
    };
    match sim.conn.handle_header(sim.now, text.len(), &frame.header()) {
        Admit::Deliver => {
            sim.drain();
            sim.events.push(Event::Message(hublink_core::Message {
                topic: frame.topic.as_deref().unwrap().to_owned(),
                kind: None,
                position: frame.seq.map(|seq| Position {
                    epoch: frame.epoch.as_deref().unwrap().to_owned(),
                    seq,
                }),
                data: serde_json::from_str(frame.data.unwrap().get()).unwrap(),
                timestamp: frame
                    .timestamp
                    .map(|t| serde_json::from_str(t.get()).unwrap()),
            }));
        }
        Admit::Decode => sim.conn.handle_text(sim.now, text),
        Admit::Drop => {}
    }
    sim.drain();
}

fn subscribed(topic: &str) -> Sim {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, topic).unwrap();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"subscribe_ack","topic":topic,"success":true,"epoch":"e","seq":0}));
    sim.take_events();
    sim
}

#[test]
fn new_messages_are_delivered_and_duplicates_dropped() {
    let mut sim = subscribed("a");
    let m = |seq: u64| json!({"type":"message","topic":"a","seq":seq,"epoch":"e","data":{"n":seq}});
    assert_eq!(via_header(&mut sim, &m(1)), Admit::Deliver);
    assert_eq!(via_header(&mut sim, &m(2)), Admit::Deliver);
    assert_eq!(via_header(&mut sim, &m(2)), Admit::Drop);
    assert_eq!(via_header(&mut sim, &m(1)), Admit::Drop);
    assert_eq!(sim.messages().len(), 2);
    assert_eq!(
        sim.conn.subscriptions().get("a").unwrap().position,
        Some(Position {
            epoch: "e".into(),
            seq: 2
        })
    );
}

#[test]
fn a_gap_is_queued_before_the_message_it_reveals() {
    let mut sim = subscribed("a");
    let frame = json!({"type":"message","topic":"a","seq":5,"epoch":"e","data":1});
    let admit = sim.conn.handle_header(sim.now, 10, &header_of(&frame));
    assert_eq!(admit, Admit::Deliver);
    let events = sim.take_events();
    assert!(
        matches!(&events[..], [Event::Gap { last, next, .. }] if last.seq == 0 && next.seq == 5),
        "{events:?}"
    );
}

#[test]
fn control_frames_and_malformed_messages_go_down_the_whole_value_path() {
    let mut sim = subscribed("a");
    for frame in [
        json!({"type":"heartbeat","timestamp":1}),
        json!({"type":"subscribe_ack","topic":"b","success":true}),
        json!({"type":"message","topic":"a","seq":1,"data":1}), // seq without epoch
        json!({"type":"message","topic":"a","seq":1,"epoch":"e"}), // no data
        json!({"type":"message","seq":1,"epoch":"e","data":1}), // no topic
        json!({"type":"message","topic":7,"data":1}),
    ] {
        assert_eq!(via_header(&mut sim, &frame), Admit::Decode, "{frame}");
    }
    let decode_errors = sim
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::DecodeError(_)))
        .count();
    assert_eq!(
        decode_errors, 4,
        "the whole-value path reports the malformed ones"
    );
}

#[test]
fn nothing_is_delivered_without_an_open_transport_nor_over_the_limit() {
    let frame = json!({"type":"message","topic":"a","data":1});
    let mut sim = Sim::hublink();
    assert_eq!(
        sim.conn.handle_header(sim.now, 10, &header_of(&frame)),
        Admit::Drop
    );
    let mut sim = Sim::new(
        Config {
            max_frame_bytes: 100,
            ..Config::default()
        },
        DialectKind::Hublink,
    );
    sim.connect_and_open();
    assert_eq!(
        sim.conn.handle_header(sim.now, 101, &header_of(&frame)),
        Admit::Drop
    );
    assert!(matches!(
        &sim.take_events()[..],
        [Event::DecodeError(hublink_core::DecodeError::TooBig {
            len: 101,
            limit: 100
        })]
    ));
    assert!(!sim.conn.fits(sim.now, 101));
    assert!(sim.conn.fits(sim.now, 100));
}

#[test]
fn dialects_without_a_header_path_decode_every_frame() {
    let mut sim = Sim::new(Config::default(), DialectKind::Machines);
    sim.connect_and_open();
    let frame = json!({"type":"message","topic":"a","data":1});
    assert_eq!(via_header(&mut sim, &frame), Admit::Decode);
    assert_eq!(sim.messages().len(), 1, "delivered by the whole-value path");
}

#[test]
fn header_traffic_keeps_the_link_alive() {
    let mut sim = subscribed("a");
    let timeout = sim.conn.liveness_timeout_ms();
    for seq in 1..=4 {
        sim.now += timeout / 2;
        sim.conn.handle_timeout(sim.now);
        let frame = json!({"type":"message","topic":"a","seq":seq,"epoch":"e","data":1});
        via_header(&mut sim, &frame);
    }
    assert_eq!(sim.conn.state(), hublink_core::State::Connected);
}

fn frame_strategy() -> impl Strategy<Value = Value> {
    let topic = prop_oneof![Just("a"), Just("b"), Just("c")];
    let epoch = prop_oneof![Just("e1"), Just("e2")];
    prop_oneof![
        8 => (topic.clone(), epoch.clone(), 0u64..12).prop_map(|(t, e, s)| {
            json!({"type":"message","topic":t,"seq":s,"epoch":e,"data":{"s":s},"timestamp":s})
        }),
        1 => (topic.clone(), epoch, 0u64..12, any::<bool>()).prop_map(|(t, e, s, r)| {
            json!({"type":"subscribe_ack","topic":t,"success":true,"epoch":e,"seq":s,"recovered":r})
        }),
        1 => topic.prop_map(|t| json!({"type":"message","topic":t,"data":null})),
        1 => Just(json!({"type":"heartbeat","timestamp":1})),
        1 => Just(json!({"type":"message","topic":"a","seq":3,"data":1})),
        // Escapes the borrow cannot hold, a seq that is no integer.
        1 => Just(json!({"type":"message","topic":"a\u{e9}\n","seq":1,"epoch":"e1","data":"x"})),
        1 => Just(json!({"type":"message","topic":"a","seq":2.5,"epoch":"e1","data":2})),
    ]
}

proptest! {
    /// The same frames through the text path, the header path of a shell
    /// that parsed them (the browser's) and the header path of a shell that
    /// read only their headers (the native one's `RawFrame`) reach the
    /// application as the same events in the same order.
    #[test]
    fn the_header_path_decides_as_the_text_path_does(
        frames in proptest::collection::vec(frame_strategy(), 1..60),
    ) {
        let mut text = Sim::hublink();
        let mut header = Sim::hublink();
        let mut raw = Sim::hublink();
        for sim in [&mut text, &mut header, &mut raw] {
            for t in ["a", "b"] {
                sim.conn.subscribe(sim.now, t).unwrap();
            }
            sim.connect_and_open();
        }
        for frame in &frames {
            text.recv_json(frame.clone());
            via_header(&mut header, frame);
            via_raw(&mut raw, &frame.to_string());
        }
        let events = text.take_events();
        let transmits = text.take_transmits();
        prop_assert_eq!(&events, &header.take_events());
        prop_assert_eq!(&transmits, &header.take_transmits());
        prop_assert_eq!(&events, &raw.take_events());
        prop_assert_eq!(&transmits, &raw.take_transmits());
        for t in ["a", "b", "c"] {
            prop_assert_eq!(
                text.conn.subscriptions().get(t).map(|s| s.position.clone()),
                header.conn.subscriptions().get(t).map(|s| s.position.clone())
            );
        }
    }
}
