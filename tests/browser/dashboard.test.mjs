// End to end in headless Chromium: the React dashboard (examples/react-dashboard,
// built, served by `vite preview` with its /ws proxy) against a real
// hublink-server --demo. Screenshots and timings go to target/browser-screenshots/.
//
// Needs: target/release/hublink-server, examples/react-dashboard/dist (scripts/test-browser builds both).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, "tools/node/package.json"));
const { chromium } = require("playwright-core");
const shots = path.join(root, "target/browser-screenshots");
mkdirSync(shots, { recursive: true });
const timings = {};

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let serverPort, webPort, server, web, browser, context, page, token;

function startServer() {
  const bin = path.join(root, "target/release/hublink-server");
  const p = spawn(bin, ["--demo", "--listen", `127.0.0.1:${serverPort}`, "--demo-machine-period", "500ms",
    "--demo-order-period", "400ms", "--demo-power-period", "500ms", "--demo-device-speedup", "30", "--jwt-secret", "e2e-secret-e2e-secret-e2e-secret"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const m = out.match(/demo token[^:]*:\s*(\S+)/);
      if (m) {
        token = m[1];
        resolve(p);
      }
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    p.on("exit", (code) => reject(new Error(`hublink-server exited (${code}): ${out}`)));
  });
}

async function waitHttp(url, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

async function wsConnections() {
  const text = await (await fetch(`http://127.0.0.1:${serverPort}/metrics`)).text();
  const m = text.match(/hublink_connections\{endpoint="ws"\} (\d+)/);
  return Number(m[1]);
}

const text = (id, p = page) => p.getByTestId(id).textContent();
/** The `points` of the first polyline in the element with this test id. */
const points = (id, p = page) => p.locator(`[data-testid="${id}"] polyline`).first().getAttribute("points");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const badge = () => page.getByTestId("status");
const badgeText = () => badge().textContent();
async function waitBadge(re, ms = 30000) {
  const t0 = Date.now();
  await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('[data-testid="status"]')?.textContent ?? ""), re.source, { timeout: ms, polling: 20 });
  return Date.now() - t0;
}
const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
const stats = () => page.evaluate(() => ({ ...window.__hublinkStats, lastSeq: undefined }));

before(async () => {
  serverPort = await freePort();
  webPort = await freePort();
  server = await startServer();
  web = spawn(path.join(root, "examples/react-dashboard/node_modules/.bin/vite"), ["preview", "--port", String(webPort), "--strictPort", "--host", "127.0.0.1"], {
    cwd: path.join(root, "examples/react-dashboard"),
    env: { ...process.env, HUBLINK_SERVER: `127.0.0.1:${serverPort}` },
    stdio: "ignore",
  });
  await waitHttp(`http://127.0.0.1:${webPort}/`);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // The tabs share through a leader tab (Web Locks), not a SharedWorker: the
  // offline test needs the connection inside a page, since Playwright's
  // setOffline does not reach a SharedWorker's socket (it keeps delivering).
  // The SharedWorker has a test of its own below.
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.addInitScript(() => delete window.SharedWorker);
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  web?.kill();
  server?.kill();
  writeFileSync(path.join(shots, "timings.json"), JSON.stringify(timings, null, 2));
  console.log("e2e timings (ms):", JSON.stringify(timings));
});

test("the page shows live data over exactly one WebSocket under StrictMode", async () => {
  const t0 = Date.now();
  await page.goto(`http://127.0.0.1:${webPort}/?token=${token}`);
  await waitBadge(/Live Data/);
  timings.firstLiveData = Date.now() - t0;
  await page.waitForFunction(() => !/—/.test(document.querySelector('[data-testid="temp-CNC-001"]').textContent));
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="orders"] li').length >= 2);
  assert.match(await page.getByTestId("temp-CNC-002").textContent(), /°C/);
  // StrictMode mounts the provider twice; one socket must reach the server.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await wsConnections(), 1);
  // The panel says what the connection is doing and who holds it: shared mode
  // is on, so it is not this tab's own ("solo").
  assert.equal(await text("conn-state"), "connected");
  assert.equal(await text("conn-attempt"), "0");
  assert.equal(await text("conn-reason"), "opened");
  assert.equal(await page.getByTestId("conn-role").getAttribute("data-role"), "leader");
  assert.equal(await text("conn-role"), "this tab");
  assert.equal(await text("conn-tabs"), "1");
  await page.waitForFunction(() => document.querySelector('[data-testid="history-cpu"] polyline'), null, { timeout: 10000 });
  await shot("1-live");
});

test("the charts move with the data: machines, optical power, the device history", async () => {
  const charts = ["temp-chart-CNC-001", "load-chart-CNC-002", "power-chart-1-ch1", "power-chart-4-ch4", "history-cpu", "history-network"];
  // A full minute of readings is not needed: two are a line.
  for (const id of charts) await page.locator(`[data-testid="${id}"] polyline`).first().waitFor({ timeout: 10000 });
  const before = await Promise.all(charts.map((id) => points(id)));
  await sleep(1500);
  const after = await Promise.all(charts.map((id) => points(id)));
  charts.forEach((id, i) => assert.notEqual(after[i], before[i], `${id} did not move in 1.5 s`));
  // The machine's sparkline grows by one point per reading (500 ms), up to 60.
  assert.ok(after[0].split(" ").length > before[0].split(" ").length || before[0].split(" ").length === 60);
  // The device history is a whole series per message: 30 points, labelled with times.
  assert.equal(after[4].split(" ").length, 30);
  assert.match(await page.getByTestId("history-cpu").textContent(), /\d\d:\d\d [AP]M/);
  assert.equal(await text("device-state"), "connected");
});

test("a second tab shares the one connection, and the panel of each counts both", async () => {
  const second = await context.newPage();
  await second.goto(`http://127.0.0.1:${webPort}/?token=${token}`);
  await second.waitForFunction(() => document.querySelector('[data-testid="conn-tabs"]')?.textContent === "2", null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="conn-tabs"]')?.textContent === "2", null, { timeout: 5000 });
  assert.equal(await text("conn-state", second), "connected");
  assert.equal(await text("conn-role"), "this tab");
  assert.equal(await text("conn-role", second), "another tab");
  await second.waitForFunction(() => !/—/.test(document.querySelector('[data-testid="temp-CNC-001"]').textContent));
  assert.equal(await wsConnections(), 1, "two tabs, one WebSocket");
  await second.screenshot({ path: path.join(shots, "1b-second-tab.png"), fullPage: true });
  await second.close();
  await page.waitForFunction(() => document.querySelector('[data-testid="conn-tabs"]')?.textContent === "1", null, { timeout: 10000 });
});

test("with a SharedWorker, the worker holds the connection for every tab", async () => {
  const own = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const tabs = [await own.newPage(), await own.newPage()];
    for (const p of tabs) await p.goto(`http://127.0.0.1:${webPort}/?token=${token}`);
    for (const p of tabs) {
      await p.waitForFunction(() => document.querySelector('[data-testid="conn-tabs"]')?.textContent === "2", null, { timeout: 15000 });
      assert.equal(await p.getByTestId("conn-role").getAttribute("data-role"), "worker");
      assert.equal(await text("conn-role", p), "a shared worker");
      await p.waitForFunction(() => !/—/.test(document.querySelector('[data-testid="temp-CNC-003"]').textContent));
    }
    // This context's two tabs add one socket to the other context's one.
    assert.equal(await wsConnections(), 2);
    await tabs[0].screenshot({ path: path.join(shots, "1c-shared-worker.png"), fullPage: true });
  } finally {
    await own.close();
  }
});

test("offline then online reconnects at once, without a gap in seq", async () => {
  const before = await stats();
  let t = Date.now();
  await context.setOffline(true);
  await waitBadge(/Reconnecting/, 5000);
  timings.offlineToReconnectingBadge = Date.now() - t;
  await shot("2-offline");
  await new Promise((r) => setTimeout(r, 1500)); // let the feeds move on while offline
  t = Date.now();
  await context.setOffline(false);
  await waitBadge(/Connected|Live Data/, 10000);
  timings.onlineToConnected = Date.now() - t;
  // The backoff's first delay is at least 1 s; `online` must skip it.
  assert.ok(timings.onlineToConnected < 900, `reconnected after ${timings.onlineToConnected} ms`);
  await waitBadge(/Live Data/);
  await page.waitForFunction((n) => window.__hublinkStats.recovered >= n + 6, before.recovered);
  const after = await stats();
  assert.equal(after.seqBreaks, 0, "no seq skipped across the drop");
  assert.equal(after.gaps, before.gaps, "no gap reported");
  assert.ok(after.messages > before.messages);
  await shot("3-back-online");
});

test("server killed: Reconnecting with attempt numbers; server back: Connected, resubscribed", async () => {
  let t = Date.now();
  server.kill("SIGKILL");
  await waitBadge(/Reconnecting \(attempt \d+\)/, 10000);
  timings.killToReconnectingBadge = Date.now() - t;
  await waitBadge(/Reconnecting \(attempt [2-9]\)/, 20000);
  assert.equal(await text("conn-state"), "reconnecting");
  assert.match(await text("conn-attempt"), /^[2-9]\d* · next in \d+\.\d s$/);
  // The readings on screen are the last known ones: dimmed, not shown as live.
  assert.ok(Number(await page.locator(".machines").evaluate((e) => getComputedStyle(e).opacity)) < 1);
  await shot("4-server-down");
  const attempts = Number(await badge().getAttribute("data-attempt"));
  assert.ok(attempts >= 2);
  const before = await stats();
  t = Date.now();
  server = await startServer();
  await waitBadge(/Live Data/, 40000);
  timings.serverBackToLiveData = Date.now() - t;
  // An in-memory server that restarts starts new epochs: the page reports the
  // reset honestly (recovery "lost": refetch) rather than a seamless recovery.
  await page.waitForFunction((n) => window.__hublinkStats.lost >= n + 7, before.lost, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="orders"] li').length >= 1);
  await shot("5-server-back");
});
