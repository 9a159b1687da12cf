// Loads the wasm module synchronously for Node (no fetch of a file: URL).
import { readFileSync } from "node:fs";
import { initSync } from "../wasm/hublink_wasm.js";
import { initSync as initDialects } from "../wasm-dialects/hublink_wasm.js";

initSync({ module: readFileSync(new URL("../wasm/hublink_wasm_bg.wasm", import.meta.url)) });
initDialects({ module: readFileSync(new URL("../wasm-dialects/hublink_wasm_bg.wasm", import.meta.url)) });
