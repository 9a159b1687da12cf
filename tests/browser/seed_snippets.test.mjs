// The seed documents' own browser code (tests/seed-clients/snippets/, each a
// document's block byte for byte) in headless Chromium against a real
// hublink-server --demo: each snippet runs as a classic <script> in a fresh
// page, as a console paste runs, with the native WebSocket sent to the test
// server (tests/seed-clients/snippets.mjs says what else, per snippet), and
// must do what its document says. The same specs run in Node from
// `cargo test -p hublink-server --test node_seed_clients`.
//
// Needs: target/release/hublink-server (scripts/test-browser builds it), or
// the binary named by HUBLINK_SERVER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  SNIPPETS, SERVER_ARGS, SEED_TOKEN_CLAIMS, installShim, mintToken, newRecord, parseDemoBanner, readFixture, framesNotJson,
} from "../seed-clients/snippets.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, "tools/node/package.json"));
const { chromium } = require("playwright-core");

// The page: an empty document from a loopback HTTP server of this test.
// localStorage needs a real origin, an https page could not open ws://, and
// Chromium's local network access checks refuse a loopback WebSocket to a page
// that Playwright answers itself (it has no address).
let pageUrl, pageServer;
let server, browser, banner, seedToken;
const results = new Map();

async function run(spec) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`${e.name}: ${e.message}`));
  const storage = Object.fromEntries(Object.entries(spec.localStorage || {}).map(([k, v]) => [k, v === "SEED_TOKEN" ? seedToken : v]));
  await page.addInitScript({
    content: `window.__seedRec = ${JSON.stringify(newRecord())};
      (${installShim})(window, window.WebSocket, ${JSON.stringify(banner.base)}, window.__seedRec, false);
      for (const [k, v] of Object.entries(${JSON.stringify(storage)})) localStorage.setItem(k, v);`,
  });
  await page.goto(pageUrl);
  for (const step of spec.steps) {
    if (step.waitOpen) {
      await page.waitForFunction(() => window.__seedRec.sockets.some((s) => s.opened), null, { timeout: 5000 });
      continue;
    }
    await page.addScriptTag({ content: step.file ? readFixture(step.file) : step.code });
  }
  await new Promise((r) => setTimeout(r, spec.runMs));
  const rec = await page.evaluate((collect) => {
    const r = window.__seedRec;
    for (const g of collect) r.globals[g] = JSON.parse(JSON.stringify(window[g] ?? null));
    return JSON.parse(JSON.stringify(r));
  }, spec.collect || []);
  rec.errors.push(...errors);
  await context.close();
  return { rec, found: [...spec.check(rec), ...framesNotJson(rec).slice(0, 3).map((f) => `frame is not one JSON message: ${f}`)] };
}

before(async () => {
  pageServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>seed frontend</title>");
  });
  await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
  pageUrl = `http://127.0.0.1:${pageServer.address().port}/`;
  server = spawn(process.env.HUBLINK_SERVER_BIN || path.join(root, "target/release/hublink-server"), [...SERVER_ARGS, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  banner = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const b = parseDemoBanner(out);
      if (b) resolve(b);
    };
    server.stdout.on("data", onData);
    server.stderr.on("data", () => {});
    server.on("exit", (code) => reject(new Error(`hublink-server exited (${code}): ${out}`)));
  });
  seedToken = mintToken(banner.secret, SEED_TOKEN_CLAIMS);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // All at once: each waits a few seconds on its feeds.
  await Promise.all(SNIPPETS.map(async (spec) => results.set(spec.name, await run(spec).catch((e) => ({ rec: null, found: [String(e)] })))));
});

after(async () => {
  await browser?.close();
  server?.kill();
  pageServer?.close();
});

for (const spec of SNIPPETS) {
  test(`seed snippet in Chromium: ${spec.name}`, () => {
    const { rec, found } = results.get(spec.name);
    assert.deepEqual(found, [], `log: ${JSON.stringify(rec?.logs.slice(0, 4)).slice(0, 600)}`);
  });
}
