//! The names the TypeScript package lists (pkg/src/index.ts) are exactly the
//! ones hublink-core spells. `tsc` proves those lists equal to the unions the
//! wasm crate declares; the browser module passes the core's names through
//! as they are, so a state or reason added to the core fails here until the
//! package knows it.

use hublink_core::{DialectKind, Reason, State};

/// The string literals of `export const NAME = [...]` in pkg/src/index.ts.
fn ts_list(name: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../pkg/src/index.ts");
    let source = std::fs::read_to_string(path).expect("pkg/src/index.ts");
    let start = source
        .find(&format!("export const {name}"))
        .unwrap_or_else(|| panic!("no `export const {name}` in pkg/src/index.ts"));
    let list = &source[start..];
    let list = &list[list.find("= [").unwrap() + 3..];
    let list = &list[..list.find(']').unwrap()];
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn states_are_the_cores() {
    let core: Vec<&str> = [
        State::Connecting,
        State::Connected,
        State::Reconnecting,
        State::Disconnected,
    ]
    .map(State::name)
    .to_vec();
    assert_eq!(ts_list("STATE_NAMES"), core);
}

#[test]
fn reasons_are_the_cores() {
    let s = String::new;
    // Exhaustive: a new variant stops this from compiling.
    let name = |r: Reason| match r {
        Reason::Requested
        | Reason::Opened
        | Reason::Closed { .. }
        | Reason::ConnectFailed { .. }
        | Reason::HeartbeatTimeout { .. }
        | Reason::ServerReconnect { .. }
        | Reason::AuthRejected { .. }
        | Reason::Forbidden { .. }
        | Reason::UpgradeRefused { .. }
        | Reason::GaveUp { .. }
        | Reason::ClosedByUser
        | Reason::Offline => r.name(),
    };
    let core: Vec<&str> = [
        Reason::Requested,
        Reason::Opened,
        Reason::Closed {
            code: 0,
            reason: s(),
        },
        Reason::ConnectFailed { error: s() },
        Reason::HeartbeatTimeout { silent_ms: 0 },
        Reason::ServerReconnect {
            reason: s(),
            retry_after_ms: 0,
        },
        Reason::AuthRejected { code: 0 },
        Reason::Forbidden { code: 0 },
        Reason::UpgradeRefused { status: 0 },
        Reason::GaveUp { attempts: 0 },
        Reason::ClosedByUser,
        Reason::Offline,
    ]
    .into_iter()
    .map(name)
    .collect();
    assert_eq!(ts_list("REASON_NAMES"), core);
}

#[test]
fn dialects_are_the_cores() {
    let core: Vec<&str> = DialectKind::ALL.map(DialectKind::name).to_vec();
    assert_eq!(ts_list("DIALECT_NAMES"), core);
}
