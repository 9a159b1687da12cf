//! Shared harness of the cross-crate tests: an in-process hublink-server that
//! can be restarted on the same port ([`TestServer`]), a TCP proxy that injects
//! faults between client and server ([`FaultProxy`]), a load balancer in front
//! of several nodes ([`Balancer`]), and helpers that await
//! client events with a deadline instead of sleeping.

mod balancer;
mod proxy;
mod server;

pub use balancer::Balancer;
pub use proxy::{FaultProxy, Mode};
pub use server::{TestServer, SECRET};

use hublink::{Event, Events, Reason, State, StateChange};
use std::time::Duration;
use tokio::time::Instant;

/// Waits for the first event matching `pred`, failing the test after `within`.
pub async fn wait_event<F>(events: &mut Events, within: Duration, mut pred: F) -> Event
where
    F: FnMut(&Event) -> bool,
{
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the client stopped while waiting for an event"),
            Err(_) => panic!("no matching event within {within:?}"),
        }
    }
}

/// Waits for a state change to `to`, returning it.
pub async fn wait_state(events: &mut Events, to: State, within: Duration) -> StateChange {
    match wait_event(
        events,
        within,
        |e| matches!(e, Event::StateChanged(c) if c.to == to),
    )
    .await
    {
        Event::StateChanged(c) => c,
        _ => unreachable!(),
    }
}

/// A short-interval backoff for tests: `initial` ms to `max` ms, jitter 0.5.
pub fn backoff(initial_ms: u64, max_ms: u64) -> hublink::BackoffConfig {
    hublink::BackoffConfig {
        initial_ms,
        max_ms,
        ..Default::default()
    }
}

/// The name of a state change's reason, for assertion messages.
pub fn describe(c: &StateChange) -> String {
    match &c.reason {
        Reason::Closed { code, reason } => {
            format!("{}→{} closed {code} {reason}", c.from.name(), c.to.name())
        }
        r => format!("{}→{} {}", c.from.name(), c.to.name(), r.name()),
    }
}
