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
  "upgrade_refused",
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
  /** Resolves once the wasm module is loaded. */
  readonly ready: Promise<void>;
  /** Listens to one kind of event, or to all (`"*"`); returns the function that stops listening. */
  on<K extends ClientEventType>(type: K, handler: EventHandler<K>): () => void;
  on(type: "*", handler: (event: ClientEvent) => void): () => void;
  /** Calls `handler` with every message on `topic`, once and in order; returns the unsubscribe function. */
  subscribe<T = unknown>(topic: string, handler: TopicHandler<T>): () => void;
  /** The last message received on `topic`, if any. */
  latest<T = unknown>(topic: string): TopicMessage<T> | undefined;
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
  loading ??= init(wasmUrl === undefined ? undefined : { module_or_path: wasmUrl });
  return loading;
}

function report(error: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (g.reportError) g.reportError(error);
  else console.error(error);
}

/** `"/ws"` or `"http://host/ws"` as the `ws:`/`wss:` URL a WebSocket needs. */
export function resolveUrl(url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.toString();
}

class Client implements HublinkClient {
  status: ConnectionStatus = { state: "disconnected", attempt: 0, reason: null, retryInMs: null };
  readonly ready: Promise<void>;
  private raw: RawClient | null = null;
  private wanted = false;
  private closed = false;
  private readonly url: string;
  private readonly topics = new Map<string, Set<TopicHandler<unknown>>>();
  private readonly listeners = new Map<string, Set<(event: ClientEvent) => void>>();
  private readonly last = new Map<string, TopicMessage>();
  private readonly pending: Array<(raw: RawClient) => void> = [];

  constructor(url: string, private readonly options: ClientOptions) {
    this.url = resolveUrl(url);
    this.ready = load(options.wasmUrl).then(() => this.start());
    this.ready.catch(report);
  }

  get state(): StateName {
    return this.status.state;
  }

  private start(): void {
    if (!this.wanted || this.closed || this.raw) return;
    const raw = new RawClient(this.url, this.options, (event) => this.dispatch(event));
    this.raw = raw;
    for (const topic of this.topics.keys()) this.guard(() => raw.subscribe(topic));
    raw.connect();
    for (const op of this.pending.splice(0)) this.guard(() => op(raw));
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      report(e);
    }
  }

  /** Called by the wasm shell, synchronously from the socket's callbacks. */
  private dispatch(event: ClientEvent): void {
    if (event.type === "state") {
      this.status = { state: event.to, attempt: event.attempt, reason: event.reason, retryInMs: event.retryInMs };
    } else if (event.type === "message") {
      this.last.set(event.topic, event);
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
    return this.last.get(topic) as TopicMessage<T> | undefined;
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
    if (this.raw) this.raw.connect();
    else void this.ready.then(() => this.start());
  }

  reconnectNow(): void {
    this.raw?.reconnectNow();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
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
