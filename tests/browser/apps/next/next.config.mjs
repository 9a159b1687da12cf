// Nothing for hublink: no ssr:false, no webpack or Turbopack rules.
import path from "node:path";
import { fileURLToPath } from "node:url";

// The fixtures share one install in the parent folder.
const apps = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export default {
  distDir: process.env.NEXT_DIST_DIR ?? ".next",
  outputFileTracingRoot: apps,
  turbopack: { root: apps },
};
