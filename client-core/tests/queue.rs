//! The offline send queue: bounded, with a time to live, flushed in order
//! after resubscription. Nothing is dropped without the application knowing.

mod common;

use common::*;
use hublink_core::{Config, DialectKind, Error, Event, QueueConfig, Transmit, UnsentReason};
use serde_json::json;

fn small_queue() -> Config {
    Config {
        queue: QueueConfig {
            max_frames: 3,
            ttl_ms: 5_000,
        },
        ..Config::default()
    }
}

#[test]
fn frames_sent_while_offline_go_out_in_order_after_the_resubscribes() {
    let mut sim = Sim::new(small_queue(), DialectKind::Hublink);
    sim.conn.subscribe(sim.now, "orders").unwrap();
    sim.conn.connect(sim.now);
    sim.drain();
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            sim.conn
                .publish(sim.now, "orders", &json!({"n": i}))
                .unwrap()
        })
        .collect();
    assert_eq!(sim.conn.queued(), 3);
    sim.take_transmits();
    sim.conn.handle_open(sim.now);
    let sent = sim.take_sent();
    assert_eq!(
        sent,
        vec![
            json!({"type":"subscribe","topic":"orders"}),
            json!({"type":"publish","topic":"orders","id":ids[0],"data":{"n":1}}),
            json!({"type":"publish","topic":"orders","id":ids[1],"data":{"n":2}}),
            json!({"type":"publish","topic":"orders","id":ids[2],"data":{"n":3}}),
        ]
    );
    assert_eq!(sim.conn.queued(), 0);
    assert_eq!(sim.conn.in_flight(), 3, "kept until answered");
}

#[test]
fn a_full_queue_refuses_with_an_error_naming_the_limit() {
    let mut sim = Sim::new(small_queue(), DialectKind::Hublink);
    sim.conn.connect(sim.now);
    for i in 0..3 {
        sim.conn.send_frame(sim.now, format!("f{i}")).unwrap();
    }
    let err = sim.conn.send_frame(sim.now, "f3".into()).unwrap_err();
    assert_eq!(err, Error::QueueFull { limit: 3 });
    assert!(err.to_string().contains("3 frames"), "{err}");
    assert_eq!(sim.conn.queued(), 3, "the refused frame is not queued");
}

#[test]
fn expired_frames_are_reported_at_their_deadline_and_never_sent() {
    let mut sim = Sim::new(small_queue(), DialectKind::Hublink);
    sim.conn.connect(sim.now);
    sim.conn.send_frame(sim.now, "old".into()).unwrap();
    sim.now += 2_000;
    sim.conn.send_frame(sim.now, "newer".into()).unwrap();
    sim.conn
        .send_frame_with_ttl(sim.now, "short".into(), 1_000)
        .unwrap();
    sim.take_events();
    assert_eq!(sim.fire_next_timeout(), 1_000);
    assert_eq!(
        sim.take_events(),
        vec![Event::Unsent {
            frame: "short".into(),
            reason: UnsentReason::Expired { waited_ms: 1_000 }
        }]
    );
    assert_eq!(sim.fire_next_timeout(), 2_000);
    assert_eq!(
        sim.take_events(),
        vec![Event::Unsent {
            frame: "old".into(),
            reason: UnsentReason::Expired { waited_ms: 5_000 }
        }]
    );
    sim.conn.handle_open(sim.now);
    let frames: Vec<Transmit> = sim.take_transmits();
    assert_eq!(frames, vec![Transmit::Open, Transmit::Send("newer".into())]);
}

#[test]
fn sends_while_connected_go_straight_out() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_transmits();
    sim.conn
        .send_json(sim.now, &json!({"type":"custom"}))
        .unwrap();
    assert_eq!(sim.take_sent(), vec![json!({"type":"custom"})]);
    assert_eq!(sim.conn.queued(), 0);
}

#[test]
fn publish_on_a_dialect_without_publish_is_an_error_not_a_drop() {
    let mut sim = Sim::new(Config::default(), DialectKind::Machines);
    sim.connect_and_open();
    let err = sim
        .conn
        .publish(sim.now, "sensor_data", &json!(1))
        .unwrap_err();
    assert_eq!(err.to_string(), "the machines dialect cannot publish");
}

#[test]
fn an_empty_topic_is_refused_at_once_by_publish_and_subscribe_and_nothing_is_queued() {
    let mut sim = Sim::hublink();
    for err in [
        sim.conn.publish(sim.now, "", &json!(1)).unwrap_err(),
        sim.conn.subscribe(sim.now, "").unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_topic");
        assert!(err.to_string().contains("cannot be empty"), "{err}");
    }
    sim.connect_and_open();
    assert_eq!(sim.take_sent(), Vec::<serde_json::Value>::new());
}
