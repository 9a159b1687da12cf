import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The page connects to the relative "/ws" and, for the device history, to
// "/api/v1/devices/{uuid}/ws"; dev and preview servers proxy them (and
// /metrics) to hublink-server, HUBLINK_SERVER (default 127.0.0.1:8080).
const target = `http://${process.env.HUBLINK_SERVER ?? "127.0.0.1:8080"}`;
const proxy = {
  "/ws": { target, ws: true },
  "/api/v1/devices": { target, ws: true },
  "/metrics": { target },
};

export default defineConfig({
  plugins: [react()],
  // hublink is linked from ../../pkg, which has its own React for its type checks.
  resolve: { dedupe: ["react", "react-dom"] },
  // The linked package lives outside this app's root: let the dev server
  // serve its files (the wasm module is fetched at run time, not bundled).
  server: { proxy, fs: { allow: [".", "../../pkg"] } },
  preview: { proxy },
});
