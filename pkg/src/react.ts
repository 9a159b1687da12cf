/**
 * React bindings of hublink: one connection per {@link HublinkProvider}, shared
 * by every hook below it.
 *
 * - StrictMode-safe: the client is created without connecting and connects in
 *   an effect; unmounting defers `close()` by a task, so StrictMode's immediate
 *   remount cancels it and exactly one WebSocket is opened.
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
  useSyncExternalStore,
  type ReactNode,
} from "react";
import { createClient, type ClientOptions, type ConnectionStatus, type HublinkClient, type TopicHandler } from "./index.js";

export type { ConnectionStatus, HublinkClient } from "./index.js";

const Context = createContext<HublinkClient | null>(null);

/** Props of {@link HublinkProvider}: a URL (and options), or a client made elsewhere. */
export type HublinkProviderProps = { children?: ReactNode } & (
  | { url: string; options?: ClientOptions; client?: undefined }
  | { client: HublinkClient; url?: undefined; options?: undefined }
);

/** Owns one connection and shares it with every hook below. */
export function HublinkProvider(props: HublinkProviderProps): ReactNode {
  const holder = useRef<{ client: HublinkClient; closing?: ReturnType<typeof setTimeout> } | null>(null);
  if (holder.current === null) {
    // Creating a client opens nothing: a render React discards leaks no socket.
    const client = props.client ?? createClient(props.url, { ...props.options, autoConnect: false });
    holder.current = { client };
  }
  const owned = props.client === undefined;
  useEffect(() => {
    const h = holder.current!;
    if (h.closing !== undefined) clearTimeout(h.closing);
    h.closing = undefined;
    h.client.connect();
    return () => {
      if (owned) h.closing = setTimeout(() => h.client.close(), 0);
    };
  }, [owned]);
  return createElement(Context.Provider, { value: holder.current.client }, props.children);
}

/** The provider's client. */
export function useHublink(): HublinkClient {
  const client = useContext(Context);
  if (!client) throw new Error("hublink: useHublink and the hublink hooks need a <HublinkProvider> above them");
  return client;
}

/** The connection's state, attempt and reason; re-renders on every change. */
export function useConnectionState(): ConnectionStatus {
  const client = useHublink();
  // Stable functions: a new `subscribe` each render would make React resubscribe.
  const subscribe = useCallback((onChange: () => void) => client.on("state", onChange), [client]);
  const get = useCallback(() => client.status, [client]);
  return useSyncExternalStore(subscribe, get, get);
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
