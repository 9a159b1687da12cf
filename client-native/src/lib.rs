//! `hublink`: a reconnecting real-time WebSocket client for tokio.
//!
//! A monitoring tool adds this crate to follow topics on `hublink-server`, or
//! on any of the seed backends through their dialect, and gets messages once
//! each and in order across reconnects, with the connection's state and its
//! reasons on the side.
//!
//! ```no_run
//! use hublink::{Client, DialectKind};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Reading { temperature: f64 }
//!
//! # async fn run() -> hublink::Result<()> {
//! let client = Client::builder("ws://127.0.0.1:8080/ws")
//!     .dialect(DialectKind::Hublink)
//!     .token("eyJhbGciOi…")
//!     .connect()?;
//! let mut readings = client.subscribe::<Reading>("machines.CNC-001")?;
//! // Resolves once the server has it, once, whatever the link did meanwhile.
//! let published = client.publish("orders", &serde_json::json!({"order_id": "A-17"})).await?;
//! println!("order at seq {}", published.seq());
//! while let Some(delivery) = readings.next().await {
//!     match delivery {
//!         Ok(d) => println!("#{:?} {:?}", d.seq(), d.data),
//!         Err(e) => eprintln!("undecodable payload: {e}"),
//!     }
//! }
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! The crate is a thin shell: every decision (when to reconnect, when a
//! silent link is dead, what to resubscribe from which position, what to
//! queue while offline) is made by [`hublink_core::Connection`], a sans-IO
//! state machine. This crate moves bytes and time for it:
//!
//! - [`ClientBuilder`] checks the URL and starts one **driver task** per
//!   client. The driver owns the core and the socket, and `select!`s over the
//!   command channel from the handles, the socket (dialing or reading) and the
//!   core's next deadline. After each input it drains the core's transmits,
//!   then its events, as the core's drive loop prescribes. Writes go through a
//!   small writer task per socket, so a peer that stops reading never blocks
//!   the driver: a black-holed link still times out on schedule.
//! - [`Client`] is the handle: a command sender, a `watch` of the
//!   [`StateSnapshot`], and the registry of event streams.
//! - [`Subscription`] is a stream of [`Delivery`]s of one topic, decoded into
//!   the application's `T`; dropping it unsubscribes. [`Events`] carries
//!   everything else: state changes, recovery, gaps, errors, unsent frames.
//!
//! Time is a `tokio::time::Instant` taken when the client starts, handed to
//! the core in milliseconds, so `tokio::time::pause()` drives it in tests.
//! Each client draws its own jitter seed from the OS, so a fleet does not
//! reconnect in lockstep after a server restart.
//!
//! # Delivery guarantees
//!
//! Messages reach subscriptions in order and at most once; with a server that
//! keeps history (`hublink-server`), they reach them exactly once across
//! reconnects within the history window. When missed messages cannot be
//! replayed, [`Event::Subscribed`] says [`Recovery::Lost`] and the
//! application should refetch; a jump in `seq` is reported as [`Event::Gap`].
//! Subscription and event streams are unbounded: the driver never waits for
//! the application and never drops a message.
//!
//! # The `hublink` command
//!
//! The crate ships a command-line tool for people and scripts:
//! `hublink watch URL --topic T` prints one line per event and keeps
//! reconnecting; `hublink publish URL TOPIC JSON` sends one message. See
//! `hublink --help`.

mod builder;
mod client;
mod driver;
mod error;
mod events;
mod outbox;
mod transport;

pub use builder::ClientBuilder;
pub use client::{Client, Delivery, Subscription};
pub use error::{BoxError, Error, Result};
pub use events::{Event, Events, Published, StateSnapshot};
/// The core crate, for its less common types.
pub use hublink_core as core;
pub use hublink_core::{
    BackoffConfig, CloseInfo, DecodeError, DialectKind, HeartbeatConfig, Message, Position,
    PublishError, QueueConfig, Reason, Recovery, ServerError, State, StateChange, UnsentReason,
};
