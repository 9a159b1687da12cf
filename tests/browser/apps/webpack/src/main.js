// A React page bundled by webpack 5, driven by tests/browser/bundlers.test.mjs:
// ?backoff=ms sets the reconnect backoff; window.__setConfig({ url, token })
// changes the provider's props; ?rotate makes a tokenProvider hand out
// window.__mintToken() (exposed by the test, asynchronous) once per attempt.
import { createElement as h, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { HublinkProvider, useConnectionState, useLatestEntry, useTopic } from "hublink/react";

const params = new URLSearchParams(location.search);
window.__rendered = []; // every state Status rendered, in order
window.__provided = 0; // tokens handed out by the tokenProvider

function Status() {
  const { state, attempt, reason } = useConnectionState();
  window.__rendered.push(state);
  return h("p", { id: "state", "data-attempt": attempt, "data-reason": reason?.name ?? "" }, state);
}

function Temperature() {
  const [temp, setTemp] = useState(null);
  useTopic("machines.CNC-001", (msg) => {
    if (msg.type === "sensor_data") setTemp(msg.data.temperature);
  });
  const { stale, receivedAt } = useLatestEntry("machines.CNC-001");
  return h("p", { id: "temp", "data-stale": String(stale), "data-at": receivedAt ?? "" }, temp ?? "—");
}

const tokenProvider = params.has("rotate")
  ? () => {
      window.__provided++;
      return window.__mintToken();
    }
  : undefined;

function App() {
  const [config, setConfig] = useState({ url: "/ws", token: undefined });
  window.__setConfig = setConfig;
  // A new options object every render, as people write it: only its content counts.
  const options = { backoffInitialMs: Number(params.get("backoff") ?? 1000), token: config.token, tokenProvider };
  return h(HublinkProvider, { url: config.url, options }, h(Status), h(Temperature));
}

createRoot(document.getElementById("root")).render(h(StrictMode, null, h(App)));
