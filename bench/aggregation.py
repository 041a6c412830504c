"""Dashboard query over a month of history: pre-aggregated buckets against raw samples.

    .venv/bin/python bench/aggregation.py [--pairs 20] [--days 30] [--step 10] [--db URL]

Fills a fresh database with ``days`` of ``step``-second samples for ``pairs`` pairs
(plus their minute/hour/day aggregates, as the writer keeps them), then times the dashboard
query (the same function behind GET /api/ratios/dashboard) and, as the baseline in the
same run, the same windows computed straight from the raw samples. Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from sqlalchemy import func, select

from cotiza.calendar import MarketCalendar
from cotiza.dashboard import dashboard_windows
from cotiza.dashboard_worker import DashboardQuery
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.demo import backfill_demo_history
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_samples


async def raw_dashboard(database: Database, calendar: MarketCalendar, now: float) -> int:
    """The naive way: aggregate every window over ratio_samples."""
    rows = 0
    async with database.engine.connect() as conn:
        for _, start, end in dashboard_windows(now, calendar).items():
            query = (
                select(
                    ratio_samples.c.pair_id,
                    func.count(ratio_samples.c.mid_ratio),
                    func.avg(ratio_samples.c.mid_ratio),
                    func.min(ratio_samples.c.mid_ratio),
                    func.max(ratio_samples.c.mid_ratio),
                )
                .where(ratio_samples.c.asof >= start, ratio_samples.c.asof < end)
                .group_by(ratio_samples.c.pair_id)
            )
            rows += len((await conn.execute(query)).all())
    return rows


async def timed(label: str, runs: int, call) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    print(
        f"  {label:<34} median {statistics.median(times):8.2f} ms   "
        f"max {max(times):8.2f} ms   ({runs} runs)"
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
        now = time.time()
        t0 = time.perf_counter()
        written = await backfill_demo_history(
            database, pairs, {p.id: 1450.0 for p in pairs}, args.days, now, 7, step=args.step
        )
        print(
            f"{written:,} samples ({args.pairs} pairs x {args.days} d every {args.step:g} s) "
            f"written in {time.perf_counter() - t0:.1f} s to {database.dialect}"
        )
        calendar = MarketCalendar.from_settings(settings)
        query = DashboardQuery(repository, calendar, "mid_ratio")
        result = await query(now)
        assert result["count"] == args.pairs
        ours = await timed("dashboard (aggregates)", args.runs, lambda: query(now))
        raw = await timed(
            "baseline: same windows over raw",
            max(3, args.runs // 5),
            lambda: raw_dashboard(database, calendar, now),
        )
        median = statistics.median(ours)
        print(
            f"  target < 50 ms: {'met' if median < 50 else 'NOT met'}; "
            f"raw/aggregates speed-up x{statistics.median(raw) / median:.0f}"
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
