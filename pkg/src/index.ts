/**
 * hublink: a real-time WebSocket client that survives everything.
 *
 * The connection logic (reconnects with jittered backoff, heartbeats, recovery
 * without gaps, the offline queue) is hublink-core, compiled to WebAssembly;
 * client.ts is the hand-written TypeScript face of it, and this module adds
 * shared mode, loaded (a chunk of its own) only by a client with `shared`.
 *
 * @module
 */
import { createClient as solo, load, resolveUrl, type ClientOptions, type HublinkClient } from "./client.js";

export * from "./client.js";

/**
 * A connection to `url` (absolute, or relative to the page: `"/ws"`), connecting
 * at once unless `options.autoConnect` is false; with `shared: true`, one
 * connection for every tab of the origin (README, "One connection for every tab").
 */
export function createClient(url: string, options: ClientOptions = {}): HublinkClient {
  return solo(url, options, (client) =>
    import("./shared.js").then((m) => m.core(client, { createClient: solo, load, resolveUrl })),
  );
}
