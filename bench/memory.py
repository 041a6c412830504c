"""Memory per idle WebSocket connection, cotiza against the ``websockets`` reference.

    .venv/bin/python bench/memory.py [--counts 1000 5000]

For each count, opens that many idle connections (connected, no subscription) to a fresh
server and reports the server's RSS growth per connection. Target: <= 40 KB each.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

import uvloop
import websockets
from loadgen import ServerProcess, cotiza_server, reference_server


async def hold(port: int, path: str, count: int, server: ServerProcess) -> tuple[int, int]:
    base = settle(server)
    sem = asyncio.Semaphore(100)

    async def one() -> websockets.ClientConnection:
        async with sem:
            return await websockets.connect(
                f"ws://127.0.0.1:{port}{path}", open_timeout=60, ping_interval=None
            )

    conns = await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(2.0)
    loaded = settle(server)
    await asyncio.gather(*(c.close() for c in conns))
    return base, loaded


def settle(server: ServerProcess) -> int:
    gc.collect()
    samples = []
    for _ in range(5):
        samples.append(server.rss())
        time.sleep(0.2)
    return max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cotiza-bench-"))
    for count in args.counts:
        rows = []
        for name, ctx, path in (
            ("cotiza", cotiza_server(tmp, SIM_TICKS_PER_SECOND="10"), "/ws/cotizaciones"),
            ("reference", reference_server(10), "/"),
        ):
            with ctx as server:
                time.sleep(1.0)
                base, loaded = uvloop.run(hold(server.port, path, count, server))
            per = (loaded - base) / count / 1024
            rows.append((name, base, loaded, per))
        print(f"{count} idle connections")
        for name, base, loaded, per in rows:
            print(
                f"  {name:<10} RSS {base / 1_048_576:7.1f} -> {loaded / 1_048_576:7.1f} MiB"
                f"  = {per:5.1f} KB per connection"
            )
        ours = rows[0][3]
        verdict = "met" if ours <= 40 else "NOT met"
        print(
            f"  target <= 40 KB (stretch 20 KB): {verdict}; ours/reference {ours / rows[1][3]:.2f}"
        )


if __name__ == "__main__":
    main()
