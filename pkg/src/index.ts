/**
 * hublink: a real-time WebSocket client that survives everything.
 *
 * The connection logic (reconnects with jittered backoff, heartbeats, recovery
 * without gaps, the offline queue) is hublink-core, compiled to WebAssembly;
 * this module is the hand-written TypeScript face of it. The wasm module is an
 * implementation detail: `createClient` loads it on first use.
 *
 * @module
 */
import init, { Client as RawClient, reasonNames, stateNames } from "../wasm/hublink_wasm.js";
import type {
  ClientEvent,
  ClientEventType,
  ClientOptions as RawOptions,
  DialectName,
  Position,
  Reason,
  ReasonName,
  StateChange,
  StateName,
  TopicMessage,
} from "../wasm/hublink_wasm.js";

export type {
  ClientEvent,
  ClientEventType,
  DialectName,
  Position,
  Reason,
  ReasonName,
  StateChange,
  StateName,
  TopicMessage,
};

/** Every connection state; checked against hublink-core by the package tests. */
export const STATE_NAMES = ["connecting", "connected", "reconnecting", "disconnected"] as const;
/** Every state-change reason; checked against hublink-core by the package tests. */
export const REASON_NAMES = [
  "requested",
  "opened",
  "closed",
  "connect_failed",
  "heartbeat_timeout",
  "server_reconnect",
  "auth_rejected",
  "forbidden",
  "gave_up",
  "closed_by_user",
  "offline",
] as const;

/** The built-in dialects. */
export const DIALECT_NAMES: readonly DialectName[] = ["hublink", "machines", "devices", "topics", "actions", "power"];

// Compile-time proof that the lists above are exactly the unions generated
// from the Rust types (wasm-bindgen typescript_custom_section).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statesMatch: Same<(typeof STATE_NAMES)[number], StateName> = true;
const reasonsMatch: Same<(typeof REASON_NAMES)[number], ReasonName> = true;
void statesMatch;
void reasonsMatch;

/** The names of the states and reasons as the wasm module (hublink-core) spells them. */
export function coreNames(): { states: string[]; reasons: string[] } {
  return { states: stateNames(), reasons: reasonNames() };
}

/** Options of {@link createClient}. */
export interface ClientOptions extends RawOptions {
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
  code: "queue_full" | "unsupported" | "invalid_topic" | "closed" | "unknown_dialect" | "error";
}

/** One logical connection, over as many WebSockets as it takes. */
export interface HublinkClient {
  /** The current state. */
  readonly state: StateName;
  /** State, attempt and reason, as one immutable snapshot (for `useSyncExternalStore`). */
  readonly status: ConnectionStatus;
  /** Resolves once the wasm module is loaded (loading starts with the first {@link connect}); never rejects. */
  readonly ready: Promise<void>;
  /** Listens to one kind of event, or to all (`"*"`); returns the function that stops listening. */
  on<K extends ClientEventType>(type: K, handler: EventHandler<K>): () => void;
  on(type: "*", handler: (event: ClientEvent) => void): () => void;
  /** Calls `handler` with every message on `topic`, once and in order; returns the unsubscribe function. */
  subscribe<T = unknown>(topic: string, handler: TopicHandler<T>): () => void;
  /** The last message received on `topic`, if any. */
  latest<T = unknown>(topic: string): TopicMessage<T> | undefined;
  /** The last message on `topic` with when it arrived and whether it is stale; the same object until one of those changes. */
  latestEntry<T = unknown>(topic: string): LatestEntry<T>;
  /** Publishes `data` on `topic`; queued while offline. Throws a {@link HublinkError}. */
  publish(topic: string, data: unknown): void;
  /** Sends a JSON value as is; queued while offline. Throws a {@link HublinkError}. */
  send(value: unknown): void;
  /** Starts connecting, if not already (a no-op after {@link close}). */
  connect(): void;
  /** Skips the backoff wait (or probes a connection that looks alive). */
  reconnectNow(): void;
  /** Closes for good and releases the socket, timer and listeners. */
  close(): void;
}

let loading: Promise<unknown> | undefined;

/** Loads the wasm module (once); `createClient` calls it for you. */
export function load(wasmUrl?: string | URL): Promise<unknown> {
  // A failed load is forgotten, so that the next call tries again.
  loading ??= init(wasmUrl === undefined ? undefined : { module_or_path: wasmUrl }).catch((error: unknown) => {
    loading = undefined;
    throw error;
  });
  return loading;
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

function message(error: unknown): string {
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

class Client implements HublinkClient {
  status: ConnectionStatus = DISCONNECTED;
  readonly ready: Promise<void>;
  private raw: RawClient | null = null;
  private wanted = false;
  private closed = false;
  private readonly topics = new Map<string, Set<TopicHandler<unknown>>>();
  private readonly listeners = new Map<string, Set<(event: ClientEvent) => void>>();
  private readonly last = new Map<string, Received>();
  private readonly pending: Array<(raw: RawClient) => void> = [];
  /** How many times the connection was lost (left `connected`): what makes a value stale. */
  private losses = 0;
  private readonly boot: WasmBoot;

  /** Touches nothing (no URL, no fetch, no global): safe to create while server rendering. */
  constructor(private readonly url: string, private readonly options: ClientOptions) {
    this.boot = new WasmBoot(this, options);
    this.ready = this.boot.loaded;
  }

  get state(): StateName {
    return this.status.state;
  }

  /** Creates the wasm client once the module is loaded (called by {@link WasmBoot}). */
  start(): void {
    if (!this.wanted || this.closed || this.raw) return;
    const raw = new RawClient(this.url, this.options, (event) => this.dispatch(event));
    this.raw = raw;
    raw.setOpenHook((id) => this.openAttempt(raw, id));
    for (const topic of this.topics.keys()) this.guard(() => raw.subscribe(topic));
    raw.connect();
    for (const op of this.pending.splice(0)) this.guard(() => op(raw));
  }

  /**
   * Before every attempt: the URL resolved now (against the page, if relative)
   * with the token of this moment. A failure fails the attempt; the core backs off.
   */
  private openAttempt(raw: RawClient, id: number): void {
    const fail = (error: unknown) => {
      if (this.raw === raw) raw.failOpen(id, message(error));
    };
    const open = (token: string | undefined) => {
      if (this.raw !== raw) return;
      let url: string;
      try {
        url = resolveUrl(this.url, token);
      } catch (e) {
        return fail(e);
      }
      raw.openUrl(id, url);
    };
    const { tokenProvider, token } = this.options;
    if (!tokenProvider) return open(token);
    let answer: string | Promise<string>;
    try {
      answer = tokenProvider();
    } catch (e) {
      return fail(e);
    }
    if (typeof answer === "string") return open(answer);
    Promise.resolve(answer).then(open, (e: unknown) => fail(new Error(`tokenProvider failed: ${message(e)}`)));
  }

  /** A state change from the core or from {@link WasmBoot}: kept as the status, counted as a loss. */
  setStatus(event: StateChange): void {
    // Retries of the wasm load were "reconnecting"; the core starts from "disconnected".
    if (this.status.state === "reconnecting" && event.from === "disconnected") event.from = "reconnecting";
    if (event.from === "connected" && event.to !== "connected") this.losses++;
    this.status = { state: event.to, attempt: event.attempt, reason: event.reason, retryInMs: event.retryInMs };
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      report(e);
    }
  }

  /** Called by the wasm shell, synchronously from the socket's callbacks (and by {@link WasmBoot}). */
  dispatch(event: ClientEvent): void {
    if (event.type === "state") {
      this.setStatus(event);
    } else if (event.type === "message") {
      this.last.set(event.topic, { message: event, at: Date.now(), losses: this.losses });
      const handlers = this.topics.get(event.topic);
      if (handlers) for (const h of [...handlers]) this.guard(() => h(event.data, event));
    }
    for (const key of [event.type, "*"]) {
      const set = this.listeners.get(key);
      if (set) for (const h of [...set]) this.guard(() => h(event));
    }
  }

  on(type: string, handler: (event: never) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const h = handler as (event: ClientEvent) => void;
    set.add(h);
    return () => void set.delete(h);
  }

  subscribe<T = unknown>(topic: string, handler: TopicHandler<T>): () => void {
    let set = this.topics.get(topic);
    if (!set) {
      this.topics.set(topic, (set = new Set()));
      this.raw?.subscribe(topic);
    }
    const h = handler as TopicHandler<unknown>;
    set.add(h);
    return () => {
      if (!set.delete(h) || set.size > 0 || this.topics.get(topic) !== set) return;
      this.topics.delete(topic);
      this.raw?.unsubscribe(topic);
    };
  }

  latest<T = unknown>(topic: string): TopicMessage<T> | undefined {
    return this.last.get(topic)?.message as TopicMessage<T> | undefined;
  }

  latestEntry<T = unknown>(topic: string): LatestEntry<T> {
    const r = this.last.get(topic);
    if (!r) return NO_ENTRY as LatestEntry<T>;
    const stale = r.losses !== this.losses;
    if (r.entry?.stale !== stale) r.entry = { data: r.message.data, message: r.message, receivedAt: r.at, stale };
    return r.entry as LatestEntry<T>;
  }

  private call(op: (raw: RawClient) => void): void {
    if (this.closed) {
      const e = new Error("the client was closed") as HublinkError;
      e.code = "closed";
      throw e;
    }
    if (this.raw) op(this.raw);
    else this.pending.push(op);
  }

  publish(topic: string, data: unknown): void {
    this.call((raw) => raw.publish(topic, data));
  }

  send(value: unknown): void {
    this.call((raw) => raw.send(value));
  }

  connect(): void {
    if (this.closed) return;
    this.wanted = true;
    if (this.raw) return this.raw.connect();
    // Honest at once: an attempt is under way (its state event follows when the core starts).
    if (this.status.state === "disconnected") this.status = { ...DISCONNECTED, state: "connecting", reason: { name: "requested" } };
    this.boot.start();
  }

  reconnectNow(): void {
    if (this.raw) this.raw.reconnectNow();
    else this.boot.retryNow();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.boot.stop();
    if (!this.raw && this.status.state !== "disconnected") {
      this.dispatch({ type: "state", from: this.status.state, to: "disconnected", reason: { name: "closed_by_user" }, attempt: 0, retryInMs: null });
    }
    const raw = this.raw;
    this.raw = null;
    if (raw) {
      raw.close();
      raw.free();
    }
    this.pending.length = 0;
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
  private resolve!: () => void;
  private loading = false;
  private stopped = false;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onOnline = () => this.retryNow();

  constructor(private readonly client: Client, private readonly options: ClientOptions) {
    this.loaded = new Promise((resolve) => (this.resolve = resolve));
  }

  /** Loads (once at a time); the client starts when the module is there. */
  start(): void {
    if (this.loading || this.stopped || this.timer !== undefined) return;
    this.loading = true;
    load(this.options.wasmUrl).then(
      () => {
        this.loading = false;
        this.resolve();
        this.client.start();
      },
      (error: unknown) => {
        this.loading = false;
        this.failed(error);
      },
    );
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    this.failures++;
    const from = this.client.status.state;
    const max = this.options.maxAttempts;
    if (max !== undefined && this.failures >= max) {
      this.stopped = true;
      this.client.dispatch({ type: "state", from, to: "disconnected", reason: { name: "gave_up", attempts: this.failures }, attempt: this.failures, retryInMs: null });
      return;
    }
    const delay = backoffDelay(this.options, this.failures - 1);
    this.timer = setTimeout(() => this.retryNow(), delay);
    globalEvents.addEventListener?.("online", this.onOnline);
    const reason: Reason = { name: "connect_failed", message: `the wasm module did not load: ${message(error)}` };
    this.client.dispatch({ type: "state", from, to: "reconnecting", reason, attempt: this.failures, retryInMs: delay });
  }

  /** Skips the wait of a pending retry. */
  retryNow(): void {
    if (this.timer === undefined) return;
    this.clear();
    this.start();
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    globalEvents.removeEventListener?.("online", this.onOnline);
  }
}

/**
 * A connection to `url` (absolute, or relative to the page: `"/ws"`), connecting
 * at once unless `options.autoConnect` is false.
 */
export function createClient(url: string, options: ClientOptions = {}): HublinkClient {
  if (options.dialect !== undefined && !DIALECT_NAMES.includes(options.dialect)) {
    const e = new Error(
      `unknown dialect "${options.dialect}": expected one of ${DIALECT_NAMES.join(", ")}`,
    ) as HublinkError;
    e.code = "unknown_dialect";
    throw e;
  }
  const client = new Client(url, options);
  if (options.autoConnect !== false) client.connect();
  return client;
}
