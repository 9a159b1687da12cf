//! hublink-server's message parsers (`/ws`, the topics dialect, the actions
//! dialect) fed arbitrary frames through a socketless connection, with the real
//! broker and history behind them.
//!
//! Input: one byte choosing the endpoint and the token's claims, then frames
//! separated by NUL bytes (each must be UTF-8, as the WebSocket layer already
//! guarantees for text frames). Nothing may panic; every frame the server sends
//! is a JSON object with a string `type` (or `action`); a close is one of the
//! documented codes, after a non-recoverable `error`; and once the connection
//! ends, no subscription is left behind.
#![no_main]

use std::sync::{Arc, OnceLock};

use hublink_server::auth::Claims;
use hublink_server::fuzzing::{Endpoint, Output, Session};
use hublink_server::{AppState, Config};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn config() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut c = Config::defaults();
            c.jwt_secret = Some("fuzz-secret".into());
            c.max_subscriptions = 8;
            c.max_errors = 16;
            // Small limits reach their error paths with short inputs; the
            // harness drains the queue only after each input, so a larger
            // queue keeps every frame an input causes visible to it.
            c.send_queue = 4096;
            c.history_size = 8;
            c.max_topic_len = 64;
            c.max_publish_size = 256;
            c
        })
        .clone()
}

fn claims(which: u8) -> Option<Claims> {
    match which % 3 {
        0 => None,
        1 => Some(Claims {
            sub: Some("u1".into()),
            branch: Some("b1".into()),
            role: Some("admin".into()),
            ..Claims::default()
        }),
        _ => Some(Claims {
            sub: Some("u2".into()),
            branch: Some("b2".into()),
            role: Some("viewer".into()),
            topics: Some(vec![
                "machines.*".into(),
                "room:**".into(),
                "central_*".into(),
            ]),
            publish: Some(vec!["machines.**".into(), "room:order:*".into()]),
            ..Claims::default()
        }),
    }
}

fn check(out: &Output) {
    for f in &out.frames {
        check_frame(f);
    }
    if let Some((code, last)) = &out.close {
        assert!(
            matches!(code, 1000 | 1008 | 1009 | 4008 | 4009 | 4029),
            "undocumented close code {code}"
        );
        if let Some(last) = last {
            let v = check_frame(last);
            assert_eq!(
                v["recoverable"], false,
                "a closing error is not recoverable: {last}"
            );
        }
    }
}

fn check_frame(f: &str) -> Value {
    let v: Value =
        serde_json::from_str(f).unwrap_or_else(|e| panic!("server sent non-JSON ({e}): {f}"));
    assert!(
        v.get("type").map_or(false, Value::is_string)
            || v.get("action").map_or(false, Value::is_string),
        "a frame without a string type or action: {f}"
    );
    if v["type"] == "error" {
        assert!(
            v["code"].is_string() && v["message"].is_string(),
            "malformed error: {f}"
        );
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let endpoint = match sel % 3 {
        0 => Endpoint::Hublink,
        1 => Endpoint::Topics,
        _ => Endpoint::Actions,
    };
    let frames: Vec<&str> = rest
        .split(|b| *b == 0)
        .filter_map(|f| std::str::from_utf8(f).ok())
        .take(64)
        .collect();
    runtime().block_on(async {
        let state = AppState::new(config()).expect("state");
        let state: Arc<AppState> = state;
        let (mut session, hello) = Session::open(&state, endpoint, claims(sel / 3)).await;
        check(&hello);
        for (i, f) in frames.iter().enumerate() {
            let Some(out) = session.text(f).await else {
                break;
            };
            check(&out);
            if i % 8 == 7 {
                check(&session.heartbeat());
            }
        }
        session.close();
        assert_eq!(
            state.broker.subscriptions(),
            0,
            "subscriptions left after the connection ended"
        );
    });
});
