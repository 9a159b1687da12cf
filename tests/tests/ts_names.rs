//! The names the TypeScript package lists (pkg/src/client.ts) are exactly the
//! ones hublink-core spells. `tsc` proves those lists equal to the unions the
//! wasm crate declares; the browser module passes the core's names through
//! as they are, so a state or reason added to the core fails here until the
//! package knows it.

use hublink_core::{DialectKind, Error, Reason, Recovery, State, UnsentReason};

/// A file of the repository, by its path from the root.
fn source(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The string literals between `open` and `close`, split at `sep`, after
/// the first `start` in `path`.
fn literals(path: &str, start: &str, open: &str, close: char, sep: char) -> Vec<String> {
    let text = source(path);
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in {path}"));
    let rest = &text[at..];
    let rest = &rest[rest.find(open).unwrap() + open.len()..];
    rest[..rest.find(close).unwrap()]
        .split(sep)
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The string literals of `const NAME = [...]` in pkg/src/client.ts.
fn ts_list(name: &str) -> Vec<String> {
    literals(
        "pkg/src/client.ts",
        &format!("const {name}"),
        "= [",
        ']',
        ',',
    )
}

/// The string literals of `export type NAME = "a" | "b";` in the TypeScript
/// types hublink-wasm declares (client-wasm/src/events.rs), which the
/// events and pkg/src use by name.
fn ts_union(name: &str) -> Vec<String> {
    let start = format!("export type {name} =");
    literals("client-wasm/src/events.rs", &start, "=", ';', '|')
}

#[test]
fn recoveries_are_the_cores() {
    let core = [Recovery::Fresh, Recovery::Recovered, Recovery::Lost].map(Recovery::name);
    assert_eq!(ts_union("Recovery"), core);
}

#[test]
fn unsent_reasons_are_the_cores() {
    let core = [UnsentReason::Expired { waited_ms: 0 }, UnsentReason::Closed].map(|r| r.name());
    assert_eq!(ts_union("UnsentReason"), core);
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
        | Reason::Offline
        | Reason::Suspended => r.name(),
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
        Reason::Suspended,
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

#[test]
fn error_codes_are_the_cores() {
    let core = [
        Error::QueueFull { limit: 0 },
        Error::Unsupported {
            dialect: "",
            operation: "",
        },
        Error::InvalidTopic {
            topic: String::new(),
            problem: "",
        },
        Error::Closed,
        Error::UnknownDialect(String::new()),
    ]
    .map(|e| e.code());
    // `ERROR_CODES` is indexed by hublink-wasm's refusal numbers (1..=4, in
    // the core's order; 0 and 5 are the generic "error"); the dialect check
    // is the TS layer's own.
    let listed = ts_list("ERROR_CODES");
    assert_eq!(listed[1..5], core[..4]);
    let index = source("pkg/src/client.ts");
    let union = index
        .lines()
        .find(|l| l.trim_start().starts_with("code: \"queue_full\""))
        .expect("HublinkError's code union in pkg/src/client.ts");
    for code in core {
        assert!(
            union.contains(&format!("\"{code}\"")),
            "{code} missing from {union}"
        );
    }
}
