//! Subscriptions survive reconnects: resubscribe with `since`, replay exactly
//! the missed messages, report what cannot be recovered.

mod common;

use common::*;
use hublink_core::{Event, Position, Recovery, State, SubscriptionState};
use serde_json::json;

fn subscribed_events(events: &[Event<serde_json::Value>]) -> Vec<(String, Recovery)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Subscribed { topic, recovery } => Some((topic.clone(), *recovery)),
            _ => None,
        })
        .collect()
}

#[test]
fn subscribe_while_offline_is_sent_on_connect() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "orders").unwrap();
    sim.conn.subscribe(sim.now, "orders").unwrap();
    assert_eq!(
        sim.conn.subscriptions().get("orders").unwrap().state,
        SubscriptionState::Pending
    );
    sim.connect_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"subscribe","topic":"orders"})]
    );
    assert_eq!(
        sim.conn.subscriptions().get("orders").unwrap().state,
        SubscriptionState::Subscribing
    );
}

#[test]
fn after_a_reconnect_every_topic_resumes_from_its_last_seq_and_misses_nothing() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = Sim::hublink();
    for topic in ["a", "b"] {
        sim.conn.subscribe(sim.now, topic).unwrap();
    }
    sim.connect_and_open();
    sim.recv(&server.accept());
    server.exchange(&mut sim);
    assert_eq!(
        subscribed_events(&sim.take_events()),
        [("a".into(), Recovery::Fresh), ("b".into(), Recovery::Fresh)]
    );
    for i in 1..=3 {
        let frame = server.publish("a", json!(i)).unwrap();
        sim.recv(&frame);
    }
    assert_eq!(sim.messages().len(), 3);

    // The link drops; the server keeps publishing.
    sim.close(1006);
    for i in 4..=6 {
        server.publish("a", json!(i));
    }
    server.publish("b", json!("b1"));
    sim.retry_and_open();
    sim.recv(&server.accept());
    let sent = server.exchange(&mut sim);
    assert_eq!(
        sent,
        vec![
            json!({"type":"subscribe","topic":"a","since":{"seq":3,"epoch":"e1"}}),
            json!({"type":"subscribe","topic":"b","since":{"seq":0,"epoch":"e1"}}),
        ]
    );
    let events = sim.take_events();
    assert_eq!(
        subscribed_events(&events),
        [
            ("a".into(), Recovery::Recovered),
            ("b".into(), Recovery::Recovered)
        ]
    );
    let delivered: Vec<(String, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.topic.clone(), m.seq())),
            _ => None,
        })
        .collect();
    assert_eq!(
        delivered,
        [
            ("a".into(), Some(4)),
            ("a".into(), Some(5)),
            ("a".into(), Some(6)),
            ("b".into(), Some(1))
        ]
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Gap { .. })));
}

#[test]
fn duplicates_are_delivered_once() {
    let mut server = FakeServer::new("e1", 100);
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    server.exchange(&mut sim);
    let frame = server.publish("a", json!("x")).unwrap();
    sim.recv(&frame);
    sim.recv(&frame);
    sim.recv(&frame);
    assert_eq!(sim.messages().len(), 1);
}

#[test]
fn out_of_the_window_or_a_new_epoch_is_reported_as_lost() {
    let mut server = FakeServer::new("e1", 5);
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    server.exchange(&mut sim);
    sim.recv(&server.publish("a", json!(1)).unwrap());
    sim.take_events();

    // 10 messages while away, but the window holds 5.
    sim.close(1006);
    for i in 2..=11 {
        server.publish("a", json!(i));
    }
    sim.retry_and_open();
    server.exchange(&mut sim);
    let events = sim.take_events();
    assert_eq!(subscribed_events(&events), [("a".into(), Recovery::Lost)]);
    assert!(!events.iter().any(|e| matches!(e, Event::Message(_))));
    // It continues from the server's current position, without a false gap.
    sim.recv(&server.publish("a", json!(12)).unwrap());
    let events = sim.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Gap { .. })),
        "{events:?}"
    );
    assert_eq!(
        sim.conn.subscriptions().get("a").unwrap().position,
        Some(Position {
            epoch: "e1".into(),
            seq: 12
        })
    );

    // The server restarts without its history: new epoch.
    sim.close(1012);
    server.restart_fresh("e2");
    server.publish("a", json!("after restart"));
    sim.retry_and_open();
    server.exchange(&mut sim);
    assert_eq!(
        subscribed_events(&sim.take_events()),
        [("a".into(), Recovery::Lost)]
    );
}

#[test]
fn a_jump_in_seq_is_reported_as_a_gap_and_the_message_still_delivered() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    sim.recv_json(json!({"type":"subscribe_ack","topic":"a","success":true,"epoch":"e","seq":10}));
    sim.recv_json(json!({"type":"message","topic":"a","seq":11,"epoch":"e","data":1}));
    sim.recv_json(json!({"type":"message","topic":"a","seq":14,"epoch":"e","data":2}));
    let events = sim.take_events();
    let gap = events
        .iter()
        .find(|e| matches!(e, Event::Gap { .. }))
        .expect("a gap");
    assert_eq!(
        gap,
        &Event::Gap {
            topic: "a".into(),
            last: Position {
                epoch: "e".into(),
                seq: 11
            },
            next: Position {
                epoch: "e".into(),
                seq: 14
            },
        }
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Message(_)))
            .count(),
        2
    );
}

#[test]
fn a_refused_subscription_is_failed_and_retried_after_reconnect() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "admin").unwrap();
    sim.connect_and_open();
    sim.take_sent();
    sim.recv_json(json!({"type":"subscribe_ack","topic":"admin","success":false,"error":"forbidden: topic not allowed by token"}));
    assert_eq!(
        sim.take_events(),
        vec![Event::SubscribeFailed {
            topic: "admin".into(),
            error: "forbidden: topic not allowed by token".into()
        }]
    );
    assert!(matches!(
        sim.conn.subscriptions().get("admin").unwrap().state,
        SubscriptionState::Failed(_)
    ));
    sim.close(1006);
    sim.retry_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"subscribe","topic":"admin"})]
    );
}

#[test]
fn unsubscribe_sends_once_and_late_acks_are_ignored() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    sim.take_sent();
    assert!(sim.conn.unsubscribe(sim.now, "a"));
    assert!(!sim.conn.unsubscribe(sim.now, "a"));
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"unsubscribe","topic":"a"})]
    );
    sim.recv_json(json!({"type":"subscribe_ack","topic":"a","success":true}));
    sim.recv_json(json!({"type":"unsubscribe_ack","topic":"a","success":true}));
    assert_eq!(
        sim.take_events(),
        vec![Event::Unsubscribed { topic: "a".into() }]
    );
    // Not resubscribed after a reconnect.
    sim.close(1006);
    sim.retry_and_open();
    assert!(sim.take_sent().is_empty());
    assert_eq!(sim.conn.state(), State::Connected);
}

#[test]
fn stream_dialects_report_a_possible_loss_after_reconnect() {
    let mut sim = Sim::new(
        hublink_core::Config::default(),
        hublink_core::DialectKind::Devices,
    );
    sim.conn.subscribe(sim.now, "processes").unwrap();
    sim.connect_and_open();
    assert_eq!(
        subscribed_events(&sim.take_events()),
        [("processes".into(), Recovery::Fresh)]
    );
    sim.close(1006);
    sim.retry_and_open();
    assert_eq!(
        subscribed_events(&sim.take_events()),
        [("processes".into(), Recovery::Lost)]
    );
}

#[test]
fn an_ack_with_an_older_snapshot_never_causes_a_redelivery() {
    // Found by the state-machine fuzzer: a message that arrives before the
    // subscribe_ack is newer than the ack's snapshot; adopting the snapshot
    // made the next copy of that message look new.
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.connect_and_open();
    sim.take_events();
    let m = json!({"type":"message","topic":"a","seq":4,"epoch":"e2","data":4});
    sim.recv_json(m.clone());
    sim.recv_json(json!({"type":"subscribe_ack","topic":"a","success":true,"epoch":"e1","seq":4}));
    sim.recv_json(m);
    let delivered = sim
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(delivered, 1);
    assert_eq!(
        sim.conn.subscriptions().get("a").unwrap().position,
        Some(Position {
            epoch: "e2".into(),
            seq: 4
        })
    );
}

#[test]
fn resubscribing_before_the_first_ack_reports_one_fresh_subscription() {
    // Reported by the browser shell: a React effect that unsubscribes and
    // subscribes again at once saw a bogus `Lost` from the second ack.
    let mut server = FakeServer::new("e1", 100);
    let mut sim = Sim::hublink();
    sim.connect_and_open();
    sim.conn.subscribe(sim.now, "a").unwrap();
    sim.conn.unsubscribe(sim.now, "a");
    sim.conn.subscribe(sim.now, "a").unwrap();
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 3);
    // The server answers all three in order.
    for frame in &sent {
        let answers = match frame["type"].as_str() {
            Some("unsubscribe") => {
                vec![json!({"type":"unsubscribe_ack","topic":"a","success":true}).to_string()]
            }
            _ => server.handle(frame),
        };
        for answer in answers {
            sim.recv(&answer);
        }
    }
    assert_eq!(
        sim.take_events(),
        vec![Event::Subscribed {
            topic: "a".into(),
            recovery: Recovery::Fresh
        }]
    );
    sim.recv(&server.publish("a", json!(1)).unwrap());
    assert_eq!(sim.messages().len(), 1);
}

/// A shared connection's new leader resumes each topic from where the tabs
/// stand: the first subscribe carries `since`, the missed messages are
/// replayed, and nothing up to that position is delivered again.
#[test]
fn subscribe_from_a_position_replays_exactly_what_came_after_it() {
    let mut server = FakeServer::new("e1", 100);
    for i in 1..=5 {
        server.publish("a", json!(i));
    }
    let mut sim = Sim::hublink();
    let since = Position {
        epoch: "e1".into(),
        seq: 3,
    };
    sim.conn
        .subscribe_from(sim.now, "a", Some(since.clone()))
        .unwrap();
    // Subscribing again, with or without a position, changes nothing.
    sim.conn.subscribe_from(sim.now, "a", None).unwrap();
    sim.connect_and_open();
    let sent = server.exchange(&mut sim);
    assert_eq!(
        sent,
        vec![json!({"type":"subscribe","topic":"a","since":{"seq":3,"epoch":"e1"}})]
    );
    let events = sim.take_events();
    assert_eq!(
        subscribed_events(&events),
        [("a".into(), Recovery::Recovered)]
    );
    let seqs: Vec<Option<u64>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.seq()),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [Some(4), Some(5)]);
    // A late copy of what the position covers is dropped; what is new is not.
    sim.recv_json(json!({"type":"message","topic":"a","seq":2,"epoch":"e1","data":2}));
    assert_eq!(sim.messages(), []);
    sim.recv(&server.publish("a", json!(6)).unwrap());
    assert_eq!(sim.messages().len(), 1);
}

/// A position the server cannot recover from (another epoch) is reported as
/// a loss, not as a fresh start: the tabs had seen messages before.
#[test]
fn subscribe_from_a_position_the_server_lost_is_reported_as_lost() {
    let mut server = FakeServer::new("e2", 100);
    let mut sim = Sim::hublink();
    let since = Position {
        epoch: "e1".into(),
        seq: 7,
    };
    sim.conn.subscribe_from(sim.now, "a", Some(since)).unwrap();
    sim.connect_and_open();
    server.exchange(&mut sim);
    assert_eq!(
        subscribed_events(&sim.take_events()),
        [("a".into(), Recovery::Lost)]
    );
}
