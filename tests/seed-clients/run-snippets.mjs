// Runs every seed snippet (snippets.mjs) in Node, each in a fresh global scope
// (node:vm) whose WebSocket is the `ws` package behind the recording shim, as
// the Node.js the documents mention (001: "In browser console or Node.js").
//
//   node tests/seed-clients/run-snippets.mjs ws://127.0.0.1:PORT JWT_SECRET [name-substring]
//
// The server is a hublink-server started with SERVER_ARGS; JWT_SECRET is the
// one its --demo banner printed. Prints `OK name` or
// `FAIL name: problem` per snippet; exits 1 if any failed.
import vm from 'node:vm';
import { WebSocket as WS } from './lib.mjs';
import {
  SNIPPETS, SEED_TOKEN_CLAIMS, installShim, mintToken, newRecord, readFixture, framesNotJson,
} from './snippets.mjs';

const base = process.argv[2];
const secret = process.argv[3];
const only = process.argv[4];
if (!base || !secret) {
  console.error('usage: run-snippets.mjs ws://HOST:PORT JWT_SECRET [name-substring]');
  process.exit(2);
}
const seedToken = mintToken(secret, SEED_TOKEN_CLAIMS);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(spec) {
  const rec = newRecord();
  const store = Object.fromEntries(
    Object.entries(spec.localStorage || {}).map(([k, v]) => [k, v === 'SEED_TOKEN' ? seedToken : v]),
  );
  const timers = [];
  const guard = (fn) => (...a) => {
    try { fn(...a); } catch (e) { rec.errors.push(`${e.name}: ${e.message}`); }
  };
  const sandbox = {
    console: { log() {}, warn() {}, error() {} },
    localStorage: { getItem: (k) => (k in store ? store[k] : null), setItem: (k, v) => { store[k] = String(v); } },
    setTimeout: (fn, ms, ...a) => { const t = setTimeout(guard(fn), ms, ...a); timers.push(t); return t; },
    setInterval: (fn, ms, ...a) => { const t = setInterval(guard(fn), ms, ...a); timers.push(t); return t; },
    clearTimeout, clearInterval, URL,
  };
  installShim(sandbox, WS, base, rec, true);
  const ctx = vm.createContext(sandbox);
  for (const step of spec.steps) {
    if (step.waitOpen) {
      const end = Date.now() + 5000;
      while (!rec.sockets.some((s) => s.opened) && Date.now() < end) await sleep(20);
      continue;
    }
    const src = step.file ? readFixture(step.file) : step.code;
    try {
      vm.runInContext(src, ctx, { filename: step.file || 'scaffolding.js' });
    } catch (e) {
      rec.errors.push(`${e.name}: ${e.message}`);
    }
  }
  await sleep(spec.runMs);
  for (const g of spec.collect || []) rec.globals[g] = JSON.parse(JSON.stringify(ctx[g] ?? null));
  const found = [...spec.check(rec), ...framesNotJson(rec).slice(0, 3).map((f) => `frame is not one JSON message: ${f}`)];
  for (const t of timers) { clearTimeout(t); clearInterval(t); }
  return { spec, rec, found };
}

const results = await Promise.all(SNIPPETS.filter((s) => !only || s.name.includes(only)).map(run));
let failed = 0;
for (const { spec, rec, found } of results) {
  if (found.length === 0) {
    console.log(`OK ${spec.name}`);
  } else {
    failed++;
    console.log(`FAIL ${spec.name}:\n  - ${found.join('\n  - ')}`);
    console.log(`  log: ${JSON.stringify(rec.logs.slice(0, 4)).slice(0, 800)}`);
  }
}
process.exit(failed ? 1 : 0);
