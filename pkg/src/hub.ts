/**
 * The shared connection: one solo {@link Client} (one WebSocket, one core)
 * and the tabs that use it. It runs in the SharedWorker, or in the tab that
 * leads when there is none; tabs reach it over a `MessagePort` or a
 * `BroadcastChannel` as {@link ToHub} and {@link FromHub} messages.
 *
 * A topic is subscribed on the wire once while any tab wants it, and
 * unsubscribed when the last one leaves; each tab gets the messages of its
 * topics, the state changes, and the events of its own calls.
 *
 * @module
 */
import {
  type Client,
  type ClientEvent,
  type ClientOptions,
  type ConnectionStatus,
  type HublinkClient,
  type HublinkError,
  type Position,
  type TopicMessage,
  type createClient,
  type load,
  type resolveUrl,
} from "./client.js";

/**
 * What shared mode uses of the main module, passed in rather than imported:
 * a static import would make bundlers split the main module into a chunk of
 * its own, which every page would pay for.
 */
export interface Deps {
  createClient: typeof createClient;
  load: typeof load;
  resolveUrl: typeof resolveUrl;
}

/** What a tab sends first: who it is, what it wants, and how to connect. */
export interface Hello {
  t: "hello";
  /** The tab's id (a random UUID); also the name of the lock it holds while it lives. */
  tab: string;
  /** The resolved URL, credentials and options: tabs with the same key share. */
  key: string;
  url: string;
  options: SharedOptions;
  /** Whether the tab has a token provider the connection may ask. */
  provider: boolean;
  /** The tab's topics, each with the last position it delivered (after a takeover). */
  topics: Array<[string, Position | null]>;
}

/** The options a shared connection is made with (no functions: they stay in the tabs). */
export type SharedOptions = Omit<ClientOptions, "tokenProvider" | "shared" | "autoConnect" | "wasmUrl"> & { wasmUrl?: string };

/** A tab's request. */
export type ToHub =
  | { t: "sub"; topic: string }
  | { t: "unsub"; topic: string }
  /** A publish under the id the tab chose, with `ttl` ms of its time to live left (sent again after a takeover). */
  | { t: "pub"; topic: string; data: unknown; id: string; ttl: number }
  | { t: "send"; value: unknown }
  | { t: "now" }
  | { t: "token"; id: number; token?: string; error?: string }
  | { t: "bye" };

/** What the connection tells a tab. */
export type FromHub =
  | { t: "status"; status: ConnectionStatus }
  | { t: "ev"; e: ClientEvent }
  | { t: "msg"; m: TopicMessage }
  | { t: "sharing"; tabs: number }
  | { t: "token"; id: number };

/** One tab, as the hub sees it. */
export interface Tab {
  post(m: FromHub): void;
  provider: boolean;
}

/** How long a token provider in a tab may take before the attempt fails. */
const TOKEN_TIMEOUT_MS = 10_000;

/** The events that concern the tabs of one topic. */
const TOPIC_EVENTS = new Set(["subscribed", "subscribe_failed", "unsubscribed", "gap"]);

export class Hub {
  readonly client: HublinkClient;
  /** Called once the last tab has left (the connection is closed then). */
  onEmpty?: () => void;
  readonly #tabs = new Map<string, Tab & { topics: Set<string> }>();
  readonly #topics = new Map<string, { tabs: Set<string>; off: () => void; since?: Position }>();
  /** Subscribes waiting for the core (a position to resume from needs it). */
  #early: Array<() => void> | null = [];
  /** The tab of each send queued while not connected, in the queue's order: whom an `unsent` concerns. */
  #queued: string[] = [];
  /** The tab of each publish awaiting its outcome, by publish id. */
  readonly #owners = new Map<string, string>();
  #tokenId = 0;
  readonly #tokens = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void }>();

  constructor(hello: Hello, create: Deps["createClient"]) {
    const asked = hello.provider ? { tokenProvider: () => this.#askToken() } : {};
    this.client = create(hello.url, { ...hello.options, ...asked, autoConnect: false });
    this.client.on("*", (e) => this.#event(e));
    void this.client.ready.then(() => {
      for (const f of this.#early!) f();
      this.#early = null;
    });
  }

  /** A tab joins: it gets the state now and the latest message of each of its topics it had not seen. */
  attach(id: string, tab: Tab, topics: Hello["topics"]): void {
    if (this.#tabs.has(id)) return;
    this.#tabs.set(id, { ...tab, topics: new Set() });
    tab.post({ t: "status", status: this.client.status });
    for (const [topic, since] of topics) this.#want(id, topic, since);
    this.#sharing();
    this.client.connect();
  }

  /** A tab left (it said so, or its lock was released because it closed or crashed). */
  detach(id: string): void {
    const tab = this.#tabs.get(id);
    if (!tab) return;
    this.#tabs.delete(id);
    for (const topic of tab.topics) this.#unwant(id, topic);
    this.#queued = this.#queued.filter((t) => t !== id);
    // Its publishes go on; their outcomes go to every tab.
    for (const [p, t] of this.#owners) if (t === id) this.#owners.delete(p);
    if (!this.#tabs.size) {
      this.client.close();
      this.onEmpty?.();
      return;
    }
    this.#sharing();
  }

  /** Ends the connection without telling the tabs (a leader hands over to the next). */
  close(): void {
    this.#tabs.clear();
    this.client.close();
    this.onEmpty?.();
  }

  receive(id: string, m: ToHub): void {
    const tab = this.#tabs.get(id);
    if (!tab) return;
    switch (m.t) {
      case "sub":
        return this.#want(id, m.topic);
      case "unsub":
        return this.#unwant(id, m.topic);
      case "pub":
        this.#owners.set(m.id, id);
        (this.client as unknown as Client).publish(m.topic, m.data, m.id, m.ttl).catch((err: HublinkError) => {
          // Refused before the core held it: no publish_failed came.
          if (this.#owners.get(m.id) !== id) return;
          this.#owners.delete(m.id);
          const { code, message, maybePublished = false } = err;
          tab.post({ t: "ev", e: { type: "publish_failed", id: m.id, topic: m.topic, reason: "refused", code, message, maybePublished, waitedMs: null } });
        });
        return;
      case "send":
        try {
          this.client.send(m.value);
          if (this.client.state !== "connected") this.#queued.push(id);
        } catch (e) {
          const err = e as HublinkError;
          tab.post({ t: "ev", e: { type: "refused", call: "send", topic: null, code: err.code ?? "error", message: err.message } });
        }
        return;
      case "now":
        return this.client.reconnectNow();
      case "token": {
        const waiting = this.#tokens.get(m.id);
        this.#tokens.delete(m.id);
        if (m.token !== undefined) waiting?.resolve(m.token);
        else waiting?.reject(new Error(m.error ?? "no token"));
        return;
      }
      case "bye":
        return this.detach(id);
    }
  }

  /** `id` wants `topic`; `since`: the last position that tab delivered (after a takeover). */
  #want(id: string, topic: string, since?: Position | null): void {
    const tab = this.#tabs.get(id)!;
    if (tab.topics.has(topic)) return;
    tab.topics.add(topic);
    let entry = this.#topics.get(topic);
    if (!entry) {
      const e = (entry = { tabs: new Set<string>(), off: () => {}, since: since ?? undefined });
      this.#topics.set(topic, e);
      const go = () => {
        if (this.#topics.get(topic) !== e) return;
        e.off = this.client.subscribe(topic, (_, m) => {
          for (const t of e.tabs) this.#tabs.get(t)?.post({ t: "msg", m });
        }, e.since);
      };
      if (this.#early) this.#early.push(go);
      else go();
    } else if (this.#early) {
      // Not subscribed yet: resume from the oldest position any tab stands at.
      const s = entry.since;
      if (since && (!s || (s.epoch === since.epoch && since.seq < s.seq))) entry.since = since;
    } else {
      // The topic is live already: the newcomer starts from its latest value.
      const latest = this.client.latest(topic);
      if (latest) tab.post({ t: "msg", m: latest });
    }
    entry.tabs.add(id);
  }

  #unwant(id: string, topic: string): void {
    this.#tabs.get(id)?.topics.delete(topic);
    const entry = this.#topics.get(topic);
    if (!entry?.tabs.delete(id) || entry.tabs.size) return;
    this.#topics.delete(topic);
    entry.off();
  }

  #event(e: ClientEvent): void {
    if (e.type === "message") return; // delivered per topic, above
    if (e.type === "state" && e.to === "connected") this.#queued = []; // the queue went out
    let to: Iterable<string> = this.#tabs.keys();
    if (TOPIC_EVENTS.has(e.type)) to = this.#topics.get((e as { topic: string }).topic)?.tabs ?? [];
    else if (e.type === "unsent" && this.#queued.length) to = [this.#queued.shift()!];
    else if (e.type === "published" || e.type === "publish_failed") {
      // To the tab that made it; one from the outbox (an earlier page load's) to all.
      const owner = this.#owners.get(e.id);
      this.#owners.delete(e.id);
      if (owner !== undefined) to = [owner];
    }
    for (const id of [...to]) this.#tabs.get(id)?.post({ t: "ev", e });
  }

  #sharing(): void {
    for (const tab of this.#tabs.values()) tab.post({ t: "sharing", tabs: this.#tabs.size });
  }

  /** A token for the next attempt, from a tab that has a token provider. */
  #askToken(): Promise<string> {
    const tab = [...this.#tabs.values()].find((t) => t.provider);
    if (!tab) return Promise.reject(new Error("no tab with a token provider is open"));
    const id = ++this.#tokenId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#tokens.delete(id);
        reject(new Error(`no token within ${TOKEN_TIMEOUT_MS} ms`));
      }, TOKEN_TIMEOUT_MS);
      const done = <T>(f: (v: T) => void) => (v: T) => (clearTimeout(timer), f(v));
      this.#tokens.set(id, { resolve: done(resolve), reject: done(reject) });
      tab.post({ t: "token", id });
    });
  }
}
