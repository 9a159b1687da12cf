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

// ----- The interval observed between server heartbeats ----------------------
//
// The topics and power servers send a heartbeat every 30 s but do not say so;
// nor does a hublink server that leaves `heartbeat_interval` out of
// `connected`. The core learns the interval from the heartbeats themselves.

/// Dialects that decode server heartbeats, with servers that may not
/// advertise their interval.
const UNADVERTISED: [DialectKind; 3] = [
    DialectKind::Hublink,
    DialectKind::Topics,
    DialectKind::Power,
];

/// A heartbeat as the dialect's server sends it.
fn heartbeat_frame(dialect: DialectKind) -> serde_json::Value {
    match dialect {
        DialectKind::Power => {
            json!({"type":"heartbeat","timestamp":"2024-01-01T12:00:00","active_streams":1})
        }
        DialectKind::Topics => json!({"type":"heartbeat","timestamp":1616161616}),
        _ => json!({"type":"heartbeat","timestamp":1763769630000u64,"active_streams":1}),
    }
}

fn beat(sim: &mut Sim, dialect: DialectKind) {
    sim.recv_json(heartbeat_frame(dialect));
}

/// Connected, greeted as the dialect's server greets (no interval advertised).
fn opened(config: Config, dialect: DialectKind) -> Sim {
    let mut sim = Sim::new(config, dialect);
    sim.connect_and_open();
    match dialect {
        DialectKind::Hublink => sim.recv_json(json!({"type":"connected","client_id":"c"})),
        DialectKind::Topics => {
            sim.recv_json(json!({"type":"connected","client_id":"c","timestamp":1616161616}))
        }
        _ => {}
    }
    sim.take_events();
    sim
}

/// `n` heartbeats, each `every` ms after the previous frame; the link must
/// stay up throughout.
fn beats(sim: &mut Sim, dialect: DialectKind, n: usize, every: u64) {
    for i in 0..n {
        sim.advance(every);
        assert_eq!(
            sim.conn.state(),
            State::Connected,
            "{dialect}: declared dead before heartbeat {i} ({every} ms after the previous frame)"
        );
        beat(sim, dialect);
    }
    let changes = sim.state_changes();
    assert!(changes.is_empty(), "{dialect}: {changes:?}");
}

#[test]
fn heartbeats_every_30_s_make_40_s_of_silence_fatal_without_an_advertised_interval() {
    for dialect in UNADVERTISED {
        let mut sim = opened(Config::default(), dialect);
        beats(&mut sim, dialect, 3, 30_000);
        assert_eq!(
            sim.conn.observed_heartbeat_interval_ms(),
            Some(30_000),
            "{dialect}"
        );
        assert_eq!(sim.conn.liveness_timeout_ms(), 40_000, "{dialect}");
        sim.advance(39_999);
        assert_eq!(sim.conn.state(), State::Connected, "{dialect}");
        sim.advance(1);
        assert_eq!(sim.conn.state(), State::Reconnecting, "{dialect}");
        assert!(
            sim.take_transmits().contains(&Transmit::Close {
                code: 4008,
                reason: "heartbeat timeout".into()
            }),
            "{dialect}"
        );
        assert_eq!(
            last_reason(&sim.state_changes()),
            Reason::HeartbeatTimeout { silent_ms: 40_000 },
            "{dialect}"
        );
    }
}

#[test]
fn the_grace_is_added_to_the_observed_interval() {
    let config = Config {
        heartbeat: HeartbeatConfig {
            grace_ms: 2_000,
            ..Default::default()
        },
        ..Config::default()
    };
    let mut sim = opened(config, DialectKind::Topics);
    beats(&mut sim, DialectKind::Topics, 2, 30_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 32_000);
    sim.advance(31_999);
    assert_eq!(sim.conn.state(), State::Connected);
    sim.advance(1);
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn the_idle_ping_comes_at_half_the_learned_timeout() {
    for (dialect, ping) in [
        (DialectKind::Power, json!("ping")),
        (DialectKind::Hublink, json!({"type":"ping"})),
    ] {
        let mut sim = opened(Config::default(), dialect);
        beats(&mut sim, dialect, 3, 30_000);
        sim.take_transmits();
        sim.advance(19_999);
        assert!(sim.take_sent().is_empty(), "{dialect}");
        sim.advance(1);
        assert_eq!(sim.take_sent(), vec![ping.clone()], "{dialect}");
        // The answer proves liveness; the next silence gets its own ping.
        sim.recv_json(json!({"type":"pong"}));
        sim.advance(20_000);
        assert_eq!(sim.take_sent(), vec![ping], "{dialect}");
        assert_eq!(sim.conn.state(), State::Connected, "{dialect}");
    }
}

#[test]
fn one_early_heartbeat_does_not_shorten_the_timeout() {
    let d = DialectKind::Topics;
    let mut sim = opened(Config::default(), d);
    beats(&mut sim, d, 3, 30_000);
    // One beat out of step, 2 s after the last; the server's schedule goes on.
    beats(&mut sim, d, 1, 2_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
    beats(&mut sim, d, 1, 28_000);
    beats(&mut sim, d, 6, 30_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
}

#[test]
fn one_late_heartbeat_within_the_grace_is_survived_and_then_forgotten() {
    let d = DialectKind::Power;
    let mut sim = opened(Config::default(), d);
    beats(&mut sim, d, 3, 30_000);
    // 8 s late (within the 10 s grace), then back on schedule.
    beats(&mut sim, d, 1, 38_000);
    assert_eq!(
        sim.conn.liveness_timeout_ms(),
        48_000,
        "the longest recent interval counts: patience after a late beat"
    );
    beats(&mut sim, d, 1, 22_000);
    beats(&mut sim, d, 4, 30_000);
    assert_eq!(
        sim.conn.liveness_timeout_ms(),
        40_000,
        "a few beats later the late one no longer counts"
    );
}

#[test]
fn heartbeats_arriving_together_are_not_an_interval() {
    let d = DialectKind::Topics;
    let hb = heartbeat_frame(d).to_string();
    let mut sim = opened(Config::default(), d);
    beats(&mut sim, d, 3, 30_000);
    // After a stall the held beats arrive at once: batched in one frame, and
    // as separate frames in the same millisecond.
    sim.advance(30_000);
    sim.recv(&format!("{hb}\n{hb}\n{hb}"));
    for _ in 0..4 {
        sim.recv(&hb);
    }
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
    beats(&mut sim, d, 1, 30_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
}

#[test]
fn an_advertised_interval_wins_over_the_observed_one() {
    let d = DialectKind::Hublink;
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"connected","client_id":"c","heartbeat_interval":30}));
    // The server beats more often than it promised: the promise is the contract.
    beats(&mut sim, d, 5, 5_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
}

#[test]
fn an_explicit_timeout_wins_over_the_observed_interval() {
    let config = Config {
        heartbeat: HeartbeatConfig {
            timeout_ms: Some(90_000),
            ..Default::default()
        },
        ..Config::default()
    };
    let d = DialectKind::Topics;
    let mut sim = opened(config, d);
    beats(&mut sim, d, 3, 30_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 90_000);
    sim.advance(89_999);
    assert_eq!(sim.conn.state(), State::Connected);
    sim.advance(1);
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn the_observed_interval_never_lengthens_the_timeout_past_the_default() {
    // Data every 20 s keeps the link alive between heartbeats 100 s apart.
    let d = DialectKind::Topics;
    let mut sim = opened(Config::default(), d);
    for _ in 0..3 {
        for _ in 0..5 {
            sim.advance(20_000);
            sim.recv_json(json!({"type":"task_completion_update","data":{}}));
        }
        beat(&mut sim, d);
    }
    assert_eq!(sim.conn.state(), State::Connected);
    assert_eq!(sim.conn.liveness_timeout_ms(), 60_000);
}

#[test]
fn the_observed_interval_is_learned_again_on_each_connection() {
    let d = DialectKind::Topics;
    let mut sim = opened(Config::default(), d);
    beats(&mut sim, d, 2, 30_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
    sim.close(1006);
    sim.retry_and_open();
    sim.take_events();
    assert_eq!(sim.conn.observed_heartbeat_interval_ms(), None);
    assert_eq!(
        sim.conn.liveness_timeout_ms(),
        60_000,
        "another server may beat more slowly"
    );
    // The time from the open to the first beat is not an interval: a server's
    // heartbeat clock need not start with the connection.
    beats(&mut sim, d, 1, 5_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 60_000);
    beats(&mut sim, d, 1, 45_000);
    assert_eq!(sim.conn.liveness_timeout_ms(), 55_000);
}
