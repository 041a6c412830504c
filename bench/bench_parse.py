"""Feed parsing throughput: Primary frames parsed and applied to a QuoteCache per second.

Measures, on one core, in the same run:
  * floor: plain ``orjson.loads`` of the same raw frames (no normalisation, no cache);
  * the adapter's path: ``decode`` + ``FrameApplier.apply`` (parse, Quote, counters) into
    ``QuoteCache.apply`` -- exactly what the live adapter does per received frame;
  * replay at REPLAY_SPEED=0: a gzip recording of the same frames played by ReplayFeed
    into a QuoteCache (file reading, decompression and batching included).

Usage: .venv/bin/python bench/bench_parse.py [--frames N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import tempfile
import time
from pathlib import Path

import orjson

from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.feeds.base import FeedStats
from cotiza.feeds.primary_frames import md_frame
from cotiza.feeds.primary_parse import FrameApplier, decode
from cotiza.feeds.replay import ReplayFeed
from cotiza.feeds.sim import SimFeed
from cotiza.settings import Settings


def make_frames(count: int) -> list[bytes]:
    """Raw Md frames as the fake Primary sends them, from the seeded simulator."""
    feed = SimFeed(Settings(sim_seed=1))
    return [orjson.dumps(md_frame(quote)) for quote in feed.generate(count)]


def best_rate(label: str, count: int, repeat: int, run: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    rate = count / best
    print(f"  {label:<46} {rate:>12,.0f} frames/s  ({best * 1e6 / count:.2f} us/frame)")
    return rate


def make_cache() -> QuoteCache:
    return QuoteCache(MarketCalendar.from_settings(Settings(market_hours="always")), 60.0)


def bench_parse(frames: list[bytes], repeat: int) -> tuple[float, float]:
    loads = orjson.loads

    def floor() -> None:
        for raw in frames:
            loads(raw)

    def adapter_path() -> None:
        cache = make_cache()
        applier = FrameApplier(cache.apply, FeedStats())
        now = time.time_ns
        for raw in frames:
            recv_ns = now()
            applier.apply(decode(raw), recv_ns / 1e9)

    base = best_rate("baseline: orjson.loads only", len(frames), repeat, floor)
    rate = best_rate(
        "adapter path: decode+parse+Quote+cache.apply", len(frames), repeat, adapter_path
    )
    return base, rate


async def bench_replay(frames: list[bytes], repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ndjson.gz"
        start = time.time_ns()
        lines = (
            b'{"recv_ns":' + str(start + i * 1000).encode() + b',"frame":' + raw + b"}"
            for i, raw in enumerate(frames)
        )
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        settings = Settings(feed="replay", replay_file=path, replay_speed=0.0)
        best = float("inf")
        for _ in range(repeat):
            cache = make_cache()
            feed = ReplayFeed(settings)
            started = time.perf_counter()
            await feed.run([], cache.apply)
            best = min(best, time.perf_counter() - started)
            assert feed.stats.quotes == len(frames)
    rate = len(frames) / best
    print(f"  {'replay, REPLAY_SPEED=0, gzip file -> cache':<46} {rate:>12,.0f} frames/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frames = make_frames(args.frames)
    size = sum(map(len, frames)) / len(frames)
    print(f"{len(frames):,} Md frames, {size:.0f} bytes each on average; best of {args.repeat}")
    base, rate = bench_parse(frames, args.repeat)
    replay = asyncio.run(bench_replay(frames, max(1, args.repeat // 2)))
    print(
        f"  adapter path costs {base / rate:.1f}x the bare JSON decode; target >= 100,000/s: "
        f"{'met' if rate >= 100_000 else 'NOT met'}; replay {replay:,.0f}/s"
    )


if __name__ == "__main__":
    main()
