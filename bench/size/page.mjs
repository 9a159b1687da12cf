// What a page downloads for one entry: the entry's bundle and the chunks it
// imports statically, bundled by `esbuild --bundle --minify --splitting`
// (ESM, browser), gzip -9. A dynamic `import()` is a chunk fetched only when
// it runs, as Vite, webpack and Next.js split it, so it is not counted (for
// hublink: the seed dialects' module, loaded only for `options.dialect`).
import { build } from "../../pkg/node_modules/esbuild/lib/main.js";
import { mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

/** gzip(1) itself, as the figures people quote are measured. */
export const gz = (bytes) => execFileSync("gzip", ["-9", "-c"], { input: bytes, maxBuffer: 1 << 26 }).length;

/** Gzipped bytes of what loading `source` (resolved from `resolveDir`) fetches as JS. */
export async function pageJs(source, resolveDir) {
  const outdir = mkdtempSync(join(tmpdir(), "hublink-page-"));
  try {
    const r = await build({
      stdin: { contents: source, resolveDir, loader: "ts", sourcefile: "entry.ts" },
      bundle: true,
      minify: true,
      splitting: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      external: ["react", "react-dom"],
      outdir,
      write: false,
      metafile: true,
      logLevel: "error",
    });
    const files = new Map(r.outputFiles.map((f) => [relative(process.cwd(), f.path), f.contents]));
    const outputs = r.metafile.outputs;
    const entry = Object.keys(outputs).find((k) => outputs[k].entryPoint !== undefined);
    const seen = new Set();
    const visit = (k) => {
      if (seen.has(k)) return;
      seen.add(k);
      for (const i of outputs[k].imports) if (i.kind === "import-statement" && !i.external) visit(i.path);
    };
    visit(entry);
    let total = 0;
    for (const k of seen) total += gz(files.get(k));
    return total;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

// As a command: node bench/size/page.mjs RESOLVE_DIR SOURCE -> prints the bytes.
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await pageJs(process.argv[3], process.argv[2]));
}
