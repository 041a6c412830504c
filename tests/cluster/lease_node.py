"""A process that only campaigns for the lease, for tests that SIGKILL or SIGSTOP a leader.

Usage: python lease_node.py DATABASE_URL NODE_ID TTL RETRY RENEW_DEADLINE
Prints one JSON object per event on stdout: started, elected (epoch), deposed (reason),
emergency (from the watchdog thread). Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from cotiza.cluster import LeaseKeeper, PgLease
from cotiza.storage.database import Database


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def main(url: str, node: str, ttl: float, retry: float, deadline: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Database(url) as db:

        async def elected(epoch: int) -> None:
            emit("elected", epoch=epoch)

        async def deposed(reason: str) -> None:
            emit("deposed", reason=reason)

        keeper = LeaseKeeper(
            PgLease(db.engine, node, f"http://{node}", ttl),
            retry=retry,
            renew_deadline=deadline,
            on_elected=elected,
            on_deposed=deposed,
            emergency_fence=lambda: emit("emergency"),
        )
        await keeper.start()
        emit("started")
        await stop.wait()
        await keeper.stop()


if __name__ == "__main__":
    url, node, ttl, retry, deadline = sys.argv[1:6]
    asyncio.run(main(url, node, float(ttl), float(retry), float(deadline)))
