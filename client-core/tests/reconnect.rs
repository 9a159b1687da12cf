//! Every state transition with its reason, and the reconnect schedule.

mod common;

use common::*;
use hublink_core::{
    BackoffConfig, CloseInfo, Config, DialectKind, Event, Reason, State, Transmit, UnsentReason,
};
use serde_json::json;

#[test]
fn connect_open_close_and_reconnect_report_each_transition() {
    let mut sim = Sim::hublink();
    assert_eq!(sim.conn.state(), State::Disconnected);
    sim.conn.connect(sim.now);
    assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
    sim.conn.handle_open(sim.now);
    sim.close(1001);
    let changes = sim.state_changes();
    assert_eq!(
        reason_names(&changes),
        [
            (State::Connecting, "requested"),
            (State::Connected, "opened"),
            (State::Reconnecting, "closed"),
        ]
    );
    assert_eq!(
        changes[2].reason,
        Reason::Closed {
            code: 1001,
            reason: String::new()
        }
    );
    assert_eq!(changes[2].attempt, 1);
    let delay = changes[2].retry_in_ms.unwrap();
    assert!(
        (1_000..=1_500).contains(&delay),
        "first retry after {delay} ms"
    );

    // Nothing happens before the delay; the retry opens a transport at the ms.
    sim.advance(delay - 1);
    assert!(sim.take_transmits().is_empty());
    sim.advance(1);
    assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
    sim.conn.handle_open(sim.now);
    assert_eq!(
        reason_names(&sim.state_changes()),
        [(State::Connected, "opened")]
    );
}

#[test]
fn a_failed_first_attempt_moves_to_reconnecting_with_the_socket_error() {
    let mut sim = Sim::hublink();
    sim.conn.connect(sim.now);
    sim.take_transmits();
    sim.conn.handle_close(
        sim.now,
        CloseInfo::Failed {
            error: "connection refused".into(),
        },
    );
    let changes = sim.state_changes();
    assert_eq!(
        changes.last().unwrap().reason,
        Reason::ConnectFailed {
            error: "connection refused".into()
        }
    );
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn an_attempt_that_never_opens_times_out_after_the_connect_timeout() {
    let mut sim = Sim::hublink();
    sim.conn.connect(sim.now);
    sim.take_transmits();
    let start = sim.now;
    sim.fire_next_timeout();
    assert_eq!(sim.now - start, 10_000);
    assert!(matches!(
        sim.take_transmits().as_slice(),
        [Transmit::Close { .. }]
    ));
    assert!(
        matches!(last_reason(&sim.state_changes()), Reason::ConnectFailed { error } if error.contains("10000 ms"))
    );
}

#[test]
fn the_attempt_counter_resets_only_after_a_stable_period() {
    let config = Config {
        seed: 7,
        ..Config::default()
    };
    let mut sim = Sim::new(config, DialectKind::Hublink);
    sim.connect_and_open();
    // A flapping server: every connection dies after 2 s.
    for expected_attempt in 1..=4 {
        sim.advance(2_000);
        sim.close(1011);
        assert_eq!(sim.conn.attempt(), expected_attempt);
        sim.retry_and_open();
    }
    // This one stays up for the stable period (10 s): the counter resets.
    sim.advance(9_999);
    assert_eq!(sim.conn.attempt(), 4);
    sim.advance(1);
    assert_eq!(sim.conn.attempt(), 0);
    sim.close(1011);
    let change = sim.state_changes().pop().unwrap();
    assert!((1_000..=1_500).contains(&change.retry_in_ms.unwrap()));
}

#[test]
fn delays_grow_to_the_cap_and_stay_jittered_there() {
    let mut sim = Sim::new(
        Config {
            seed: 42,
            ..Config::default()
        },
        DialectKind::Hublink,
    );
    sim.conn.connect(sim.now);
    sim.take_transmits();
    let mut delays = Vec::new();
    for _ in 0..12 {
        sim.conn.handle_close(
            sim.now,
            CloseInfo::Failed {
                error: "refused".into(),
            },
        );
        let change = sim.state_changes().pop().unwrap();
        let delay = change.retry_in_ms.unwrap();
        let waited = sim.fire_next_timeout();
        assert_eq!(waited, delay, "the retry fires exactly when announced");
        assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
        delays.push(delay);
    }
    let config = BackoffConfig::default();
    for (attempt, delay) in delays.iter().enumerate() {
        let (lo, hi) = config.range_ms(attempt as u32);
        assert!(
            (lo..=hi).contains(delay),
            "attempt {attempt}: {delay} not in [{lo}, {hi}]"
        );
    }
    let capped = &delays[6..];
    assert!(capped.iter().all(|d| (15_000..=30_000).contains(d)));
    let mut distinct = capped.to_vec();
    distinct.dedup();
    assert!(
        distinct.len() > 3,
        "capped delays are still jittered: {capped:?}"
    );
}

#[test]
fn max_attempts_ends_in_disconnected_gave_up_and_reports_queued_frames() {
    let config = Config {
        backoff: BackoffConfig {
            max_attempts: Some(3),
            ..Default::default()
        },
        ..Config::default()
    };
    let mut sim = Sim::new(config, DialectKind::Hublink);
    sim.conn.connect(sim.now);
    sim.take_transmits();
    sim.conn.send_frame(sim.now, "queued".into()).unwrap();
    for _ in 0..3 {
        sim.conn.handle_close(
            sim.now,
            CloseInfo::Failed {
                error: "refused".into(),
            },
        );
        sim.fire_next_timeout();
        sim.take_transmits();
    }
    sim.conn.handle_close(
        sim.now,
        CloseInfo::Failed {
            error: "refused".into(),
        },
    );
    let events = sim.take_events();
    assert_eq!(sim.conn.state(), State::Disconnected);
    assert!(events.iter().any(
        |e| matches!(e, Event::StateChanged(c) if c.reason == Reason::GaveUp { attempts: 3 })
    ));
    assert!(events.contains(&Event::Unsent {
        frame: "queued".into(),
        reason: UnsentReason::Closed
    }));
    assert_eq!(
        sim.conn.poll_timeout(),
        None,
        "no timer left: it really stopped"
    );
}

#[test]
fn a_server_reconnect_request_overrides_the_backoff_with_retry_after() {
    for seed in 0..50 {
        let mut sim = Sim::new(
            Config {
                seed,
                ..Config::default()
            },
            DialectKind::Hublink,
        );
        sim.connect_and_open();
        sim.recv_json(json!({"type":"reconnect","reason":"server restarting","retry_after":5}));
        let transmits = sim.take_transmits();
        assert!(matches!(
            transmits.as_slice(),
            [Transmit::Close { code: 1000, .. }]
        ));
        let change = sim.state_changes().pop().unwrap();
        assert_eq!(
            change.reason,
            Reason::ServerReconnect {
                reason: "server restarting".into(),
                retry_after_ms: 5_000
            }
        );
        let delay = change.retry_in_ms.unwrap();
        assert!((5_000..=6_250).contains(&delay), "seed {seed}: {delay}");
        // The server's close arriving after ours changes nothing.
        sim.close(1012);
        assert!(sim.take_events().is_empty());
    }
}

#[test]
fn auth_rejections_retry_slowly_and_forbidden_stops() {
    let mut sim = Sim::hublink();
    sim.conn.connect(sim.now);
    sim.take_transmits();
    sim.conn
        .handle_close(sim.now, CloseInfo::Http { status: 401 });
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(change.reason, Reason::AuthRejected { code: 4001 });
    let delay = change.retry_in_ms.unwrap();
    assert!(
        delay >= 15_000,
        "a refused token is not retried at full speed: {delay}"
    );

    sim.retry_and_open();
    sim.close(4001);
    assert!(sim.state_changes().pop().unwrap().retry_in_ms.unwrap() >= 15_000);

    sim.fire_next_timeout();
    sim.conn
        .handle_close(sim.now, CloseInfo::Http { status: 403 });
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(
        (change.to, change.reason),
        (State::Disconnected, Reason::Forbidden { code: 4003 })
    );
    assert_eq!(sim.conn.poll_timeout(), None);
}

#[test]
fn close_by_the_user_sends_a_close_frame_and_never_reconnects() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_events();
    sim.conn.close(sim.now);
    assert_eq!(
        sim.take_transmits(),
        vec![Transmit::Close {
            code: 1000,
            reason: "closed by client".into()
        }]
    );
    assert_eq!(last_reason(&sim.state_changes()), Reason::ClosedByUser);
    // The peer's answering close is ignored; no timer remains.
    sim.close(1000);
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.conn.poll_timeout(), None);
    assert_eq!(
        sim.conn.send_frame(sim.now, "x".into()),
        Err(hublink_core::Error::Closed)
    );
}

#[test]
fn offline_shows_reconnecting_at_once_and_reconnect_now_skips_the_wait() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_events();
    sim.conn.network_offline(sim.now);
    assert!(matches!(
        sim.take_transmits().as_slice(),
        [Transmit::Close { code: 1001, .. }]
    ));
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(
        (change.to, change.reason),
        (State::Reconnecting, Reason::Offline)
    );

    // Back online: a new attempt now, not after the backoff.
    sim.now += 10;
    sim.conn.reconnect_now(sim.now);
    assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
}

#[test]
fn reconnect_now_on_a_live_looking_connection_probes_it() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.take_events();
    sim.conn.reconnect_now(sim.now);
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    // No answer within the probe timeout (1 s): the link is declared dead.
    let waited = sim.fire_next_timeout();
    assert_eq!(waited, 1_000);
    assert!(matches!(
        last_reason(&sim.state_changes()),
        Reason::HeartbeatTimeout { .. }
    ));

    // With an answer, nothing happens.
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.conn.reconnect_now(sim.now);
    sim.advance(100);
    sim.recv_json(json!({"type":"pong"}));
    sim.advance(5_000);
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn stale_inputs_from_a_discarded_transport_are_ignored() {
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.conn.network_offline(sim.now);
    sim.take_events();
    // The old socket still delivers a frame and a close: both ignored.
    sim.recv_json(json!({"type":"message","topic":"t","seq":1,"epoch":"e","data":1}));
    sim.close(1006);
    sim.conn.handle_open(sim.now);
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.conn.state(), State::Reconnecting);
}

#[test]
fn absurd_durations_from_the_wire_are_clamped_not_overflowed() {
    // Found by proptest: `retry_after: 1e300` overflowed the retry deadline.
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"connected","heartbeat_interval":1e300}));
    assert_eq!(sim.conn.liveness_timeout_ms(), 86_400_000 + 10_000);
    sim.recv_json(json!({"type":"reconnect","reason":"x","retry_after":1e300}));
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(
        change.reason,
        Reason::ServerReconnect {
            reason: "x".into(),
            retry_after_ms: 86_400_000
        }
    );
    let delay = change.retry_in_ms.unwrap();
    assert!(
        (3_600_000..=4_500_000).contains(&delay),
        "honoured up to an hour: {delay}"
    );
    sim.recv_json(json!({"type":"reconnect","retry_after":-5}));
    assert_eq!(sim.fire_next_timeout(), delay);
}

#[test]
fn other_http_refusals_of_the_upgrade_retry_slowly_with_their_status() {
    for status in [400, 404, 410] {
        let mut sim = Sim::hublink();
        sim.conn.connect(sim.now);
        sim.take_transmits();
        sim.conn.handle_close(sim.now, CloseInfo::Http { status });
        let change = sim.state_changes().pop().unwrap();
        assert_eq!(change.to, State::Reconnecting);
        assert_eq!(
            change.reason.name(),
            "upgrade_refused",
            "{status}: {change:?}"
        );
        assert!(
            format!("{:?}", change.reason).contains(&status.to_string()),
            "{change:?}"
        );
        let delay = change.retry_in_ms.unwrap();
        assert!(
            delay >= 15_000,
            "{status} is not retried at full speed: {delay}"
        );
    }
    // Overload and "try later" statuses keep the ordinary backoff.
    for status in [408, 429, 502, 503] {
        let mut sim = Sim::hublink();
        sim.conn.connect(sim.now);
        sim.take_transmits();
        sim.conn.handle_close(sim.now, CloseInfo::Http { status });
        let change = sim.state_changes().pop().unwrap();
        assert_eq!(change.reason.name(), "connect_failed", "{status}");
        assert!(change.retry_in_ms.unwrap() <= 1_500, "{status}: {change:?}");
    }
}
