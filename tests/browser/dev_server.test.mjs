// The README's main command (scripts/demo) serves the dashboard with Vite's
// dev server, not a production build: the wasm module is then fetched from the
// linked package outside the app's root. This checks that path end to end: a
// 403 there once left the page "Disconnected" while every other test passed.
//
// Needs: target/release/hublink-server, built pkg/ (scripts/test-browser builds both).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, "tools/node/package.json"));
const { chromium } = require("playwright-core");
const shots = path.join(root, "target/browser-screenshots");
mkdirSync(shots, { recursive: true });

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let server, web, browser;
const pageErrors = [];

before(async () => {
  const serverPort = await freePort();
  const webPort = await freePort();
  server = spawn(path.join(root, "target/release/hublink-server"),
    ["--demo", "--listen", `127.0.0.1:${serverPort}`, "--demo-machine-period", "300ms"],
    { stdio: ["ignore", "pipe", "pipe"] });
  const token = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const m = out.match(/demo token[^:]*:\s*(\S+)/);
      if (m) resolve(m[1]);
    };
    server.stdout.on("data", onData);
    server.stderr.on("data", onData);
    server.on("exit", (code) => reject(new Error(`hublink-server exited (${code}): ${out}`)));
  });
  web = spawn(path.join(root, "examples/react-dashboard/node_modules/.bin/vite"),
    ["--port", String(webPort), "--strictPort", "--host", "127.0.0.1"], {
      cwd: path.join(root, "examples/react-dashboard"),
      env: { ...process.env, HUBLINK_SERVER: `127.0.0.1:${serverPort}` },
      stdio: "ignore",
    });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  globalThis.url = `http://127.0.0.1:${webPort}/?token=${token}`;
  const end = Date.now() + 30000;
  for (;;) {
    try {
      if ((await fetch(globalThis.url)).ok) break;
    } catch {}
    if (Date.now() > end) throw new Error("vite dev server did not answer");
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  await browser?.close();
  web?.kill();
  server?.kill();
});

test("the dev server the README's run command uses serves a live page", async () => {
  const page = await browser.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(globalThis.url);
  await page.waitForFunction(
    () => /Live Data|Connected/.test(document.querySelector('[data-testid="status"]')?.textContent ?? ""),
    null, { timeout: 30000, polling: 50 });
  await page.waitForFunction(() => !/—/.test(document.querySelector('[data-testid="temp-CNC-001"]').textContent),
    null, { timeout: 15000, polling: 50 });
  await page.screenshot({ path: path.join(shots, "dev-server-live.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
