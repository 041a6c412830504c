"""Minimal reference: the simulator's ticks pushed with ``websockets``' own ``broadcast()``.

Usage: python bench/reference_server.py PORT TICKS_PER_SECOND
It does what the fan-out needs and nothing else (no subscriptions, queues or limits), as
the yardstick for cotiza's hub in bench/fanout.py.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

from cotiza.feeds.sim import SimFeed, SimMarket
from cotiza.settings import Settings


async def main(port: int, rate: float) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)

    symbols = SimFeed(Settings()).catalogue()
    market = SimMarket(symbols, 42)
    loop = asyncio.get_running_loop()
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=65536):
        carry = 0.0
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            carry += (now - last) * rate
            last = now
            n = int(carry)
            carry -= n
            for quote in market.generate(n):
                broadcast(clients, orjson.dumps({"type": "tick", **quote.tick_payload()}).decode())


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), float(sys.argv[2])))
