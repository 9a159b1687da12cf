// Shared by the fixture-app tests: a real hublink-server --demo, a front server
// (static files or a proxied app, plus /ws upgrades to hublink-server, each
// upgrade's URL recorded), headless Chromium, and running the fixtures' tools.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createHmac } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const apps = path.join(root, "tests/browser/apps");
const require = createRequire(path.join(root, "tools/node/package.json"));
const { chromium } = require("playwright-core");

export const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

export async function waitHttp(url, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {}
    if (Date.now() > end) throw new Error(`${url} did not answer`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const secret = "fixture-secret-fixture-secret-fixture";
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An HS256 token hublink-server (started by {@link startHublink}) accepts. */
export function jwt(claims) {
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** The `sub` of the token in an upgrade's URL (null without one). */
export function subOf(url) {
  const token = new URL(url, "http://x").searchParams.get("token");
  return token && JSON.parse(Buffer.from(token.split(".")[1], "base64url")).sub;
}

/** hublink-server --demo on a free port: tokens (see {@link jwt}) are verified, none is needed on /ws. */
export async function startHublink(extra = []) {
  const port = await freePort();
  const spawnServer = () =>
    spawn(path.join(root, "target/release/hublink-server"),
      ["--demo", "--listen", `127.0.0.1:${port}`, "--demo-machine-period", "100ms", "--jwt-secret", secret, "--anonymous-endpoints", "ws", ...extra],
      { stdio: "ignore" });
  let proc = spawnServer();
  await waitHttp(`http://127.0.0.1:${port}/metrics`);
  const metric = async (re) => Number((await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).match(re)[1]);
  return {
    port,
    kill: () => proc.kill(),
    /** Stops the server (SIGKILL: no goodbye to the clients) and starts a new one on the same port. */
    async restart() {
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await gone;
      proc = spawnServer();
      await waitHttp(`http://127.0.0.1:${port}/metrics`);
    },
    /** WebSockets open on /ws right now. */
    connections: () => metric(/hublink_connections\{endpoint="ws"\} (\d+)/),
    /** Subscriptions over all connections, as the server counts them. */
    subscriptions: () => metric(/^hublink_subscriptions (\d+)/m),
  };
}

const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".json": "application/json" };

/**
 * The page's origin: files from `dir`, or everything from the app on `appPort`;
 * WebSocket upgrades on /ws go to hublink-server, as a reverse proxy would.
 * `blackhole()` silences the upgraded connections open at that moment, as
 * tests/src/proxy.rs `Mode::Blackhole` does (kept open, nothing forwarded
 * either way: a NAT that lost its mapping); later upgrades pass.
 * `deafen()` stops only what the server sends on the connections open at
 * that moment (the browser's frames still reach it: answers are lost);
 * `refuse(true)` drops new upgrades until `refuse(false)`.
 */
export async function startFront({ dir, appPort, wsPort }) {
  const upgrades = [];
  const tunnels = new Set();
  const held = [];
  let refusing = false;
  const server = http.createServer((req, res) => {
    if (appPort) {
      const up = http.request({ host: "127.0.0.1", port: appPort, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
      return;
    }
    if (req.url === "/favicon.ico") return res.writeHead(204).end();
    let file = path.join(dir, decodeURIComponent(new URL(req.url, "http://x").pathname));
    try {
      if (statSync(file).isDirectory()) file = path.join(file, "index.html");
      statSync(file);
    } catch {
      return res.writeHead(404).end();
    }
    res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  server.on("upgrade", (req, socket, head) => {
    if (!req.url.startsWith("/ws") || refusing) return socket.destroy();
    upgrades.push(req.url);
    const up = net.connect(wsPort, "127.0.0.1", () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join("\r\n") + "\r\n\r\n");
      up.write(head);
      up.pipe(socket).pipe(up);
    });
    const tunnel = { up, socket };
    tunnels.add(tunnel);
    up.on("close", () => tunnels.delete(tunnel));
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${port}`,
    upgrades,
    /** Silences every upgraded connection open now; returns how many. */
    blackhole() {
      for (const { up, socket } of tunnels) {
        // Neither read nor forward: the bytes stay in the kernel's buffers.
        up.unpipe(socket);
        socket.unpipe(up);
        up.pause();
        socket.pause();
      }
      const n = tunnels.size;
      held.push(...tunnels);
      tunnels.clear();
      return n;
    },
    /** Drops what the server sends on every upgraded connection open now; returns how many. */
    deafen() {
      for (const { up } of tunnels) {
        up.unpipe();
        up.on("data", () => {});
      }
      const n = tunnels.size;
      held.push(...tunnels);
      tunnels.clear();
      return n;
    },
    /** Refuses (closes) every new upgrade while `on`. */
    refuse(on) {
      refusing = on;
    },
    close: () => {
      for (const { up, socket } of held) up.destroy(), socket.destroy();
      server.closeAllConnections?.();
      server.close();
    },
  };
}

/** Headless Chromium; `{ bfcache: true }` keeps the back/forward cache, which Playwright turns off by default. */
export const launch = ({ bfcache = false } = {}) =>
  chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    ignoreDefaultArgs: bfcache ? ["--disable-back-forward-cache"] : [],
  });

/** A new page that collects uncaught errors, unhandled rejections and console errors. */
export async function errorPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // A failed response is reported below with its URL.
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return { page, errors };
}

/** Runs a fixture tool from apps/node_modules/.bin; rejects with its output on failure. */
export function run(tool, args, { cwd, env } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(apps, "node_modules/.bin", tool), args, { cwd, env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${tool} ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

/** Starts a long-running fixture tool; `kill()` stops it. */
export function serve(tool, args, { cwd, env } = {}) {
  const p = spawn(path.join(apps, "node_modules/.bin", tool), args, { cwd, env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1", ...env }, stdio: "ignore" });
  return { kill: () => p.kill() };
}

/** Polls `cond` in the page until true. */
export const until = (page, cond, arg, ms = 15000) => page.waitForFunction(cond, arg, { timeout: ms, polling: 25 });
