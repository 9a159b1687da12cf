// Shared bits of the seed clients: load `ws` from tools/node, track expectations.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tools', 'node', 'package.json'));
export const WebSocket = require('ws');

// expect(['a','b']) -> { seen(name), done } ; exits 0 when all seen, 1 on timeout.
export function expectations(names, timeoutMs = 15000) {
  const missing = new Set(names);
  const timer = setTimeout(() => {
    console.log(`FAIL missing: ${[...missing].join(', ')}`);
    process.exit(1);
  }, timeoutMs);
  return {
    seen(name, detail = '') {
      if (missing.delete(name)) {
        console.log(`OK ${name}${detail ? ' ' + detail : ''}`);
        if (missing.size === 0) {
          clearTimeout(timer);
          setTimeout(() => process.exit(0), 50);
        }
      }
    },
  };
}
