/**
 * The durable outbox (`outbox: true`): every publish awaiting its answer is
 * kept in IndexedDB until answered, and the next page load of the same
 * origin, URL and dialect sends what is left again, with the same ids, so
 * that the server publishes each once.
 *
 * Each page load (or SharedWorker) holds the Web Lock
 * `hublink-outbox:<owner>` while it lives: a load takes over only the
 * entries whose owner is gone, not those of another tab that is still
 * answering them. Where Web Locks are missing it takes them all; the ids
 * keep that harmless (each publish happens once).
 *
 * Nothing secret is stored: the key is the URL without its token.
 *
 * Loaded by a dynamic `import()` only for `outbox: true`.
 *
 * @module
 */
import type { PublishFailed } from "../wasm/hublink_wasm.js";

const DB = "hublink";
const STORE = "outbox";
const LOCK = "hublink-outbox:";

/** One publish awaiting its answer. */
interface Entry {
  id: string;
  /** Whose: the dialect and the URL without its token. */
  key: string;
  /** The page load (or worker) that answers it now. */
  owner: string;
  topic: string;
  /** The data as JSON text (what went on the wire). */
  json: string;
  /** When its time to live ends (`Date.now()` ms): across reloads, so wall-clock. */
  expiresAt: number;
  /** Publish order: when, then a counter within the same ms. */
  at: number;
  n: number;
}

type Locks = {
  request(name: string, cb: () => Promise<unknown>): Promise<unknown>;
  query(): Promise<{ held?: Array<{ name?: string }> }>;
};

const request = <T>(r: IDBRequest<T>): Promise<T> =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

function report(error: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (g.reportError) g.reportError(error);
  else console.error(error);
}

/**
 * The outbox of the client for `url` (resolved) and `dialect`, with the
 * entries of page loads that are gone; `null` (reported) where IndexedDB is
 * not available: publishes then live as long as the page, as without
 * `outbox`.
 */
export async function open(url: string, dialect = "hublink"): Promise<Outbox | null> {
  try {
    // Whose publishes: the dialect and the URL without its token (no credential is stored).
    const u = new URL(url);
    u.searchParams.delete("token");
    const key = `${dialect} ${u}`;
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "id" }).createIndex("key", "key");
    const db = await request(r);
    const owner = crypto.randomUUID();
    const locks = (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
    let live = new Set<string>();
    if (locks) {
      void locks.request(LOCK + owner, () => new Promise<never>(() => {}));
      const { held = [] } = await locks.query();
      live = new Set(held.map((l) => l.name ?? ""));
    }
    const all = await request<Entry[]>(db.transaction(STORE).objectStore(STORE).index("key").getAll(key));
    const orphans = all.filter((e) => !live.has(LOCK + e.owner)).sort((x, y) => x.at - y.at || x.n - y.n);
    return new Outbox(db, key, owner, orphans);
  } catch (e) {
    report(new Error(`hublink: the outbox is not available (${e instanceof Error ? e.message : String(e)}); publishes are kept for this page load only`));
    return null;
  }
}

export class Outbox {
  readonly #db: IDBDatabase;
  readonly #key: string;
  readonly #owner: string;
  #orphans: Entry[];
  #n = 0;

  constructor(db: IDBDatabase, key: string, owner: string, orphans: Entry[]) {
    this.#db = db;
    this.#key = key;
    this.#owner = owner;
    this.#orphans = orphans;
  }

  #write(f: (s: IDBObjectStore) => void): void {
    try {
      const tx = this.#db.transaction(STORE, "readwrite");
      tx.onerror = () => report(new Error(`hublink: the outbox could not be written: ${tx.error?.message}`));
      f(tx.objectStore(STORE));
    } catch (e) {
      report(e);
    }
  }

  /**
   * Hands an earlier page load's publishes to `republish` (id, topic, data,
   * ms left; it answers 0 when taken), in their order, and takes them over;
   * an expired one goes to `failed` (it may have been published).
   */
  restore(republish: (id: string, topic: string, data: unknown, ttl: number) => number, failed: (e: PublishFailed) => void): void {
    const now = Date.now();
    for (const e of this.#orphans.splice(0)) {
      const ttl = e.expiresAt - now;
      const fail = (message: string, waitedMs: number | null) => {
        this.remove(e.id);
        const reason = waitedMs === null ? "refused" : "expired";
        failed({ type: "publish_failed", id: e.id, topic: e.topic, reason, code: null, message, maybePublished: true, waitedMs });
      };
      if (ttl <= 0) {
        fail("its time to live ran out before this page load could send it again; it may have been published", now - e.at);
        continue;
      }
      if (republish(e.id, e.topic, JSON.parse(e.json), ttl)) {
        fail("the client did not take it back from the outbox (its queue is full); it may have been published", null);
        continue;
      }
      this.#write((s) => s.put({ ...e, owner: this.#owner }));
    }
  }

  add(id: string, topic: string, data: unknown, ttl: number): void {
    const at = Date.now();
    const json = JSON.stringify(data) ?? "null";
    const e: Entry = { id, key: this.#key, owner: this.#owner, topic, json, expiresAt: at + ttl, at, n: this.#n++ };
    this.#write((s) => s.put(e));
  }

  remove(id: string): void {
    this.#write((s) => s.delete(id));
  }
}
