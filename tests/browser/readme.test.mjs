// The README's React example, as pasted into `npm create vite@latest --
// --template react-ts` (apps/readme holds that template's index.html, main.tsx
// and tsconfig.app.json): App.tsx and vite.config.ts are taken from the
// README by this test, so the two cannot drift. It must type-check with the
// template's TypeScript, and in the Vite dev server against hublink-server
// --demo show live values that never fall back to "—".
// Also: `hublink/react` resolves with moduleResolution "node" (typesVersions).
//
// Needs: target/release/hublink-server, tests/browser/apps/node_modules (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { apps, errorPage, freePort, launch, root, serve, startHublink, until, waitHttp } from "./lib.mjs";

const app = path.join(apps, "readme");
const exec = promisify(execFile);

/** The ```lang blocks of the React section of a README. */
function reactBlocks(file) {
  const text = readFileSync(path.join(root, file), "utf8");
  const section = text.slice(text.indexOf("## React"), text.indexOf("\n## ", text.indexOf("## React") + 1));
  const blocks = {};
  for (const m of section.matchAll(/```(\w+)\n([\s\S]*?)```/g)) (blocks[m[1]] ??= []).push(m[2]);
  return blocks;
}

const readme = reactBlocks("pkg/README.md");
let hub, browser;

before(async () => {
  hub = await startHublink();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

test("the repository README and the package README show the same React example", () => {
  const same = (b) => [b.tsx, b.ts.find((x) => x.includes("defineConfig"))];
  assert.deepEqual(same(reactBlocks("README.md")), same(readme));
});

test("the README example type-checks in a create-vite react-ts app", async () => {
  const [appTsx] = readme.tsx;
  const viteConfig = readme.ts.find((b) => b.includes("defineConfig"));
  assert.ok(appTsx && viteConfig, "the README has an App.tsx and a vite.config.ts block");
  writeFileSync(path.join(app, "src/App.tsx"), appTsx);
  writeFileSync(path.join(app, "vite.config.ts"), viteConfig);
  const tsc = path.join(apps, "node_modules/typescript/bin/tsc");
  await exec(process.execPath, [tsc, "-p", "tsconfig.app.json"], { cwd: app }).catch((e) => {
    throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`);
  });
});

test("the README example shows live data against --demo and never flickers to —", async (t) => {
  // The README's proxy, pointed at this test's server instead of :8080.
  const config = readFileSync(path.join(app, "vite.config.ts"), "utf8");
  assert.match(config, /localhost:8080/);
  writeFileSync(path.join(app, "vite.config.ts"), config.replace("localhost:8080", `127.0.0.1:${hub.port}`));
  const port = await freePort();
  const vite = serve("vite", ["--port", String(port), "--strictPort", "--host", "127.0.0.1"], { cwd: app });
  t.after(() => vite.kill());
  await waitHttp(`http://127.0.0.1:${port}/`);
  const context = await browser.newContext();
  t.after(() => context.close());
  const { page, errors } = await errorPage(context);
  // Every text the machine line ever shows, recorded in the page.
  await page.addInitScript(() => {
    window.__texts = [];
    new MutationObserver(() => {
      const line = [...document.querySelectorAll("p")].find((p) => p.textContent.startsWith("CNC-001"));
      if (line && window.__texts.at(-1) !== line.textContent) window.__texts.push(line.textContent);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(`http://127.0.0.1:${port}/`);
  await until(page, () => /CNC-001: [\d.]+ °C/.test(document.body.innerText), null, 30000);
  assert.match(await page.innerText("body"), /connected/);
  // --demo-machine-period 100ms: a machine_status message every 1.2 s on the same topic.
  await new Promise((r) => setTimeout(r, 3000));
  const texts = await page.evaluate(() => window.__texts);
  const live = texts.slice(texts.findIndex((s) => /°C/.test(s)));
  assert.ok(live.length >= 10, `values kept coming: ${live.length}`);
  assert.deepEqual(live.filter((s) => !/^CNC-001: [\d.]+ °C, \d+ rpm$/.test(s)), [], "no flicker to —");
  assert.deepEqual(errors, []);
});

test("hublink/react resolves with moduleResolution node (typesVersions)", async (t) => {
  // Inside apps/, so that "hublink" is found in its node_modules as an app would find it.
  const dir = mkdtempSync(path.join(apps, ".node10-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "a.ts"), 'import { useLatestEntry } from "hublink/react";\nimport { createClient } from "hublink";\nexport { useLatestEntry, createClient };\n');
  writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
    compilerOptions: { noEmit: true, strict: true, moduleResolution: "node", module: "commonjs", target: "es2022", lib: ["es2022", "dom"], skipLibCheck: true },
    files: ["a.ts"],
  }));
  // TypeScript 7 dropped "node" (node10) resolution; 5.x is what such projects use.
  const tsc = path.join(apps, "node_modules/typescript-5/bin/tsc");
  await exec(process.execPath, [tsc, "-p", dir]).catch((e) => {
    throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`);
  });
});
