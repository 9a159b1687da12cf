// The browser figure: messages per second delivered to a JS callback in
// headless Chromium, through `hublink` (createClient + subscribe) and through a
// plain WebSocket + JSON.parse + callback, fed the same frames by the same
// local server in the same run, for three shapes: ~250-byte messages, 2 KB
// messages, and `\n`-batched frames (10 ~250-byte messages per frame).
//
// Chromium is driven over the bare DevTools protocol (Runtime.evaluate only):
// no Network domain, so no per-frame event goes to this process. Driven by
// Playwright, Chromium reports every WebSocket frame to the driver, and the
// plain page tops out near 6,000 messages/s, measuring the reporting instead.
//
// Usage: node bench/wasm/bench.mjs OUT_JSON [MESSAGES] [RUNS]
import { createRequire } from "node:module";
import { createServer, get as httpGet } from "node:http";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, extname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(join(root, "tools/node/package.json"));
const { WebSocketServer, WebSocket } = require("ws");

const out = process.argv[2];
const N = Number(process.argv[3] || 100000);
const RUNS = Number(process.argv[4] || 3);
const BATCH = 10;

// ---- the frames: the same messages for both pages
function messages(padLen) {
  const pad = "x".repeat(padLen);
  const list = [];
  for (let i = 1; i <= N; i++) {
    list.push(JSON.stringify({
      type: "message", topic: "bench", seq: i, epoch: "e1",
      data: { i, machine: "CNC-001", temperature: 25.5, pad }, timestamp: 1763769600000 + i,
    }));
  }
  return list;
}
const small = messages(120);
const shapes = {
  "250B": { frames: small, bytes: small[0].length },
  "2KB": { frames: messages(1900), bytes: 0 },
  batched: { frames: [], bytes: small[0].length },
};
shapes["2KB"].bytes = shapes["2KB"].frames[0].length;
for (let i = 0; i < N; i += BATCH) shapes.batched.frames.push(small.slice(i, i + BATCH).join("\n"));

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { createClient } from "/pkg/dist/index.js";
const done = (n, t0, sum, close, resolve) => { const s = (performance.now() - t0) / 1000; close(); resolve({ rate: (n - 1) / s, sum }); };
window.runHublink = (shape, n) => new Promise((resolve) => {
  let c = 0, t0 = 0, sum = 0;
  const client = createClient("ws://" + location.host + "/ws?" + shape);
  client.subscribe("bench", (data) => {
    if (c === 0) t0 = performance.now();
    sum += data.i; c++;
    if (c === n) done(n, t0, sum, () => client.close(), resolve);
  });
});
window.runPlain = (shape, n) => new Promise((resolve) => {
  let c = 0, t0 = 0, sum = 0;
  const handler = (data) => { sum += data.i; };
  const ws = new WebSocket("ws://" + location.host + "/plain?" + shape);
  const one = (m) => {
    if (m.type !== "message") return;
    if (c === 0) t0 = performance.now();
    handler(m.data); c++;
    if (c === n) done(n, t0, sum, () => ws.close(), resolve);
  };
  ws.onmessage = shape === "batched"
    ? (e) => { for (const line of e.data.split("\\n")) one(JSON.parse(line)); }
    : (e) => one(JSON.parse(e.data));
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
const blast = (ws, shape) => { for (const f of shapes[shape].frames) ws.send(f); };
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://x");
  const shape = url.search.slice(1);
  if (url.pathname === "/plain") return blast(ws, shape);
  ws.send(JSON.stringify({ type: "connected", client_id: "c-bench", heartbeat_interval: 30, server_time: Date.now(), protocol: "hublink.v1" }));
  ws.on("message", (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.type === "subscribe") {
      ws.send(JSON.stringify({ type: "subscribe_ack", topic: m.topic, success: true, epoch: "e1", seq: 0 }));
      blast(ws, shape);
    }
  });
});
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const port = http.address().port;

// ---- Chromium over bare CDP
const profile = mkdtempSync(join(tmpdir(), "hublink-bench-chromium-"));
// Chromium on core 0, this process (the server) on core 1 (bench/wasm/run).
const chromium = spawn("taskset", ["-c", "0", "/usr/bin/chromium",
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-extensions", `--user-data-dir=${profile}`, "--remote-debugging-port=0",
  `http://127.0.0.1:${port}/`,
], { stdio: ["ignore", "ignore", "pipe"] });
chromium.stderr.resume();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const getJson = (url) => new Promise((resolve, reject) => {
  httpGet(url, (res) => {
    let body = "";
    res.on("data", (d) => (body += d));
    res.on("end", () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
  }).on("error", reject);
});

let cdp;
let nextId = 1;
const waiting = new Map();
function send(method, params = {}) {
  const id = nextId++;
  cdp.send(JSON.stringify({ id, method, params }));
  return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
}
async function evaluate(expression) {
  const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) throw new Error(`in the page: ${JSON.stringify(r.exceptionDetails).slice(0, 400)}`);
  return r.result.value;
}

const result = { messages: N, batch: BATCH, driver: "bare CDP (Runtime only)", shapes: {} };
try {
  const portFile = join(profile, "DevToolsActivePort");
  for (let i = 0; i < 200 && !existsSync(portFile); i++) await sleep(50);
  const debugPort = readFileSync(portFile, "utf8").split("\n")[0];
  let target;
  for (let i = 0; i < 100 && !target; i++) {
    const list = await getJson(`http://127.0.0.1:${debugPort}/json/list`);
    target = list.find((t) => t.type === "page" && t.url.startsWith(`http://127.0.0.1:${port}`));
    if (!target) await sleep(50);
  }
  cdp = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => { cdp.on("open", resolve); cdp.on("error", reject); });
  cdp.on("message", (raw) => {
    const m = JSON.parse(raw.toString());
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(m.error.message));
    else w.resolve(m.result);
  });
  for (let i = 0; i < 200 && !(await evaluate("window.ready === true")); i++) await sleep(50);
  const expectSum = (N * (N + 1)) / 2;
  for (const shape of Object.keys(shapes)) result.shapes[shape] = { frame_bytes: shapes[shape].bytes, runs: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const shape of Object.keys(shapes)) {
      const h = await evaluate(`window.runHublink(${JSON.stringify(shape)}, ${N})`);
      const p = await evaluate(`window.runPlain(${JSON.stringify(shape)}, ${N})`);
      if (h.sum !== expectSum || p.sum !== expectSum) {
        throw new Error(`${shape}: messages lost or duplicated: sums ${h.sum} / ${p.sum}, expected ${expectSum}`);
      }
      result.shapes[shape].runs.push({ hublink: h.rate, plain: p.rate, ratio: h.rate / p.rate });
      console.error(`wasm run ${r + 1} ${shape}: hublink ${h.rate.toFixed(0)}/s, plain ${p.rate.toFixed(0)}/s, ${(h.rate / p.rate).toFixed(2)}x`);
    }
  }
} finally {
  cdp?.close();
  chromium.kill();
  await new Promise((r) => chromium.once("exit", r));
  rmSync(profile, { recursive: true, force: true });
  http.close();
  wss.close();
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
for (const s of Object.values(result.shapes)) {
  s.hublink_msgs_per_s = med(s.runs.map((r) => r.hublink));
  s.plain_msgs_per_s = med(s.runs.map((r) => r.plain));
  s.ratio = med(s.runs.map((r) => r.ratio));
}
writeFileSync(out, JSON.stringify(result));
process.exit(0);
