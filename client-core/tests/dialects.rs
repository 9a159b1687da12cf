//! Every dialect's encoding and decoding, against the literal messages of the
//! seed documents (quoted verbatim where the documents give them).

mod common;

use common::*;
use hublink_core::{Config, DialectKind, Event, Position, Recovery, ServerError, State};
use serde_json::{json, Value};

fn sim(dialect: DialectKind) -> Sim {
    let mut sim = Sim::new(Config::default(), dialect);
    sim.connect_and_open();
    sim.take_events();
    sim
}

fn only_message(sim: &mut Sim) -> hublink_core::Message<Value> {
    let mut messages: Vec<_> = sim
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.pop().unwrap()
}

#[test]
fn machines_sensor_data_as_the_go_hub_sends_it() {
    let mut sim = sim(DialectKind::Machines);
    // seed 000, "Message Format"
    sim.recv(
        r#"{
  "type": "sensor_data",
  "data": {
    "machine_id": "CNC-001",
    "temperature": 25.5,
    "spindle_speed": 8500,
    "timestamp": "2024-01-01T12:00:00Z",
    "x_pos_mm": 100.5,
    "y_pos_mm": 200.3,
    "z_pos_mm": 50.1,
    "feed_rate_actual": 1200,
    "spindle_load_percent": 75,
    "machine_state": "running",
    "active_program_line": 125,
    "total_power_kw": 15.2
  },
  "timestamp": "2024-01-01T12:00:00Z"
}"#,
    );
    let m = only_message(&mut sim);
    assert_eq!(m.topic, "sensor_data");
    assert_eq!(m.kind.as_deref(), Some("sensor_data"));
    assert_eq!(m.data["spindle_speed"], 8500);
    assert_eq!(m.timestamp, Some(json!("2024-01-01T12:00:00Z")));

    #[derive(serde::Deserialize)]
    struct Reading {
        machine_id: String,
        temperature: f64,
        machine_state: String,
    }
    let r: Reading = m.decode().unwrap();
    assert_eq!(
        (
            r.machine_id.as_str(),
            r.temperature,
            r.machine_state.as_str()
        ),
        ("CNC-001", 25.5, "running")
    );
}

#[test]
fn machines_batches_are_split_on_newlines_like_the_writepump_writes_them() {
    let mut sim = sim(DialectKind::Machines);
    let one =
        json!({"type":"sensor_data","data":{"machine_id":"CNC-001"},"timestamp":"t"}).to_string();
    let two = json!({"type":"machine_status","data":{"machine_id":"CNC-002","status":"idle"},"timestamp":"t"}).to_string();
    let three = json!({"type":"error","data":"sensor offline","timestamp":"t"}).to_string();
    sim.recv(&format!("{one}\n{two}\n{three}"));
    let events = sim.take_events();
    let topics: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.topic.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ["sensor_data", "machine_status"]);
    assert!(events.iter().any(|e| matches!(e, Event::ServerError(ServerError { message, .. }) if message == "\"sensor offline\"")));
}

#[test]
fn machines_has_no_client_messages_and_subscribes_locally() {
    let mut sim = Sim::new(Config::default(), DialectKind::Machines);
    sim.conn.subscribe(sim.now, "sensor_data").unwrap();
    sim.connect_and_open();
    assert!(sim.take_sent().is_empty());
    assert_eq!(
        sim.take_events()
            .into_iter()
            .filter(|e| matches!(e, Event::Subscribed { .. }))
            .count(),
        1
    );
    sim.advance(40_000);
    assert!(
        sim.take_sent().is_empty(),
        "no application ping: the Go hub would not answer it"
    );
}

#[test]
fn devices_channels_ping_and_streams_as_in_the_node_manager() {
    let mut sim = Sim::new(Config::default(), DialectKind::Devices);
    for ch in ["system-info", "processes"] {
        sim.conn.subscribe(sim.now, ch).unwrap();
    }
    sim.connect_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![
            json!({"type":"subscribe","channels":["processes"]}),
            json!({"type":"subscribe","channels":["system-info"]}),
        ]
    );
    sim.take_events();
    sim.recv_json(json!({"type":"connected","data":{"deviceUuid":"dev-1","timestamp":"2024-01-01T12:00:00.000Z"}}));
    assert_eq!(
        sim.take_events(),
        vec![Event::Welcome {
            client_id: Some("dev-1".into()),
            heartbeat_interval_ms: None
        }]
    );
    sim.recv_json(json!({"type":"system-info","data":{"os":"Linux","architecture":"x64","uptime":1234,"hostname":"edge-1","ipAddress":"10.0.0.2","macAddress":"aa"}}));
    let m = only_message(&mut sim);
    assert_eq!(
        (m.topic.as_str(), &m.data["hostname"]),
        ("system-info", &json!("edge-1"))
    );
    sim.recv_json(json!({"type":"history","data":{"cpu":[{"time":"12:00","value":5}],"memory":[],"network":[]}}));
    assert_eq!(only_message(&mut sim).topic, "history");

    sim.conn.unsubscribe(sim.now, "processes");
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"unsubscribe","channels":["processes"]})]
    );

    sim.advance(30_000);
    assert_eq!(sim.take_sent(), vec![json!({"type":"ping"})]);
    sim.recv_json(json!({"type":"pong","data":{"timestamp":"2024-01-01T12:00:00.000Z"}}));
    assert!(sim.take_events().is_empty());
}

#[test]
fn topics_acks_topics_list_and_heartbeat_echo_as_documented() {
    let mut sim = Sim::new(Config::default(), DialectKind::Topics);
    sim.conn
        .subscribe(sim.now, "task_completion_update")
        .unwrap();
    sim.connect_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"subscribe","topic":"task_completion_update"})]
    );
    sim.take_events();
    // seed 002, "Connection Confirmation Message" and the ack
    sim.recv(
        r#"{
  "type": "connected",
  "client_id": "127.0.0.1-550e8400-e29b-41d4-a716-446655440000",
  "timestamp": 1616161616
}"#,
    );
    sim.recv(
        r#"{
  "type": "subscribe_ack",
  "topic": "task_completion_update",
  "success": true
}"#,
    );
    let events = sim.take_events();
    assert_eq!(
        events,
        vec![
            Event::Welcome {
                client_id: Some("127.0.0.1-550e8400-e29b-41d4-a716-446655440000".into()),
                heartbeat_interval_ms: None
            },
            Event::Subscribed {
                topic: "task_completion_update".into(),
                recovery: Recovery::Fresh
            },
        ]
    );
    // Heartbeat: echoed with the same shape.
    sim.recv(
        r#"{
  "type": "heartbeat",
  "timestamp": 1616161616
}"#,
    );
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"heartbeat","timestamp":1616161616})]
    );
    sim.conn.request_topics(sim.now).unwrap();
    assert_eq!(sim.take_sent(), vec![json!({"type":"get_topics"})]);
    sim.recv(
        r#"{
  "type": "topics",
  "topics": ["topic1", "topic2", "topic3"]
}"#,
    );
    assert_eq!(
        sim.take_events(),
        vec![Event::Topics(vec![
            "topic1".into(),
            "topic2".into(),
            "topic3".into()
        ])]
    );
    sim.conn.unsubscribe(sim.now, "task_completion_update");
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"unsubscribe","topic":"task_completion_update"})]
    );
    sim.recv(r#"{"type": "unsubscribe_ack", "topic": "task_completion_update", "success": true}"#);
    assert_eq!(
        sim.take_events(),
        vec![Event::Unsubscribed {
            topic: "task_completion_update".into()
        }]
    );
}

#[test]
fn topics_data_messages_find_their_topic_by_shape() {
    let mut sim = Sim::new(Config::default(), DialectKind::Topics);
    sim.conn.subscribe(sim.now, "central_ABC123").unwrap();
    sim.connect_and_open();
    sim.take_events();
    // seed 002, task_completion_update example
    sim.recv(
        r#"{
  "Result": "Event Task Updated",
  "Events": {
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "event_number": 123,
    "status": "done",
    "escalation_level": "allarme"
  }
}"#,
    );
    let m = only_message(&mut sim);
    assert_eq!(m.topic, "task_completion_update");
    assert_eq!(m.data["Events"]["event_number"], 123);
    // event_updates shape, while only a central_ topic is subscribed
    sim.recv(
        r#"{
  "message": "Overview added successfully",
  "data": {"event_number": 123, "central_id": "ABC123", "type": "fire", "level": "allarme"}
}"#,
    );
    assert_eq!(only_message(&mut sim).topic, "central_ABC123");
    // task_completion_map_update shape
    sim.recv(
        r#"{"type": "task_completion_update", "data": {"123": {"Completed": 5, "Total": 10}}}"#,
    );
    assert_eq!(only_message(&mut sim).topic, "task_completion_map_update");
    // hublink-server names the topic explicitly; the field is routing, not payload
    sim.recv(r#"{"topic":"event_updates","message":"Overview added successfully","data":{"event_number":1}}"#);
    let m = only_message(&mut sim);
    assert_eq!(m.topic, "event_updates");
    assert!(m.data.get("topic").is_none());
}

#[test]
fn actions_rooms_orders_ping_and_events_as_in_the_wscat_session() {
    let mut sim = Sim::new(Config::default(), DialectKind::Actions);
    sim.conn.subscribe(sim.now, "order:67890").unwrap();
    sim.conn.subscribe(sim.now, "branch:abc123").unwrap();
    sim.connect_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![
            json!({"action":"subscribe","data":{"room":"branch:abc123"}}),
            json!({"action":"subscribeToOrder","data":{"orderId":"67890"}}),
        ]
    );
    sim.take_events();
    // seed 003, "Test 1: Using wscat"
    sim.recv(r#"{"action":"subscribeToOrder","success":true,"orderId":"67890"}"#);
    sim.recv(r#"{"action":"subscribe","success":true,"room":"branch:abc123"}"#);
    assert_eq!(
        sim.take_events(),
        vec![
            Event::Subscribed {
                topic: "order:67890".into(),
                recovery: Recovery::Fresh
            },
            Event::Subscribed {
                topic: "branch:abc123".into(),
                recovery: Recovery::Fresh
            },
        ]
    );
    sim.conn.request_topics(sim.now).unwrap();
    assert_eq!(sim.take_sent(), vec![json!({"action":"getRooms"})]);
    sim.recv(r#"{"action":"getRooms","rooms":["branch:abc123","user:def456","role:admin:abc123"],"count":3}"#);
    assert_eq!(
        sim.take_events(),
        vec![Event::Topics(vec![
            "branch:abc123".into(),
            "user:def456".into(),
            "role:admin:abc123".into()
        ])]
    );
    sim.advance(30_000);
    assert_eq!(sim.take_sent(), vec![json!({"action":"ping"})]);
    sim.recv(r#"{"action":"pong","timestamp":"2025-01-17T10:00:00.000Z"}"#);
    assert!(sim.take_events().is_empty());

    // seed 003, broadcastEvent payload: type + data (+ the room, added by hublink-server)
    sim.recv_json(json!({"type":"order:status_changed","data":{"orderId":"67890","orderNumber":"ORD-1","oldStatus":"pending","newStatus":"in_progress","timestamp":"2025-01-17T10:00:00.000Z"},"room":"order:67890"}));
    let m = only_message(&mut sim);
    assert_eq!(
        (m.topic.as_str(), m.kind.as_deref()),
        ("order:67890", Some("order:status_changed"))
    );
    assert_eq!(m.data["newStatus"], "in_progress");
    sim.recv_json(json!({"type":"notification:broadcast","data":{"message":"Shift change","type":"info","priority":"low"}}));
    assert_eq!(only_message(&mut sim).topic, "notification:broadcast");

    sim.recv(r#"{"action":"subscribe","success":false,"room":"branch:other","error":"Forbidden: room belongs to another branch"}"#);
    sim.conn.subscribe(sim.now, "branch:other").unwrap();
    sim.take_sent();
    sim.recv(r#"{"action":"subscribe","success":false,"room":"branch:other","error":"Forbidden: room belongs to another branch"}"#);
    assert_eq!(
        sim.take_events(),
        vec![Event::SubscribeFailed {
            topic: "branch:other".into(),
            error: "Forbidden: room belongs to another branch".into()
        }]
    );
}

#[test]
fn power_data_heartbeat_error_and_reconnect_as_the_fastapi_router_sends_them() {
    let mut sim = sim(DialectKind::Power);
    // seed 004, "Message Types"
    sim.recv(r#"{"type":"data","timestamp":1234567890.123,"module":4,"wavelength_nm":1310.0,"unit":"dBm","ch1_power":-17.85,"ch2_power":-21.56,"ch3_power":6.94,"ch4_power":-60.12}"#);
    let m = only_message(&mut sim);
    assert_eq!(m.topic, "data");
    assert_eq!(m.data["ch1_power"], -17.85);
    assert_eq!(m.timestamp, Some(json!(1234567890.123)));

    sim.recv(r#"{"type":"heartbeat","timestamp":"2024-01-01T12:00:00","active_streams":3}"#);
    assert!(
        sim.take_sent().is_empty(),
        "power heartbeats are not echoed"
    );
    sim.recv(r#"{"type":"error","message":"Hardware temporarily unavailable","timestamp":"2024-01-01T12:00:00","recoverable":true,"error_count":2}"#);
    assert_eq!(
        sim.take_events(),
        vec![Event::ServerError(ServerError {
            code: "error".into(),
            message: "Hardware temporarily unavailable".into(),
            recoverable: true,
            error_count: Some(2),
            id: None,
        })]
    );
    assert_eq!(
        sim.conn.state(),
        State::Connected,
        "a recoverable error keeps the connection"
    );

    sim.advance(30_000);
    assert_eq!(
        sim.take_transmits(),
        vec![hublink_core::Transmit::Send("ping".into())]
    );
    sim.recv(r#"{"type":"pong","timestamp":"2024-01-01T12:00:00"}"#);

    sim.recv(r#"{"type":"reconnect","reason":"Server maintenance","retry_after":5}"#);
    let change = sim.state_changes().pop().unwrap();
    assert_eq!(change.to, State::Reconnecting);
    assert!(change.retry_in_ms.unwrap() >= 5_000);
}

#[test]
fn hublink_canonical_messages_of_protocol_md() {
    let mut sim = Sim::hublink();
    sim.conn.subscribe(sim.now, "machines.CNC-001").unwrap();
    sim.connect_and_open();
    assert_eq!(
        sim.take_sent(),
        vec![json!({"type":"subscribe","topic":"machines.CNC-001"})]
    );
    sim.take_events();
    sim.recv(r#"{"type":"connected","client_id":"c-7f3a91","heartbeat_interval":30,"server_time":1763769600123,"protocol":"hublink.v1"}"#);
    sim.recv(r#"{"type":"subscribe_ack","topic":"machines.CNC-001","success":true,"epoch":"k2x9","seq":1042}"#);
    sim.recv(r#"{"type":"message","topic":"machines.CNC-001","seq":1043,"epoch":"k2x9","data":{"temperature":25.5},"timestamp":1763769600456}"#);
    sim.recv(r#"{"type":"error","code":"invalid_json","message":"frame is not JSON","recoverable":true,"error_count":1}"#);
    sim.recv(r#"{"type":"something_new","x":1}"#);
    let events = sim.take_events();
    assert_eq!(
        events[0],
        Event::Welcome {
            client_id: Some("c-7f3a91".into()),
            heartbeat_interval_ms: Some(30_000)
        }
    );
    assert_eq!(
        events[1],
        Event::Subscribed {
            topic: "machines.CNC-001".into(),
            recovery: Recovery::Fresh
        }
    );
    assert!(
        matches!(&events[2], Event::Message(m) if m.seq() == Some(1043) && m.data["temperature"] == 25.5)
    );
    assert!(
        matches!(&events[3], Event::ServerError(e) if e.code == "invalid_json" && e.error_count == Some(1))
    );
    assert!(matches!(&events[4], Event::Unknown(v) if v["x"] == 1));

    let id = sim
        .conn
        .publish(
            sim.now,
            "orders",
            &json!({"order_id":"A-17","status":"ready"}),
        )
        .unwrap();
    assert_eq!(id.len(), 32, "128 bits in hex: {id}");
    assert_eq!(
        sim.take_sent(),
        vec![
            json!({"type":"publish","topic":"orders","id":id,"data":{"order_id":"A-17","status":"ready"}})
        ]
    );
    // PROTOCOL.md's publish_ack, with this publish's id.
    sim.recv(&format!(
        r#"{{"type":"publish_ack","id":"{id}","topic":"orders","seq":1043,"epoch":"k2x9"}}"#
    ));
    assert_eq!(
        sim.take_events(),
        vec![Event::Published {
            id,
            topic: "orders".into(),
            position: Position {
                epoch: "k2x9".into(),
                seq: 1043
            }
        }]
    );
}

#[test]
fn dialect_names_parse_and_unknown_ones_are_named_in_the_error() {
    for kind in DialectKind::ALL {
        assert_eq!(kind.name().parse::<DialectKind>().unwrap(), kind);
    }
    let err = "socketio".parse::<DialectKind>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown dialect \"socketio\": expected one of hublink, machines, devices, topics, actions, power"
    );
}
