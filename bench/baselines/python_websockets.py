"""Baseline: a broadcast server written the way the `websockets` docs write one
(the asyncio server, `broadcast()` to every other client, the library's
keepalive pings: every 20 s by default, PING_INTERVAL seconds when set).

Usage: python bench/baselines/python_websockets.py PORT
"""

import asyncio
import os
import sys

from websockets.asyncio.server import broadcast, serve

CLIENTS = set()


async def handler(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            broadcast((c for c in CLIENTS if c is not websocket), message)
    finally:
        CLIENTS.discard(websocket)


async def main(port):
    ping = float(os.environ.get("PING_INTERVAL", "20"))
    async with serve(handler, "127.0.0.1", port, ping_interval=ping) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8082))
