// What a page downloads, measured the same way for hublink and for the clients
// it is compared with: a tiny entry that imports the client's main function,
// bundled by `esbuild --bundle --minify --splitting` (ESM, browser; what the
// entry imports statically: page.mjs), gzip -9; react and
// react-dom stay external (the page has them anyway). For hublink the wasm
// module, which the bundle fetches beside itself, is added (gzip -9).
//
// Usage: node bench/size/measure.mjs OUT_JSON [OTHERS_DIR]
//   OTHERS_DIR: a folder whose node_modules holds the clients of
//   bench/size/package.json (bench/run installs them); without it, only
//   hublink is measured.
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gz, pageJs } from "./page.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const out = process.argv[2];
const others = process.argv[3];

const hublink = [
  ["hublink (createClient)", `import { createClient } from "hublink"; globalThis.c = createClient("/ws");`],
  ["hublink + hublink/react", `import { createClient } from "hublink"; import * as r from "hublink/react"; globalThis.c = [createClient, r];`],
];
const competitors = [
  ["centrifuge", "centrifuge", `import { Centrifuge } from "centrifuge"; globalThis.c = new Centrifuge("ws://x/");`],
  ["socket.io-client", "socket.io-client", `import { io } from "socket.io-client"; globalThis.c = io("ws://x/");`],
  ["react-use-websocket", "react-use-websocket", `import useWebSocket from "react-use-websocket"; globalThis.c = useWebSocket;`],
  ["reconnecting-websocket", "reconnecting-websocket", `import RWS from "reconnecting-websocket"; globalThis.c = new RWS("ws://x/");`],
];

// hublink resolves as the package it is: a folder whose node_modules/hublink
// is pkg/ (built: dist/ and wasm/), so its `exports` map applies.
const here = mkdtempSync(join(tmpdir(), "hublink-size-"));
const { symlinkSync, mkdirSync } = await import("node:fs");
mkdirSync(join(here, "node_modules"));
symlinkSync(join(root, "pkg"), join(here, "node_modules/hublink"));
const wasm = gz(readFileSync(join(root, "pkg/wasm/hublink_wasm_bg.wasm")));

const rows = [];
try {
  for (const [name, source] of hublink) {
    const js = await pageJs(source, here);
    rows.push({ name, version: "this tree", js_gzip: js, wasm_gzip: wasm, total_gzip: js + wasm });
  }
} finally {
  rmSync(here, { recursive: true, force: true });
}
if (others) {
  for (const [name, pkgName, source] of competitors) {
    const version = JSON.parse(readFileSync(join(others, "node_modules", pkgName, "package.json"), "utf8")).version;
    const js = await pageJs(source, others);
    rows.push({ name, version, js_gzip: js, wasm_gzip: 0, total_gzip: js });
  }
}
for (const r of rows) {
  console.error(`size: ${r.name} ${r.version}: ${(r.total_gzip / 1024).toFixed(1)} KB gz` +
    (r.wasm_gzip ? ` (wasm ${r.wasm_gzip} B + JS ${r.js_gzip} B)` : ""));
}
writeFileSync(out, JSON.stringify({ rows }));
