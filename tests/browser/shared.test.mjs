// Shared mode in headless Chromium against a real hublink-server --demo: five
// pages of one browser context share one WebSocket, in a SharedWorker and,
// with SharedWorker taken away, through a leader tab elected with Web Locks.
// Each page counts the seq of every message it gets: exactly once, in order,
// through page closes, a leader's close and a server restart.
//
// The page is the package as built (pkg/dist, pkg/wasm), unbundled.
//
// Needs: target/release/hublink-server, pkg/dist and pkg/wasm (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { errorPage, jwt, launch, root, startFront, startHublink, subOf, until } from "./lib.mjs";

const PAGE = `<!doctype html><meta charset="utf-8"><title>shared</title>
<script type="module">
import { createClient } from "/dist/index.js";
const q = new URLSearchParams(location.search);
const topics = q.get("topics").split(",");
const token = q.get("token") ?? undefined;
window.asked = 0;
// ?provider: the token comes from a provider (asked before each attempt) instead.
const client = q.has("provider")
  ? createClient("/ws", { shared: true, tokenProvider: async () => (asked++, token) })
  : createClient("/ws", { shared: true, token });
window.refused = [];
client.on("refused", (e) => refused.push(e));
window.client = client;
window.seqs = {};
window.states = [];
for (const t of topics) {
  seqs[t] = [];
  client.subscribe(t, (data, m) => seqs[t].push([m.epoch, m.seq]));
}
client.on("state", (e) => states.push(e.to));
window.gaps = [];
client.on("gap", (e) => gaps.push(e));
</script>`;

let hub, browser, dir;

before(async () => {
  hub = await startHublink();
  browser = await launch();
  dir = mkdtempSync(path.join(tmpdir(), "hublink-shared-"));
  writeFileSync(path.join(dir, "index.html"), PAGE);
  for (const d of ["dist", "wasm"]) symlinkSync(path.join(root, "pkg", d), path.join(dir, d));
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `n` pages of one new context on one front server; `init` runs in each before its scripts. */
async function pages(t, n, topicsOf, init, tokenOf = () => null, extra = "") {
  const front = await startFront({ dir, wsPort: hub.port });
  const context = await browser.newContext();
  if (init) await context.addInitScript(init);
  t.after(async () => {
    await context.close();
    front.close();
  });
  const list = [];
  // WebSockets opened by the pages themselves (Playwright does not see a SharedWorker's).
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const p = await errorPage(context);
    p.page.on("websocket", (ws) => sockets.push(ws.url()));
    const token = tokenOf(i);
    await p.page.goto(`${front.url}/index.html?topics=${topicsOf(i).join(",")}${token ? `&token=${token}` : ""}${extra}`);
    list.push(p);
  }
  for (const { page } of list) await until(page, () => window.client.state === "connected");
  return { front, context, pages: list, sockets };
}

/** Every (epoch, seq) a page got on `topic`: within an epoch each seq once, one after the other. */
async function checkOnce(page, topic) {
  const got = await page.evaluate((t) => window.seqs[t], topic);
  assert.ok(got.length > 0, `no messages on ${topic}`);
  for (let i = 1; i < got.length; i++) {
    const [e0, s0] = got[i - 1];
    const [e1, s1] = got[i];
    if (e0 === e1) assert.equal(s1, s0 + 1, `${topic}: ${s0} then ${s1} (lost or duplicated)`);
  }
  return got.length;
}

test("shared: 5 pages open 1 WebSocket (SharedWorker); each gets its topics once, in order; a topic wanted by 2 pages is subscribed once", async (ctx) => {
  const base = await hub.subscriptions();
  // power.1 on every page, power.2 on pages 0 and 1.
  const t = await pages(ctx, 5, (i) => (i < 2 ? ["power.1", "power.2"] : ["power.1"]));
  await sleep(300);
  assert.equal(await hub.connections(), 1, "one socket for five pages");
  assert.equal(t.front.upgrades.length, 1);
  assert.deepEqual(t.sockets, [], "the socket is the SharedWorker's, in no page");
  assert.equal(await hub.subscriptions(), base + 2, "power.1 and power.2, once each on the wire");
  for (const { page } of t.pages) {
    assert.equal(await page.evaluate(() => window.client.role), "worker");
    assert.equal(await page.evaluate(() => window.client.tabs), 5);
  }
  await sleep(1500);
  for (const [i, { page }] of t.pages.entries()) {
    await checkOnce(page, "power.1");
    if (i < 2) await checkOnce(page, "power.2");
  }
  // Closing page 0 keeps power.2 (page 1 wants it); page 1's crash lets it go.
  await t.pages[0].page.close();
  await sleep(500);
  assert.equal(await hub.subscriptions(), base + 2);
  const cdp = await t.context.newCDPSession(t.pages[1].page);
  void cdp.send("Page.crash").catch(() => {});
  const end = Date.now() + 5000;
  while ((await hub.subscriptions()) !== base + 1 && Date.now() < end) await sleep(50);
  assert.equal(await hub.subscriptions(), base + 1, "power.2 unsubscribed within 5 s of the last page leaving it");
  await until(t.pages[2].page, () => window.client.tabs === 3);
  assert.equal(await hub.connections(), 1);
  for (const { errors } of t.pages.slice(2)) assert.deepEqual(errors, []);
});

test("shared without SharedWorker: a leader tab holds the one socket; closing it while messages flow loses and duplicates nothing", async (ctx) => {
  const t = await pages(ctx, 5, () => ["power.1"], () => delete globalThis.SharedWorker);
  await sleep(300);
  assert.equal(await hub.connections(), 1, "one socket for five pages");
  const roles = [];
  for (const { page } of t.pages) roles.push(await page.evaluate(() => window.client.role));
  assert.deepEqual(roles.toSorted(), ["follower", "follower", "follower", "follower", "leader"]);
  assert.equal(t.sockets.length, 1, "one WebSocket, in the leader page");
  await sleep(1000);
  const leader = t.pages[roles.indexOf("leader")];
  const rest = t.pages.filter((p) => p !== leader);
  const before = [];
  for (const { page } of rest) before.push(await checkOnce(page, "power.1"));
  const closed = Date.now();
  await leader.page.close();
  // A new leader, connected, and messages flowing again on every page.
  let takeover = null;
  while (Date.now() - closed < 10000) {
    const r = await Promise.all(rest.map(({ page }) => page.evaluate(() => [window.client.role, window.client.state])));
    if (r.some(([role, state]) => role === "leader" && state === "connected")) {
      takeover = Date.now() - closed;
      break;
    }
    await sleep(25);
  }
  assert.ok(takeover !== null, "no tab took over within 10 s");
  console.log(`# takeover: ${takeover} ms from the leader's close to a new leader connected`);
  assert.ok(takeover < 5000, `takeover took ${takeover} ms`);
  await sleep(1500);
  assert.equal(await hub.connections(), 1);
  assert.equal(t.sockets.length, 2, "the new leader's socket, and no other");
  for (const [i, { page }] of rest.entries()) {
    const n = await checkOnce(page, "power.1");
    assert.ok(n > before[i] + 5, `page ${i}: ${before[i]} then ${n} messages`);
  }
});

test("shared: a server restart under 5 pages is one reconnect, not five; every page recovers", async (ctx) => {
  const t = await pages(ctx, 5, () => ["power.1"]);
  assert.equal(t.front.upgrades.length, 1);
  await hub.restart();
  for (const { page } of t.pages) await until(page, () => window.client.state === "connected" && window.states.includes("reconnecting"), undefined, 20000);
  const counts = await Promise.all(t.pages.map(({ page }) => page.evaluate(() => window.seqs["power.1"].length)));
  await sleep(1000);
  for (const [i, { page }] of t.pages.entries()) {
    assert.ok((await checkOnce(page, "power.1")) > counts[i], `page ${i} gets messages again`);
  }
  assert.equal(t.front.upgrades.length, 2, "one reconnect for five pages");
  assert.equal(await hub.connections(), 1);
});

test("shared: tabs with different credentials do not share; a publish from one tab reaches the others once, a refusal only its sender", async (ctx) => {
  const alice = jwt({ sub: "alice", publish: ["chat.*"] });
  const bob = jwt({ sub: "bob" });
  const t = await pages(ctx, 3, () => ["chat.room"], undefined, (i) => (i < 2 ? alice : bob));
  await sleep(300);
  assert.equal(await hub.connections(), 2, "alice's two tabs share a socket; bob's tab has its own");
  assert.deepEqual(t.front.upgrades.map(subOf).toSorted(), ["alice", "bob"]);
  const [a0, a1, b] = t.pages.map((p) => p.page);
  assert.deepEqual(await Promise.all([a0, a1, b].map((p) => p.evaluate(() => window.client.tabs))), [2, 2, 1]);
  await a1.evaluate(() => {
    for (let i = 1; i <= 5; i++) window.client.publish("chat.room", { n: i });
  });
  for (const p of [a0, a1, b]) await until(p, () => window.seqs["chat.room"].length >= 5);
  for (const p of [a0, a1, b]) assert.equal(await checkOnce(p, "chat.room"), 5);
  // Each publish resolves in the tab that made it, with where it went.
  const acked = await a0.evaluate(() => window.client.publish("chat.room", { n: 6 }));
  await until(b, () => window.seqs["chat.room"].length >= 6);
  assert.equal(acked.seq, (await b.evaluate(() => window.seqs["chat.room"]))[5][1], "the seq bob's tab got it at");
  // A refused one rejects there, and only there.
  for (const p of [a0, a1]) await p.evaluate(() => window.client.on("publish_failed", (e) => (window.failed ??= []).push(e)));
  const err = await a0.evaluate(() => window.client.publish("", {}).then(() => null, (e) => ({ code: e.code, maybe: e.maybePublished })));
  assert.deepEqual(err, { code: "invalid_topic", maybe: false });
  // Bob may not publish: the server refuses, and says so to bob's tab.
  const denied = await b.evaluate(() => window.client.publish("chat.room", { n: 0 }).then(() => null, (e) => ({ code: e.code, server: e.serverCode, maybe: e.maybePublished })));
  assert.deepEqual(denied, { code: "refused", server: "forbidden", maybe: false });
  await sleep(200);
  assert.equal(await a1.evaluate(() => (window.failed ?? []).length), 0, "the other tab hears of no refusal");
});

test("shared: a tab's token provider feeds the shared connection, asked again for the attempt after a restart", async (ctx) => {
  const alice = jwt({ sub: "alice" });
  const t = await pages(ctx, 2, () => ["power.1"], undefined, () => alice, "&provider");
  assert.deepEqual(t.front.upgrades.map(subOf), ["alice"]);
  const asked = async () => (await Promise.all(t.pages.map(({ page }) => page.evaluate(() => window.asked)))).reduce((a, b) => a + b);
  assert.equal(await asked(), 1, "one attempt, one token");
  await hub.restart();
  for (const { page } of t.pages) await until(page, () => window.client.state === "connected" && window.states.includes("reconnecting"), undefined, 20000);
  assert.deepEqual(t.front.upgrades.map(subOf), ["alice", "alice"]);
  assert.ok((await asked()) >= 2, "asked again for the new attempt");
});

test("shared without SharedWorker: a leader about to be frozen hands over; every tab still gets every message once", async (ctx) => {
  const t = await pages(ctx, 3, () => ["power.1"], () => delete globalThis.SharedWorker);
  const roles = await Promise.all(t.pages.map(({ page }) => page.evaluate(() => window.client.role)));
  const leader = t.pages[roles.indexOf("leader")].page;
  const rest = t.pages.filter(({ page }) => page !== leader).map(({ page }) => page);
  // The page's `freeze` event, as Chrome fires it before freezing a hidden
  // page. Dispatched: CDP's Page.setWebLifecycleState does not fire it for
  // a visible headless page, and the client must not depend on isTrusted.
  const frozen = Date.now();
  await leader.evaluate(() => document.dispatchEvent(new Event("freeze")));
  let took = null;
  while (Date.now() - frozen < 10000 && took === null) {
    const r = await Promise.all(rest.map((p) => p.evaluate(() => [window.client.role, window.client.state])));
    if (r.some(([role, state]) => role === "leader" && state === "connected")) took = Date.now() - frozen;
    else await sleep(25);
  }
  assert.ok(took !== null && took < 5000, `takeover after a freeze: ${took} ms`);
  console.log(`# takeover after the leader's freeze event: ${took} ms`);
  assert.equal(await leader.evaluate(() => window.client.role), "follower");
  await leader.evaluate(() => document.dispatchEvent(new Event("resume")));
  const n = await leader.evaluate(() => window.seqs["power.1"].length);
  await until(leader, (k) => window.seqs["power.1"].length > k + 5, n);
  assert.equal(await hub.connections(), 1);
  for (const { page } of t.pages) await checkOnce(page, "power.1");
});
