//! Every dialect's decoder fed arbitrary bytes through a connected client:
//! nothing may panic, and the connection must survive bad frames.
#![no_main]

use hublink_core::{Config, Connection, DialectKind, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, frame)) = data.split_first() else {
        return;
    };
    let dialect = DialectKind::ALL[which as usize % DialectKind::ALL.len()];
    let mut conn: Connection<serde_json::Value> = Connection::new(Config::default(), dialect.build());
    let _ = conn.subscribe(0, "central_1");
    conn.connect(0);
    conn.handle_open(1);
    let text = String::from_utf8_lossy(frame);
    conn.handle_text(2, &text);
    while conn.poll_transmit().is_some() {}
    while let Some(event) = conn.poll_event() {
        if let hublink_core::Event::Message(m) = event {
            let _ = m.decode::<serde_json::Value>();
        }
    }
    assert!(matches!(conn.state(), State::Connected | State::Reconnecting));
});
