//! Browser binding of hublink: the sans-IO `hublink-core` as a wasm class,
//! [`Core`], that the TypeScript package (`pkg/`) drives.
//!
//! Everything that decides anything (when to reconnect, how long to back off,
//! when a silent link is dead, what to resubscribe from where, what to queue,
//! which message is new) lives in the core. The browser end of the shell, the
//! `WebSocket`, the one `setTimeout` and the lifecycle listeners, is a few
//! lines of TypeScript (`pkg/src/index.ts`) that only move bytes and time: it
//! is smaller there than as web-sys bindings and closures compiled in here
//! (BENCHMARKS.md, "wasm size"), and it keeps each frame to one crossing.
//!
//! # Inputs and outputs
//!
//! - Inputs are methods taking `now` (`performance.now()`, ms) first.
//! - A frame is parsed by the browser's `JSON.parse` in JS, which reads its
//!   `type`, `topic`, `seq` and `epoch` and calls [`Core::header`] once: the
//!   core decides (deliver, drop, or hand over the whole value) and answers
//!   with a few bits; the payload stays the value `JSON.parse` made and never
//!   enters wasm. Control frames and other dialects go through [`Core::value`].
//! - After an input, [`Core::drain`] hands every transmit and event, in order,
//!   to the one JS function [`Outputs::out`] as positional scalars (no JS
//!   object is built here), and returns the deadline for the timer.
//!
//! Values are parsed by the browser's `JSON.parse` ([`json::Js`]): no JSON
//! parser is compiled in.

#![no_std]

extern crate alloc;

pub mod events;
mod js;
pub mod json;

/// The release build's panic handler: a trap (see the `abort-on-panic` feature).
#[cfg(all(target_arch = "wasm32", feature = "abort-on-panic"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

use alloc::string::String;
use core::cell::{Cell, RefCell};
use hublink_core::json::concat;
use hublink_core::{
    Admit, CloseInfo, Config, Connection, DialectKind, Error, Header, Position, Transmit,
    SUBPROTOCOL,
};
use json::{to_u64, Js};
use wasm_bindgen::prelude::*;

// The browser is single-threaded (this crate builds no threads), which is what
// `AssumeSingleThreaded` requires.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[wasm_bindgen]
extern "C" {
    /// The receiver of the core's outputs, supplied by the TypeScript layer.
    #[wasm_bindgen(typescript_type = "Outputs")]
    pub type Outputs;

    /// One transmit or event, as positional fields: `kind` is one of
    /// [`events::output`], which says what each puts where. Absent numbers
    /// are `NaN`, absent strings `undefined`.
    #[wasm_bindgen(method)]
    #[allow(clippy::too_many_arguments)]
    pub fn out(
        this: &Outputs,
        kind: u32,
        w: u32,
        a: Option<&str>,
        b: Option<&str>,
        c: Option<&str>,
        x: f64,
        y: f64,
        z: f64,
        v: &JsValue,
    );
}

/// The numbers of [`Core::input`]'s inputs (`Input` in pkg/src/index.ts).
pub mod input {
    /// [`Core::value`](super::Core::value): `v` the parsed frame.
    pub const VALUE: u32 = 0;
    /// [`Core::unparsed`](super::Core::unparsed): `a` the text, `b` the parser's message.
    pub const UNPARSED: u32 = 1;
    /// [`Core::fits`](super::Core::fits): `n` the length.
    pub const FITS: u32 = 2;
    /// [`Core::binary`](super::Core::binary): `n` the length.
    pub const BINARY: u32 = 3;
    /// [`Core::opened`](super::Core::opened).
    pub const OPENED: u32 = 4;
    /// [`Core::closed`](super::Core::closed): `n` the code, `a` the reason.
    pub const CLOSED: u32 = 5;
    /// [`Core::failed`](super::Core::failed): `a` the error.
    pub const FAILED: u32 = 6;
    /// [`Core::tick`](super::Core::tick).
    pub const TICK: u32 = 7;
    /// [`Core::connect`](super::Core::connect).
    pub const CONNECT: u32 = 8;
    /// [`Core::close`](super::Core::close).
    pub const CLOSE: u32 = 9;
    /// [`Core::reconnect_now`](super::Core::reconnect_now).
    pub const RECONNECT_NOW: u32 = 10;
    /// [`Core::network_offline`](super::Core::network_offline).
    pub const NETWORK_OFFLINE: u32 = 11;
    /// [`Core::subscribe`](super::Core::subscribe): `a` the topic; `b` and
    /// `n` the epoch and seq to resume after, or `""` and `NaN`.
    pub const SUBSCRIBE: u32 = 12;
    /// [`Core::unsubscribe`](super::Core::unsubscribe): `a` the topic.
    pub const UNSUBSCRIBE: u32 = 13;
    /// [`Core::publish`](super::Core::publish): `a` the topic, `b` the id, `v` the data.
    pub const PUBLISH: u32 = 14;
    /// [`Core::send`](super::Core::send): `v` the value.
    pub const SEND: u32 = 15;
    /// [`Core::send_text`](super::Core::send_text): `a` the text.
    pub const SEND_TEXT: u32 = 16;
    /// [`Core::request_topics`](super::Core::request_topics).
    pub const REQUEST_TOPICS: u32 = 17;
    /// [`Core::suspend`](super::Core::suspend).
    pub const SUSPEND: u32 = 18;
    /// [`Core::republish`](super::Core::republish): `a` the topic, `b` the
    /// id, `n` the time to live left, `v` the data.
    pub const REPUBLISH: u32 = 19;
}

/// The bits [`Core::header`] answers with.
pub mod admit {
    /// Deliver the frame's `data` to the application (after draining).
    pub const DELIVER: u32 = 1;
    /// Feed the whole parsed value to `value()`.
    pub const DECODE: u32 = 2;
    /// Call `drain()`: outputs are queued, or the timer must fire earlier.
    pub const DRAIN: u32 = 4;
}

/// The codes a refused call returns (0: done), in the order of `ERROR_CODES`
/// in pkg/src/index.ts, which turns them into `HublinkError`s; the message is
/// a `REFUSED` output, just before the call returns.
pub mod refused {
    /// The offline queue is full.
    pub const QUEUE_FULL: u32 = 1;
    /// The dialect cannot do that.
    pub const UNSUPPORTED: u32 = 2;
    /// The topic name is not valid.
    pub const INVALID_TOPIC: u32 = 3;
    /// The connection was closed by the application.
    pub const CLOSED: u32 = 4;
    /// Anything else the core refused.
    pub const OTHER: u32 = 5;
}

/// The core's error as a [`refused`] code and a message. The messages are
/// written here rather than with the core's `Display`, which quotes with
/// `{:?}` and would pull Rust's `Debug` and Unicode tables into the module.
fn refusal(error: Error) -> (u32, String) {
    match &error {
        Error::QueueFull { .. } => (
            refused::QUEUE_FULL,
            "outbound queue is full; the frame was not queued".into(),
        ),
        Error::Unsupported { dialect, operation } => (
            refused::UNSUPPORTED,
            concat(&["the ", dialect, " dialect cannot ", operation]),
        ),
        Error::InvalidTopic { topic, problem } => (
            refused::INVALID_TOPIC,
            concat(&["invalid topic \"", topic, "\": ", problem]),
        ),
        Error::Closed => (
            refused::CLOSED,
            "the connection was closed by the application; call connect() first".into(),
        ),
        Error::InvalidPublishId { .. } => (refused::OTHER, "a publish id is 1 to 128 bytes".into()),
        _ => (refused::OTHER, "the call was refused".into()),
    }
}

/// The browser's close codes for `WebSocket.close()`: 1000 or 3000..=4999.
fn browser_close_code(code: u16) -> u16 {
    match code {
        1000 | 3000..=4999 => code,
        _ => 1000,
    }
}

/// A JS number as the core's millisecond clock.
fn ms(now: f64) -> u64 {
    now as u64
}

/// An optional non-negative option (`NaN` or negative: unset).
fn opt(n: f64) -> Option<u64> {
    (n >= 0.0).then_some(n as u64)
}

/// One logical connection: hublink-core with the browser's `JSON.parse`
/// values. The raw binding; applications use the `hublink` npm package.
#[wasm_bindgen]
pub struct Core {
    conn: RefCell<Connection<Js>>,
    outputs: Outputs,
    subprotocol: bool,
    /// The deadline the last `drain` returned, which the JS timer is set for.
    armed: Cell<Option<u64>>,
    /// `type`, `topic` and `epoch` of the last `header` call.
    last_header: RefCell<[Option<String>; 3]>,
}

/// The dialect named `name`: every built-in one in the `dialects` build.
#[cfg(feature = "dialects")]
fn build_dialect(name: &str) -> alloc::boxed::Box<dyn hublink_core::Dialect<Js> + Send> {
    match name.parse::<DialectKind>() {
        Ok(kind) => kind.build(),
        Err(_) => panic!("an unknown dialect name (the TS layer checks them)"),
    }
}

/// The canonical dialect only: the seed dialects are in the `dialects` build,
/// which the TS layer loads for them (-2.6 KB gzipped for every other page).
#[cfg(not(feature = "dialects"))]
fn build_dialect(name: &str) -> alloc::boxed::Box<dyn hublink_core::Dialect<Js> + Send> {
    assert!(
        name == DialectKind::Hublink.name(),
        "a seed dialect in the hublink-only build"
    );
    alloc::boxed::Box::new(hublink_core::dialect::Hublink)
}

#[wasm_bindgen]
impl Core {
    /// A disconnected connection speaking `dialect` (its name, as in
    /// `DialectName`); outputs go to `outputs.out`. Numeric options are `NaN`
    /// when unset; `seed` is the jitter seed. The TS layer checks the name:
    /// one this module does not hold (the seed dialects are in the
    /// `dialects` build) traps.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dialect: &str,
        outputs: Outputs,
        seed: f64,
        backoff_initial_ms: f64,
        backoff_max_ms: f64,
        max_attempts: f64,
        heartbeat_timeout_ms: f64,
        connect_timeout_ms: f64,
        queue_max_frames: f64,
        queue_ttl_ms: f64,
    ) -> Core {
        let mut config = Config::default();
        if let Some(v) = opt(backoff_initial_ms) {
            config.backoff.initial_ms = v;
        }
        if let Some(v) = opt(backoff_max_ms) {
            config.backoff.max_ms = v;
        }
        config.backoff.max_attempts = opt(max_attempts).map(|v| v as u32);
        config.heartbeat.timeout_ms = opt(heartbeat_timeout_ms);
        if let Some(v) = opt(connect_timeout_ms) {
            config.connect_timeout_ms = v;
        }
        if let Some(v) = opt(queue_max_frames) {
            config.queue.max_frames = v as usize;
        }
        if let Some(v) = opt(queue_ttl_ms) {
            config.queue.ttl_ms = v;
        }
        config.seed = opt(seed).unwrap_or(0x5eed);
        let hublink = dialect == DialectKind::Hublink.name();
        Core {
            conn: RefCell::new(Connection::new(config, build_dialect(dialect))),
            outputs,
            subprotocol: hublink,
            armed: Cell::new(None),
            last_header: RefCell::new([None, None, None]),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection<Js>) -> R) -> R {
        f(&mut self.conn.borrow_mut())
    }

    /// Runs a fallible input: 0, or the [`refused`] code, whose message goes
    /// to `outputs.out` as a `REFUSED` output first.
    fn call(&self, f: impl FnOnce(&mut Connection<Js>) -> hublink_core::Result<()>) -> u32 {
        match self.with(f) {
            Ok(()) => 0,
            Err(e) => {
                let (code, message) = refusal(e);
                let nan = f64::NAN;
                let refused = events::output::REFUSED;
                let none = &JsValue::UNDEFINED;
                self.outputs
                    .out(refused, 0, Some(&message), None, None, nan, nan, nan, none);
                code
            }
        }
    }

    /// Hands every queued transmit and event to `outputs.out`, in order, and
    /// returns when the timer should fire (`performance.now()` ms; -1: no
    /// timer). Re-entrant calls from `out` are safe: the core is not borrowed
    /// while JS runs, and the outer loop drains what they queued.
    pub fn drain(&self) -> f64 {
        loop {
            let transmit = self.with(|c| c.poll_transmit());
            if let Some(t) = transmit {
                self.transmit(t);
                continue;
            }
            let event = self.with(|c| c.poll_event());
            match event {
                Some(event) => events::emit(&self.outputs, event),
                None => break,
            }
        }
        let deadline = self.with(|c| c.poll_timeout());
        self.armed.set(deadline);
        deadline.map_or(-1.0, |d| d as f64)
    }

    fn transmit(&self, t: Transmit) {
        use events::output::*;
        let o = &self.outputs;
        let nan = f64::NAN;
        let none = &JsValue::UNDEFINED;
        match t {
            Transmit::Open => {
                let protocol = self.subprotocol.then_some(SUBPROTOCOL);
                o.out(OPEN, 0, protocol, None, None, nan, nan, nan, none)
            }
            Transmit::Send(text) => o.out(SEND, 0, Some(&text), None, None, nan, nan, nan, none),
            Transmit::Close { code, reason } => {
                let code = browser_close_code(code).into();
                o.out(CLOSE, 0, Some(&reason), None, None, code, nan, nan, none)
            }
        }
    }

    /// The `DRAIN` bit: outputs are queued, or the timer must fire earlier
    /// than the deadline the last `drain` returned.
    fn drain_bit(&self) -> u32 {
        let c = self.conn.borrow();
        let earlier = match (c.poll_timeout(), self.armed.get()) {
            (Some(t), Some(armed)) => t < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier || c.has_output() {
            admit::DRAIN
        } else {
            0
        }
    }

    /// A parsed frame (or line of a `\n`-batched one) of `len` characters, by
    /// its top-level fields; `seq` is `NaN` when absent. A string field that
    /// is the same as in the previous call is not passed again: its bit in
    /// `same` is set (1: `type`, 2: `topic`, 4: `epoch`) and the argument is
    /// ignored, so that a stream of messages on one topic crosses no string at
    /// all. Answers with the [`admit`] bits: `DELIVER` (hand `data` to the
    /// application, after `drain` if `DRAIN` is set too), `DECODE` (call
    /// `value` with the frame), `DRAIN`.
    #[allow(clippy::too_many_arguments)]
    pub fn header(
        &self,
        now: f64,
        len: u32,
        same: u32,
        kind: Option<String>,
        topic: Option<String>,
        seq: f64,
        epoch: Option<String>,
        has_data: bool,
    ) -> u32 {
        let mut last = self.last_header.borrow_mut();
        for (bit, field, value) in [(1, 0, kind), (2, 1, topic), (4, 2, epoch)] {
            if same & bit == 0 {
                last[field] = value;
            }
        }
        let header = Header {
            kind: last[0].as_deref(),
            topic: last[1].as_deref(),
            seq: to_u64(seq),
            epoch: last[2].as_deref(),
            has_data,
        };
        let verdict = self.with(|c| c.handle_header(ms(now), len as usize, &header));
        drop(last);
        let bits = match verdict {
            Admit::Deliver => admit::DELIVER,
            Admit::Decode => admit::DECODE,
            Admit::Drop => 0,
        };
        bits | self.drain_bit()
    }

    /// One input other than a frame's header, by its [`input`] number, with
    /// `now` and the arguments it takes (unused ones: `NaN`, `""`,
    /// `undefined`). One export for all of them: each export costs the module
    /// a wrapper and the glue a method, and these are called rarely. Answers
    /// with what the input returns: a [`refused`] code (0: done), or 1/0 for
    /// `FITS` and `UNSUBSCRIBE`; 0 for the rest.
    pub fn input(&self, what: u32, now: f64, n: f64, a: &str, b: &str, v: JsValue) -> u32 {
        match what {
            input::VALUE => self.value(now, v),
            input::UNPARSED => self.unparsed(now, a, b.into()),
            input::FITS => return self.fits(now, n as u32).into(),
            input::BINARY => self.binary(now, n as u32),
            input::OPENED => self.opened(now),
            input::CLOSED => self.closed(now, n as u16, a.into()),
            input::FAILED => self.failed(now, a.into()),
            input::TICK => self.tick(now),
            input::CONNECT => self.connect(now),
            input::CLOSE => self.close(now),
            input::RECONNECT_NOW => self.reconnect_now(now),
            input::NETWORK_OFFLINE => self.network_offline(now),
            input::SUBSCRIBE => return self.subscribe(now, a, b, n),
            input::UNSUBSCRIBE => return self.unsubscribe(now, a).into(),
            input::PUBLISH => return self.publish(now, a, b, v),
            input::REPUBLISH => return self.republish(now, a, b, n, v),
            input::SEND => return self.send(now, v),
            input::SEND_TEXT => return self.send_text(now, a.into()),
            input::REQUEST_TOPICS => return self.request_topics(now),
            input::SUSPEND => self.suspend(now),
            _ => {}
        }
        0
    }
}

/// The inputs behind [`Core::input`], as Rust methods (what the TS layer
/// reaches through `input`, and what the wasm tests call).
impl Core {
    /// The current state.
    pub fn state(&self) -> &'static str {
        self.conn.borrow().state().name()
    }

    /// Frames waiting in the offline queue.
    pub fn queued(&self) -> usize {
        self.conn.borrow().queued()
    }

    /// A parsed frame as a whole value (after `header` answered `DECODE`).
    pub fn value(&self, now: f64, value: JsValue) {
        self.with(|c| c.handle_value(ms(now), Js(value)));
    }

    /// A frame (or line) that `JSON.parse` refused, with its message.
    pub fn unparsed(&self, now: f64, text: &str, error: String) {
        self.with(|c| c.handle_unparsed(ms(now), text, error));
    }

    /// Whether a `\n`-batched frame of `len` characters may be parsed.
    pub fn fits(&self, now: f64, len: u32) -> bool {
        self.with(|c| c.fits(ms(now), len as usize))
    }

    /// A binary frame of `len` bytes (reported; the protocol is text).
    pub fn binary(&self, now: f64, len: u32) {
        self.with(|c| c.handle_binary(ms(now), len as usize));
    }

    /// The socket asked for by the last `open` output opened.
    pub fn opened(&self, now: f64) {
        self.with(|c| c.handle_open(ms(now)));
    }

    /// The socket closed with `code` and `reason` (1006: no close frame).
    pub fn closed(&self, now: f64, code: u16, reason: String) {
        let info = if code == 1006 {
            CloseInfo::Failed {
                error: "no close frame (1006)".into(),
            }
        } else {
            CloseInfo::Frame { code, reason }
        };
        self.with(|c| c.handle_close(ms(now), info));
    }

    /// The socket failed (its `error` event, or a constructor that threw).
    pub fn failed(&self, now: f64, error: String) {
        self.with(|c| c.handle_close(ms(now), CloseInfo::Failed { error }));
    }

    /// The timer fired.
    pub fn tick(&self, now: f64) {
        self.with(|c| c.handle_timeout(ms(now)));
    }

    /// Starts connecting (from `disconnected`; otherwise does nothing).
    pub fn connect(&self, now: f64) {
        self.with(|c| c.connect(ms(now)));
    }

    /// Closes for good: no reconnect; queued frames are reported as unsent.
    pub fn close(&self, now: f64) {
        self.with(|c| c.close(ms(now)));
    }

    /// Skips the backoff wait now; on a live connection, probes it with a
    /// ping, and replaces it at once if the ping goes unanswered.
    pub fn reconnect_now(&self, now: f64) {
        self.with(|c| c.reconnect_now(ms(now)));
    }

    /// The page is put away (frozen, or hidden into the back/forward cache):
    /// close the link cleanly until `reconnect_now`.
    pub fn suspend(&self, now: f64) {
        self.with(|c| c.suspend(ms(now)));
    }

    /// The network went offline: show `reconnecting` at once.
    pub fn network_offline(&self, now: f64) {
        self.with(|c| c.network_offline(ms(now)));
    }

    /// Subscribes to `topic` (now if connected, else on the next connection),
    /// resuming after `epoch`/`seq` when both are given (not `""`/`NaN`).
    /// Returns a [`refused`] code (`INVALID_TOPIC`), 0 when done.
    pub fn subscribe(&self, now: f64, topic: &str, epoch: &str, seq: f64) -> u32 {
        let since = match to_u64(seq) {
            Some(seq) if !epoch.is_empty() => Some(Position {
                epoch: epoch.into(),
                seq,
            }),
            _ => None,
        };
        self.call(|c| c.subscribe_from(ms(now), topic, since))
    }

    /// Unsubscribes from `topic`; returns whether it was subscribed.
    pub fn unsubscribe(&self, now: f64, topic: &str) -> bool {
        self.with(|c| c.unsubscribe(ms(now), topic))
    }

    /// Publishes a JSON value on `topic` under `id` (128 random bits the TS
    /// layer drew from `crypto.getRandomValues`); queued while offline.
    /// Returns a [`refused`] code (`UNSUPPORTED`, `QUEUE_FULL`, `CLOSED`), 0
    /// when done; the outcome is a `PUBLISHED` or `PUBLISH_FAILED` output
    /// with that id.
    pub fn publish(&self, now: f64, topic: &str, id: &str, data: JsValue) -> u32 {
        self.call(|c| c.publish_as(ms(now), id, topic, &Js(data)))
    }

    /// Publishes under an `id` chosen before (the outbox of an earlier page
    /// load, a tab's publish through the shared connection), with `ttl_ms`
    /// of its time to live left (`NaN`: the queue's). Returns a [`refused`]
    /// code, 0 when done; an id held already is not queued twice.
    pub fn republish(&self, now: f64, topic: &str, id: &str, ttl_ms: f64, data: JsValue) -> u32 {
        self.call(|c| {
            let ttl_ms = opt(ttl_ms).unwrap_or(c.config().queue.ttl_ms);
            c.republish(ms(now), id, topic, &Js(data), ttl_ms)
        })
    }

    /// Sends a JSON value as is; queued while offline.
    pub fn send(&self, now: f64, value: JsValue) -> u32 {
        self.call(|c| c.send_json(ms(now), &Js(value)))
    }

    /// Sends a text frame as is (e.g. the power dialect's `ping`).
    pub fn send_text(&self, now: f64, text: String) -> u32 {
        self.call(|c| c.send_frame(ms(now), text))
    }

    /// Asks the server for the subscribed topics (a `topics` event answers).
    pub fn request_topics(&self, now: f64) -> u32 {
        self.call(|c| c.request_topics(ms(now)))
    }
}
