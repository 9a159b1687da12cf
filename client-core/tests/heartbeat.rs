//! Liveness: a silent link is declared dead at exactly the timeout.

mod common;

use common::*;
use hublink_core::{Config, DialectKind, HeartbeatConfig, Reason, State, Transmit};
use serde_json::json;

#[test]
fn without_an_advertised_interval_the_link_dies_after_60_s_of_silence_not_before() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_events();
    let opened = sim.now;
    sim.advance(59_999);
    assert_eq!(sim.conn.state(), State::Connected);
    sim.advance(1);
    assert_eq!(sim.conn.state(), State::Reconnecting);
    assert_eq!(sim.now - opened, 60_000);
    let changes = sim.state_changes();
    assert_eq!(
        last_reason(&changes),
        Reason::HeartbeatTimeout { silent_ms: 60_000 }
    );
}

#[test]
fn the_advertised_interval_plus_grace_is_the_timeout_and_closes_with_4008() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"connected","client_id":"c","heartbeat_interval":30,"server_time":0,"protocol":"hublink.v1"}));
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
    sim.take_transmits();
    // The idle ping at 20 s of silence, then death at 40 s, to the millisecond.
    sim.advance(19_999);
    assert!(sim.take_sent().is_empty());
    sim.advance(1);
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    sim.advance(19_999);
    assert_eq!(sim.conn.state(), State::Connected);
    sim.advance(1);
    assert!(sim.take_transmits().contains(&Transmit::Close {
        code: 4008,
        reason: "heartbeat timeout".into()
    }));
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn any_inbound_frame_proves_liveness() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    for _ in 0..10 {
        sim.advance(50_000);
        sim.recv_json(json!({"type":"heartbeat","timestamp":1,"active_streams":0}));
    }
    for _ in 0..10 {
        sim.advance(50_000);
        sim.conn.handle_control_frame(sim.now); // a WebSocket ping frame
    }
    sim.advance(50_000);
    sim.recv("not json at all"); // even garbage is traffic
    sim.advance(59_999);
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn server_heartbeats_are_echoed_with_their_timestamp() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_transmits();
    sim.recv_json(json!({"type":"heartbeat","timestamp":1763769630000u64,"active_streams":3}));
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"heartbeat","timestamp":1763769630000u64})]
    );
}

#[test]
fn one_idle_ping_per_silent_period() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_transmits();
    sim.advance(30_000);
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    sim.advance(10_000);
    assert!(sim.take_sent().is_empty(), "no ping storm");
    sim.recv_json(json!({"type":"pong"}));
    sim.advance(30_000);
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"ping"})],
        "a new silence, a new ping"
    );
}

#[test]
fn a_fixed_timeout_and_no_idle_ping_can_be_configured() {
    let config = Config {
        heartbeat: HeartbeatConfig {
            timeout_ms: Some(500),
            idle_ping: false,
            ..Default::default()
        },
        ..Config::default()
    };
    let mut sim = Sim::new(config, DialectKind::Hublink);
    sim.connect_and_open();
    sim.take_transmits();
    assert_eq!(sim.fire_next_timeout(), 500);
    assert!(!sim
        .take_transmits()
        .iter()
        .any(|t| matches!(t, Transmit::Send(_))));
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn the_timeout_is_reset_per_connection() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"connected","heartbeat_interval":1}));
    assert_eq!(sim.conn.liveness_timeout_ms(), 11_000);
    sim.close(1006);
    sim.retry_and_open();
    assert_eq!(
        sim.conn.liveness_timeout_ms(),
        60_000,
        "a new server may advertise nothing"
    );
}
