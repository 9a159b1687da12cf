//! Browser shell of hublink: a thin body around the sans-IO `hublink-core`.
//!
//! Everything that decides anything (when to reconnect, how long to back off,
//! when a silent link is dead, what to resubscribe from where, what to queue)
//! lives in the core. This crate only moves bytes and time between the core and
//! the browser:
//!
//! - a web-sys `WebSocket` per [`Transmit::Open`], offering the `hublink.v1`
//!   subprotocol for the hublink dialect only;
//! - ONE `setTimeout`, re-armed from [`Connection::poll_timeout`] after every
//!   input;
//! - time from `performance.now()`, the jitter seed from
//!   `crypto.getRandomValues`;
//! - the browser's lifecycle: `online`, `visibilitychange` to visible and
//!   `pageshow` from the back/forward cache call `reconnect_now` (the core probes
//!   a live connection with a ping); `offline` calls `network_offline`.
//!
//! # The drive loop
//!
//! As in the core's crate docs: after every input (socket open, message, close,
//! the timer, an application call) [`Shell::drive`] drains `poll_transmit` and
//! `poll_event` until both are empty, then re-arms the timer. Events go to one
//! JS callback as plain objects (see [`events`]); the hand-written TypeScript
//! package `hublink` (in `pkg/`) routes them to handlers. A handler may call back
//! into the client: the re-entrant `drive` returns at once and the outer loop
//! drains what the call produced, so events keep their order.
//!
//! Values are parsed by the browser's `JSON.parse` ([`json::Js`]): no JSON
//! parser is compiled in, and payloads reach JS untouched.

mod events;
pub mod json;

use hublink_core::{CloseInfo, Config, Connection, DialectKind, Error, Transmit, SUBPROTOCOL};
use js_sys::{Function, Reflect, Uint32Array};
use json::{error_message, Js};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, EventTarget, WebSocket};

pub use events::{reason_names, state_names};

// The browser is single-threaded (this crate builds no threads), which is what
// `AssumeSingleThreaded` requires.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &Uint32Array);
}

/// Monotonic milliseconds, the core's clock.
fn now() -> u64 {
    performance_now() as u64
}

/// A JS `Error` carrying a machine-readable `code`.
fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// Concatenates `parts` (instead of `format!`, whose machinery and `Debug`
/// impls would weigh on every page load).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        out.push_str(part);
    }
    out
}

/// The core's error as a JS `Error` with a `code`. The messages are written
/// here rather than with the core's `Display`, which quotes with `{:?}` and
/// would pull Rust's `Debug` and Unicode tables into the module.
fn core_error(error: Error) -> JsValue {
    let (code, message) = match &error {
        Error::QueueFull { .. } => (
            "queue_full",
            "outbound queue is full; the frame was not queued".into(),
        ),
        Error::Unsupported { dialect, operation } => (
            "unsupported",
            concat(&["the ", dialect, " dialect cannot ", operation]),
        ),
        Error::InvalidTopic { topic, problem } => (
            "invalid_topic",
            concat(&["invalid topic \"", topic, "\": ", problem]),
        ),
        Error::Closed => (
            "closed",
            "the connection was closed by the application; call connect() first".into(),
        ),
        Error::UnknownDialect(name) => (
            "unknown_dialect",
            concat(&[
                "unknown dialect \"",
                name,
                "\": expected one of hublink, machines, devices, topics, actions, power",
            ]),
        ),
        _ => ("error", "the call was refused".into()),
    };
    js_error(code, &message)
}

/// The browser's close codes for `WebSocket.close()`: 1000 or 3000..=4999.
fn browser_close_code(code: u16) -> u16 {
    match code {
        1000 | 3000..=4999 => code,
        _ => 1000,
    }
}

type Callback = Closure<dyn FnMut(JsValue)>;

/// The JS functions the shell hands to the browser; created once per client.
struct Callbacks {
    open: Callback,
    message: Callback,
    close: Callback,
    error: Callback,
    timer: Closure<dyn FnMut()>,
    lifecycle: Callback,
}

const LIFECYCLE: [&str; 3] = ["online", "offline", "pageshow"];

/// The state of one client: the core, the current socket and the timer.
struct Shell {
    core: RefCell<Connection<Js>>,
    url: String,
    subprotocol: bool,
    socket: RefCell<Option<WebSocket>>,
    /// Asked for the URL of each attempt (see [`Client::set_open_hook`]).
    open_hook: RefCell<Option<Function>>,
    /// The attempt whose URL the hook has not given yet (0: none).
    pending_open: Cell<u32>,
    /// The id of the last attempt handed to the hook.
    opens: Cell<u32>,
    /// The armed `setTimeout` and the deadline it is for.
    timer: RefCell<Option<(JsValue, u64)>>,
    driving: Cell<bool>,
    on_event: Function,
    callbacks: Callbacks,
}

fn callback(shell: &Weak<Shell>, f: fn(&Shell, JsValue)) -> Callback {
    let shell = shell.clone();
    Closure::new(move |event: JsValue| {
        if let Some(shell) = shell.upgrade() {
            f(&shell, event);
        }
    })
}

fn global_target(name: Option<&str>) -> Option<EventTarget> {
    let global = js_sys::global();
    let target = match name {
        Some(name) => Reflect::get(&global, &name.into()).ok()?,
        None => global.into(),
    };
    let has = Reflect::get(&target, &"addEventListener".into()).ok()?;
    has.is_function().then(|| target.unchecked_into())
}

impl Shell {
    fn new(url: String, subprotocol: bool, core: Connection<Js>, on_event: Function) -> Rc<Shell> {
        let shell = Rc::new_cyclic(|weak: &Weak<Shell>| {
            let timer_shell = weak.clone();
            Shell {
                core: RefCell::new(core),
                url,
                subprotocol,
                socket: RefCell::new(None),
                open_hook: RefCell::new(None),
                pending_open: Cell::new(0),
                opens: Cell::new(0),
                timer: RefCell::new(None),
                driving: Cell::new(false),
                on_event,
                callbacks: Callbacks {
                    open: callback(weak, Shell::on_open),
                    message: callback(weak, Shell::on_message),
                    close: callback(weak, Shell::on_close),
                    error: callback(weak, Shell::on_error),
                    lifecycle: callback(weak, Shell::on_lifecycle),
                    timer: Closure::new(move || {
                        if let Some(shell) = timer_shell.upgrade() {
                            shell.timer.borrow_mut().take();
                            shell.core.borrow_mut().handle_timeout(now());
                            shell.drive();
                        }
                    }),
                },
            }
        });
        shell.listen(true);
        shell
    }

    /// Adds (or removes) the browser lifecycle listeners, where they exist.
    fn listen(&self, add: bool) {
        let f = self.callbacks.lifecycle.as_ref().unchecked_ref();
        let targets = [
            (None, &LIFECYCLE[..]),
            (Some("document"), &["visibilitychange"][..]),
        ];
        for (name, events) in targets {
            if let Some(target) = global_target(name) {
                for event in events {
                    let _ = if add {
                        target.add_event_listener_with_callback(event, f)
                    } else {
                        target.remove_event_listener_with_callback(event, f)
                    };
                }
            }
        }
    }

    /// The drive loop: drain transmits and events, then re-arm the timer.
    fn drive(&self) {
        if self.driving.replace(true) {
            return; // re-entered from a JS handler: the outer loop drains
        }
        loop {
            let transmit = self.core.borrow_mut().poll_transmit();
            if let Some(transmit) = transmit {
                self.perform(transmit);
                continue;
            }
            let event = self.core.borrow_mut().poll_event();
            match event {
                // Handlers are wrapped by the TS layer and do not throw; a
                // throw here must not stop the loop either.
                Some(event) => drop(self.on_event.call1(&JsValue::NULL, &events::to_js(event))),
                None => break,
            }
        }
        self.driving.set(false);
        self.arm_timer();
    }

    fn arm_timer(&self) {
        let deadline = self.core.borrow().poll_timeout();
        let mut timer = self.timer.borrow_mut();
        if timer.as_ref().map(|(_, d)| *d) == deadline {
            return;
        }
        if let Some((id, _)) = timer.take() {
            clear_timeout(&id);
        }
        if let Some(deadline) = deadline {
            let delay = deadline.saturating_sub(now()).min(i32::MAX as u64 - 1) as f64;
            let f = self.callbacks.timer.as_ref().unchecked_ref();
            *timer = Some((set_timeout(f, delay + 1.0), deadline));
        }
    }

    fn perform(&self, transmit: Transmit) {
        match transmit {
            Transmit::Open => {
                let hook = self.open_hook.borrow().clone();
                match hook {
                    None => self.open_socket(&self.url),
                    Some(hook) => {
                        // The hook answers with `openUrl(id, url)` or
                        // `failOpen(id, error)`, now or later; the core's
                        // connect timeout bounds how long it may take.
                        let id = self.opens.get().wrapping_add(1).max(1);
                        self.opens.set(id);
                        self.pending_open.set(id);
                        drop(hook.call1(&JsValue::NULL, &id.into()));
                    }
                }
            }
            Transmit::Send(text) => {
                if let Some(ws) = self.socket.borrow().as_ref() {
                    // A failed send shows up as the socket's close event.
                    let _ = ws.send_with_str(&text);
                }
            }
            Transmit::Close { code, reason } => {
                self.pending_open.set(0); // a late answer of the hook opens nothing
                if let Some(ws) = self.detach() {
                    let _ = ws.close_with_code_and_reason(browser_close_code(code), &reason);
                }
            }
        }
    }

    /// Opens the attempt's WebSocket to `url`; a refusal is the attempt's failure.
    fn open_socket(&self, url: &str) {
        let socket = if self.subprotocol {
            WebSocket::new_with_str(url, SUBPROTOCOL)
        } else {
            WebSocket::new(url)
        };
        match socket {
            Ok(ws) => {
                ws.set_binary_type(BinaryType::Arraybuffer);
                let cb = &self.callbacks;
                ws.set_onopen(Some(cb.open.as_ref().unchecked_ref()));
                ws.set_onmessage(Some(cb.message.as_ref().unchecked_ref()));
                ws.set_onclose(Some(cb.close.as_ref().unchecked_ref()));
                ws.set_onerror(Some(cb.error.as_ref().unchecked_ref()));
                *self.socket.borrow_mut() = Some(ws);
            }
            Err(e) => {
                let error = error_message(&e);
                self.core
                    .borrow_mut()
                    .handle_close(now(), CloseInfo::Failed { error });
            }
        }
    }

    /// Forgets the current socket: nothing more from it reaches the core.
    fn detach(&self) -> Option<WebSocket> {
        let ws = self.socket.borrow_mut().take()?;
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        ws.set_onerror(None);
        Some(ws)
    }

    // Events come from the current socket only: `detach` clears a socket's
    // handlers before it is replaced, and the browser reads them at dispatch.
    fn on_open(&self, _: JsValue) {
        self.core.borrow_mut().handle_open(now());
        self.drive();
    }

    fn on_message(&self, event: JsValue) {
        let data = Reflect::get(&event, &"data".into()).unwrap_or_default();
        match data.as_string() {
            Some(text) => self.core.borrow_mut().handle_text(now(), &text),
            None => {
                let len = Reflect::get(&data, &"byteLength".into())
                    .ok()
                    .and_then(|n| n.as_f64())
                    .unwrap_or(0.0);
                self.core.borrow_mut().handle_binary(now(), len as usize)
            }
        }
        self.drive();
    }

    fn on_close(&self, event: JsValue) {
        self.detach();
        // Read as plain fields: Node's WebSocket has no global CloseEvent.
        let field = |k: &str| Reflect::get(&event, &k.into()).unwrap_or_default();
        let code = field("code").as_f64().unwrap_or(1006.0) as u16;
        let reason = field("reason").as_string().unwrap_or_default();
        let info = if code == 1006 {
            CloseInfo::Failed {
                error: "no close frame (1006)".into(),
            }
        } else {
            CloseInfo::Frame { code, reason }
        };
        self.core.borrow_mut().handle_close(now(), info);
        self.drive();
    }

    /// A socket error is the end of that socket: browsers follow it with a
    /// close event (always 1006), Node's WebSocket sometimes does not.
    fn on_error(&self, _: JsValue) {
        self.detach();
        let error = "WebSocket error".into();
        self.core
            .borrow_mut()
            .handle_close(now(), CloseInfo::Failed { error });
        self.drive();
    }

    fn on_lifecycle(&self, event: JsValue) {
        let field = |target: &JsValue, k: &str| Reflect::get(target, &k.into()).unwrap_or_default();
        let kind = field(&event, "type").as_string().unwrap_or_default();
        let back = match kind.as_str() {
            "offline" => {
                self.core.borrow_mut().network_offline(now());
                false
            }
            "online" => true,
            "pageshow" => field(&event, "persisted").is_truthy(),
            "visibilitychange" => {
                let document = field(&js_sys::global(), "document");
                field(&document, "visibilityState").as_string().as_deref() == Some("visible")
            }
            _ => false,
        };
        if back {
            self.core.borrow_mut().reconnect_now(now());
        }
        self.drive();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.listen(false);
        if let Some((id, _)) = self.timer.borrow_mut().take() {
            clear_timeout(&id);
        }
        if let Some(ws) = self.detach() {
            let _ = ws.close_with_code_and_reason(1000, "client dropped");
        }
    }
}

fn opt_u64(options: &JsValue, key: &str) -> Option<u64> {
    if !options.is_object() {
        return None;
    }
    let n = Reflect::get(options, &key.into()).ok()?.as_f64()?;
    (n >= 0.0).then_some(n as u64)
}

fn config(options: &JsValue) -> Config {
    let mut config = Config::default();
    let o = |k| opt_u64(options, k);
    if let Some(v) = o("backoffInitialMs") {
        config.backoff.initial_ms = v;
    }
    if let Some(v) = o("backoffMaxMs") {
        config.backoff.max_ms = v;
    }
    config.backoff.max_attempts = o("maxAttempts").map(|v| v as u32);
    config.heartbeat.timeout_ms = o("heartbeatTimeoutMs");
    if let Some(v) = o("connectTimeoutMs") {
        config.connect_timeout_ms = v;
    }
    if let Some(v) = o("queueMaxFrames") {
        config.queue.max_frames = v as usize;
    }
    if let Some(v) = o("queueTtlMs") {
        config.queue.ttl_ms = v;
    }
    config.seed = o("seed").unwrap_or_else(|| {
        let buf = Uint32Array::new_with_length(2);
        get_random_values(&buf);
        (u64::from(buf.get_index(0)) << 32) | u64::from(buf.get_index(1))
    });
    config
}

/// One logical connection to a hublink server (the raw wasm API; applications
/// use the `hublink` npm package, which wraps it).
#[wasm_bindgen]
pub struct Client {
    shell: Rc<Shell>,
}

#[wasm_bindgen]
impl Client {
    /// A disconnected client for `url` (an absolute `ws:`/`wss:` URL); events go
    /// to `onEvent`. Throws an `Error` with `code: "unknown_dialect"`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        #[wasm_bindgen(unchecked_param_type = "ClientOptions | undefined")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: ClientEvent) => void")] on_event: Function,
    ) -> Result<Client, JsValue> {
        let dialect = match Reflect::get(&options, &"dialect".into())
            .ok()
            .and_then(|d| d.as_string())
        {
            Some(name) => name.parse::<DialectKind>().map_err(core_error)?,
            None => DialectKind::Hublink,
        };
        let core = Connection::new(config(&options), dialect.build());
        let subprotocol = dialect == DialectKind::Hublink;
        Ok(Client {
            shell: Shell::new(url, subprotocol, core, on_event),
        })
    }

    fn input(&self, f: impl FnOnce(&mut Connection<Js>, u64)) {
        f(&mut self.shell.core.borrow_mut(), now());
        self.shell.drive();
    }

    fn call(
        &self,
        f: impl FnOnce(&mut Connection<Js>, u64) -> hublink_core::Result<()>,
    ) -> Result<(), JsValue> {
        let result = f(&mut self.shell.core.borrow_mut(), now());
        self.shell.drive();
        result.map_err(core_error)
    }

    /// Starts connecting (from `disconnected`; otherwise does nothing).
    pub fn connect(&self) {
        self.input(|c, now| c.connect(now));
    }

    /// Closes for good: no reconnect; queued frames are reported as unsent.
    pub fn close(&self) {
        self.input(|c, now| c.close(now));
    }

    /// Skips the backoff wait now; on a live connection, probes it with a ping.
    #[wasm_bindgen(js_name = reconnectNow)]
    pub fn reconnect_now(&self) {
        self.input(|c, now| c.reconnect_now(now));
    }

    /// Asks `hook(id)` for the URL of every attempt instead of using the
    /// constructor's: it answers with [`open_url`](Self::open_url) or
    /// [`fail_open`](Self::fail_open) and that `id`, at once or later (e.g.
    /// after fetching a fresh token). Answers for an abandoned attempt are ignored.
    #[wasm_bindgen(js_name = setOpenHook)]
    pub fn set_open_hook(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(id: number) => void")] hook: Function,
    ) {
        *self.shell.open_hook.borrow_mut() = Some(hook);
    }

    /// Opens attempt `id` (from the open hook) to `url`.
    #[wasm_bindgen(js_name = openUrl)]
    pub fn open_url(&self, id: u32, url: &str) {
        if id != 0 && self.shell.pending_open.get() == id {
            self.shell.pending_open.set(0);
            self.shell.open_socket(url);
            self.shell.drive();
        }
    }

    /// Attempt `id` (from the open hook) failed before a socket: the core backs off.
    #[wasm_bindgen(js_name = failOpen)]
    pub fn fail_open(&self, id: u32, error: String) {
        if id != 0 && self.shell.pending_open.get() == id {
            self.shell.pending_open.set(0);
            self.input(|c, now| c.handle_close(now, CloseInfo::Failed { error }));
        }
    }

    /// The network went offline: show `reconnecting` at once.
    #[wasm_bindgen(js_name = networkOffline)]
    pub fn network_offline(&self) {
        self.input(|c, now| c.network_offline(now));
    }

    /// Subscribes to `topic` (now if connected, else on the next connection).
    /// Throws an `Error` with `code: "invalid_topic"`.
    pub fn subscribe(&self, topic: &str) -> Result<(), JsValue> {
        self.call(|c, now| c.subscribe(now, topic))
    }

    /// Unsubscribes from `topic`; returns whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        let was = self.shell.core.borrow_mut().unsubscribe(now(), topic);
        self.shell.drive();
        was
    }

    /// Publishes a JSON value on `topic`; queued while offline. Throws an
    /// `Error` with `code` `"unsupported"`, `"queue_full"` or `"closed"`.
    pub fn publish(&self, topic: &str, data: JsValue) -> Result<(), JsValue> {
        self.call(|c, now| c.publish(now, topic, &Js(data)))
    }

    /// Sends a JSON value as is; queued while offline.
    pub fn send(&self, value: JsValue) -> Result<(), JsValue> {
        self.call(|c, now| c.send_json(now, &Js(value)))
    }

    /// Sends a text frame as is (e.g. the power dialect's `ping`).
    #[wasm_bindgen(js_name = sendText)]
    pub fn send_text(&self, text: String) -> Result<(), JsValue> {
        self.call(|c, now| c.send_frame(now, text))
    }

    /// Asks the server for the subscribed topics (a `topics` event answers).
    #[wasm_bindgen(js_name = requestTopics)]
    pub fn request_topics(&self) -> Result<(), JsValue> {
        self.call(|c, now| c.request_topics(now))
    }

    /// The current state.
    #[wasm_bindgen(getter, unchecked_return_type = "StateName")]
    pub fn state(&self) -> String {
        self.shell.core.borrow().state().name().into()
    }

    /// Failed attempts since the last stable connection.
    #[wasm_bindgen(getter)]
    pub fn attempt(&self) -> u32 {
        self.shell.core.borrow().attempt()
    }

    /// Frames waiting in the offline queue.
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> usize {
        self.shell.core.borrow().queued()
    }

    /// The dialect's name.
    #[wasm_bindgen(getter, unchecked_return_type = "DialectName")]
    pub fn dialect(&self) -> String {
        self.shell.core.borrow().dialect_name().into()
    }
}
