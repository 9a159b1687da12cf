// A Next.js app (app router, a "use client" component with the provider and a
// relative URL, no ssr:false) built with `next build` by webpack and by
// Turbopack, prerendered, then served by `next start` behind a front server
// that proxies /ws to a real hublink-server --demo, and driven in Chromium.
//
// Needs: target/release/hublink-server, tests/browser/apps/node_modules (scripts/test-browser).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { apps, errorPage, freePort, launch, run, serve, startFront, startHublink, until, waitHttp } from "./lib.mjs";

const app = path.join(apps, "next");
let hub, browser;

before(async () => {
  hub = await startHublink();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  hub?.kill();
});

for (const bundler of ["webpack", "turbopack"]) {
  test(`next build (${bundler}) prerenders "connecting"; next start hydrates and goes live`, async (t) => {
    const env = { NEXT_DIST_DIR: `.next-${bundler}` };
    await run("next", ["build", app, `--${bundler}`], { cwd: apps, env });
    const html = readFileSync(path.join(app, env.NEXT_DIST_DIR, "server/app/index.html"), "utf8");
    assert.match(html, /id="state">connecting</);

    const port = await freePort();
    const next = serve("next", ["start", app, "--port", String(port), "--hostname", "127.0.0.1"], { cwd: apps, env });
    t.after(() => next.kill());
    await waitHttp(`http://127.0.0.1:${port}/`);
    const front = await startFront({ appPort: port, wsPort: hub.port });
    t.after(() => front.close());
    const context = await browser.newContext();
    t.after(() => context.close());
    const { page, errors } = await errorPage(context);
    await page.goto(front.url);
    await until(page, () => document.querySelector("#state").textContent === "connected" && !/—/.test(document.querySelector("#temp").textContent), null, 30000);
    assert.deepEqual(front.upgrades, ["/ws"]);
    assert.deepEqual(errors, [], "no hydration mismatch, no uncaught error");
  });
}
