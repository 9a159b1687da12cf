// The seed documents' own client code, run as written against a real
// hublink-server --demo: which fixture, the least scaffolding it needs, and
// what the document says should happen. Shared by the Node runner
// (run-snippets.mjs, from `cargo test`) and the Chromium one
// (tests/browser/seed_snippets.test.mjs, from scripts/test-browser).
//
// Scaffolding never edits a snippet's text. The only things a harness adds:
// - `WebSocket` sends every connection to the test server (the snippets name
//   ws://localhost:8080, ws://your-server, wss://xyz789.execute-api...) and
//   records what opens, arrives, leaves and closes; nothing else changes.
// - globals a fragment takes from its surroundings (`socket`, `orderId`,
//   React's `useEffect`), and localStorage's `authToken`; each is named in its spec.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// The server every snippet runs against: --demo, with faster feeds than the
// defaults only so that a run of a few seconds sees several of each: machines
// every 200 ms (default 5 s), orders and topic events every 300 ms (3 s),
// heartbeats every second (30 s, the seeds' own period too).
export const SERVER_ARGS = [
  '--demo', '--demo-machine-period', '200ms', '--demo-order-period', '300ms', '--heartbeat-interval', '1s',
];

// What --demo prints: the address, and the JWT secret it generated (tokens
// shaped like the seed's are minted with it).
export function parseDemoBanner(text) {
  const addr = text.match(/demo mode on http:\/\/(\S+)/)?.[1];
  const secret = text.match(/generated dev JWT secret[^:]*:\s*(\S+)/)?.[1];
  return addr && secret ? { base: `ws://${addr}`, secret } : null;
}

// A token as the serverless seed (003) mints it: `userId`, `branchId` and
// `role`, the names its getStatus reply and broadcast helpers use; the ids are
// those of the document's getRooms answer.
export const SEED_TOKEN_CLAIMS = { userId: 'def456', branchId: 'abc123', role: 'admin' };

export function mintToken(secret, claims) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, iat: now, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

export function readFixture(file) {
  return readFileSync(path.join(here, file), 'utf8');
}

// Installs the WebSocket stand-in on `global`. Serialised into the browser
// with toString(), so it uses nothing from this module. `wrapHandlers` (Node):
// an exception in an `on*` handler is recorded, as a browser reports it, rather
// than taking the process down.
export function installShim(global, Native, base, rec, wrapHandlers) {
  class WebSocket extends Native {
    constructor(url, protocols) {
      const u = new URL(url);
      const target = `${base}${u.pathname}${u.search}`;
      super(target, protocols);
      const s = { url: String(url), target, opened: false, received: [], sent: [], closed: null };
      rec.sockets.push(s);
      this.__seed = s;
      this.addEventListener('open', () => { s.opened = true; });
      this.addEventListener('message', (e) => { s.received.push(String(e.data)); });
      this.addEventListener('close', (e) => { s.closed = e.code; });
      // A browser reports a failed connection through onerror, if set, and
      // carries on; `ws` throws when nothing listens. Listen.
      this.addEventListener('error', () => { s.errored = true; });
    }
    send(data) {
      super.send(data);
      this.__seed.sent.push(String(data));
    }
  }
  if (wrapHandlers) {
    for (const ev of ['open', 'message', 'error', 'close']) {
      Object.defineProperty(WebSocket.prototype, `on${ev}`, {
        configurable: true,
        get() { return this[`__on${ev}`] ?? null; },
        set(fn) {
          const prev = this[`__wrapped${ev}`];
          if (prev) this.removeEventListener(ev, prev);
          this[`__on${ev}`] = fn;
          if (typeof fn !== 'function') return;
          const wrapped = (e) => {
            try { fn.call(this, e); } catch (err) { rec.errors.push(`${err && err.name}: ${err && err.message}`); }
          };
          this[`__wrapped${ev}`] = wrapped;
          this.addEventListener(ev, wrapped);
        },
      });
    }
  }
  global.WebSocket = WebSocket;
  const safe = (a) => {
    if (a === null || typeof a !== 'object') return a;
    try { return JSON.parse(JSON.stringify(a)); } catch { return String(a); }
  };
  const c = global.console;
  for (const level of ['log', 'warn', 'error']) {
    const orig = c[level].bind(c);
    c[level] = (...args) => {
      rec.logs.push({ level, args: args.map(safe) });
      if (rec.echo) orig(...args);
    };
  }
}

export const newRecord = () => ({ logs: [], errors: [], sockets: [], globals: {} });

// A run is a list of steps: `file` (a fixture, run as a classic script in the
// page's / context's global scope, as a console paste runs), `code`
// (scaffolding), `waitOpen` (until a socket is open). Then `runMs` of letting
// it live, then `check(rec)` returns the problems found.
export const SNIPPETS = [
  {
    name: '000 browser developer tools',
    steps: [{ file: 'snippets/000-browser-developer-tools.js' }],
    runMs: 3000,
    check(rec) {
      const p = problems(rec);
      p.once('Connected');
      p.noErrors();
      p.none('Error:');
      const got = p.all('Received:');
      if (got.length < 10) p.add(`only ${got.length} "Received:" lines in 3 s (demo machines every 200 ms)`);
      for (const [, m] of got) {
        if (!['sensor_data', 'machine_status'].includes(m?.type) || typeof m.data !== 'object' || typeof m.timestamp !== 'string') {
          p.add(`not a Go-hub message: ${JSON.stringify(m)}`);
          break;
        }
      }
      return p.list;
    },
  },
  {
    name: '001 testing websocket connection',
    steps: [{ file: 'snippets/001-testing-websocket-connection.js' }],
    runMs: 3000,
    check(rec) {
      const p = problems(rec);
      p.once('Connected!');
      p.noErrors();
      p.none('Error:');
      p.none('Disconnected');
      const msgs = p.all('Received:').map(([, m]) => m);
      for (const t of ['connected', 'system-info', 'processes', 'history', 'network-interfaces']) {
        if (!msgs.some((m) => m?.type === t)) p.add(`no "${t}" message`);
      }
      const c = msgs.find((m) => m?.type === 'connected');
      if (c && c.data?.deviceUuid !== 'YOUR-DEVICE-UUID') p.add(`connected names ${c.data?.deviceUuid}`);
      const h = msgs.find((m) => m?.type === 'history');
      // The seed labels points with toLocaleTimeString('en-US', {hour:'2-digit', minute:'2-digit'}).
      const label = h?.data?.cpu?.[0]?.time;
      if (h && !/^\d\d:\d\d [AP]M$/.test(label)) p.add(`history time ${JSON.stringify(label)} is not like "02:30 PM"`);
      return p.list;
    },
  },
  {
    name: '002 basic connection',
    steps: [{ file: 'snippets/002-basic-connection.js' }],
    runMs: 2500,
    check(rec) {
      const p = problems(rec);
      p.once('Connected to WebSocket server');
      p.noErrors();
      p.none('Disconnected from WebSocket server');
      p.none('WebSocket error:');
      const msgs = p.all('Message from server:').map(([, m]) => m);
      const c = msgs[0];
      if (c?.type !== 'connected' || typeof c.client_id !== 'string' || !(c.timestamp < 1e10)) {
        p.add(`first message is not the documented connected: ${JSON.stringify(c)}`);
      }
      if (!msgs.some((m) => m?.type === 'heartbeat' && Number.isInteger(m.timestamp))) p.add('no heartbeat');
      return p.list;
    },
  },
  {
    name: '002 subscribing to topics',
    steps: [{ file: 'snippets/002-subscribing-to-topics.js' }],
    runMs: 2500,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      for (const t of ['task_completion_update', 'event_updates', 'central_ABC123']) p.once(`Subscribed to ${t}`);
      const tasks = p.all('Task update:');
      if (!tasks.length || typeof tasks[0][1]?.uuid !== 'string') p.add('no "Task update:" with the Events object');
      const events = p.all('Event update:');
      if (!events.length || typeof events[0][1]?.event_number !== 'number') p.add('no "Event update:" with its data');
      p.echoedHeartbeat();
      return p.list;
    },
  },
  {
    name: '002 heartbeat client-side',
    // The fragment handles messages on the `socket` of the examples around it,
    // which all open it so.
    steps: [{ code: "const socket = new WebSocket('ws://your-server/api/v1/ws/');" }, { file: 'snippets/002-heartbeat-client-side.js' }],
    runMs: 2500,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      p.echoedHeartbeat();
      return p.list;
    },
  },
  {
    name: '002 heartbeat monitoring',
    // The snippet defines connectWebSocket(); its onclose calls it again, the
    // document leaves the first call to the page.
    steps: [{ file: 'snippets/002-heartbeat-monitoring.js' }, { code: 'connectWebSocket();' }],
    runMs: 2500,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      p.none('No heartbeat received, reconnecting...');
      p.echoedHeartbeat();
      if (rec.sockets.length !== 1 || rec.sockets[0].closed !== null) p.add('the connection did not stay up');
      return p.list;
    },
  },
  {
    name: '002 reconnection handling',
    steps: [{ file: 'snippets/002-reconnection-handling.js' }],
    runMs: 2000,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      p.once('Connected to WebSocket server');
      p.none('Disconnected from WebSocket server');
      p.none('WebSocket error:');
      return p.list;
    },
  },
  {
    name: '002 debugging code',
    steps: [{ file: 'snippets/002-debugging.js' }],
    runMs: 2500,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      p.none('Error parsing message:');
      const raw = p.all('Message received:').length;
      const parsed = p.all('Parsed message:');
      if (raw < 2 || parsed.length !== raw) p.add(`${raw} messages received, ${parsed.length} parsed`);
      if (parsed[0]?.[1]?.type !== 'connected') p.add('the first message is not connected');
      return p.list;
    },
  },
  {
    name: '003 browser console + no events received',
    localStorage: { authToken: 'SEED_TOKEN' },
    steps: [
      // Its last statement sends before the socket is open, so pasting the
      // whole block throws (in any browser, against any server); the rest of
      // the block has run by then.
      { file: 'snippets/003-browser-console.js' },
      { waitOpen: true },
      // The troubleshooting fragment runs on the page's `ws` with an `orderId`
      // of the page; the id is the one of the document's wscat session.
      { code: "var orderId = '67890';" },
      { file: 'snippets/003-no-events-received.js' },
    ],
    runMs: 1500,
    check(rec) {
      const p = problems(rec);
      if (rec.errors.length !== 1 || !/CONNECTING/.test(rec.errors[0])) {
        p.add(`expected exactly the snippet's own send-while-CONNECTING error, got ${JSON.stringify(rec.errors)}`);
      }
      const opened = rec.logs.filter((l) => typeof l.args[0] === 'string' && l.args[0].endsWith(' Connected'));
      if (opened.length !== 1) p.add(`"Connected" logged ${opened.length} times`);
      const msgs = rec.logs.filter((l) => typeof l.args[0] === 'string' && l.args[0].endsWith(' Message:')).map((l) => l.args[1]);
      const pong = msgs.find((m) => m?.action === 'pong');
      if (!pong || typeof pong.timestamp !== 'string') p.add('no pong with a timestamp');
      const rooms = msgs.find((m) => m?.action === 'getRooms');
      const want = ['branch:abc123', 'user:def456', 'role:admin:abc123'];
      if (!sameJson(rooms, { action: 'getRooms', rooms: want, count: 3 })) {
        p.add(`getRooms answered ${JSON.stringify(rooms)}, the document shows rooms ${JSON.stringify(want)}`);
      }
      const sub = msgs.find((m) => m?.action === 'subscribe');
      if (!sameJson(sub, { action: 'subscribe', success: true, room: 'order:67890' })) {
        p.add(`subscribe answered ${JSON.stringify(sub)}`);
      }
      const errs = msgs.filter((m) => m?.type === 'error');
      if (errs.length) p.add(`error messages: ${JSON.stringify(errs)}`);
      return p.list;
    },
  },
  {
    name: '004 basic useEffect',
    // The smallest React: useEffect runs its effect once; setData keeps what
    // it is given. `url` is the document's own power URL (its wscat line).
    steps: [
      {
        code: [
          "var url = 'ws://localhost:8002/api/v1/ws/v2/power?module=4&interval=0.1';",
          'var __seedData = [];',
          'function setData(v) { __seedData.push(v); }',
          'function useEffect(effect, deps) { globalThis.__seedCleanup = effect(); }',
        ].join('\n'),
      },
      { file: 'snippets/004-basic-useeffect.js' },
    ],
    collect: ['__seedData'],
    runMs: 2000,
    check(rec) {
      const p = problems(rec);
      p.noErrors();
      const data = (rec.globals.__seedData || []).filter((m) => m?.type === 'data');
      if (data.length < 5) p.add(`setData got ${data.length} readings in 2 s (interval 0.1 s)`);
      const bad = data.find((m) => m.module !== 4 || typeof m.ch1_power !== 'number' || typeof m.timestamp !== 'number');
      if (bad) p.add(`not a documented reading: ${JSON.stringify(bad)}`);
      return p.list;
    },
  },
];

// Equal as JSON values: objects regardless of key order, arrays in order.
export function sameJson(a, b) {
  const canon = (v) => (Array.isArray(v) ? v.map(canon)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v);
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

function problems(rec) {
  const list = [];
  const all = (first) => rec.logs.filter((l) => l.args[0] === first).map((l) => l.args);
  return {
    list,
    add: (s) => list.push(s),
    all,
    once(first) {
      const n = all(first).length;
      if (n !== 1) list.push(`"${first}" logged ${n} times, not once`);
    },
    none(first) {
      const got = all(first);
      if (got.length) list.push(`"${first}" logged: ${JSON.stringify(got[0]).slice(0, 300)}`);
    },
    noErrors() {
      if (rec.errors.length) {
        list.push(`${rec.errors.length} uncaught errors, the first: ${rec.errors[0]}`);
      }
    },
    // A server heartbeat arrived and was answered as the document says.
    echoedHeartbeat() {
      const s = rec.sockets[0];
      const hb = s?.received.some((f) => { try { return JSON.parse(f).type === 'heartbeat'; } catch { return false; } });
      const echo = s?.sent.some((f) => { const m = JSON.parse(f); return m.type === 'heartbeat' && typeof m.timestamp === 'number'; });
      if (!hb) list.push('no heartbeat arrived');
      else if (!echo) list.push('no heartbeat was echoed');
    },
  };
}

// Every frame the server sent, as one JSON value each (what every snippet's
// JSON.parse(event.data) needs).
export function framesNotJson(rec) {
  const out = [];
  for (const s of rec.sockets) {
    for (const f of s.received) {
      try { JSON.parse(f); } catch { out.push(`${s.target}: ${f.slice(0, 200)}`); }
    }
  }
  return out;
}
