// What `npm pack` ships: the built code, the wasm module, and both licenses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

test("npm pack builds first (prepack), so a fresh clone does not ship an empty package", () => {
  assert.match(pkg.scripts.prepack ?? "", /npm run build/);
});

test("npm pack lists dist/, wasm/, wasm-dialects/ and the LICENSE files the license field names", () => {
  // --ignore-scripts: the build ran before the tests; prepack is checked above.
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: new URL("..", import.meta.url),
    encoding: "utf8",
  });
  const files = JSON.parse(out)[0].files.map((f) => f.path);
  for (const f of [
    "dist/index.js",
    "dist/index.d.ts",
    "dist/react.js",
    "dist/react.d.ts",
    "wasm/hublink_wasm.js",
    "wasm/hublink_wasm.d.ts",
    "wasm/hublink_wasm_bg.wasm",
    "wasm-dialects/hublink_wasm.js",
    "wasm-dialects/hublink_wasm_bg.wasm",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "README.md",
    "package.json",
  ]) {
    assert.ok(files.includes(f), `${f} missing from ${files.join(", ")}`);
  }
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  const text = (f) => readFileSync(new URL(`../${f}`, import.meta.url), "utf8");
  assert.match(text("LICENSE-MIT"), /Permission is hereby granted, free of charge/);
  assert.match(text("LICENSE-APACHE"), /Apache License\s+Version 2\.0, January 2004/);
});

test("typesVersions maps hublink/react for moduleResolution node", () => {
  assert.deepEqual(pkg.typesVersions?.["*"]?.react, ["./dist/react.d.ts"]);
});
