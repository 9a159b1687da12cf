// The TS layer over the wasm shell, in Node (run with --experimental-websocket),
// against a scripted hublink.v1 server on loopback.
import "./setup.mjs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createClient } from "../dist/index.js";

const require = createRequire(import.meta.url);
const { WebSocketServer } = require("../../tools/node/node_modules/ws");

/** Publishes as hublink-server answers them: once per id, "forbidden.*" refused; the first on "drop.*" kills the link unanswered. */
const taken = new Map();
let dropped = false;
function publishes(ws, m) {
  if (m.topic.startsWith("forbidden")) {
    return ws.send(JSON.stringify({ type: "error", code: "forbidden", id: m.id, message: `no publishing to "${m.topic}"`, recoverable: true }));
  }
  if (!taken.has(m.id)) taken.set(m.id, taken.size + 1);
  if (m.topic.startsWith("drop") && !dropped) return (dropped = true), ws.terminate();
  ws.send(JSON.stringify({ type: "publish_ack", id: m.id, topic: m.topic, seq: taken.get(m.id), epoch: "e1" }));
}

function server() {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (p) => (p.has("hublink.v1") ? "hublink.v1" : false) });
  const seen = [];
  wss.on("connection", (ws) => {
    ws.send(JSON.stringify({ type: "connected", client_id: "c-1", heartbeat_interval: 30, server_time: Date.now(), protocol: "hublink.v1" }));
    ws.on("message", (raw) => {
      const m = JSON.parse(String(raw));
      seen.push(m);
      if (m.type === "publish") publishes(ws, m);
      if (m.type === "subscribe") {
        ws.send(JSON.stringify({ type: "subscribe_ack", topic: m.topic, success: true, epoch: "e1", seq: 0 }));
        for (let seq = 1; seq <= 50; seq++) {
          ws.send(JSON.stringify({ type: "message", topic: m.topic, seq, epoch: "e1", data: { seq, nested: { ok: true } }, timestamp: Date.now() }));
        }
      }
    });
  });
  return new Promise((resolve) => wss.on("listening", () => resolve({ wss, seen, url: `ws://127.0.0.1:${wss.address().port}/ws` })));
}

const until = async (cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("every message reaches every handler, in order, with payloads untouched", async () => {
  const { wss, url } = await server();
  const client = createClient(url, { seed: 1 });
  const a = [];
  const b = [];
  const states = [];
  client.on("state", (e) => states.push(e.to));
  client.subscribe("machines.CNC-001", (data, m) => a.push([data.seq, m.seq, data.nested.ok]));
  client.subscribe("machines.CNC-001", (data) => b.push(data.seq));
  await until(() => a.length === 50 && b.length === 50);
  assert.deepEqual(a.map((x) => x[0]), Array.from({ length: 50 }, (_, i) => i + 1));
  assert.ok(a.every(([d, s, ok]) => d === s && ok === true));
  assert.deepEqual(b, a.map((x) => x[0]));
  assert.equal(client.state, "connected");
  assert.equal(client.latest("machines.CNC-001").data.seq, 50);
  client.close();
  assert.equal(client.state, "disconnected");
  assert.deepEqual(states.slice(0, 2), ["connecting", "connected"]);
  wss.close();
});

test("errors carry a code", async () => {
  const { wss, url } = await server();
  const client = createClient(url, { seed: 1 });
  await client.ready;
  assert.throws(
    () => client.subscribe("", () => {}),
    (e) => e.code === "invalid_topic" && e.message === 'invalid topic "": a topic name cannot be empty',
  );
  client.close();
  await assert.rejects(client.publish("t", 1), (e) => e.code === "closed" && e.maybePublished === false);
  wss.close();
  assert.throws(() => createClient(url, { dialect: "nope" }), (e) => e.code === "unknown_dialect");
});

test("a seed dialect runs in the second wasm module: its messages flow, its refusals name it", async () => {
  // The machines backend's Go hub: no subscribe frames, one message per frame.
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  wss.on("connection", (ws) => ws.send(JSON.stringify({ type: "sensor_data", data: { machine_id: "CNC-001", temperature: 71.5 }, timestamp: "2026-12-02T08:00:00Z" })));
  await new Promise((r) => wss.on("listening", r));
  const client = createClient(`ws://127.0.0.1:${wss.address().port}/ws/machines`, { dialect: "machines", seed: 1 });
  const got = [];
  client.subscribe("sensor_data", (data, m) => got.push([data.temperature, m.kind]));
  await until(() => got.length === 1);
  assert.deepEqual(got, [[71.5, "sensor_data"]]);
  await assert.rejects(
    client.publish("t", 1),
    (e) => e.code === "unsupported" && e.message === "the machines dialect cannot publish",
  );
  client.close();
  wss.close();
});

test("a refused connection backs off on the timer; a handler may close the client", async () => {
  // Port 9 (discard) is closed on loopback: every attempt is refused.
  const client = createClient("ws://127.0.0.1:9/ws", { seed: 3, backoffInitialMs: 50, backoffMaxMs: 80 });
  const states = [];
  const failed = [];
  client.on("publish_failed", (e) => failed.push([e.reason, e.maybePublished]));
  client.on("state", (e) => {
    states.push([e.to, e.reason.name, e.attempt]);
    if (e.to === "reconnecting" && e.attempt === 3) client.close();
  });
  client.subscribe("machines.CNC-001", () => {});
  const published = client.publish("orders", 1);
  published.catch(() => {}); // awaited below, after the close that rejects it
  await until(() => states.some((s) => s[0] === "disconnected"));
  assert.deepEqual(states[0], ["connecting", "requested", 0]);
  const retries = states.filter((s) => s[0] === "reconnecting");
  assert.deepEqual(retries.map((r) => r[2]), [1, 2, 3], "attempt numbers grow, on the timer");
  assert.ok(retries.every((r) => r[1] === "connect_failed"));
  assert.deepEqual(states.at(-1).slice(0, 2), ["disconnected", "closed_by_user"]);
  assert.deepEqual(failed, [["closed", false]], "the queued publish fails on close, never sent");
  await assert.rejects(published, (e) => e.code === "closed" && e.maybePublished === false && /nothing was published/.test(e.message));
  const n = states.length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(states.length, n, "the timer is gone after close");
});

test("a dropped server is Reconnecting with attempt numbers, then Connected again", async () => {
  let { wss, url } = await server();
  const port = new URL(url).port;
  const client = createClient(url, { seed: 7, backoffInitialMs: 100, backoffMaxMs: 200 });
  const states = [];
  client.on("state", (e) => states.push([e.to, e.attempt, e.reason.name]));
  await until(() => client.state === "connected");
  for (const ws of wss.clients) ws.terminate();
  await until(() => client.state === "reconnecting");
  await until(() => client.state === "connected");
  assert.ok(states.some(([s, n]) => s === "reconnecting" && n >= 1), JSON.stringify(states));
  client.close();
  wss.close();
  void port;
});

test("newline-batched frames deliver each line; a value spread over lines is one message", async () => {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (p) => (p.has("hublink.v1") ? "hublink.v1" : false) });
  await new Promise((r) => wss.on("listening", r));
  const msg = (seq) => JSON.stringify({ type: "message", topic: "t", seq, epoch: "e", data: { seq } });
  wss.on("connection", (ws) => {
    ws.on("message", (raw) => {
      const m = JSON.parse(String(raw));
      if (m.type !== "subscribe") return;
      ws.send(JSON.stringify({ type: "subscribe_ack", topic: "t", success: true, epoch: "e", seq: 0 }));
      ws.send([msg(1), msg(2), "", msg(2), msg(3)].join("\n")); // a duplicate inside the batch
      ws.send(JSON.stringify(JSON.parse(msg(4)), null, 2)); // pretty-printed: one value
      ws.send([msg(5), "{nope", msg(6)].join("\n"));
    });
  });
  const client = createClient(`ws://127.0.0.1:${wss.address().port}/ws`, { seed: 1 });
  const seen = [];
  const errors = [];
  client.on("decode_error", (e) => errors.push(e.message));
  client.subscribe("t", (data, m) => seen.push([data.seq, m.seq, m.kind]));
  await until(() => seen.length === 6);
  assert.deepEqual(seen.map((s) => s[0]), [1, 2, 3, 4, 5, 6]);
  assert.ok(seen.every(([d, s, k]) => d === s && k === null));
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.match(errors[0], /not JSON/);
  client.close();
  wss.close();
});

test("shared: true where there is neither SharedWorker nor Web Locks (Node) is a solo client that works", async () => {
  const { wss, url } = await server();
  const client = createClient(url, { seed: 1, shared: true });
  const seqs = [];
  client.subscribe("machines.CNC-001", (data, m) => seqs.push(m.seq));
  await until(() => seqs.length === 50);
  assert.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => i + 1));
  assert.equal(client.role, "solo");
  assert.equal(client.tabs, 1);
  client.close();
  wss.close();
});

test("publish to an empty topic is refused at once, like subscribe", async () => {
  const { wss, url } = await server();
  const client = createClient(url, { seed: 1 });
  await client.ready;
  await assert.rejects(client.publish("", 1), (e) => e.code === "invalid_topic" && /cannot be empty/.test(e.message));
  client.close();
  wss.close();
});

test("publish resolves with the server's answer; a refused one rejects with the server's code", async () => {
  const { wss, url } = await server();
  const client = createClient(url, { seed: 1 });
  const events = [];
  client.on("published", (e) => events.push(e.type));
  client.on("publish_failed", (e) => events.push(e.type));
  const p = await client.publish("orders", { n: 1 });
  assert.equal(p.topic, "orders");
  assert.equal(p.epoch, "e1");
  assert.ok(p.seq >= 1 && typeof p.id === "string" && p.id.length > 0, JSON.stringify(p));
  await assert.rejects(
    client.publish("forbidden.x", 1),
    (e) => e.code === "refused" && e.serverCode === "forbidden" && e.maybePublished === false && /\(forbidden: no publishing to "forbidden.x"\); nothing was published$/.test(e.message),
  );
  assert.deepEqual(events, ["published", "publish_failed"]);
  client.close();
  wss.close();
});

test("a publish whose answer was lost with the link is sent again with the same id and resolves once", async () => {
  const { wss, url, seen } = await server();
  // A short backoff: the reconnect comes within the test.
  const client = createClient(url, { seed: 1, backoffInitialMs: 50, backoffMaxMs: 100 });
  const p = await client.publish("drop.orders", { n: 1 });
  const sent = seen.filter((m) => m.type === "publish" && m.topic === "drop.orders");
  assert.equal(sent.length, 2, "sent twice: before and after the reconnect");
  assert.equal(sent[0].id, sent[1].id, "with the same id");
  assert.equal(p.id, sent[0].id);
  assert.equal(p.seq, taken.get(p.id), "the seq the server gave the first copy");
  client.close();
  wss.close();
});
