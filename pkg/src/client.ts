/**
 * The client itself, solo: everything of the package but shared mode, which
 * index.ts adds. The SharedWorker builds on this module: were it to reach
 * the shared-mode chunk, which creates the worker, bundlers would follow the
 * cycle (Turbopack does not finish).
 *
 * The connection logic (reconnects with jittered backoff, heartbeats, recovery
 * without gaps, the offline queue) is hublink-core, compiled to WebAssembly;
 * this module is the hand-written TypeScript face of it. The wasm module is an
 * implementation detail: `createClient` loads it on first use.
 *
 * @module
 */
import { Core, initSync } from "../wasm/hublink_wasm.js";
import { Input, Output } from "./wire.js";
import type {
  ClientEvent as CoreEvent,
  ClientOptions as RawOptions,
  DialectName,
  Position,
  PublishFailed,
  PublishFailure,
  Reason,
  ReasonName,
  Recovery,
  StateChange,
  StateName,
  TopicMessage,
  UnsentReason,
} from "../wasm/hublink_wasm.js";
import type { Outbox } from "./outbox.js";

export type {
  DialectName,
  Position,
  PublishFailed,
  PublishFailure,
  Reason,
  ReasonName,
  Recovery,
  StateChange,
  StateName,
  TopicMessage,
  UnsentReason,
};

/** Every connection state; checked against hublink-core by tests/tests/ts_names.rs. */
export const STATE_NAMES = ["connecting", "connected", "reconnecting", "disconnected"] as const;
/** Every state-change reason; checked against hublink-core by tests/tests/ts_names.rs. */
export const REASON_NAMES = [
  "requested",
  "opened",
  "closed",
  "connect_failed",
  "heartbeat_timeout",
  "server_reconnect",
  "auth_rejected",
  "forbidden",
  "upgrade_refused",
  "gave_up",
  "closed_by_user",
  "offline",
  "suspended",
] as const;

/** The built-in dialects (all but "hublink" are in a second wasm module, loaded when used). */
export const DIALECT_NAMES: readonly DialectName[] = ["hublink", "machines", "devices", "topics", "actions", "power"];

// Compile-time proof that the lists above are exactly the unions generated
// from the Rust types (wasm-bindgen typescript_custom_section).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statesMatch: Same<(typeof STATE_NAMES)[number], StateName> = true;
const reasonsMatch: Same<(typeof REASON_NAMES)[number], ReasonName> = true;
void statesMatch;
void reasonsMatch;

/** Where this tab's connection lives: `solo` (its own), or shared with other tabs (see `shared`). */
export type Role = "worker" | "leader" | "follower" | "solo";

/** Every event a client emits: the core's, and two of the shared mode. */
export type ClientEvent =
  | CoreEvent
  /** Shared mode: this tab's role or the number of tabs sharing the connection changed. */
  | { type: "sharing"; role: Role; tabs: number }
  /** Shared mode: the shared connection refused this tab's send (what `send` throws when not shared). */
  | { type: "refused"; call: "publish" | "send"; topic: string | null; code: HublinkError["code"]; message: string };

/** The `type` of every event. */
export type ClientEventType = ClientEvent["type"];

/** Options of {@link createClient}. */
export interface ClientOptions extends RawOptions {
  /**
   * One connection for every tab of this origin with the same URL and
   * credentials (default false): in a SharedWorker where there is one, else
   * in a tab elected by the Web Locks API that relays over BroadcastChannel.
   * Loaded only when set (a chunk of its own).
   */
  shared?: boolean;
  /**
   * Keep unanswered publishes in IndexedDB (default false): the next page
   * load of this origin with the same URL and dialect sends them again,
   * with the same ids (the server publishes each once), within what is
   * left of their time to live. In shared mode the shared connection keeps
   * them. Loaded only when set (a chunk of its own).
   */
  outbox?: boolean;
  /** Connect at once (default true). The React provider connects in an effect instead. */
  autoConnect?: boolean;
  /** Where the wasm module is, when the bundler does not resolve `new URL(..., import.meta.url)`. */
  wasmUrl?: string | URL;
  /** A token sent as `?token=` with every attempt (replaces one already in the URL). */
  token?: string;
  /**
   * Called before every attempt for the token to send as `?token=` (overrides
   * `token`): rotate credentials without a new client. A rejection or throw
   * fails that attempt, which is retried with the backoff.
   */
  tokenProvider?: () => string | Promise<string>;
}

/** What a status badge needs: the state, the attempt and why. Replaced, never mutated. */
export interface ConnectionStatus {
  state: StateName;
  /** The number of the coming attempt while reconnecting; 0 once stable. */
  attempt: number;
  /** Why the state last changed (null before the first change). */
  reason: Reason | null;
  /** While reconnecting: ms until the next attempt. */
  retryInMs: number | null;
}

/** The last value on a topic, and whether it can still be trusted as live. */
export interface LatestEntry<T = unknown> {
  /** The payload of the last message (undefined before the first). */
  data: T | undefined;
  /** The last message itself. */
  message: TopicMessage<T> | undefined;
  /** When it arrived (`Date.now()`), null before the first message. */
  receivedAt: number | null;
  /**
   * True when the connection has been lost since it arrived and no newer
   * message has come: the value is the last known one, not a live one.
   */
  stale: boolean;
}

/** A handler of one kind of event. */
export type EventHandler<K extends ClientEventType> = (event: Extract<ClientEvent, { type: K }>) => void;

/** A handler of a topic's messages: the payload, then the whole message. */
export type TopicHandler<T> = (data: T, message: TopicMessage<T>) => void;

/** An `Error` raised by hublink, with a machine-readable `code`. */
export interface HublinkError extends Error {
  /**
   * What went wrong; for a publish also `refused` (by the server: see
   * `serverCode`) and `expired` (unanswered for its time to live), and
   * `closed` when the client was closed before the answer came.
   */
  code: "queue_full" | "unsupported" | "invalid_topic" | "closed" | "unknown_dialect" | "refused" | "expired" | "error";
  /** For a publish: whether it may have been published all the same (false: nothing was). */
  maybePublished?: boolean;
  /** For a publish the server refused: its code (`forbidden`, `publish_failed`, ...). */
  serverCode?: string;
}

/** The server's answer to a publish: it is in the topic's stream once, at `seq`. */
export interface Published {
  /** The publish's id (its idempotency key). */
  id: string;
  topic: string;
  seq: number;
  epoch: string;
}

/** One logical connection, over as many WebSockets as it takes. */
export interface HublinkClient {
  /** The current state. */
  readonly state: StateName;
  /** Where the connection lives: `"solo"` unless `shared` (then `"worker"`, `"leader"` or `"follower"`). */
  readonly role: Role;
  /** How many tabs share the connection (1 when solo). */
  readonly tabs: number;
  /** State, attempt and reason, as one immutable snapshot (for `useSyncExternalStore`). */
  readonly status: ConnectionStatus;
  /** Resolves once the wasm module is loaded (loading starts with the first {@link connect}); never rejects. */
  readonly ready: Promise<void>;
  /** Listens to one kind of event, or to all (`"*"`); returns the function that stops listening. */
  on<K extends ClientEventType>(type: K, handler: EventHandler<K>): () => void;
  on(type: "*", handler: (event: ClientEvent) => void): () => void;
  /**
   * Calls `handler` with every message on `topic`, once and in order; returns
   * the unsubscribe function. With `since` (a position delivered before, e.g.
   * stored by the application) the subscribe resumes after it; honoured
   * once `ready` has resolved and when `topic` is not subscribed yet.
   */
  subscribe<T = unknown>(topic: string, handler: TopicHandler<T>, since?: Position): () => void;
  /** The last message received on `topic`, if any. */
  latest<T = unknown>(topic: string): TopicMessage<T> | undefined;
  /** The last message on `topic` with when it arrived and whether it is stale; the same object until one of those changes. */
  latestEntry<T = unknown>(topic: string): LatestEntry<T>;
  /**
   * Publishes `data` on `topic`, queued while offline; resolves once the
   * server has it, once, at the position it names, however many times the
   * client had to send it (each publish carries an id; after a reconnect or
   * an unknown outcome it is sent again with the same id, and the server
   * publishes it once). Rejects with a {@link HublinkError}: refused
   * (nothing was published), or `expired`/`closed` unanswered, when
   * `maybePublished` tells whether it may have been.
   */
  publish(topic: string, data: unknown): Promise<Published>;
  /** Sends a JSON value as is; queued while offline. Throws a {@link HublinkError}. */
  send(value: unknown): void;
  /** Starts connecting, if not already (a no-op after {@link close}). */
  connect(): void;
  /** Skips the backoff wait (or probes a connection that looks alive). */
  reconnectNow(): void;
  /** Closes for good and releases the socket, timer and listeners. */
  close(): void;
}

/** A `Core` class: the canonical module's, or the dialects module's (the same API). */
export type CoreClass = typeof Core;
const loading = new Map<boolean, Promise<CoreClass>>();

/**
 * Loads the wasm module (once) and resolves to its `Core`; `createClient`
 * calls it for you. A seed `dialect` loads the second module, which holds
 * them (a chunk of its own: pages that speak hublink never fetch it).
 *
 * The module is fetched and compiled here and instantiated with the glue's
 * `initSync` (instantiating a compiled module is allowed on a page's main
 * thread; compiling synchronously is not): wasm-bindgen's own async loader
 * would add its fallbacks for old call forms and servers without the wasm
 * MIME type to every page, and compiling from the bytes needs no MIME type.
 * The `new URL(..., import.meta.url)` literals are what Vite, webpack and
 * Next.js recognise and emit as assets.
 */
export function load(wasmUrl?: string | URL, dialect?: DialectName): Promise<CoreClass> {
  const seed = dialect !== undefined && dialect !== "hublink";
  let p = loading.get(seed);
  if (!p) {
    const m = seed ? import("../wasm-dialects/hublink_wasm.js") : Promise.resolve({ initSync, Core });
    p = m.then(async (m) => {
      const url =
        wasmUrl ??
        (seed
          ? new URL("../wasm-dialects/hublink_wasm_bg.wasm", import.meta.url)
          : new URL("../wasm/hublink_wasm_bg.wasm", import.meta.url));
      const r = await fetch(url);
      if (!r.ok) throw new Error(`HTTP ${r.status} fetching ${url}`);
      m.initSync({ module: await WebAssembly.compile(await r.arrayBuffer()) });
      return m.Core as CoreClass;
    });
    // A failed load is forgotten, so that the next call tries again.
    p.catch(() => loading.delete(seed));
    loading.set(seed, p);
  }
  return p;
}

/** One input into the core at `t`, with the arguments it takes (`a`, `n`, `b`, `v`). */
function put(core: Core, what: Input, a = "", n = NaN, b = "", v?: unknown, t = performance.now()): number {
  return core.input(what, t, n, a, b, v);
}

/** `HublinkError` codes by the number a refused `Core` call returns (hublink-wasm `refused`). */
const ERROR_CODES = ["error", "queue_full", "unsupported", "invalid_topic", "closed", "error"] as const;

/** The reasons of a `PublishFailed` output, by the index in its `w` (hublink-wasm `events::output`). */
const PUBLISH_FAILURES = ["refused", "expired", "closed"] as const;

function hublinkError(code: HublinkError["code"], message: string, maybePublished?: boolean): HublinkError {
  const e = new Error(message) as HublinkError;
  e.code = code;
  if (maybePublished !== undefined) e.maybePublished = maybePublished;
  return e;
}

/** A publish's failure as the error its promise rejects with. */
function publishError(f: PublishFailed): HublinkError {
  const e = hublinkError(f.reason, f.message, f.maybePublished);
  if (f.code !== null) e.serverCode = f.code;
  return e;
}

/** Throws the `HublinkError` for a refused `Core` call's code (0: done) and the message it output. */
function check(client: Client, code: number): void {
  if (code) throw hublinkError(ERROR_CODES[code] ?? "error", client.refusal);
}

function report(error: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (g.reportError) g.reportError(error);
  else console.error(error);
}

/**
 * `"/ws"` or `"http://host/ws"` as the `ws:`/`wss:` URL a WebSocket needs, with
 * `token` (if any) as the `token` query parameter. A relative URL resolves
 * against the page (or the Worker's script); elsewhere it is an error.
 */
export function resolveUrl(url: string, token?: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  if (token !== undefined) u.searchParams.set("token", token);
  return u.toString();
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The core's reconnect delay (hublink-core `BackoffConfig`), for retries before the core is loaded. */
function backoffDelay(options: ClientOptions, retry: number): number {
  const initial = options.backoffInitialMs ?? 1_000;
  const max = Math.max(initial, options.backoffMaxMs ?? 30_000);
  const nominal = Math.min(initial * 2 ** Math.min(retry, 30), max);
  const lo = Math.max(nominal / 2, initial);
  const hi = Math.min(nominal * 1.5, max);
  return Math.round(lo + Math.random() * (hi - lo));
}

type Listener = (event: Event) => void;
const globalEvents = globalThis as { addEventListener?: (t: string, l: Listener) => void; removeEventListener?: (t: string, l: Listener) => void };

const DISCONNECTED: ConnectionStatus = { state: "disconnected", attempt: 0, reason: null, retryInMs: null };

/** What the client keeps of a topic's last message. */
interface Received {
  message: TopicMessage;
  at: number;
  /** {@link Client.losses} when it arrived. */
  losses: number;
  entry?: LatestEntry;
}

const NO_ENTRY: LatestEntry = Object.freeze({ data: undefined, message: undefined, receivedAt: null, stale: false });

const NAN = Number.NaN;
/** `Core.header` answer bits (hublink-wasm `admit`). */
const DELIVER = 1;
const DECODE = 2;
const DRAIN = 4;
const now = (): number => performance.now();
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const orNull = (n: number): number | null => (Number.isNaN(n) ? null : n);
/**
 * What each lifecycle event asks of the core: the first three are the
 * document's, the others the global's (window, Worker). `pageshow` and
 * `pagehide` count only from and into the back/forward cache (`persisted`),
 * `visibilitychange` only to visible.
 */
const LIFECYCLE = {
  visibilitychange: Input.ReconnectNow,
  freeze: Input.Suspend,
  resume: Input.ReconnectNow,
  online: Input.ReconnectNow,
  offline: Input.NetworkOffline,
  pageshow: Input.ReconnectNow,
  pagehide: Input.Suspend,
} as Record<string, Input>;

/** A publish id: 128 bits from the platform's CSPRNG (`randomUUID` needs a secure context, this does not). */
const publishId = (): string => crypto.getRandomValues(new Uint32Array(4)).join("-");

/** A jitter seed from the platform's CSPRNG, as the core's config wants one. */
function seed(): number {
  const s = crypto.getRandomValues(new Uint32Array(2));
  return s[0] * 2 ** 21 + (s[1] >>> 11);
}

/**
 * The browser shell: one WebSocket at a time, one timer, the lifecycle
 * listeners, and `JSON.parse`. It moves bytes and time; hublink-core (in wasm)
 * decides. Per frame: one `JSON.parse`, one call into wasm with the header
 * fields, and the payload goes to the handlers as `JSON.parse` made it.
 */
export class Client implements HublinkClient {
  status: ConnectionStatus = DISCONNECTED;
  role: Role = "solo";
  tabs = 1;
  readonly ready: Promise<void>;
  #core: Core | null = null;
  #ws: WebSocket | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armed = -1;
  #driving = false;
  #wanted = false;
  #closed = false;
  readonly #topics = new Map<string, Set<TopicHandler<unknown>>>();
  readonly #listeners = new Map<string, Set<(event: ClientEvent) => void>>();
  readonly #last = new Map<string, Received>();
  /** Calls made before the core is there; given `null` if the client closes first. */
  readonly #pending: Array<(core: Core | null) => void> = [];
  /** The promises of publishes awaiting their outcome, by publish id. */
  readonly #waiting = new Map<string, [(p: Published) => void, (e: HublinkError) => void]>();
  #outbox: Outbox | null = null;
  readonly #lifecycle = (e: Event): void => this.#onLifecycle(e);
  /** `type`, `topic` and `epoch` as last passed to `Core.header` (it keeps them). */
  #lastType: string | undefined;
  #lastTopic: string | undefined;
  #lastEpoch: string | undefined;
  /** How many times the connection was lost (left `connected`): what makes a value stale. */
  #losses = 0;
  /** Counts socket attempts; a token that arrives after its attempt ended is dropped. */
  #attempt = 0;
  readonly #boot: WasmBoot;
  readonly url: string;
  readonly options: ClientOptions;
  /** The message of the last refused core call (its `REFUSED` output). */
  refusal = "";

  /** Touches nothing (no URL, no fetch, no global): safe to create while server rendering. */
  constructor(url: string, options: ClientOptions, shared?: SharedCore) {
    this.url = url;
    this.options = options;
    this.#boot = new WasmBoot(this, options, shared);
    this.ready = this.#boot.loaded;
  }

  get state(): StateName {
    return this.status.state;
  }

  /** Creates the core once the module (and the outbox, if any) is loaded (called by {@link WasmBoot}). */
  start(CoreClass: CoreClass, outbox: Outbox | null): void {
    if (!this.#wanted || this.#closed || this.#core) return;
    this.#outbox = outbox;
    const o = this.options;
    const n = (v: number | undefined): number => (v === undefined ? NAN : v);
    const core = new CoreClass(o.dialect ?? "hublink", this, o.seed ?? seed(), n(o.backoffInitialMs), n(o.backoffMaxMs),
      n(o.maxAttempts), n(o.heartbeatTimeoutMs), n(o.connectTimeoutMs), n(o.queueMaxFrames), n(o.queueTtlMs));
    this.#core = core;
    this.#listen(true);
    for (const topic of this.#topics.keys()) this.#guard(() => check(this, put(core, Input.Subscribe, topic)));
    put(core, Input.Connect);
    // An earlier page load's unanswered publishes go first, with their ids.
    outbox?.restore((id, topic, data, ttl) => put(core, Input.Republish, topic, ttl, id, data), (f) => this.emit(f));
    for (const op of this.#pending.splice(0)) this.#guard(() => op(core));
    this.#drive();
  }

  #listen(add: boolean): void {
    const g = globalThis as unknown as EventTarget & { document?: EventTarget };
    const f = add ? "addEventListener" : "removeEventListener";
    Object.keys(LIFECYCLE).forEach((e, i) => (i < 3 ? g.document : g)?.[f]?.(e, this.#lifecycle));
  }

  /**
   * Moves the page's lifecycle into the core, which decides: away (`freeze`,
   * `pagehide`) closes the link cleanly, so that the page can enter the
   * back/forward cache; back (`resume`, `pageshow` from the cache, visible
   * again, `online`) probes the link or reconnects at once. The visibility is
   * read at the event, whoever dispatched it.
   */
  #onLifecycle(e: Event): void {
    const core = this.#core;
    const t = e.type;
    const doc = (globalThis as { document?: { visibilityState?: string } }).document;
    // pageshow and pagehide, or visibilitychange: read at the event, whoever dispatched it (no `isTrusted`).
    if (!core || (t[0] === "p" ? !(e as PageTransitionEvent).persisted : t === "visibilitychange" && doc?.visibilityState !== "visible")) return;
    put(core, LIFECYCLE[t]);
    this.#drive();
  }

  #guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      report(e);
    }
  }

  /** The drive loop: drain the core's outputs (re-entrant calls fold into the outer loop), re-arm the timer. */
  #drive(): void {
    const core = this.#core;
    if (!core || this.#driving) return;
    this.#driving = true;
    let deadline: number;
    try {
      deadline = core.drain();
    } finally {
      this.#driving = false;
    }
    if (this.#closed) return this.#release();
    if (deadline === this.#armed) return;
    clearTimeout(this.#timer);
    this.#armed = deadline;
    if (deadline >= 0) {
      this.#timer = setTimeout(() => {
        this.#armed = -1;
        put(core, Input.Tick);
        this.#drive();
      }, Math.min(Math.max(deadline - now(), 0), 2 ** 31 - 2) + 1);
    }
  }

  /** `Outputs.out` of hublink-wasm: one transmit or event, as positional fields (`Output` says which). */
  out(kind: Output, w: number, a?: string, b?: string, c?: string, x = NAN, y = NAN, z = NAN, v?: unknown): void {
    let e: ClientEvent;
    switch (kind) {
      case Output.Open:
        return this.#open(a);
      case Output.Send:
        this.#ws?.send(a!);
        return;
      case Output.Close:
        this.#detach()?.close(x, a);
        return;
      case Output.Refused:
        this.refusal = a!;
        return;
      case Output.State: {
        const name = REASON_NAMES[w >> 8];
        const r = { name } as Record<string, unknown>;
        if (name === "closed") (r.code = z), (r.message = a);
        else if (name === "connect_failed") r.message = a;
        else if (name === "heartbeat_timeout") r.silentMs = z;
        else if (name === "server_reconnect") (r.message = a), (r.retryAfterMs = z);
        else if (name === "auth_rejected" || name === "forbidden") r.code = z;
        else if (name === "gave_up") r.attempts = z;
        else if (name === "upgrade_refused") r.status = z;
        e = { type: "state", from: STATE_NAMES[w & 15], to: STATE_NAMES[(w >> 4) & 15], reason: r as Reason, attempt: x, retryInMs: orNull(y) };
        break;
      }
      case Output.Welcome:
        e = { type: "welcome", clientId: a ?? null, heartbeatIntervalMs: orNull(x) };
        break;
      case Output.Message: {
        const [data, timestamp] = v as [unknown, unknown];
        return this.#deliver({ type: "message", topic: a!, kind: b ?? null, seq: orNull(x), epoch: c ?? null, data, timestamp }, now());
      }
      case Output.Subscribed:
        e = { type: "subscribed", topic: a!, recovery: b as Recovery };
        break;
      case Output.SubscribeFailed:
        e = { type: "subscribe_failed", topic: a!, error: b! };
        break;
      case Output.Unsubscribed:
        e = { type: "unsubscribed", topic: a! };
        break;
      case Output.Gap:
        e = { type: "gap", topic: a!, last: { epoch: b!, seq: x }, next: { epoch: c!, seq: y } };
        break;
      case Output.Topics:
        e = { type: "topics", topics: v as string[] };
        break;
      case Output.ServerError:
        e = { type: "server_error", code: a!, message: b!, recoverable: w === 1, errorCount: orNull(x) };
        break;
      case Output.DecodeError:
        e = { type: "decode_error", message: a! };
        break;
      case Output.Unsent:
        e = { type: "unsent", frame: a!, reason: b as UnsentReason, waitedMs: orNull(x) };
        break;
      case Output.Published:
        return this.settled({ type: "published", id: a!, topic: b!, seq: x, epoch: c! });
      case Output.PublishFailed: {
        const reason = PUBLISH_FAILURES[w & 3];
        const maybe = (w & 4) !== 0;
        const why = reason === "refused" ? `refused by the server (${c}: ${v as string})` : reason === "expired" ? `unanswered for ${x} ms` : "unanswered when the client closed";
        const message = `publish ${why}; ${maybe ? "it may have been published" : "nothing was published"}`;
        return this.settled({ type: "publish_failed", id: a!, topic: b!, reason, code: c ?? null, message, maybePublished: maybe, waitedMs: orNull(x) });
      }
      default:
        e = { type: "unknown", data: v };
    }
    this.emit(e);
  }

  /** An event to the listeners (from the core, or a state change from {@link WasmBoot}). */
  emit(event: ClientEvent): void {
    if (event.type === "state") {
      // Retries of the wasm load were "reconnecting"; the core starts from "disconnected".
      if (this.status.state === "reconnecting" && event.from === "disconnected") event.from = "reconnecting";
      if (event.from === "connected" && event.to !== "connected") this.#losses++;
      this.status = { state: event.to, attempt: event.attempt, reason: event.reason, retryInMs: event.retryInMs };
    }
    for (const key of [event.type, "*"]) {
      const set = this.#listeners.get(key);
      if (set) for (const h of [...set]) this.#guard(() => h(event));
    }
  }

  /** A message, once and in order: to its topic's handlers, then to `on("message")` listeners. */
  #deliver(m: TopicMessage, t: number): void {
    // The topic's record is reused: no allocation per message.
    const r = this.#last.get(m.topic);
    if (r) (r.message = m), (r.at = t), (r.losses = this.#losses);
    else this.#last.set(m.topic, { message: m, at: t, losses: this.#losses });
    const handlers = this.#topics.get(m.topic);
    // Handler sets are replaced, never mutated, by subscribe and
    // unsubscribe: no copy and no closure per message.
    if (handlers)
      for (const h of handlers) {
        try {
          h(m.data, m);
        } catch (e) {
          report(e);
        }
      }
    if (this.#listeners.size) this.emit(m);
  }

  /**
   * The core's "open": the URL resolved now (against the page, if relative)
   * with the token of this attempt. A failure fails the attempt; the core backs off.
   */
  #open(protocol?: string): void {
    const id = ++this.#attempt;
    const { tokenProvider, token } = this.options;
    if (!tokenProvider) return this.#dial(protocol, token);
    const refused = (e: unknown) => this.#fail(`tokenProvider failed: ${errorText(e)}`);
    let answer: string | Promise<string>;
    try {
      answer = tokenProvider();
    } catch (e) {
      return refused(e);
    }
    if (typeof answer === "string") return this.#dial(protocol, answer);
    const core = this.#core;
    const later = (f: () => void) => {
      // Still this attempt of this core (not closed, timed out or superseded meanwhile).
      if (this.#core !== core || this.#attempt !== id) return;
      f();
      this.#drive();
    };
    Promise.resolve(answer).then(
      (t) => later(() => this.#dial(protocol, t)),
      (e: unknown) => later(() => refused(e)),
    );
  }

  #fail(error: unknown): void {
    put(this.#core!, Input.Failed, errorText(error));
  }

  #dial(protocol: string | undefined, token: string | undefined): void {
    let ws: WebSocket;
    try {
      const url = resolveUrl(this.url, token);
      ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    } catch (e) {
      return this.#fail(e);
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      put(this.#core!, Input.Opened);
      this.#drive();
    };
    ws.onmessage = (e: MessageEvent) => this.#frame(e.data);
    // Read as plain fields: Node's WebSocket has no global CloseEvent.
    ws.onclose = (e: { code?: number; reason?: string }) => {
      this.#detach();
      put(this.#core!, Input.Closed, e.reason ?? "", e.code ?? 1006);
      this.#drive();
    };
    // The end of that socket: browsers follow it with a close (1006), Node's WebSocket not always.
    ws.onerror = () => {
      this.#detach();
      put(this.#core!, Input.Failed, "WebSocket error");
      this.#drive();
    };
    this.#ws = ws;
  }

  /** Forgets the current socket: nothing more from it reaches the core. */
  #detach(): WebSocket | null {
    const ws = this.#ws;
    this.#attempt++;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.#ws = null;
    return ws;
  }

  #frame(data: unknown): void {
    const core = this.#core!;
    if (typeof data !== "string") {
      put(core, Input.Binary, "", (data as ArrayBuffer).byteLength ?? 0);
      return this.#drive();
    }
    if (data.includes("\n")) return this.#lines(core, data);
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch (e) {
      put(core, Input.Unparsed, data, NAN, (e as Error).message);
      return this.#drive();
    }
    this.#one(core, value, data.length);
  }

  /**
   * A frame with newlines: one JSON value per line (gorilla-hub batches), or
   * one value spread over lines. Decided as the core's text path does (the
   * whole frame if it parses, else line by line), but lines are tried first:
   * two or more lines that each parse cannot parse as one value, so batches
   * cost no failed parse of the whole.
   */
  #lines(core: Core, data: string): void {
    const t = now();
    if (!put(core, Input.Fits, "", data.length, "", undefined, t)) return this.#drive();
    const lines = data.split("\n");
    const values: unknown[] = [];
    try {
      // JSON.parse skips the whitespace around a value itself; a blank line
      // that is not empty fails here and takes the careful path below.
      for (const l of lines) if (l) values.push(JSON.parse(l));
    } catch {
      const kept = lines.map((l) => l.trim()).filter((l) => l);
      let whole: unknown;
      try {
        whole = JSON.parse(data);
      } catch {
        // Line by line: bad lines reported, the others delivered.
        for (const l of kept) {
          try {
            whole = JSON.parse(l);
          } catch (e) {
            put(core, Input.Unparsed, l, NAN, (e as Error).message, undefined, t);
            continue;
          }
          this.#one(core, whole, l.length, t);
        }
        return this.#drive();
      }
      return this.#one(core, whole, data.length, t);
    }
    for (const v of values) this.#one(core, v, 0, t);
  }

  /** One parsed value: its header into the core, then deliver, decode or drop as it says. */
  #one(core: Core, v: unknown, len: number, t = now()): void {
    const m = v as Record<string, unknown> | null;
    const o = typeof m === "object" && m !== null;
    const seq = o ? m.seq : undefined;
    let bits = DECODE;
    if (o) {
      // Strings equal to the last call's stay in wasm: no copy per message.
      const type = str(m.type);
      const topic = str(m.topic);
      const epoch = str(m.epoch);
      const same = (type === this.#lastType ? 1 : 0) | (topic === this.#lastTopic ? 2 : 0) | (epoch === this.#lastEpoch ? 4 : 0);
      this.#lastType = type;
      this.#lastTopic = topic;
      this.#lastEpoch = epoch;
      bits = core.header(t, len, same, same & 1 ? undefined : type, same & 2 ? undefined : topic,
        typeof seq === "number" ? seq : NAN, same & 4 ? undefined : epoch, m.data !== undefined);
    }
    if (bits & DECODE) {
      put(core, Input.Value, "", NAN, "", v, t);
      return this.#drive();
    }
    if (bits & DRAIN) this.#drive();
    if (bits & DELIVER) {
      // The frame itself is the message event (it has type, topic, seq,
      // epoch, data and timestamp already): nothing is rebuilt.
      const msg = m as unknown as TopicMessage;
      msg.kind = null;
      if (seq === undefined) msg.seq = msg.epoch = null;
      this.#deliver(msg, t);
    }
  }

  /** Frees the core once it has drained its last outputs, and the socket, timer and listeners. */
  #release(): void {
    const core = this.#core;
    if (!core) return;
    this.#core = null;
    this.#listen(false);
    clearTimeout(this.#timer);
    this.#detach()?.close(1000, "client dropped");
    core.free();
  }

  on(type: string, handler: (event: never) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    const h = handler as (event: ClientEvent) => void;
    set.add(h);
    return () => {
      set.delete(h);
      if (!set.size && this.#listeners.get(type) === set) this.#listeners.delete(type);
    };
  }

  subscribe<T = unknown>(topic: string, handler: TopicHandler<T>, since?: Position): () => void {
    const h = handler as TopicHandler<unknown>;
    const set = this.#topics.get(topic);
    const core = this.#core;
    if (!set && core) {
      try {
        check(this, put(core, Input.Subscribe, topic, since?.seq, since?.epoch));
      } finally {
        this.#drive();
      }
    }
    this.#topics.set(topic, new Set(set).add(h));
    return () => {
      const current = this.#topics.get(topic);
      if (!current?.has(h)) return;
      const rest = new Set(current);
      rest.delete(h);
      if (rest.size) return void this.#topics.set(topic, rest);
      this.#topics.delete(topic);
      if (this.#core) {
        put(this.#core, Input.Unsubscribe, topic);
        this.#drive();
      }
    };
  }

  latest<T = unknown>(topic: string): TopicMessage<T> | undefined {
    return this.#last.get(topic)?.message as TopicMessage<T> | undefined;
  }

  latestEntry<T = unknown>(topic: string): LatestEntry<T> {
    const r = this.#last.get(topic);
    if (!r) return NO_ENTRY as LatestEntry<T>;
    const stale = r.losses !== this.#losses;
    const e = r.entry;
    if (e?.message !== r.message || e.stale !== stale) {
      // `at` is the frame's performance.now(), as epoch ms.
      r.entry = { data: r.message.data, message: r.message, receivedAt: Math.round(performance.timeOrigin + r.at), stale };
    }
    return r.entry as LatestEntry<T>;
  }

  /** A fallible call into the core (returning its refusal code), queued until the core is there. */
  #call(op: (core: Core) => number): void {
    if (this.#closed) throw hublinkError("closed", "the client was closed");
    const run = (core: Core | null) => core && check(this, op(core));
    const core = this.#core;
    if (!core) return void this.#pending.push(run);
    try {
      run(core);
    } finally {
      this.#drive();
    }
  }

  /** A publish's outcome (from the core, or from the shared connection): its promise settles, and listeners hear of it. */
  settled(e: Extract<ClientEvent, { type: "published" | "publish_failed" }>): void {
    const w = this.#waiting.get(e.id);
    this.#waiting.delete(e.id);
    this.#outbox?.remove(e.id);
    if (e.type === "published") w?.[0]({ id: e.id, topic: e.topic, seq: e.seq, epoch: e.epoch });
    else w?.[1](publishError(e));
    this.emit(e);
  }

  /**
   * With `id`: the publish a tab made through the shared connection, under
   * that id with `ttl` ms left (sent again after a takeover, it is
   * published once).
   */
  publish(topic: string, data: unknown, id?: string, ttl = NAN): Promise<Published> {
    return new Promise((resolve, reject) => {
      // A publish under an id given may have been made by an earlier connection.
      const maybe = id !== undefined;
      const key = id ?? publishId();
      const closed = () =>
        reject(hublinkError("closed", `the client was closed; ${maybe ? "it may have been published" : "nothing was published"}`, maybe));
      if (this.#closed) return closed();
      const run = (core: Core | null) => {
        if (!core) return closed();
        const code = put(core, maybe ? Input.Republish : Input.Publish, topic, ttl, key, data);
        if (code) return reject(hublinkError(ERROR_CODES[code] ?? "error", this.refusal, maybe));
        this.#waiting.set(key, [resolve, reject]);
        this.#outbox?.add(key, topic, data, Number.isNaN(ttl) ? (this.options.queueTtlMs ?? 60_000) : ttl);
      };
      const core = this.#core;
      if (!core) return void this.#pending.push(run);
      try {
        run(core);
      } finally {
        this.#drive();
      }
    });
  }

  send(value: unknown): void {
    this.#call((core) => put(core, Input.Send, "", NAN, "", value));
  }

  connect(): void {
    if (this.#closed) return;
    this.#wanted = true;
    if (this.#core) {
      put(this.#core, Input.Connect);
      return this.#drive();
    }
    // Honest at once: an attempt is under way (its state event follows when the core starts).
    if (this.status.state === "disconnected") this.status = { ...DISCONNECTED, state: "connecting", reason: { name: "requested" } };
    this.#boot.start();
  }

  reconnectNow(): void {
    if (!this.#core) return this.#boot.retryNow();
    put(this.#core, Input.ReconnectNow);
    this.#drive();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#boot.stop();
    if (!this.#core && this.status.state !== "disconnected") {
      this.emit({ type: "state", from: this.status.state, to: "disconnected", reason: { name: "closed_by_user" }, attempt: 0, retryInMs: null });
    }
    if (this.#core) {
      put(this.#core, Input.Close);
      // From a handler, the outer drive loop drains what close queued and releases.
      if (!this.#driving) this.#drive();
    }
    for (const op of this.#pending.splice(0)) op(null);
  }
}

/**
 * Loads the wasm module for one client, and retries a failed load as the core
 * would retry a connection: after the backoff delay, at once on `online` or
 * `reconnectNow()`, reporting `reconnecting` with `connect_failed` meanwhile.
 * Nothing rejects unhandled; nothing starts before {@link start}.
 */
class WasmBoot {
  readonly loaded: Promise<void>;
  #resolve!: () => void;
  readonly #client: Client;
  readonly #options: ClientOptions;
  #loading = false;
  #stopped = false;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onOnline = () => this.retryNow();

  readonly #shared: SharedCore | undefined;

  constructor(client: Client, options: ClientOptions, shared?: SharedCore) {
    this.#shared = shared;
    this.#client = client;
    this.#options = options;
    this.loaded = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** Loads (once at a time); the client starts when the module is there. */
  start(): void {
    if (this.#loading || this.#stopped || this.#timer !== undefined) return;
    this.#loading = true;
    const o = this.#options;
    const core = this.#shared ? this.#shared(this.#client) : load(o.wasmUrl, o.dialect);
    // In shared mode the shared connection keeps the outbox, not the tab.
    const outbox = o.outbox && !this.#shared ? import("./outbox.js").then((m) => m.open(resolveUrl(this.#client.url), o.dialect)) : null;
    Promise.all([core, outbox]).then(
      ([CoreClass, outbox]) => {
        this.#loading = false;
        this.#resolve();
        this.#client.start(CoreClass, outbox);
      },
      (error: unknown) => {
        this.#loading = false;
        this.#failed(error);
      },
    );
  }

  #failed(error: unknown): void {
    if (this.#stopped) return;
    this.#failures++;
    const from = this.#client.status.state;
    const max = this.#options.maxAttempts;
    if (max !== undefined && this.#failures >= max) {
      this.#stopped = true;
      this.#client.emit({ type: "state", from, to: "disconnected", reason: { name: "gave_up", attempts: this.#failures }, attempt: this.#failures, retryInMs: null });
      return;
    }
    const delay = backoffDelay(this.#options, this.#failures - 1);
    this.#timer = setTimeout(() => this.retryNow(), delay);
    globalEvents.addEventListener?.("online", this.#onOnline);
    const reason: Reason = { name: "connect_failed", message: `the wasm module did not load: ${errorText(error)}` };
    this.#client.emit({ type: "state", from, to: "reconnecting", reason, attempt: this.#failures, retryInMs: delay });
  }

  /** Skips the wait of a pending retry. */
  retryNow(): void {
    if (this.#timer === undefined) return;
    this.#clear();
    this.start();
  }

  stop(): void {
    this.#stopped = true;
    this.#clear();
  }

  #clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    globalEvents.removeEventListener?.("online", this.#onOnline);
  }
}

/** Where a shared client's core comes from (index.ts: the shared-mode chunk). */
export type SharedCore = (client: Client) => Promise<CoreClass>;

/**
 * A connection to `url` (absolute, or relative to the page: `"/ws"`), connecting
 * at once unless `options.autoConnect` is false. With `shared`, `sharedCore`
 * makes its core; without one the client is solo.
 */
export function createClient(url: string, options: ClientOptions = {}, sharedCore?: SharedCore): HublinkClient {
  if (options.dialect !== undefined && !DIALECT_NAMES.includes(options.dialect)) {
    throw hublinkError("unknown_dialect", `unknown dialect "${options.dialect}": expected one of ${DIALECT_NAMES.join(", ")}`);
  }
  const client = new Client(url, options, options.shared ? sharedCore : undefined);
  if (options.autoConnect !== false) client.connect();
  return client;
}
