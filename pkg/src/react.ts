/**
 * React bindings of hublink: one connection per {@link HublinkProvider}, shared
 * by every hook below it.
 *
 * - StrictMode-safe: the client is created without connecting and connects in
 *   an effect; unmounting defers `close()` by a task, so StrictMode's immediate
 *   remount cancels it and exactly one WebSocket is opened.
 * - Server rendering: creating a client touches no global, URL, fetch or wasm;
 *   on the server (and in the first render) the hooks say `connecting`.
 * - A change of `url` or `options` moves to a new client: the old one is
 *   closed before the new one connects. `options.tokenProvider` is read when
 *   called, so a new function each render does not reconnect.
 * - No message is lost to render batching: {@link useTopic} handlers are called
 *   from the socket's callback directly, once per message, not through state.
 *
 * @module
 */
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import {
  createClient,
  type ClientOptions,
  type ConnectionStatus,
  type HublinkClient,
  type LatestEntry,
  type TopicHandler,
} from "./index.js";

export type { ConnectionStatus, HublinkClient, LatestEntry } from "./index.js";

const Context = createContext<HublinkClient | null>(null);

/** Props of {@link HublinkProvider}: a URL (and options), or a client made elsewhere. */
export type HublinkProviderProps = { children?: ReactNode } & (
  | {
      url: string;
      options?: ClientOptions;
      /** One connection for every tab of the origin (`options.shared`). */
      shared?: boolean;
      client?: undefined;
    }
  | { client: HublinkClient; url?: undefined; options?: undefined; shared?: undefined }
);

/** Identifies a configuration: functions count by presence, not identity (they are called through a ref). */
function configKey(url: string, options: ClientOptions | undefined): string {
  return JSON.stringify([url, options ?? {}], (_, v: unknown) => (typeof v === "function" ? "function" : v));
}

interface Owned {
  client: HublinkClient;
  key: string;
}

/** Owns one connection (or shares `client`) with every hook below. */
export function HublinkProvider(props: HublinkProviderProps): ReactNode {
  const owned = props.client === undefined;
  const given = props.shared === undefined ? props.options : { ...props.options, shared: props.shared };
  const key = owned ? configKey(props.url!, given) : "";
  const latestOptions = useRef(given);
  latestOptions.current = given;
  const make = (): Owned => {
    const options = given ?? {};
    const provider = options.tokenProvider && (() => (latestOptions.current?.tokenProvider ?? options.tokenProvider!)());
    // Creating a client opens nothing and reads no global: a render React
    // discards, or a render on the server, leaks nothing.
    const client = createClient(props.url!, { ...options, tokenProvider: provider, autoConnect: false });
    return { client, key };
  };
  const [own, setOwn] = useState<Owned | null>(() => (owned ? make() : null));
  const closing = useRef<{ client: HublinkClient; timer: ReturnType<typeof setTimeout> } | null>(null);
  useEffect(() => {
    let client = props.client;
    if (!client) {
      let o = own;
      if (!o || o.key !== key) setOwn((o = make()));
      client = o.client;
    }
    // StrictMode's remount takes back its own close; a new configuration
    // closes the old client before the new one connects: one socket at a time.
    const pending = closing.current;
    closing.current = null;
    if (pending) {
      clearTimeout(pending.timer);
      if (pending.client !== client) pending.client.close();
    }
    client.connect();
    const c = client;
    return () => {
      if (owned) closing.current = { client: c, timer: setTimeout(() => c.close(), 0) };
    };
    // `own` is read, not followed: the effect replaces it when `key` changes.
  }, [owned, key, props.client]);
  const client = props.client ?? own?.client ?? null;
  return createElement(Context.Provider, { value: client }, props.children);
}

/** The provider's client. */
export function useHublink(): HublinkClient {
  const client = useContext(Context);
  if (!client) throw new Error("hublink: useHublink and the hublink hooks need a <HublinkProvider> above them");
  return client;
}

/** What the hooks say on the server, and before the provider's effect connects. */
const CONNECTING: ConnectionStatus = Object.freeze({ state: "connecting", attempt: 0, reason: null, retryInMs: null });
const connecting = () => CONNECTING;

/**
 * The connection's state, attempt and reason; re-renders on every change.
 * `connecting` on the server and until the provider's effect has connected:
 * below a provider, a client that never started is about to.
 */
export function useConnectionState(): ConnectionStatus {
  const client = useHublink();
  // Stable functions: a new `subscribe` each render would make React resubscribe.
  const subscribe = useCallback((onChange: () => void) => client.on("state", onChange), [client]);
  const get = useCallback(() => {
    const s = client.status;
    return s.state === "disconnected" && s.reason === null ? CONNECTING : s;
  }, [client]);
  return useSyncExternalStore(subscribe, get, connecting);
}

/**
 * Calls `handler` for every message on `topic`, from the socket callback itself:
 * none is skipped when React batches renders. The latest `handler` is used
 * without resubscribing.
 */
export function useTopic<T = unknown>(topic: string, handler: TopicHandler<T>): void {
  const client = useHublink();
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => client.subscribe<T>(topic, (data, message) => latest.current(data, message)), [client, topic]);
}

/** The payload of the last message on `topic` (undefined before the first). */
export function useLatest<T = unknown>(topic: string): T | undefined {
  const client = useHublink();
  const subscribe = useCallback((onChange: () => void) => client.subscribe(topic, onChange), [client, topic]);
  const get = useCallback(() => client.latest<T>(topic)?.data, [client, topic]);
  return useSyncExternalStore(subscribe, get, () => undefined);
}

const NO_ENTRY: LatestEntry = Object.freeze({ data: undefined, message: undefined, receivedAt: null, stale: false });

/**
 * The last message on `topic` as `{ data, receivedAt, stale }`: `stale` is
 * true while the value predates a lost connection (it turns false again with
 * the next message), `receivedAt` is when it arrived (`Date.now()`).
 * Re-renders on every message and whenever `stale` changes.
 */
export function useLatestEntry<T = unknown>(topic: string): LatestEntry<T> {
  const client = useHublink();
  const subscribe = useCallback(
    (onChange: () => void) => {
      const offTopic = client.subscribe(topic, onChange);
      const offState = client.on("state", onChange);
      return () => {
        offTopic();
        offState();
      };
    },
    [client, topic],
  );
  const get = useCallback(() => client.latestEntry<T>(topic), [client, topic]);
  return useSyncExternalStore(subscribe, get, () => NO_ENTRY as LatestEntry<T>);
}
