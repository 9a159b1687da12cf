/**
 * Shared mode, the tab's end: a stand-in for the wasm `Core` that the tab's
 * {@link Client} drives as usual, while the connection lives elsewhere:
 *
 * - in a SharedWorker (`role: "worker"`), reached over its `MessagePort`;
 * - where there is none, in the tab that holds the Web Lock
 *   `hublink-lead:<key>` (`"leader"`; the others are `"follower"`s), reached
 *   over a `BroadcastChannel`. When the leader closes, the next tab in the
 *   lock's queue takes over and resubscribes from the positions the tabs
 *   report; each tab drops what it has delivered already.
 *
 * Each tab holds the lock `hublink-tab:<id>` while it lives: the connection
 * requests it too, and is granted it when the tab has closed or crashed.
 *
 * Loaded by a dynamic `import()` only for `shared: true`.
 *
 * @module
 */
import { Hub, type Deps, type FromHub, type Hello, type SharedOptions, type Tab, type ToHub } from "./hub.js";
import type { Client, CoreClass, Position, Role } from "./client.js";
import { Input, Output, Refused } from "./wire.js";

type Locks = { request(name: string, cb: () => Promise<unknown> | unknown): Promise<unknown> };
const locks = (): Locks | undefined => (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
const forever = () => new Promise<never>(() => {});

/**
 * The core for a shared client: a stand-in that talks to the shared
 * connection, or, where neither a SharedWorker nor Web Locks and
 * BroadcastChannel exist (or outside a browser), the client's own core.
 */
export async function core(client: Client, deps: Deps): Promise<CoreClass> {
  const o = client.options;
  const worker = typeof SharedWorker !== "undefined";
  if (!locks() || (!worker && typeof BroadcastChannel === "undefined")) return deps.load(o.wasmUrl, o.dialect);
  const remote = new Remote(client, worker, deps);
  // `new` on a function that returns an object yields that object.
  return function () {
    return remote;
  } as unknown as CoreClass;
}

/** What the tab tells the connection about itself (its options without the functions). */
function hello(client: Client, tab: string, topics: Hello["topics"], deps: Deps): Hello {
  const { tokenProvider, shared: _s, autoConnect: _a, wasmUrl, ...rest } = client.options;
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const options: SharedOptions = { ...rest, wasmUrl: wasmUrl === undefined ? undefined : new URL(wasmUrl, base).href };
  // Relative URLs resolve against the page, not the worker's script.
  const url = deps.resolveUrl(client.url);
  return { t: "hello", tab, key: JSON.stringify([url, options]), url, options, provider: !!tokenProvider, topics };
}

class Remote {
  readonly #client: Client;
  readonly #id = crypto.randomUUID();
  /** This tab's topics and the last position it delivered on each. */
  readonly #topics = new Map<string, Position | null>();
  /** Calls made before the connection is reached wait here. */
  readonly #early: ToHub[] = [];
  /**
   * This tab's publishes the connection has not answered, with when their
   * time to live ends: sent again, under their ids, to a new leader.
   */
  readonly #unanswered = new Map<string, { topic: string; data: unknown; expiresAt: number }>();
  #send: (m: ToHub) => void = (m) => this.#early.push(m);
  #bye: () => void = () => {};

  readonly #deps: Deps;

  constructor(client: Client, worker: boolean, deps: Deps) {
    this.#client = client;
    this.#deps = deps;
    const id = this.#id;
    // The tab's life lock first: the connection learns of its end by asking for it.
    let granted!: () => void;
    const alive = new Promise<void>((r) => (granted = r));
    void locks()!.request(`hublink-tab:${id}`, () => (granted(), forever()));
    void alive.then(() => (worker ? this.#viaWorker() : this.#viaLeader()));
  }

  #role(role: Role): void {
    this.#client.role = role;
  }

  #viaWorker(): void {
    const w = new SharedWorker(new URL("./shared-worker.js", import.meta.url), { type: "module", name: "hublink" });
    const port = w.port;
    port.onmessage = (e: MessageEvent<FromHub>) => this.#receive(e.data);
    this.#role("worker");
    this.#send = (m) => port.postMessage(m);
    this.#bye = () => {
      port.postMessage({ t: "bye" } satisfies ToHub);
      port.close();
    };
    port.postMessage(this.#hello());
    this.#flush();
  }

  #flush(): void {
    for (const m of this.#early.splice(0)) this.#send(m);
  }

  /**
   * Without a SharedWorker: the tab that holds `hublink-lead:<key>` runs the
   * connection; the others relay over the channel, addressed by tab id.
   */
  #viaLeader(): void {
    const h = this.#hello();
    const id = this.#id;
    const channel = new BroadcastChannel(`hublink:${h.key}`);
    type Wire = { from: string; to?: string; m: ToHub | Hello | FromHub | { t: "leader" | "who" } };
    let hub: Hub | null = null;
    let closed = false;
    const post = (w: Wire) => channel.postMessage(w);
    /** Requests wait here while no leader is known (one is being elected). */
    let leader: string | null = null;
    let waiting: ToHub[] = [];
    channel.onmessage = (e: MessageEvent<Wire>) => {
      const { from, to, m } = e.data;
      if (to !== undefined && to !== id) return;
      if (m.t === "leader") {
        if (hub || leader === from) return;
        // A new leader: tell it what this tab wants and where it stands.
        leader = from;
        post({ from: id, to: from, m: this.#hello() });
        for (const r of waiting.splice(0)) post({ from: id, to: from, m: r });
        // What the last leader took with it (the new one keeps one copy of each id).
        for (const r of this.#resends()) post({ from: id, to: from, m: r });
        // Until the next one announces itself, requests wait here.
        void locks()!.request(`hublink-tab:${from}`, () => {
          if (leader === from) leader = null;
        });
        return;
      }
      if (hub) {
        if (m.t === "who") post({ from: id, to: from, m: { t: "leader" } });
        else if (m.t === "hello") {
          hub.attach(from, { provider: m.provider, post: (x) => post({ from: id, to: from, m: x }) }, m.topics);
          // Its end, when its life lock is released.
          void locks()!.request(`hublink-tab:${from}`, () => hub?.detach(from));
        } else hub.receive(from, m as ToHub);
      } else if (from === leader) this.#receive(m as FromHub);
    };
    // A leader there already answers this; a new one announces itself.
    const who = () => post({ from: id, m: { t: "who" } });
    who();
    this.#role("follower");
    this.#send = (m) => {
      if (hub) hub.receive(id, m);
      else if (leader) post({ from: id, to: leader, m });
      else waiting.push(m);
    };
    this.#flush();
    /** Set while this tab leads: hands the connection over. */
    let stepDown: (() => void) | null = null;
    const lead = () =>
      void locks()!.request(`hublink-lead:${h.key}`, () => {
        if (closed) return;
        // This tab leads now: the connection runs here.
        const mine = (hub = new Hub(h, this.#deps.createClient));
        leader = null;
        this.#role("leader");
        mine.attach(id, { provider: h.provider, post: (x) => this.#receive(x) }, this.#hello().topics);
        for (const r of waiting.splice(0)) mine.receive(id, r);
        for (const r of this.#resends()) mine.receive(id, r);
        post({ from: id, m: { t: "leader" } });
        // Held until this tab closes (the lock goes with it), steps down or is closed.
        return new Promise<void>((release) => {
          stepDown = () => {
            stepDown = null;
            hub = null;
            mine.close();
            this.#role("follower");
            release();
          };
        });
      });
    lead();
    // A frozen or bfcached leader would keep the connection from the others:
    // it hands it over, and rejoins as a follower when it is back.
    const g = globalThis as unknown as EventTarget & { document?: EventTarget };
    const away = (e: Event) => {
      if (!stepDown || !(e.type === "freeze" || (e as PageTransitionEvent).persisted)) return;
      stepDown();
      lead();
    };
    g.document?.addEventListener("freeze", away);
    g.addEventListener?.("pagehide", away);
    g.document?.addEventListener("resume", who);
    g.addEventListener?.("pageshow", who);
    this.#bye = () => {
      closed = true;
      if (stepDown) stepDown();
      else this.#send({ t: "bye" });
      channel.close();
    };
  }

  /** This tab's unanswered publishes, to send again to a new leader; expired ones fail here. */
  #resends(): ToHub[] {
    const out: ToHub[] = [];
    const now = Date.now();
    for (const [id, p] of this.#unanswered) {
      const ttl = p.expiresAt - now;
      if (ttl > 0) {
        out.push({ t: "pub", topic: p.topic, data: p.data, id, ttl });
        continue;
      }
      this.#unanswered.delete(id);
      const message = "no answer to the publish within its time to live; it may have been published";
      this.#client.settled({ type: "publish_failed", id, topic: p.topic, reason: "expired", code: null, message, maybePublished: true, waitedMs: null });
    }
    return out;
  }

  #hello(): Hello {
    return hello(this.#client, this.#id, [...this.#topics], this.#deps);
  }

  /** What the connection says, as the tab's core would have said it. */
  #receive(m: FromHub): void {
    const c = this.#client;
    switch (m.t) {
      case "msg": {
        const msg = m.m;
        if (!this.#topics.has(msg.topic)) return;
        if (msg.seq !== null && msg.epoch !== null) {
          // Once per tab: a takeover may replay what this tab has delivered.
          const p = this.#topics.get(msg.topic);
          if (p && p.epoch === msg.epoch && msg.seq <= p.seq) return;
          // What this tab missed while it was away (frozen, say) is a gap of its own.
          if (p && p.epoch === msg.epoch && msg.seq > p.seq + 1) {
            c.emit({ type: "gap", topic: msg.topic, last: p, next: { epoch: msg.epoch, seq: msg.seq } });
          }
          this.#topics.set(msg.topic, { epoch: msg.epoch, seq: msg.seq });
        }
        return c.out(Output.Message, 0, msg.topic, msg.kind ?? undefined, msg.epoch ?? undefined, msg.seq ?? NaN, NaN, NaN, [msg.data, msg.timestamp]);
      }
      case "status": {
        const s = m.status;
        if (s.state === c.status.state) return;
        return c.emit({ type: "state", from: c.status.state, to: s.state, reason: s.reason ?? { name: "requested" }, attempt: s.attempt, retryInMs: s.retryInMs });
      }
      case "ev": {
        const e = m.e;
        if (e.type === "published" || e.type === "publish_failed") {
          this.#unanswered.delete(e.id);
          return c.settled(e);
        }
        // The connection's own gap: the next message is not one this tab missed.
        if (e.type === "gap" && this.#topics.has(e.topic)) this.#topics.set(e.topic, { epoch: e.next.epoch, seq: e.next.seq - 1 });
        return c.emit(e);
      }
      case "sharing":
        c.tabs = m.tabs;
        return c.emit({ type: "sharing", role: c.role, tabs: m.tabs });
      case "token":
        return void this.#token(m.id);
    }
  }

  /** The connection asks this tab's token provider for the next attempt's token. */
  async #token(id: number): Promise<void> {
    const { tokenProvider, token } = this.#client.options;
    try {
      const t = tokenProvider ? await tokenProvider() : token;
      this.#send(t === undefined ? { t: "token", id, error: "no token" } : { t: "token", id, token: t });
    } catch (e) {
      this.#send({ t: "token", id, error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** `Core.input`: the calls a tab makes go to the connection. */
  input(what: Input, _now: number, _n: number, a: string, b: string, v: unknown): number {
    switch (what) {
      case Input.Subscribe:
        if (!a) {
          this.#client.refusal = 'invalid topic "": a topic name cannot be empty';
          return Refused.InvalidTopic;
        }
        if (!this.#topics.has(a)) this.#topics.set(a, null);
        this.#send({ t: "sub", topic: a });
        return 0;
      case Input.Unsubscribe:
        this.#topics.delete(a);
        this.#send({ t: "unsub", topic: a });
        return 1;
      case Input.Publish: {
        if (!a) {
          this.#client.refusal = 'invalid topic "": a topic name cannot be empty';
          return Refused.InvalidTopic;
        }
        // `b`: the id the tab chose, which a new leader is given again.
        const ttl = this.#client.options.queueTtlMs ?? 60_000;
        this.#unanswered.set(b, { topic: a, data: v, expiresAt: Date.now() + ttl });
        this.#send({ t: "pub", topic: a, data: v, id: b, ttl });
        return 0;
      }
      case Input.Send:
        this.#send({ t: "send", value: v });
        return 0;
      case Input.ReconnectNow:
        this.#send({ t: "now" });
        return 0;
      case Input.Close: {
        const c = this.#client;
        this.#bye();
        if (c.status.state !== "disconnected") {
          c.emit({ type: "state", from: c.status.state, to: "disconnected", reason: { name: "closed_by_user" }, attempt: 0, retryInMs: null });
        }
        return 0;
      }
    }
    return 0;
  }

  /** Frames never reach a tab's stand-in: the socket is the connection's. */
  header(): number {
    return 0;
  }

  /** Nothing is queued here and no timer is needed: the connection keeps time. */
  drain(): number {
    return -1;
  }

  free(): void {}
}

/** For tests and the dashboard: which tabs a hub sees (worker or leader side). */
export type { Tab };
