//! The page lifecycle as the browser shell reports it, at the default
//! configuration: a page visible or resumed again probes its link
//! (`reconnect_now`) and replaces a dead one within 2 s of the event, whatever
//! the heartbeat interval; a page put away (`suspend`: frozen, or hidden into
//! the back/forward cache) closes its link cleanly and, shown again,
//! reconnects at once and recovers what it missed.

mod common;

use common::*;
use hublink_core::{Event, Reason, Recovery, State, Transmit};
use serde_json::{json, Value};

/// Connected to `server`, subscribed to "t", with messages 1..=3 delivered,
/// and the server advertising a heartbeat interval of 30 s (a liveness
/// timeout of 40 s).
fn live(server: &mut FakeServer) -> Sim {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "t").unwrap();
    sim.connect_and_open();
    let hello = server.accept();
    sim.recv(&hello);
    server.exchange(&mut sim);
    for n in 1..=3 {
        if let Some(frame) = server.publish("t", json!(n)) {
            sim.recv(&frame);
        }
    }
    assert_eq!(sim.conn.liveness_timeout_ms(), 40_000);
    assert_eq!(seqs(&sim.messages()), [1, 2, 3]);
    sim
}

fn seqs(messages: &[(String, Option<u64>, Value)]) -> Vec<u64> {
    messages.iter().filter_map(|(_, seq, _)| *seq).collect()
}

/// The link goes silent (black-holed) while the page is hidden for `hidden_ms`
/// and the server publishes 4..=6 meanwhile; then the page is visible again.
fn silent_while_hidden(sim: &mut Sim, server: &mut FakeServer, hidden_ms: u64) {
    for n in 4..=6 {
        server.publish("t", json!(n)); // lost on the dead link
    }
    sim.advance(hidden_ms);
    sim.take_transmits(); // the idle ping, if it was due: unanswered
}

#[test]
fn a_dead_link_is_replaced_within_two_seconds_of_the_page_becoming_visible() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    // Hidden for 15 s: well within the 40 s liveness timeout, so nothing
    // has noticed yet; waiting it out would leave the page dead for 25 s more.
    silent_while_hidden(&mut sim, &mut server, 15_000);
    assert_eq!(sim.conn.state(), State::Connected);
    let visible = sim.now;

    sim.conn.reconnect_now(sim.now);
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    let waited = sim.fire_next_timeout();
    assert_eq!(waited, 1_000, "the probe deadline");
    // The state change is honest: the link was silent, and the next attempt
    // is now, not after the backoff.
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(change.to, State::Reconnecting);
    assert_eq!(
        change.reason,
        Reason::HeartbeatTimeout { silent_ms: 16_000 }
    );
    assert_eq!((change.retry_in_ms, change.attempt), (Some(0), 1));
    assert_eq!(
        sim.take_transmits(),
        vec![
            Transmit::Close {
                code: 4008,
                reason: "heartbeat timeout".into()
            },
            Transmit::Open
        ]
    );
    assert!(sim.now - visible <= 1_000);

    // The new link recovers 4..=6 from the last seq delivered: no gap, no
    // duplicate.
    sim.conn.handle_open(sim.now);
    let hello = server.accept();
    sim.recv(&hello);
    let sent = server.exchange(&mut sim);
    assert_eq!(sent[0]["since"], json!({"epoch":"e1","seq":3}));
    let events = sim.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Subscribed {
            recovery: Recovery::Recovered,
            ..
        }
    )));
    assert!(!events.iter().any(|e| matches!(e, Event::Gap { .. })));
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.seq(),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn after_the_immediate_attempt_fails_the_next_ones_back_off_as_usual() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    silent_while_hidden(&mut sim, &mut server, 15_000);
    sim.conn.reconnect_now(sim.now);
    sim.fire_next_timeout();
    assert!(sim.take_transmits().contains(&Transmit::Open));
    sim.take_events();

    // The replacement fails too (the network is really gone): the backoff of
    // attempt 1 (2 s nominal, 1-3 s), no second attempt at once.
    sim.close(1006);
    let change = sim.state_changes().pop().unwrap();
    let delay = change.retry_in_ms.unwrap();
    assert!((1_000..=3_000).contains(&delay), "{delay} ms");
    assert_eq!(change.attempt, 2);
    assert_eq!(sim.fire_next_timeout(), delay);
    assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
    sim.close(1006);
    let delay = sim.state_changes().pop().unwrap().retry_in_ms.unwrap();
    assert!((2_000..=6_000).contains(&delay), "{delay} ms");
}

#[test]
fn a_probe_answered_by_any_frame_keeps_the_link() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    sim.advance(15_000);
    sim.take_transmits();
    sim.conn.reconnect_now(sim.now);
    sim.take_transmits();
    sim.advance(300);
    // Not the pong: a message that was on its way is just as good.
    let frame = server.publish("t", json!(4)).unwrap();
    sim.recv(&frame);
    sim.advance(5_000);
    assert_eq!(sim.conn.state(), State::Connected);
    assert!(sim.state_changes().is_empty());
    assert!(sim.take_transmits().is_empty());
}

#[test]
fn repeated_lifecycle_events_probe_once_and_replace_the_link_once() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    silent_while_hidden(&mut sim, &mut server, 15_000);
    // visibilitychange, then resume and pageshow for the same return.
    sim.conn.reconnect_now(sim.now);
    sim.advance(200);
    sim.conn.reconnect_now(sim.now);
    sim.conn.reconnect_now(sim.now);
    // The deadline is the first probe's: a later event does not push it back.
    assert_eq!(sim.fire_next_timeout(), 800);
    let opens = |t: &[Transmit]| t.iter().filter(|t| **t == Transmit::Open).count();
    assert_eq!(opens(&sim.take_transmits()), 1);
    // While that attempt is under way, another event starts nothing more.
    sim.conn.reconnect_now(sim.now);
    sim.advance(500);
    assert_eq!(opens(&sim.take_transmits()), 0);
}

#[test]
fn a_heartbeat_timeout_without_a_probe_still_waits_the_backoff() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    sim.advance(20_000); // the idle ping at half the timeout
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    sim.fire_next_timeout();
    let change = sim.state_changes().pop().unwrap();
    assert!(matches!(change.reason, Reason::HeartbeatTimeout { .. }));
    let delay = change.retry_in_ms.unwrap();
    assert!((1_000..=1_500).contains(&delay), "{delay} ms");
    assert!(!sim.take_transmits().contains(&Transmit::Open));
}

#[test]
fn a_page_suspended_closes_its_link_and_recovers_when_shown_again() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = live(&mut server);
    // pagehide (into the back/forward cache) or freeze.
    sim.conn.suspend(sim.now);
    assert_eq!(
        sim.take_transmits(),
        vec![Transmit::Close {
            code: 1001,
            reason: "page suspended".into()
        }]
    );
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(
        (change.to, change.reason),
        (State::Reconnecting, Reason::Suspended)
    );
    // A retry is scheduled as after any loss, so that nothing is stuck if
    // the page carries on without a resume.
    assert!(change.retry_in_ms.is_some());
    // A second event for the same suspension (freeze after pagehide) is
    // nothing new.
    sim.conn.suspend(sim.now);
    assert!(sim.take_transmits().is_empty() && sim.take_events().is_empty());

    // In the cache for a minute (no timer runs there), the server publishes.
    for n in 4..=6 {
        server.publish("t", json!(n));
    }
    sim.now += 60_000;
    // resume / pageshow: a new attempt at once.
    sim.conn.reconnect_now(sim.now);
    assert_eq!(sim.take_transmits(), vec![Transmit::Open]);
    sim.conn.handle_open(sim.now);
    let hello = server.accept();
    sim.recv(&hello);
    let sent = server.exchange(&mut sim);
    assert_eq!(sent[0]["since"], json!({"epoch":"e1","seq":3}));
    assert_eq!(seqs(&sim.messages()), [4, 5, 6]);
}

#[test]
fn suspending_an_attempt_under_way_drops_it_and_suspending_nothing_does_nothing() {
    let mut sim = Sim::hublink();
    sim.conn.suspend(sim.now);
    assert_eq!(sim.conn.state(), State::Disconnected);
    assert!(sim.take_events().is_empty() && sim.conn.poll_timeout().is_none());

    sim.conn.connect(sim.now);
    sim.take_transmits();
    sim.take_events();
    sim.conn.suspend(sim.now);
    assert!(matches!(
        sim.take_transmits().as_slice(),
        [Transmit::Close { code: 1001, .. }]
    ));
    assert_eq!(last_reason(&sim.state_changes()), Reason::Suspended);
    // The opening socket's late events are ignored.
    sim.conn.handle_open(sim.now);
    assert_eq!(sim.conn.state(), State::Reconnecting);
}
