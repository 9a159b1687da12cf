// Node's fetch has no file: URLs; the package fetches its wasm module from
// `new URL(..., import.meta.url)`, which in Node is one. This gives fetch
// them (the bytes of the file, as a browser gets them over HTTP), so that
// the tests load the module through the package's own path.
import { readFile } from "node:fs/promises";

const fetchHttp = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const url = input instanceof URL ? input : new URL(String(input), "file:///");
  if (url.protocol !== "file:") return fetchHttp(input, init);
  return new Response(await readFile(url), { headers: { "content-type": "application/wasm" } });
};
