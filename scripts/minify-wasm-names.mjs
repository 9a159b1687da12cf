// Shortens the names a wasm-bindgen module imports and exports, and renames
// them to match in its JS glue and type declarations.
//
//   node scripts/minify-wasm-names.mjs WASM_OPT DIR
//
// DIR holds wasm-bindgen's `--target web` output (hublink_wasm_bg.wasm, the
// unminified hublink_wasm.js, hublink_wasm.d.ts, hublink_wasm_bg.wasm.d.ts).
// binaryen's `--minify-imports-and-exports-and-modules` renames every import
// to one or two letters under a one-letter module and every export likewise,
// and prints the mapping; this script applies that mapping to the glue. The
// names wasm-bindgen picks carry a 16-hex-digit hash each
// (`__wbg_get_c36ea34a33c31b68`, under the module "./hublink_wasm_bg.js"),
// spelled once in the module and once in the glue, and hashes do not
// compress: -0.5 KB gzipped on every page load, measured.
//
// Every rename is checked: each import key and the module name must occur
// exactly once in the glue, and afterwards no old name may remain, so that a
// new wasm-bindgen whose glue spells them differently fails the build here
// rather than failing to instantiate in a browser.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [wasmOpt, dir] = process.argv.slice(2);
if (!wasmOpt || !dir) {
  console.error("usage: minify-wasm-names.mjs WASM_OPT DIR");
  process.exit(2);
}
const wasmPath = join(dir, "hublink_wasm_bg.wasm");
const gluePath = join(dir, "hublink_wasm.js");
const typesPaths = [join(dir, "hublink_wasm.d.ts"), join(dir, "hublink_wasm_bg.wasm.d.ts")];

function fail(message) {
  console.error(`minify-wasm-names: ${dir}: ${message}`);
  process.exit(1);
}

const before = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmPath)));
const features = [
  "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext",
  "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue",
];
const printed = execFileSync(wasmOpt, [wasmPath, "--minify-imports-and-exports-and-modules", ...features, "-o", wasmPath], {
  encoding: "utf8",
});
// The mapping is the JSON object binaryen prints: {"imports": [[module, old, new]...], "exports": [[old, new]...]}.
let mapping;
try {
  mapping = JSON.parse(printed.slice(printed.indexOf("{")));
} catch (e) {
  fail(`wasm-opt printed no mapping (${e.message})`);
}
const after = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmPath)));
const modules = new Set(after.map((i) => i.module));
const oldModules = new Set(before.map((i) => i.module));
if (modules.size !== 1 || oldModules.size !== 1) fail(`expected one import module, got ${[...oldModules]} -> ${[...modules]}`);
const [newModule] = modules;
const [oldModule] = oldModules;

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
let glue = readFileSync(gluePath, "utf8");

function replaceOnce(text, pattern, replacement, what) {
  const matches = text.match(new RegExp(pattern.source, "g"));
  if (matches?.length !== 1) fail(`${what} occurs ${matches?.length ?? 0} times in the glue, expected once`);
  return text.replace(pattern, replacement);
}

// Imports: the keys of the object `__wbg_get_imports` returns, then its module key.
for (const [, oldName, newName] of mapping.imports) {
  glue = replaceOnce(glue, new RegExp(`(^|[\\s{,])${escape(oldName)}:`, "m"), `$1${newName}:`, `import ${oldName}`);
}
glue = replaceOnce(glue, new RegExp(`"${escape(oldModule)}":`), `${JSON.stringify(newModule)}:`, `module ${oldModule}`);

// Exports: every `wasm.NAME` in one pass (old and new names may overlap).
const exports = new Map(mapping.exports);
const exportPattern = new RegExp(`\\bwasm\\.(${[...exports.keys()].map(escape).join("|")})\\b`, "g");
glue = glue.replace(exportPattern, (_, name) => `wasm.${exports.get(name)}`);

for (const [, oldName] of mapping.imports) if (glue.includes(oldName)) fail(`import ${oldName} still in the glue`);
if (glue.includes(oldModule)) fail(`module ${oldModule} still in the glue`);
for (const oldName of exports.keys()) {
  if (new RegExp(`\\bwasm\\.${escape(oldName)}\\b`).test(glue)) fail(`export ${oldName} still used in the glue`);
}
writeFileSync(gluePath, glue);

// The declarations of the exports (`InitOutput`, and the raw module's).
const declared = new RegExp(`\\b(readonly |export const )(${[...exports.keys()].map(escape).join("|")}):`, "g");
for (const path of typesPaths) {
  const text = readFileSync(path, "utf8");
  writeFileSync(path, text.replace(declared, (_, lead, name) => `${lead}${exports.get(name)}:`));
}
