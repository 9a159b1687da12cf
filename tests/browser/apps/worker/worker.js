// hublink in a module Web Worker: a relative URL resolves against the Worker's
// script, the wasm module is fetched next to the package's glue.
import { createClient } from "../node_modules/hublink/dist/index.js";

self.addEventListener("unhandledrejection", (e) => postMessage({ error: `unhandled rejection: ${e.reason}` }));
const client = createClient("/ws");
postMessage({ state: client.state });
client.on("state", (e) => postMessage({ state: e.to, reason: e.reason.name }));
client.subscribe("machines.CNC-001", (msg) => {
  if (msg.type === "sensor_data") postMessage({ temperature: msg.data.temperature });
});
