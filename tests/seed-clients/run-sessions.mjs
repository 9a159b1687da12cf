// Replays the seed documents' wscat and Postman sessions (sessions/*.txt, each
// the document's block byte for byte) with a WebSocket client and compares the
// answers with the ones the document prints.
//
//   node tests/seed-clients/run-sessions.mjs ws://127.0.0.1:PORT JWT_SECRET [name-substring]
//
// Reading a session as wscat would: `wscat -c URL` (or Postman's `URL: \`...\``)
// opens a connection, `> X` sends X, `< Y` is an answer, the same lines inside
// `#` comments (004 prints what "you should see" that way) too, and a bare JSON
// line is a Postman message to send. YOUR_JWT_TOKEN becomes a token shaped
// like the seed's (snippets.mjs); hosts become the test server.
//
// An answer matches when it has the document's keys and JSON types
// (recursively), `...` in the document standing for "more keys" or "any
// text", and the same value for `type`, `action` and the keys a session names
// as literal. Answers are awaited in order; frames in between (a stream's
// data) may pass. Every frame must be one JSON message.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from './lib.mjs';
import { SEED_TOKEN_CLAIMS, mintToken, sameJson } from './snippets.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = process.argv[2];
const secret = process.argv[3];
const only = process.argv[4];
if (!base || !secret) {
  console.error('usage: run-sessions.mjs ws://HOST:PORT JWT_SECRET [name-substring]');
  process.exit(2);
}
const seedToken = mintToken(secret, SEED_TOKEN_CLAIMS);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const SESSIONS = [
  {
    name: '000 wscat',
    file: 'sessions/000-wscat.txt',
    // The session prints nothing; the document's "Message Format" is what the
    // frontend expects of every sensor_data frame.
    streamMs: 2500,
    streamCheck(conn, p) {
      const format = JSON.parse(readFileSync(path.join(here, 'sessions/000-message-format.json'), 'utf8'));
      // (A frame that is not one JSON message is reported for every session.)
      const msgs = conn.frames.flatMap((f) => { try { return [JSON.parse(f)]; } catch { return []; } });
      const sensor = msgs.filter((m) => m.type === 'sensor_data');
      if (sensor.length < 5) p.push(`${conn.url}: only ${sensor.length} sensor_data frames`);
      for (const m of sensor) {
        const why = shapeDiff(format, m, new Set(['type']));
        if (why) { p.push(`${conn.url}: ${why} in ${JSON.stringify(m)}`); break; }
      }
      const other = msgs.find((m) => !['sensor_data', 'machine_status'].includes(m.type));
      if (other) p.push(`${conn.url}: unexpected ${JSON.stringify(other)}`);
      if (conn.url.endsWith('/CNC-001') && sensor.some((m) => m.data.machine_id !== 'CNC-001')) {
        p.push(`${conn.url}: data of another machine`);
      }
    },
  },
  {
    name: '003 wscat',
    file: 'sessions/003-wscat.txt',
    // The token is minted for the document's user def456 of branch abc123.
    literal: ['success', 'orderId', 'rooms', 'count'],
  },
  {
    name: '003 postman',
    file: 'sessions/003-postman.txt',
    // The document lists the messages but not the answers; these are the
    // wscat session's, and getStatus names the token's claims (its keys are
    // the seed's own: userId, branchId, role).
    answers: [
      { action: 'pong' },
      { action: 'getStatus', connected: true, userId: 'def456', branchId: 'abc123', role: 'admin' },
      { action: 'subscribeToOrder', success: true, orderId: 'ORDER_ID_HERE' },
    ],
  },
  { name: '004 wscat power', file: 'sessions/004-wscat-power.txt' },
  { name: '004 wscat health', file: 'sessions/004-wscat-health.txt' },
];

// The document's answer line as JSON, `,...}` meaning "more keys".
function docJson(text) {
  let open = false;
  const t = text.replace(/,\s*\.\.\.\s*\}/g, () => { open = true; return '}'; });
  return { value: JSON.parse(t), open };
}

// Why `got` does not have the shape of `doc`, or null.
function shapeDiff(doc, got, literal, open = false, at = '') {
  const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (kind(doc) !== kind(got)) return `${at || 'message'} is ${kind(got)}, the document has ${kind(doc)}`;
  if (kind(doc) === 'array') {
    for (const [i, g] of got.entries()) {
      const why = doc.length ? shapeDiff(doc[0], g, literal, false, `${at}[${i}]`) : null;
      if (why) return why;
    }
    return null;
  }
  if (kind(doc) !== 'object') return null;
  for (const k of Object.keys(doc)) {
    const p = at ? `${at}.${k}` : k;
    if (!(k in got)) return `${p} is missing`;
    if (literal.has(k) && !sameJson(doc[k], got[k])) return `${p} is ${JSON.stringify(got[k])}, the document has ${JSON.stringify(doc[k])}`;
    const why = shapeDiff(doc[k], got[k], literal, false, p);
    if (why) return why;
  }
  if (!open) {
    const extra = Object.keys(got).filter((k) => !(k in doc));
    if (extra.length) return `${at || 'message'} has keys the document does not: ${extra.join(', ')}`;
  }
  return null;
}

function parseSession(text) {
  const ops = [];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('//')) continue; // the fixture's header
    const line = raw.replace(/^#\s*(?=[<>] )/, '').trim();
    let m;
    if ((m = line.match(/^wscat -c "?([^"\s]+)"?$/)) || (m = line.match(/URL: `([^`]+)`/))) ops.push({ connect: m[1] });
    else if (line.startsWith('> ')) ops.push({ send: line.slice(2) });
    else if (line.startsWith('< ')) ops.push({ expect: line.slice(2) });
    else if (line.startsWith('{')) ops.push({ send: line });
  }
  return ops;
}

function connect(url) {
  const u = new URL(url.replace('YOUR_JWT_TOKEN', seedToken));
  const target = `${base}${u.pathname}${u.search}`;
  const conn = { url: u.pathname, frames: [], closed: null, ws: new WebSocket(target) };
  conn.ws.on('message', (d) => conn.frames.push(String(d)));
  conn.ws.on('close', (code) => { conn.closed = code; });
  return new Promise((resolve, reject) => {
    conn.ws.on('open', () => resolve(conn));
    conn.ws.on('error', (e) => reject(new Error(`${u.pathname}: ${e.message}`)));
  });
}

async function waitFor(conn, from, pred, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    for (let i = from; i < conn.frames.length; i++) {
      let m;
      try { m = JSON.parse(conn.frames[i]); } catch { continue; }
      if (pred(m)) return i;
    }
    if (Date.now() > end || conn.closed !== null) return -1;
    await sleep(20);
  }
}

async function run(s) {
  const p = [];
  const conns = [];
  let conn = null;
  let cursor = 0;
  const literal = new Set(['type', 'action', ...(s.literal || [])]);
  const fixture = readFileSync(path.join(here, s.file), 'utf8');
  try {
    for (const op of parseSession(fixture)) {
      if (op.connect) {
        conn = await connect(op.connect);
        conns.push(conn);
        cursor = 0;
      } else if (op.send) {
        conn.ws.send(op.send);
      } else if (op.expect) {
        const { value, open } = docJson(op.expect);
        const anyText = (v) => typeof v === 'string' && v.endsWith('...');
        let last = '';
        const i = await waitFor(conn, cursor, (m) => {
          last = shapeDiff(value, m, new Set([...literal].filter((k) => !anyText(value[k]))), open);
          return !last;
        });
        if (i < 0) {
          p.push(`no answer like ${op.expect} (last frame: ${last}; frames: ${conn.frames.slice(-3).join(' | ').slice(0, 400)})`);
          break;
        }
        cursor = i + 1;
      }
    }
    for (const want of s.answers || []) {
      const i = await waitFor(conn, cursor, (m) => Object.entries(want).every(([k, v]) => sameJson(m[k], v)));
      if (i < 0) { p.push(`no answer with ${JSON.stringify(want)}; got ${conn.frames.join(' | ').slice(0, 600)}`); break; }
      cursor = i + 1;
    }
    if (s.streamMs) {
      await sleep(s.streamMs);
      for (const c of conns) s.streamCheck(c, p);
    }
  } catch (e) {
    p.push(e.message);
  }
  for (const c of conns) {
    for (const f of c.frames) {
      try { JSON.parse(f); } catch { p.push(`${c.url}: a frame is not one JSON message: ${f.slice(0, 200)}`); break; }
    }
    const err = c.frames.find((f) => { try { return JSON.parse(f).type === 'error'; } catch { return false; } });
    if (err) p.push(`${c.url}: error message ${err}`);
    c.ws.terminate();
  }
  return { s, p };
}

const results = await Promise.all(SESSIONS.filter((s) => !only || s.name.includes(only)).map(run));
let failed = 0;
for (const { s, p } of results) {
  if (!p.length) console.log(`OK ${s.name}`);
  else { failed++; console.log(`FAIL ${s.name}:\n  - ${p.join('\n  - ')}`); }
}
process.exit(failed ? 1 : 0);
