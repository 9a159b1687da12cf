/**
 * The SharedWorker of shared mode: one {@link Hub} (one connection) per key
 * (URL, credentials, options) for every tab of the origin that uses it.
 *
 * A tab's first message is its {@link Hello}; the worker then asks for the
 * tab's life lock, which it is granted once the tab has closed or crashed:
 * that is how a dead tab's topics are let go.
 *
 * @module
 */
import { Hub, type Hello, type ToHub } from "./hub.js";
import { createClient } from "./client.js";

const hubs = new Map<string, Hub>();
type Locks = { request(name: string, cb: () => unknown): Promise<unknown> };
const locks = (navigator as unknown as { locks: Locks }).locks;

(globalThis as unknown as { onconnect: (e: MessageEvent) => void }).onconnect = (e) => {
  const port = e.ports[0];
  let hub: Hub | undefined;
  let id = "";
  port.onmessage = ({ data }: MessageEvent<Hello | ToHub>) => {
    if (data.t !== "hello") return hub?.receive(id, data);
    id = data.tab;
    const key = data.key;
    hub = hubs.get(key);
    if (!hub) {
      const h = (hub = new Hub(data, createClient));
      hubs.set(key, h);
      h.onEmpty = () => hubs.get(key) === h && hubs.delete(key);
    }
    const h = hub;
    h.attach(id, { provider: data.provider, post: (m) => port.postMessage(m) }, data.topics);
    const tab = id;
    void locks.request(`hublink-tab:${tab}`, () => h.detach(tab));
  };
};
