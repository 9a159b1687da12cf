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
    "--demo-order-period", "400ms", "--demo-power-period", "500ms", "--jwt-secret", "e2e-secret-e2e-secret-e2e-secret"], {
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
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
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
  await shot("1-live");
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
