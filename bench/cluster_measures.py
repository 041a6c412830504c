"""Helpers of ``bench/cluster.py``: the fake Primary process, gaps, bus latency, history.

Kept apart so the scenario script stays readable; nothing here is a benchmark by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # support/, as pytest's pythonpath has it
sys.path.insert(0, str(ROOT / "tests" / "cluster"))  # the fault tests' process harness

from node_procs import Watcher, free_port  # noqa: E402

PG = os.environ.get("COTIZA_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class FakePrimaryProc:
    def __init__(self, on_excess: str, max_sessions: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cotiza", "fake-primary", "--port", str(self.port),
             "--max-sessions-per-user", str(max_sessions), "--on-excess", on_excess, "--rate", "40",
             "--log-level", "WARNING"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # the banner: listening

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


# Ticks the old leader published just before the event are still on their way for a
# moment; a fresh tick counts only from this long after the event (the bus's p99 is a
# few ms), so a gap shorter than this is reported as this.
IN_FLIGHT = 0.25


def gap_after(watchers: list[Watcher], since: float, skip: float = IN_FLIGHT) -> float | None:
    """Seconds from ``since`` until every watcher had a fresh tick; None if one never did."""
    firsts = [w.first_fresh_after(since + skip) for w in watchers]
    if any(f is None for f in firsts):
        return None
    return max(f for f in firsts if f is not None) - since


async def wait_gap(
    watchers: list[Watcher], since: float, timeout: float, skip: float = IN_FLIGHT
) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gap = gap_after(watchers, since, skip)
        if gap is not None:
            return gap
        await asyncio.sleep(0.05)
    return None


def bus_latency(leader: Watcher, follower: Watcher, since: float) -> list[float]:
    """Per tick seen by both: follower receipt minus leader-attached receipt (ms)."""
    first: dict[tuple[str, int], float] = {}
    for at, symbol, ts in leader.ticks:
        if at >= since:
            first.setdefault((symbol, ts), at)
    deltas: list[float] = []
    seen: set[tuple[str, int]] = set()
    for at, symbol, ts in follower.ticks:
        key = (symbol, ts)
        if at >= since and key in first and key not in seen:
            seen.add(key)
            deltas.append((at - first[key]) * 1000)
    return deltas


async def history_faults(dsn: str, takeovers: list[float], interval: float) -> tuple[int, int]:
    """(duplicate samples, most samples missing for one pair around one takeover)."""
    conn = await asyncpg.connect(dsn)
    try:
        duplicates = await conn.fetchval(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ratio_samples "
            "GROUP BY pair_id, asof HAVING count(*) > 1) AS d"
        )
        rows = await conn.fetch("SELECT pair_id, asof FROM ratio_samples ORDER BY pair_id, asof")
    finally:
        await conn.close()
    by_pair: dict[int, list[float]] = {}
    for row in rows:
        by_pair.setdefault(row["pair_id"], []).append(row["asof"])
    worst = 0
    for at in takeovers:
        for stamps in by_pair.values():
            # The samples missing for this takeover: those of the gap that spans it.
            for before, after in itertools.pairwise(stamps):
                if before <= at <= after:
                    worst = max(worst, round((after - before) / interval) - 1)
    return int(duplicates), worst


LAG_METRIC = "cotiza_cluster_bus_lag_seconds_bucket"


def lag_buckets(metrics_text: str) -> dict[float, float]:
    """The cumulative bus lag histogram of one node's /metrics: upper bound (ms) -> count."""
    buckets: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(LAG_METRIC + "{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound) * 1000] = float(
                line.rsplit(" ", 1)[1]
            )
    return buckets


def bucket_median(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The median (ms, interpolated within its bucket) of what was observed in between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    half, lower, below = counts[-1] / 2, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= half:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((half - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return None
