// The client's lifecycle in Node: status from the first call, a token per
// attempt, and stale values after a lost connection.
import "./setup.mjs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createClient } from "../dist/index.js";

const require = createRequire(import.meta.url);
const { WebSocketServer } = require("../../tools/node/node_modules/ws");

/** A hublink.v1 server that records the URL of every upgrade and sends one message per subscribe. */
function server() {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (p) => (p.has("hublink.v1") ? "hublink.v1" : false) });
  const urls = [];
  let seq = 0;
  wss.on("connection", (ws, req) => {
    urls.push(req.url);
    ws.send(JSON.stringify({ type: "connected", client_id: "c", heartbeat_interval: 30, server_time: Date.now(), protocol: "hublink.v1" }));
    ws.on("message", (raw) => {
      const m = JSON.parse(String(raw));
      if (m.type === "subscribe") {
        ws.send(JSON.stringify({ type: "subscribe_ack", topic: m.topic, success: true, epoch: "e1", seq }));
        seq++;
        ws.send(JSON.stringify({ type: "message", topic: m.topic, seq, epoch: "e1", data: { seq }, timestamp: Date.now() }));
      }
    });
  });
  const drop = () => wss.clients.forEach((ws) => ws.terminate());
  return new Promise((resolve) => wss.on("listening", () => resolve({ wss, urls, drop, url: `ws://127.0.0.1:${wss.address().port}/ws` })));
}

const until = async (cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("the status is connecting as soon as a connect is requested", async () => {
  const { wss, url } = await server();
  const client = createClient(url);
  assert.equal(client.state, "connecting");
  const later = createClient(url, { autoConnect: false });
  assert.equal(later.state, "disconnected");
  later.connect();
  assert.equal(later.status.state, "connecting");
  await until(() => client.state === "connected" && later.state === "connected");
  client.close();
  later.close();
  wss.close();
});

test("a token option goes as ?token=, and a tokenProvider is asked before every attempt", async () => {
  const { wss, url, urls, drop } = await server();
  const fixed = createClient(`${url}?token=old&x=1`, { token: "a b" });
  await until(() => fixed.state === "connected");
  fixed.close();
  assert.equal(urls.shift(), "/ws?token=a+b&x=1");

  let n = 0;
  const client = createClient(url, { backoffInitialMs: 50, backoffMaxMs: 100, tokenProvider: async () => `t${++n}` });
  await until(() => client.state === "connected");
  drop();
  await until(() => urls.length === 2);
  await until(() => client.state === "connected");
  assert.deepEqual(urls, ["/ws?token=t1", "/ws?token=t2"]);
  client.close();
  wss.close();
});

test("a failing tokenProvider fails the attempt, and the next attempt asks again", async () => {
  const { wss, url, urls } = await server();
  let n = 0;
  const reasons = [];
  const client = createClient(url, {
    backoffInitialMs: 50,
    backoffMaxMs: 100,
    tokenProvider: () => (++n === 1 ? Promise.reject(new Error("expired")) : "fresh"),
  });
  client.on("state", (e) => reasons.push(e.reason.name === "connect_failed" ? e.reason.message : e.reason.name));
  await until(() => client.state === "connected");
  assert.deepEqual(urls, ["/ws?token=fresh"]);
  assert.ok(reasons.some((r) => /tokenProvider failed: expired/.test(r)), JSON.stringify(reasons));
  client.close();
  wss.close();
});

test("latestEntry says when a value arrived and that it went stale with the connection", async () => {
  const { wss, url, drop } = await server();
  const client = createClient(url, { backoffInitialMs: 300, backoffMaxMs: 300 });
  assert.deepEqual(client.latestEntry("t"), { data: undefined, message: undefined, receivedAt: null, stale: false });
  client.subscribe("t", () => {});
  await until(() => client.latest("t") !== undefined);
  const live = client.latestEntry("t");
  assert.equal(live.stale, false);
  assert.ok(Math.abs(live.receivedAt - Date.now()) < 2000);
  assert.equal(client.latestEntry("t"), live, "the same object while nothing changed");
  drop();
  await until(() => client.state === "reconnecting");
  const stale = client.latestEntry("t");
  assert.equal(stale.stale, true);
  assert.equal(stale.data, live.data);
  await until(() => client.latestEntry("t").data.seq > live.data.seq);
  assert.equal(client.latestEntry("t").stale, false);
  client.close();
  wss.close();
});
