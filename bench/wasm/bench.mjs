// The wasm figure: the npm package's gzipped size, and messages per second
// delivered to a JS callback in headless Chromium, through `hublink`
// (createClient + subscribe) and through a plain WebSocket + JSON.parse, fed
// the same frames by the same local server in the same run.
//
// Usage: node bench/wasm/bench.mjs OUT_JSON [MESSAGES] [RUNS]
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname, extname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(join(root, "tools/node/package.json"));
const { WebSocketServer } = require("ws");
const { chromium } = require("playwright-core");

const out = process.argv[2];
const N = Number(process.argv[3] || 100000);
const RUNS = Number(process.argv[4] || 3);

// ---- size: what a page loads (wasm module, wasm-bindgen glue, the TS layer)
const files = ["pkg/wasm/hublink_wasm_bg.wasm", "pkg/wasm/hublink_wasm.js", "pkg/dist/index.js"];
const sizes = {};
let gz = 0;
for (const f of files) {
  const b = readFileSync(join(root, f));
  const g = gzipSync(b, { level: 9 }).length;
  sizes[f] = { bytes: b.length, gzip: g };
  gz += g;
}

// ---- the same ~250-byte message frames for both pages
const pad = "x".repeat(120);
const frames = [];
for (let i = 1; i <= N; i++) {
  frames.push(JSON.stringify({
    type: "message", topic: "bench", seq: i, epoch: "e1",
    data: { i, machine: "CNC-001", temperature: 25.5, pad }, timestamp: 1763769600000 + i,
  }));
}

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { createClient } from "/pkg/dist/index.js";
window.runHublink = (n) => new Promise((resolve) => {
  let c = 0, t0 = 0, sum = 0;
  const client = createClient("ws://" + location.host + "/ws");
  client.subscribe("bench", (data) => {
    if (c === 0) t0 = performance.now();
    sum += data.i; c++;
    if (c === n) { const s = (performance.now() - t0) / 1000; client.close(); resolve({ rate: (n - 1) / s, sum }); }
  });
});
window.runPlain = (n) => new Promise((resolve) => {
  let c = 0, t0 = 0, sum = 0;
  const handler = (data) => { sum += data.i; };
  const ws = new WebSocket("ws://" + location.host + "/plain");
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type !== "message") return;
    if (c === 0) t0 = performance.now();
    handler(m.data); c++;
    if (c === n) { const s = (performance.now() - t0) / 1000; ws.close(); resolve({ rate: (n - 1) / s, sum }); }
  };
});
window.ready = true;
</script>`;

const mime = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const http = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end(page);
  }
  if (url.pathname.startsWith("/pkg/")) {
    try {
      const body = readFileSync(join(root, url.pathname));
      res.writeHead(200, { "content-type": mime[extname(url.pathname)] || "application/octet-stream" });
      return res.end(body);
    } catch {}
  }
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({
  server: http,
  handleProtocols: (protocols) => (protocols.has("hublink.v1") ? "hublink.v1" : false),
});
const blast = (ws) => { for (const f of frames) ws.send(f); };
wss.on("connection", (ws, req) => {
  if (req.url.startsWith("/plain")) return blast(ws);
  ws.send(JSON.stringify({ type: "connected", client_id: "c-bench", heartbeat_interval: 30, server_time: Date.now(), protocol: "hublink.v1" }));
  ws.on("message", (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.type === "subscribe") {
      ws.send(JSON.stringify({ type: "subscribe_ack", topic: m.topic, success: true, epoch: "e1", seq: 0 }));
      blast(ws);
    }
  });
});
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const port = http.address().port;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const result = { gzip_bytes: gz, files: sizes, messages: N, runs: [] };
try {
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${port}/`);
  await tab.waitForFunction(() => window.ready === true);
  const expectSum = (N * (N + 1)) / 2;
  for (let r = 0; r < RUNS; r++) {
    const h = await tab.evaluate((n) => window.runHublink(n), N);
    const p = await tab.evaluate((n) => window.runPlain(n), N);
    if (h.sum !== expectSum || p.sum !== expectSum) {
      throw new Error(`messages lost or duplicated: sums ${h.sum} / ${p.sum}, expected ${expectSum}`);
    }
    result.runs.push({ hublink: h.rate, plain: p.rate });
    console.error(`wasm run ${r + 1}: hublink ${h.rate.toFixed(0)}/s, plain ${p.rate.toFixed(0)}/s`);
  }
} finally {
  await browser.close();
  http.close();
  wss.close();
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
result.hublink_msgs_per_s = med(result.runs.map((r) => r.hublink));
result.plain_msgs_per_s = med(result.runs.map((r) => r.plain));
writeFileSync(out, JSON.stringify(result));
process.exit(0);
