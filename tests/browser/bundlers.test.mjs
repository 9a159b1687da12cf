// hublink as a webpack 5 app and in a module Worker, in headless Chromium,
// against a real hublink-server --demo behind a front server that records each
// WebSocket upgrade's URL. Also: a failed wasm fetch recovers (by the backoff,
// and at once on `online`), and changing the provider's url/token moves to a
// new socket.
//
// Needs: target/release/hublink-server, tests/browser/apps/node_modules (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { apps, errorPage, jwt, launch, startFront, startHublink, subOf, until } from "./lib.mjs";

const webpack = createRequire(path.join(apps, "package.json"))("webpack");
let hub, browser;

before(async () => {
  const config = (await import(path.join(apps, "webpack/webpack.config.js"))).default;
  await new Promise((resolve, reject) =>
    webpack(config, (err, stats) => (err || stats.hasErrors() ? reject(err ?? new Error(stats.toString())) : resolve())),
  );
  hub = await startHublink();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

/** A fresh context, page and front server for test `t`, closed after it. */
async function open(t, dir, query = "") {
  const front = await startFront({ dir, wsPort: hub.port });
  const context = await browser.newContext();
  const { page, errors } = await errorPage(context);
  t.after(async () => {
    await context.close();
    front.close();
  });
  return { front, context, page, errors, go: () => page.goto(`${front.url}/${query}`) };
}

const live = (page) =>
  until(page, () => document.querySelector("#state")?.textContent === "connected" && !/—/.test(document.querySelector("#temp").textContent));

test("webpack 5: live data, and the first render already says connecting", async (ctx) => {
  const t = await open(ctx, path.join(apps, "webpack"));
  await t.go();
  await live(t.page);
  const rendered = await t.page.evaluate(() => window.__rendered);
  assert.equal(rendered[0], "connecting", rendered.join(" "));
  assert.ok(!rendered.includes("disconnected"), rendered.join(" "));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await hub.connections(), 1, "StrictMode: one socket");
  assert.deepEqual(t.errors, []);
});

test("an aborted wasm fetch is retried with the backoff and the page goes live, no uncaught errors", async (ctx) => {
  const t = await open(ctx, path.join(apps, "webpack"), "?backoff=300");
  let aborted = 0;
  await t.page.route(/\.wasm$/, (route) => (aborted++ === 0 ? route.abort() : route.continue()));
  await t.go();
  await until(t.page, () => document.querySelector("#state").textContent === "reconnecting");
  assert.equal(await t.page.getAttribute("#state", "data-reason"), "connect_failed");
  await live(t.page);
  assert.equal(aborted, 2);
  assert.deepEqual(t.errors.filter((e) => !/ERR_FAILED/.test(e)), []);
});

test("a failed wasm load retries at once on `online`, long before its 60 s backoff", async (ctx) => {
  const t = await open(ctx, path.join(apps, "webpack"), "?backoff=60000");
  let fail = true;
  await t.page.route(/\.wasm$/, (route) => (fail ? route.abort() : route.continue()));
  await t.go();
  await until(t.page, () => document.querySelector("#state").textContent === "reconnecting");
  fail = false;
  await t.context.setOffline(true);
  await t.context.setOffline(false);
  const t0 = Date.now();
  await live(t.page);
  assert.ok(Date.now() - t0 < 5000, `live after ${Date.now() - t0} ms`);
  assert.deepEqual(t.errors.filter((e) => !/ERR_FAILED|ERR_INTERNET_DISCONNECTED/.test(e)), []);
});

test("a new url or token on the provider moves to a new socket, one at a time", async (ctx) => {
  const t = await open(ctx, path.join(apps, "webpack"));
  await t.go();
  await live(t.page);
  assert.deepEqual(t.front.upgrades, ["/ws"]);
  await t.page.evaluate(() => window.__setConfig({ url: "/ws?room=a", token: undefined }));
  await until(t.page, () => document.querySelector("#state").textContent === "connected");
  const token = jwt({ sub: "second" });
  await t.page.evaluate((token) => window.__setConfig({ url: "/ws?room=a", token }), token);
  await until(t.page, () => document.querySelector("#state").textContent === "connected");
  await live(t.page);
  assert.deepEqual(t.front.upgrades, ["/ws", "/ws?room=a", `/ws?room=a&token=${token}`]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await hub.connections(), 1, "the old sockets are closed");
  assert.deepEqual(t.errors, []);
});

test("a tokenProvider is asked before every attempt; a value shown while reconnecting says it is stale", async (ctx) => {
  const t = await open(ctx, path.join(apps, "webpack"), "?rotate&backoff=200");
  let minted = 0;
  await t.page.exposeFunction("__mintToken", () => jwt({ sub: `rot-${++minted}` }));
  await t.go();
  await live(t.page);
  assert.equal(await t.page.getAttribute("#temp", "data-stale"), "false");
  await t.context.setOffline(true);
  await until(t.page, () => document.querySelector("#state").textContent === "reconnecting");
  assert.equal(await t.page.getAttribute("#temp", "data-stale"), "true");
  await t.context.setOffline(false);
  await live(t.page);
  await until(t.page, () => document.querySelector("#temp").dataset.stale === "false");
  // One fresh token per attempt; the attempts made offline never reached the front.
  const subs = t.front.upgrades.map(subOf);
  assert.equal(subs[0], "rot-1");
  assert.ok(subs.length >= 2 && new Set(subs).size === subs.length, subs.join(" "));
  assert.equal(subs.at(-1), `rot-${minted}`);
  assert.equal(await t.page.evaluate(() => window.__provided), minted);
  assert.deepEqual(t.errors.filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e)), []);
});

test("a module Worker: relative URL, wasm fetch and live data with no bundler", async (ctx) => {
  const t = await open(ctx, apps, "worker/");
  await t.go();
  await until(t.page, () => window.__events.some((e) => e.temperature !== undefined));
  const events = await t.page.evaluate(() => window.__events);
  assert.equal(events[0].state, "connecting");
  assert.ok(events.some((e) => e.state === "connected"), JSON.stringify(events));
  assert.deepEqual(events.filter((e) => e.error), []);
  assert.deepEqual(await t.page.evaluate(() => window.__errors), []);
  assert.deepEqual(t.front.upgrades, ["/ws"]);
  assert.deepEqual(t.errors, []);
});
