// The page lifecycle in headless Chromium, against a real hublink-server
// --demo behind a front server that can black-hole the WebSockets it carries
// (kept open, nothing forwarded: a NAT that lost its mapping). At the default
// heartbeat settings (the server advertises 30 s: a 40 s liveness timeout),
// a dead link is replaced within 2 s of the page becoming visible or being
// resumed, and a page restored from the back/forward cache reconnects; after
// each, the topic's messages carry on with no seq lost or repeated.
//
// This Chromium keeps a page with an open WebSocket in the back/forward
// cache, but cuts the socket itself on the way in (a console error) and
// delivers its close after the restore, so that the client backs off before
// reconnecting; the client closes it first, cleanly, on `pagehide`.
//
// The fixture (apps/lifecycle/) records every message's position, state
// change, socket opened and lifecycle event with performance.now().
//
// Needs: target/release/hublink-server, tests/browser/apps/node_modules (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { apps, errorPage, launch, startFront, startHublink, until } from "./lib.mjs";

let hub, browser;

before(async () => {
  hub = await startHublink();
  // Playwright turns the back/forward cache off by default; the third test needs it.
  browser = await launch({ bfcache: true });
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

/** A fresh context, page and front server for test `t`, closed after it. */
async function open(t) {
  const front = await startFront({ dir: apps, wsPort: hub.port });
  const context = await browser.newContext();
  const { page, errors } = await errorPage(context);
  t.after(async () => {
    await context.close();
    front.close();
  });
  await page.goto(`${front.url}/lifecycle/`);
  return { front, context, page, errors };
}

const rec = (page) => page.evaluate(() => window.__rec);

/** Connected, with messages flowing: `n` more than already recorded. */
async function flowing(page, n = 5) {
  const have = (await rec(page)).messages.length;
  await until(page, ([have, n]) => {
    const r = window.__rec;
    return r.states.at(-1)?.to === "connected" && r.messages.length >= have + n;
  }, [have, n]);
}

/** Every message of the run, in one epoch, each seq the one after the last: nothing lost, nothing twice. */
function assertContiguous(r) {
  assert.ok(r.messages.length > 0);
  assert.deepEqual(new Set(r.messages.map((m) => m.epoch)).size, 1, "one epoch");
  const seqs = r.messages.map((m) => m.seq);
  const breaks = seqs.flatMap((s, i) => (i > 0 && s !== seqs[i - 1] + 1 ? [`${seqs[i - 1]} -> ${s}`] : []));
  assert.deepEqual(breaks, [], "seq runs on without a gap or a duplicate");
  assert.deepEqual(r.gaps, []);
}

/** The first state change to `connected` after `t0`, as ms after `t0`. */
function reconnectedAfter(r, t0) {
  const s = r.states.find((s) => s.at > t0 && s.to === "connected");
  return s && s.at - t0;
}

/** Sets what document.visibilityState answers and dispatches visibilitychange (untrusted: the client must not care). */
const setVisibility = (page, state) =>
  page.evaluate((state) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
    document.dispatchEvent(new Event("visibilitychange"));
  }, state);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("hidden, link black-holed, visible again: a new socket within 2 s of the event, and no seq lost or repeated", async (t) => {
  const { front, page, errors } = await open(t);
  await flowing(page);
  await setVisibility(page, "hidden");
  assert.equal(front.blackhole(), 1, "one socket silenced");
  // Hidden for 3 s with a dead link: far from the 40 s liveness timeout (or
  // the idle ping at 20 s), so nothing has noticed.
  await sleep(3000);
  let r = await rec(page);
  assert.equal(r.states.at(-1).to, "connected", "the dead link still looks alive");
  const before = r.messages.length;

  await setVisibility(page, "visible");
  const visible = (await rec(page)).lifecycle.findLast((e) => e.type === "visibilitychange").at;
  await until(page, () => window.__rec.sockets >= 2 && window.__rec.states.at(-1).to === "connected", undefined, 60000);
  r = await rec(page);
  const ms = reconnectedAfter(r, visible);
  t.diagnostic(`visible -> reconnected: ${Math.round(ms)} ms`);
  assert.ok(ms < 2000, `reconnected ${Math.round(ms)} ms after becoming visible`);
  // The link was replaced because its probe went unanswered.
  assert.deepEqual(r.states.filter((s) => s.at > visible).map((s) => [s.to, s.reason]), [
    ["reconnecting", "heartbeat_timeout"],
    ["connected", "opened"],
  ]);
  assert.equal(front.upgrades.length, 2);

  await flowing(page, 10);
  r = await rec(page);
  assert.ok(r.messages.length > before + 10);
  assert.deepEqual(r.subscribed, ["fresh", "recovered"]);
  assertContiguous(r);
  assert.deepEqual(errors, []);
});

// CDP's Page.setWebLifecycleState does nothing to a visible page in this
// headless Chromium (no freeze event, timers run on), and a headless page
// cannot be hidden (minimized, or behind another tab, it stays visible): the
// freeze and resume events are dispatched here, as a browser does for a
// hidden page. Real ones fire around the back/forward cache (test below).
test("hidden, frozen with the link black-holed, resumed: a new socket within 2 s of resume, and no seq lost or repeated", async (t) => {
  const { front, page, errors } = await open(t);
  await flowing(page);
  await setVisibility(page, "hidden");
  assert.equal(front.blackhole(), 1, "one socket silenced");
  await page.evaluate(() => document.dispatchEvent(new Event("freeze")));
  // Shorter than the first backoff (1 s at least): this page's timers run
  // on, a frozen one's would not, and its retry must not come first.
  await sleep(500);
  await page.evaluate(() => document.dispatchEvent(new Event("resume")));
  let r = await rec(page);
  const resumed = r.lifecycle.findLast((e) => e.type === "resume").at;
  await setVisibility(page, "visible");
  await until(page, () => window.__rec.sockets >= 2 && window.__rec.states.at(-1).to === "connected", undefined, 60000);
  r = await rec(page);
  const ms = reconnectedAfter(r, resumed);
  t.diagnostic(`resume -> reconnected: ${Math.round(ms)} ms`);
  assert.ok(ms < 2000, `reconnected ${Math.round(ms)} ms after resume`);
  assert.deepEqual(r.states.slice(-2).map((s) => [s.to, s.reason]), [
    ["reconnecting", "suspended"],
    ["connected", "opened"],
  ]);
  assert.equal(front.upgrades.length, 2);

  await flowing(page, 10);
  r = await rec(page);
  assert.deepEqual(r.subscribed, ["fresh", "recovered"]);
  assertContiguous(r);
  assert.deepEqual(errors, []);
});

test("away and back (bfcache): restored from the cache, reconnected, and no seq lost or repeated", async (t) => {
  const { front, context, page, errors } = await open(t);
  const cdp = await context.newCDPSession(page);
  const notCached = [];
  await cdp.send("Page.enable");
  cdp.on("Page.backForwardCacheNotUsed", (e) => notCached.push(JSON.stringify(e.notRestoredExplanations)));
  await flowing(page);
  for (let round = 1; round <= 2; round++) {
    await page.click("#away");
    await page.waitForURL(/away\.html$/);
    await sleep(1000); // the server publishes meanwhile
    // A page restored from the cache fires no load event.
    await page.goBack({ waitUntil: "commit" });
    await until(page, () => document.readyState === "complete" && window.__rec?.lifecycle.at(-1).type === "pageshow");
    const r = await rec(page);
    assert.deepEqual(notCached, [], "the page was restored from the back/forward cache");
    // Same document, same records: the cache kept it (frozen meanwhile), and it said so.
    assert.ok(r, "the page's records survived");
    const shown = r.lifecycle.findLast((e) => e.type === "pageshow");
    assert.equal(shown.persisted, true);
    assert.deepEqual(r.lifecycle.slice(-6).map((e) => e.type + (e.persisted ? " persisted" : "")),
      ["pagehide persisted", "visibilitychange", "freeze", "resume", "visibilitychange", "pageshow persisted"]);
    // Closed by the client as the page went into the cache, not cut by the
    // browser (which logs "WebSocket connection ... failed: Page entered
    // Back-Forward Cache" and delivers the close after the restore).
    const hidden = r.lifecycle.findLast((e) => e.type === "pagehide").at;
    assert.deepEqual(r.states.filter((s) => s.at >= hidden && s.at < shown.at).map((s) => [s.to, s.reason]), [["reconnecting", "suspended"]]);
    await flowing(page, 10);
    const after = await rec(page);
    const ms = reconnectedAfter(after, shown.at);
    t.diagnostic(`round ${round}: pageshow -> reconnected: ${Math.round(ms)} ms`);
    assert.ok(ms < 2000, `reconnected ${Math.round(ms)} ms after pageshow`);
    assert.deepEqual(after.subscribed, ["fresh", ...Array(round).fill("recovered")]);
    assertContiguous(after);
  }
  assert.equal(front.upgrades.length, 3);
  assert.deepEqual(errors, []);
});
