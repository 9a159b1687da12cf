//! The sans-IO core of hublink, a reconnecting real-time WebSocket client.
//!
//! Everything that decides anything lives here: when to connect, when a silent
//! link is dead, how long to back off, what to resubscribe and from which
//! position, what to queue while offline and what to tell the application. The
//! shells (`hublink` on tokio, `hublink-wasm` in the browser) only move bytes
//! and time. The core is fully deterministic: it never reads a clock, opens a
//! socket, spawns a thread or draws OS randomness. Time is a monotonic count of
//! milliseconds passed to every call; the jitter comes from
//! [`Config::seed`]. That makes every behaviour testable with a simulated clock
//! (see `tests/`), and lets the same code run in a browser, where
//! `std::time::Instant` traps.
//!
//! # Layout
//!
//! - [`Connection`]: the state machine (`Connecting`, `Connected`,
//!   `Reconnecting`, `Disconnected`), with heartbeat timeout, backoff,
//!   subscriptions and the outbound queue; its deadlines (connect, retry,
//!   probe, stable) are one timer table (`timer.rs`), whose earliest is
//!   [`Connection::poll_timeout`].
//! - [`backoff`]: exponential delays from 1 s to 30 s, jittered at every step.
//! - [`Subscriptions`]: the wanted topics; each [`Subscription`] keeps its
//!   state and the last `(epoch, seq)` seen (the `since` of the next
//!   resubscribe) and owns its rules: what a resubscribe [`Recovery`]
//!   recovered, what an ack means, which message is new (at most once, gaps
//!   reported).
//! - `queue.rs`: the offline queue, with each frame's time to live.
//! - `protocol.rs` and `error.rs`: the wire's close codes and inbound frames,
//!   and the refusals ([`Error`], with its `code()`) and decode errors.
//! - [`dialect`]: the canonical `hublink.v1` protocol and the seed backends'
//!   shapes, behind the small [`Dialect`] trait.
//! - [`JsonValue`]: the core does not parse JSON. Shells hand it values parsed
//!   by what they already have (`serde_json` natively, feature `serde_json`;
//!   the browser's `JSON.parse` in wasm), so a browser build carries no JSON
//!   parser. Payloads stay in that value type until the application decodes
//!   them into its own `T` with [`Message::decode`].
//!
//! # The drive loop
//!
//! Every shell follows this loop literally: feed one input, then drain
//! transmits and events until none is left, then sleep until the next input or
//! [`Connection::poll_timeout`]. A spurious or early `handle_timeout` is a no-op,
//! so a shell may wake as often as it likes.
//!
//! ```no_run
//! use hublink_core::{CloseInfo, Config, Connection, DialectKind, Event, Transmit};
//! # enum Input { Opened, Text(String), Closed(CloseInfo), Tick }
//! # fn now_ms() -> u64 { 0 }
//! # fn wait_for_input(_deadline: Option<u64>) -> Input { Input::Tick }
//! # fn dial() {}
//! # fn send_text(_: &str) {}
//! # fn close_socket(_: u16, _: &str) {}
//!
//! let mut conn: Connection<serde_json::Value> =
//!     Connection::new(Config::default(), DialectKind::Hublink.build());
//! conn.subscribe(now_ms(), "machines.CNC-001").unwrap();
//! conn.connect(now_ms());
//! loop {
//!     // 1. Drain what the core wants done, then what it wants said.
//!     while let Some(transmit) = conn.poll_transmit() {
//!         match transmit {
//!             Transmit::Open => dial(),
//!             Transmit::Send(text) => send_text(&text),
//!             Transmit::Close { code, reason } => close_socket(code, &reason),
//!         }
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Message(m) => println!("{} #{:?}: {:?}", m.topic, m.seq(), m.data),
//!             Event::StateChanged(c) => println!("{:?} ({})", c.to, c.reason.name()),
//!             other => println!("{other:?}"),
//!         }
//!     }
//!     // 2. Wait for the next input, or the core's deadline, and feed it.
//!     match wait_for_input(conn.poll_timeout()) {
//!         Input::Opened => conn.handle_open(now_ms()),
//!         Input::Text(text) => conn.handle_text(now_ms(), &text),
//!         Input::Closed(info) => conn.handle_close(now_ms(), info),
//!         Input::Tick => conn.handle_timeout(now_ms()),
//!     }
//! }
//! ```

#![no_std]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod backoff;
mod connection;
pub mod dialect;
mod error;
pub mod json;
pub mod protocol;
mod queue;
#[cfg(feature = "serde_json")]
pub mod raw;
mod subscriptions;
mod timer;

pub use backoff::BackoffConfig;
pub use connection::{
    Config, Connection, Event, HeartbeatConfig, PublishError, Reason, State, StateChange, Transmit,
    UnsentReason,
};
pub use dialect::{Dialect, DialectKind};
pub(crate) use error::excerpt;
pub use error::{DecodeError, Error, Result};
pub use json::JsonValue;
pub use protocol::{
    close_code, Admit, CloseInfo, Header, HeaderMessage, Inbound, Message, Position, ServerError,
    SUBPROTOCOL,
};
pub use queue::QueueConfig;
pub use subscriptions::{Recovery, Subscription, SubscriptionState, Subscriptions};
