"""Backplane hop: what the Redis bus adds between a leader and a follower process.

The leader (this process) publishes ticks at a fixed rate; a follower in another process
applies them and measures, per tick, its receive time minus the leader's publish time
(``publish()`` call, so the outbox wait, the Lua publish, pub/sub and decoding all count).
The baseline, in the same invocation, is raw Redis pub/sub between the same two kinds of
process: ``PUBLISH`` of the same frames, a plain ``SUBSCRIBE`` reading them.

    .venv/bin/python bench/bus.py --rate 1000 --duration 10

Needs Redis on 127.0.0.1:6379 (keys under a unique prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cotiza.cluster import BusMessage, BusState, Kind, RedisBus, Snapshot  # noqa: E402
from cotiza.settings import Settings  # noqa: E402

SYMBOLS = [f"MERV - XMEV - SYM{i:02d} - 24hs" for i in range(20)]
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/unused"  # validated only, never opened


def settings(url: str, prefix: str, node: str) -> Settings:
    return Settings(database_url=PG, backplane=url, backplane_prefix=prefix, node_id=node)


def frame(symbol: str, n: int) -> str:
    body = {"type": "tick", "symbol": symbol, "bid": 1000.0 + n % 7, "bid_size": 10.0,
            "offer": 1001.0, "offer_size": 5.0, "last": 1000.5, "last_size": 1.0,
            "cl": 999.0, "op": 998.0, "ts_ms": int(time.time() * 1000)}  # fmt: skip
    return orjson.dumps(body).decode()


def summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


# -- follower side (child process) ----------------------------------------------------


class LagSink:
    def __init__(self) -> None:
        self.lags: list[float] = []
        self.done = asyncio.Event()

    def apply(self, message: BusMessage) -> None:
        if message.kind is Kind.CONTROL:
            self.done.set()
        elif message.lag_ms is not None:
            self.lags.append(message.lag_ms)

    def resync(self, snapshot: Snapshot) -> None:
        pass


async def follow_bus(url: str, prefix: str) -> list[float]:
    sink = LagSink()
    bus = RedisBus(settings(url, prefix, "follower"), sink)
    await bus.start()
    await bus.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)
    print("ready", flush=True)
    await sink.done.wait()
    await bus.stop()
    return sink.lags


async def follow_raw(url: str, channel: str) -> list[float]:
    client = aioredis.Redis.from_url(url, protocol=2)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=5)  # the subscribe confirmation
    print("ready", flush=True)
    lags: list[float] = []
    while True:
        message = await pubsub.get_message(timeout=30)
        if message is None:
            break
        data = message["data"]
        if data == b"END":
            break
        sent_ns = int(data[:19])
        lags.append((time.time_ns() - sent_ns) / 1e6)
    await pubsub.aclose()
    await client.aclose()
    return lags


# -- leader side (this process) ------------------------------------------------------


async def pace(rate: float, duration: float, publish_batch: object) -> int:
    """Call ``publish_batch(n, count)`` every 10 ms with enough ticks for ``rate``."""
    per_tick = rate / 100
    sent, carry, started = 0, 0.0, time.monotonic()
    step = 0
    while time.monotonic() - started < duration:
        carry += per_tick
        count = int(carry)
        carry -= count
        await publish_batch(sent, count)  # type: ignore[operator]
        sent += count
        step += 1
        await asyncio.sleep(max(0.0, started + step * 0.01 - time.monotonic()))
    return sent


async def start_follower(mode: str, url: str, prefix: str) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--follow", mode, "--url", url, "--prefix", prefix,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return child


async def results(child: asyncio.subprocess.Process) -> dict[str, float]:
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    summary_: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return summary_


async def run_bus(url: str, prefix: str, rate: float, duration: float) -> dict[str, float]:
    child = await start_follower("bus", url, prefix)
    bus = RedisBus(settings(url, prefix, "leader"), LagSink())
    await bus.start()
    bus.lead(1)
    await asyncio.sleep(0.3)  # the follower's resync of the new epoch

    async def batch(first: int, count: int) -> None:
        for n in range(first, first + count):
            symbol = SYMBOLS[n % len(SYMBOLS)]
            bus.publish(Kind.TICK, symbol, frame(symbol, n))

    sent = await pace(rate, duration, batch)
    await asyncio.sleep(0.2)
    bus.publish(Kind.CONTROL, "bench", "end")
    result = await results(child)
    result.update(sent=sent, coalesced=bus.stats.outbox_coalesced, batches=bus.stats.send_batches)
    await bus.stop()
    return result


async def run_raw(url: str, prefix: str, rate: float, duration: float) -> dict[str, float]:
    channel = f"{prefix}:raw"
    child = await start_follower("raw", url, channel)
    client = aioredis.Redis.from_url(url, protocol=2)

    async def batch(first: int, count: int) -> None:
        pipe = client.pipeline(transaction=False)
        for n in range(first, first + count):
            symbol = SYMBOLS[n % len(SYMBOLS)]
            pipe.publish(channel, f"{time.time_ns():019d}{frame(symbol, n)}")
        await pipe.execute()

    sent = await pace(rate, duration, batch)
    await asyncio.sleep(0.2)
    await client.publish(channel, "END")
    result = await results(child)
    result.update(sent=sent)
    await client.aclose()
    return result


async def cleanup(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    names = [name async for name in client.scan_iter(match=f"{prefix}:*")]
    if names:
        await client.delete(*names)
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="ticks per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--follow", choices=["bus", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.follow:
        follow = follow_bus if args.follow == "bus" else follow_raw
        lags = asyncio.run(follow(args.url, args.prefix))
        print(json.dumps(summary(lags)))
        return
    prefix = f"cotiza-bench-{uuid.uuid4().hex[:8]}"
    try:
        raw = asyncio.run(run_raw(args.url, prefix, args.rate, args.duration))
        bus = asyncio.run(run_bus(args.url, prefix, args.rate, args.duration))
    finally:
        asyncio.run(cleanup(args.url, prefix))
    print(f"leader -> follower, {args.rate:g} ticks/s for {args.duration:g} s, 2 processes")
    print(f"{'':18} {'received':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in (("raw pub/sub", raw), ("cotiza bus", bus)):
        figures = f"{row['p50']:>8.3f} {row['p99']:>8.3f} {row['max']:>8.3f}"
        print(f"{name:18} {row['count']:>9,.0f} {figures}")
    print(f"{'added by the bus':18} {'':>9} {bus['p50'] - raw['p50']:>8.3f} "
          f"{bus['p99'] - raw['p99']:>8.3f}")  # fmt: skip
    print(f"bus: {bus['sent']:,.0f} published, {bus['batches']:,.0f} script calls, "
          f"{bus['coalesced']:,.0f} coalesced in the outbox")  # fmt: skip


if __name__ == "__main__":
    main()
