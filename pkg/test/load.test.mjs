// The wasm load path on its own (a process of its own: a loaded module stays
// loaded). A module URL that answers an HTTP error says so in the state's
// reason, and the client loads it once it is there.
import "./setup.mjs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createClient } from "../dist/index.js";

test("a wasm URL answering 404 is reported as such and retried until it loads", async () => {
  const wasm = readFileSync(new URL("../wasm/hublink_wasm_bg.wasm", import.meta.url));
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    if (requests === 1) {
      res.statusCode = 404;
      return res.end("not here");
    }
    res.setHeader("content-type", "application/wasm");
    res.end(wasm);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const wasmUrl = `http://127.0.0.1:${server.address().port}/hublink_wasm_bg.wasm`;
  // Nothing listens at this WebSocket URL: only the load matters here.
  // backoffInitialMs: 50 (default 1,000) only shortens the wait before the
  // retry; what is asserted (the reason, one retry, the load) does not
  // depend on the delay.
  const client = createClient("ws://127.0.0.1:9/ws", { wasmUrl, backoffInitialMs: 50 });
  const states = [];
  client.on("state", (e) => states.push(e));
  try {
    await client.ready;
    const first = states[0];
    assert.equal(first.to, "reconnecting");
    assert.equal(first.reason.name, "connect_failed");
    assert.match(first.reason.message, /the wasm module did not load: HTTP 404 fetching http:\/\/127\.0\.0\.1:\d+\/hublink_wasm_bg\.wasm/);
    assert.equal(requests, 2);
  } finally {
    client.close();
    server.close();
  }
});
