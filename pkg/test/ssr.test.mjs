// Server rendering of the provider and hooks, as Next.js prerenders a
// "use client" component: no window, no location, and nothing may fetch the
// wasm module or open a socket. (This file does not load the wasm module.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { createElement as h } from "react";
import { renderToString } from "react-dom/server";
import { HublinkProvider, useConnectionState, useLatest, useLatestEntry } from "../dist/react.js";

function Page() {
  const { state } = useConnectionState();
  const last = useLatest("machines.CNC-001");
  const { stale, receivedAt } = useLatestEntry("machines.CNC-001");
  return h("p", null, `${state}|${last ?? "—"}|${stale}|${receivedAt}`);
}

test("renderToString of the provider touches no fetch, socket or page and says connecting", () => {
  assert.equal(globalThis.window, undefined);
  assert.equal(globalThis.location, undefined);
  const touched = [];
  const realFetch = globalThis.fetch;
  const realWebSocket = globalThis.WebSocket;
  globalThis.fetch = (...a) => {
    touched.push(["fetch", String(a[0])]);
    return new Promise(() => {});
  };
  globalThis.WebSocket = class {
    constructor(url) {
      touched.push(["WebSocket", url]);
    }
  };
  try {
    for (const url of ["/ws", "ws://127.0.0.1:9/ws"]) {
      const html = renderToString(h(HublinkProvider, { url, options: { tokenProvider: () => "t" } }, h(Page)));
      assert.match(html, /connecting\|—\|false\|null/, html);
    }
  } finally {
    globalThis.fetch = realFetch;
    globalThis.WebSocket = realWebSocket;
  }
  assert.deepEqual(touched, []);
});
