// Publishes that happen once, in headless Chromium against a real
// hublink-server --demo, with `outbox: true` (IndexedDB):
//
// - published while offline, the page reloaded, then online again: the next
//   page load sends it, and it is in the topic's stream once;
// - taken by the server but its answer lost, then the page reloaded: the next
//   load sends it again with the same id, the server answers with the first
//   seq, and nothing is published twice;
// - shared mode without a SharedWorker, and without the outbox (the follower
//   itself hands it over): a follower tab's publish, unanswered when the
//   leader tab closes, goes to the next leader with its id and is delivered
//   once; the follower's promise resolves.
//
// "In the stream once" is read by a separate subscriber on the server (a
// plain WebSocket from this test, no hublink code), counting the messages
// that carry the publish's payload.
//
// Needs: target/release/hublink-server, pkg/dist and pkg/wasm (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { errorPage, jwt, launch, root, startFront, startHublink, until } from "./lib.mjs";

const WebSocket = createRequire(path.join(root, "tools/node/package.json"))("ws");

const PAGE = `<!doctype html><meta charset="utf-8"><title>outbox</title>
<script type="module">
import { createClient } from "/dist/index.js";
const q = new URLSearchParams(location.search);
window.client = createClient("/ws", { outbox: !q.has("no-outbox"), shared: q.has("shared"), token: q.get("token") });
window.outcomes = [];
client.on("published", (e) => outcomes.push({ type: e.type, id: e.id, seq: e.seq, data: null }));
client.on("publish_failed", (e) => outcomes.push({ type: e.type, id: e.id, reason: e.reason, message: e.message }));
window.results = [];
window.pub = (topic, data) => {
  client.publish(topic, data).then((p) => results.push({ ok: p }), (e) => results.push({ error: e.message }));
};
/** The outbox's entries in IndexedDB: what a reload would send again. */
window.stored = () =>
  new Promise((resolve) => {
    const r = indexedDB.open("hublink");
    r.onsuccess = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains("outbox")) return resolve([]);
      const all = db.transaction("outbox").objectStore("outbox").getAll();
      all.onsuccess = () => resolve(all.result.map((e) => ({ id: e.id, topic: e.topic, json: e.json, key: e.key })));
    };
  });
</script>`;

let hub, browser, dir;
const token = jwt({ sub: "outbox-test", publish: ["outbox.**"] });

before(async () => {
  hub = await startHublink();
  browser = await launch();
  dir = mkdtempSync(path.join(tmpdir(), "hublink-outbox-"));
  writeFileSync(path.join(dir, "index.html"), PAGE);
  for (const d of ["dist", "wasm"]) symlinkSync(path.join(root, "pkg", d), path.join(dir, d));
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A subscriber of `topic` straight on the server: every message it gets. */
async function observe(t, topic) {
  const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/ws`, "hublink.v1");
  const got = [];
  let subscribed;
  const ready = new Promise((r) => (subscribed = r));
  ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", topic })));
  ws.on("message", (raw) => {
    const m = JSON.parse(String(raw));
    if (m.type === "subscribe_ack") subscribed();
    if (m.type === "message" && m.topic === topic) got.push(m);
  });
  t.after(() => ws.close());
  await ready;
  return got;
}

/** A new context (its own IndexedDB) on a new front server. */
async function setup(t) {
  const front = await startFront({ dir, wsPort: hub.port });
  const context = await browser.newContext();
  t.after(async () => {
    await context.close();
    front.close();
  });
  return { front, context };
}

const url = (front, extra = "") => `${front.url}/index.html?token=${token}${extra}`;
const stored = (page) => page.evaluate(() => window.stored());

test("published offline, reloaded, back online: delivered once by the next page load", async (t) => {
  const topic = `outbox.offline.${Date.now()}`;
  const got = await observe(t, topic);
  const { front, context } = await setup(t);
  const { page, errors } = await errorPage(context);
  await page.goto(url(front));
  await until(page, () => window.client.state === "connected");

  await context.setOffline(true);
  await until(page, () => window.client.state === "reconnecting");
  await page.evaluate((topic) => window.pub(topic, { order: "A-17", action: "start" }), topic);
  await until(page, async () => (await window.stored()).length === 1);
  const [entry] = await stored(page);
  assert.equal(entry.topic, topic);
  assert.ok(!entry.key.includes(token) && !entry.key.includes("token="), `no credential is stored: ${entry.key}`);

  // The server stays out of reach while the page reloads (the network is
  // back for the page's own files), so that the first load cannot send it.
  front.refuse(true);
  await context.setOffline(false);
  await page.reload();
  await until(page, () => window.client && window.client.state === "reconnecting");
  await sleep(300);
  assert.equal(got.length, 0, "nothing reached the server yet");

  front.refuse(false);
  await page.evaluate(() => window.client.reconnectNow());
  await until(page, () => window.outcomes.length === 1);
  const [outcome] = await page.evaluate(() => window.outcomes);
  assert.equal(outcome.type, "published", JSON.stringify(outcome));
  assert.equal(outcome.id, entry.id, "sent with the id the first load gave it");
  await until(page, async () => (await window.stored()).length === 0);
  await sleep(500);
  assert.equal(got.length, 1, "in the stream once");
  assert.deepEqual(got[0].data, { order: "A-17", action: "start" });
  assert.equal(got[0].seq, outcome.seq);
  // The browser logs each upgrade the front refused on purpose; nothing else.
  assert.deepEqual(errors.filter((e) => !/failed: Connection closed before receiving a handshake response/.test(e)), []);
});

test("taken by the server, answer lost, reloaded: sent again with its id and published once", async (t) => {
  const topic = `outbox.lost.${Date.now()}`;
  const got = await observe(t, topic);
  const { front, context } = await setup(t);
  const { page, errors } = await errorPage(context);
  await page.goto(url(front));
  await until(page, () => window.client.state === "connected");

  assert.equal(front.deafen(), 1, "the page's one socket");
  await page.evaluate((topic) => window.pub(topic, { alarm: 7, ack: true }), topic);
  // The server has it; the page does not know.
  while (got.length === 0) await sleep(20);
  const first = got[0];
  const [entry] = await stored(page);
  assert.ok(entry, "still in the outbox: unanswered");
  assert.deepEqual(await page.evaluate(() => window.results), []);

  await page.reload();
  await until(page, () => window.outcomes.length === 1);
  const [outcome] = await page.evaluate(() => window.outcomes);
  assert.equal(outcome.type, "published", JSON.stringify(outcome));
  assert.equal(outcome.id, entry.id);
  assert.equal(outcome.seq, first.seq, "the first publish's seq: a repeat, not a second message");
  await sleep(500);
  assert.equal(got.length, 1, "published once");
  assert.equal((await stored(page)).length, 0);
  assert.deepEqual(errors, []);
});

test("shared mode: a follower's publish left with a closing leader is delivered once by the next", async (t) => {
  const topic = `outbox.shared.${Date.now()}`;
  const got = await observe(t, topic);
  const { front, context } = await setup(t);
  // Without SharedWorker the tabs elect a leader with Web Locks.
  await context.addInitScript(() => delete globalThis.SharedWorker);
  const leader = await errorPage(context);
  await leader.page.goto(url(front, "&shared&no-outbox"));
  await until(leader.page, () => window.client.role === "leader" && window.client.state === "connected");
  const follower = await errorPage(context);
  await follower.page.goto(url(front, "&shared&no-outbox"));
  await until(follower.page, () => window.client.role === "follower" && window.client.state === "connected");

  // The leader's socket hears nothing more: the follower's publish reaches
  // the server through it, the answer does not.
  assert.equal(front.deafen(), 1, "one socket for both tabs");
  await follower.page.evaluate((topic) => window.pub(topic, { setpoint: 21.5 }), topic);
  while (got.length === 0) await sleep(20);
  await leader.page.close();

  await until(follower.page, () => window.client.role === "leader" && window.results.length === 1, undefined, 20000);
  const [result] = await follower.page.evaluate(() => window.results);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.ok.seq, got[0].seq, "the repeat is answered with the first seq");
  await sleep(500);
  assert.equal(got.length, 1, "published once");
  assert.deepEqual(follower.errors, []);
});
