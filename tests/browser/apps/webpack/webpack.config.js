// webpack 5 with no loaders or plugins for hublink: the wasm module is found
// through `new URL(..., import.meta.url)` and emitted as an asset.
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

export default {
  mode: "production",
  context: here,
  entry: "./src/main.js",
  output: { path: path.join(here, "dist"), filename: "main.js", clean: true },
  performance: { hints: false },
};
