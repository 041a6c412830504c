"""Dashboard query over a month of history: pre-aggregated buckets against raw samples.

    .venv/bin/python bench/aggregation.py [--pairs 20] [--days 30] [--step 10] [--db URL]

Fills a fresh database with ``days + 1`` days of ``step``-second samples for ``pairs``
pairs (plus their minute/hour/day aggregates, as the writer keeps them), so that every
window edge, the 30-day one included, falls inside dense data. Then times the dashboard
query (the same function behind GET /api/ratios/dashboard) in two cases:

- edges on whole minutes: "now" on a minute boundary, so every window is whole buckets;
- exact edges: "now" 37.3 s into a minute, an hour before the newest sample, so each
  edge cuts a minute of dense data and its part is read from the raw samples;

and, as the baseline in the same run, the same windows computed straight from the raw
samples. The exact-edge result is checked against that baseline (count, sum, minimum and
maximum of every window and pair) before anything is timed. Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time

from sqlalchemy import func, select

from cotiza.calendar import MarketCalendar
from cotiza.dashboard import dashboard_windows
from cotiza.dashboard_worker import DashboardQuery
from cotiza.models import WindowStats
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.demo import backfill_demo_history
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_samples

FIELD = "mid_ratio"
Stats = dict[str, dict[int, WindowStats]]


async def raw_dashboard(database: Database, calendar: MarketCalendar, now: float) -> Stats:
    """The naive way: aggregate every window over ratio_samples, start <= asof < end."""
    value = ratio_samples.c[FIELD]
    result: Stats = {}
    async with database.engine.connect() as conn:
        for name, start, end in dashboard_windows(now, calendar).items():
            query = (
                select(
                    ratio_samples.c.pair_id,
                    func.count(value),
                    func.sum(value),
                    func.min(value),
                    func.max(value),
                )
                .where(ratio_samples.c.asof >= start, ratio_samples.c.asof < end)
                .group_by(ratio_samples.c.pair_id)
            )
            rows = (await conn.execute(query)).all()
            result[name] = {r[0]: WindowStats(r[1], r[2], r[3], r[4]) for r in rows if r[1]}
    return result


def check_exact(served: Stats, raw: Stats) -> int:
    """Assert the served stats equal the raw ones; returns how many (window, pair) matched."""
    checked = 0
    for name, per_pair in raw.items():
        assert served[name].keys() == per_pair.keys(), name
        for pair_id, want in per_pair.items():
            got = served[name][pair_id]
            assert (got.count, got.minimum, got.maximum) == (
                want.count,
                want.minimum,
                want.maximum,
            ), (name, pair_id, got, want)
            assert math.isclose(got.total, want.total, rel_tol=1e-12), (name, pair_id)
            checked += 1
    return checked


async def timed(label: str, runs: int, call) -> list[float]:
    """Wall-clock times in ms; also prints this process's CPU time, which moves less than the
    wall clock when other work shares the cores (meaningful for SQLite, which runs in this
    process; with PostgreSQL the server's work is not in it)."""
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    print(
        f"  {label:<38} median {statistics.median(times):8.2f} ms   "
        f"max {max(times):8.2f} ms   cpu {statistics.median(cpu):7.2f} ms   ({runs} runs)"
    )
    return times


async def main(args: argparse.Namespace) -> None:
    url = args.db or f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='cotiza-agg-')}/agg.db"
    settings = Settings(database_url=url)
    database = Database(settings.database_url)
    await database.start()
    try:
        repository = Repository(database)
        pairs = [
            await repository.create_pair(f"BENCH{i:02d}", f"BENCH{i:02d}D", 1.0, "bench")
            for i in range(args.pairs)
        ]
        newest = math.floor(time.time() / 60) * 60
        t0 = time.perf_counter()
        written = await backfill_demo_history(
            database,
            pairs,
            {p.id: 1450.0 for p in pairs},
            args.days + 1,
            newest,
            7,
            step=args.step,
            field=FIELD,
        )
        print(
            f"{written:,} samples ({args.pairs} pairs x {args.days + 1} d every {args.step:g} s) "
            f"written in {time.perf_counter() - t0:.1f} s to {database.dialect}"
        )
        calendar = MarketCalendar.from_settings(settings)
        query = DashboardQuery(repository, calendar, FIELD)
        whole_minute = newest - 3600
        exact_edges = whole_minute + 37.3
        raw = await raw_dashboard(database, calendar, exact_edges)
        windows = list(dashboard_windows(exact_edges, calendar).items())
        served = await repository.window_stats_many(windows, field=FIELD)
        checked = check_exact(served, raw)
        result = await query(exact_edges)
        assert result["count"] == args.pairs
        print(
            f"  exact edges checked: {checked} (window, pair) stats equal to the raw baseline "
            "(count, sum, min, max)"
        )
        await timed("dashboard, edges on whole minutes", args.runs, lambda: query(whole_minute))
        ours = await timed(
            "dashboard, exact edges in 10-s data", args.runs, lambda: query(exact_edges)
        )
        baseline = await timed(
            "baseline: same windows over raw",
            max(3, args.runs // 5),
            lambda: raw_dashboard(database, calendar, exact_edges),
        )
        median = statistics.median(ours)
        print(
            f"  target < 50 ms (exact edges): {'met' if median < 50 else 'NOT met'}; "
            f"raw/aggregates speed-up x{statistics.median(baseline) / median:.0f}"
        )
    finally:
        await database.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    asyncio.run(main(parser.parse_args()))
