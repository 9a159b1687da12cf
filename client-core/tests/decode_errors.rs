//! Bad frames become decode-error events: never a panic, never a dropped
//! connection, and the good messages around them still arrive.

mod common;

use common::*;
use hublink_core::{Config, DecodeError, DialectKind, Event, State};
use proptest::prelude::*;
use serde_json::json;

fn decode_errors(sim: &mut Sim) -> Vec<DecodeError> {
    sim.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::DecodeError(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn garbage_truncated_and_wrong_shapes_are_reported_and_named() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_events();
    sim.recv("hello");
    sim.recv(r#"{"type":"message","topic":"a","seq":1,"ep"#);
    sim.recv(r#"[1,2,3]"#);
    sim.recv(r#"{"topic":"a"}"#);
    sim.recv(r#"{"type":"message","seq":1,"epoch":"e","data":1}"#);
    sim.recv(r#"{"type":"message","topic":"a","seq":1,"data":1}"#);
    sim.recv(r#"{"type":"subscribe_ack","success":true}"#);
    let errors = decode_errors(&mut sim);
    let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), 7, "{texts:#?}");
    assert!(
        texts[0].starts_with("frame is not JSON: expected value"),
        "{}",
        texts[0]
    );
    assert!(texts[0].ends_with("(frame: hello)"));
    assert!(texts[1].contains("EOF while parsing"), "{}", texts[1]);
    assert!(texts[2].contains("message has no string `type`"));
    assert!(
        texts[4].contains("message has no string `topic`"),
        "{}",
        texts[4]
    );
    assert!(texts[5].contains("`seq` without `epoch`"));
    assert!(texts[6].contains("subscribe_ack has no string `topic`"));
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn huge_frames_are_refused_unparsed_and_binary_frames_reported() {
    let config = Config {
        max_frame_bytes: 1_000,
        ..Config::default()
    };
    let mut sim = Sim::new(config, DialectKind::Hublink);
    sim.connect_and_open();
    sim.take_events();
    let huge = format!(
        r#"{{"type":"message","topic":"a","data":"{}"}}"#,
        "x".repeat(5_000)
    );
    sim.recv(&huge);
    sim.conn.handle_binary(sim.now, 64);
    let errors = decode_errors(&mut sim);
    assert_eq!(
        errors,
        vec![
            DecodeError::TooBig {
                len: huge.len(),
                limit: 1_000
            },
            DecodeError::Binary { len: 64 }
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        "binary frame of 64 bytes where text is expected"
    );
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn a_batch_with_a_bad_line_keeps_the_good_lines() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    sim.take_events();
    let m = |seq: u64| {
        json!({"type":"message","topic":"a","seq":seq,"epoch":"e","data":seq}).to_string()
    };
    sim.recv(&format!("{}\n{{broken\n\n{}\n", m(1), m(2)));
    let events = sim.take_events();
    let seqs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.seq(),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::DecodeError(_)))
            .count(),
        1
    );
}

#[test]
fn a_payload_that_does_not_fit_the_type_names_topic_and_field() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"message","topic":"machines.CNC-001","seq":1,"epoch":"e","data":{"temperature":"hot"}}));
    let m = sim
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .unwrap();
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Reading {
        temperature: f64,
    }
    let err = m.decode::<Reading>().unwrap_err().to_string();
    assert!(err.starts_with("payload on topic \"machines.CNC-001\" does not decode: invalid type: string \"hot\", expected f64"), "{err}");
    // The raw value is still there for a fallback.
    assert_eq!(m.data["temperature"], "hot");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_in_any_dialect(bytes in proptest::collection::vec(any::<u8>(), 0..400), d in 0usize..6) {
        let text = String::from_utf8_lossy(&bytes);
        let mut sim = Sim::new(Config::default(), DialectKind::ALL[d]);
        sim.conn.subscribe(sim.now, "a").unwrap();
        sim.connect_and_open();
        sim.recv(&text);
        prop_assert!(matches!(sim.conn.state(), State::Connected | State::Reconnecting));
    }

    #[test]
    fn arbitrary_json_objects_never_panic_in_any_dialect(
        keys in proptest::collection::vec(prop_oneof![Just("type"), Just("topic"), Just("seq"), Just("epoch"), Just("data"), Just("action"), Just("success"), Just("retry_after"), Just("heartbeat_interval")], 0..6),
        values in proptest::collection::vec(prop_oneof![Just(json!(null)), Just(json!("message")), Just(json!("subscribe_ack")), Just(json!(-1)), Just(json!(1e300)), Just(json!([])), Just(json!({})), Just(json!("reconnect")), Just(json!(true))], 6),
        d in 0usize..6,
    ) {
        let mut obj = serde_json::Map::new();
        for (k, v) in keys.iter().zip(values) {
            obj.insert((*k).to_owned(), v);
        }
        let mut sim = Sim::new(Config::default(), DialectKind::ALL[d]);
        sim.connect_and_open();
        sim.recv(&serde_json::Value::Object(obj).to_string());
        if let Some(t) = sim.conn.poll_timeout() {
            prop_assert!(t >= sim.now, "a timer in the past");
        }
    }
}
