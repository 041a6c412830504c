"""The simulated demo history."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Integer, func, select

from cotiza.feeds.sim import SimFeed
from cotiza.models import RatioPair, RatioSample
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.demo import DAY, backfill_demo, backfill_demo_history
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_samples
from cotiza.storage.writer import Writer

NOW = 1_700_000_000.0
PAIRS = (
    ("MERV - XMEV - AL30 - 24hs", "MERV - XMEV - AL30D - 24hs", 1150.0),
    ("MERV - XMEV - GD30 - 24hs", "MERV - XMEV - GD30D - 24hs", 1160.0),
    ("MERV - XMEV - AL30D - 24hs", "MERV - XMEV - AL30C - 24hs", 0.99),
)


async def _pairs(repo: Repository) -> tuple[list[RatioPair], dict[int, float]]:
    pairs = [await repo.create_pair(base, quote) for base, quote, _ in PAIRS]
    return pairs, {pair.id: level for pair, (*_, level) in zip(pairs, PAIRS, strict=True)}


async def _scalar(database: Database, query: Any) -> Any:
    async with database.engine.connect() as conn:
        return await conn.scalar(query)


async def test_backfill_writes_consistent_samples_and_aggregates(database: Database) -> None:
    """Two days at 60 s give 2880 samples per pair with bid < mid < ask and matching buckets."""
    pairs, levels = await _pairs(Repository(database))
    written = await backfill_demo_history(database, pairs, levels, 2, NOW, seed=3)
    assert written == 3 * 2 * 1440
    assert await _scalar(database, select(func.count()).select_from(ratio_samples)) == written
    s = ratio_samples.c
    disordered = select(func.count()).where(
        (s.bid_ratio >= s.mid_ratio) | (s.mid_ratio >= s.ask_ratio) | s.mid_ratio.is_(None)
    )
    assert await _scalar(database, disordered) == 0
    assert await _scalar(database, select(func.max(s.asof))) < NOW
    assert await _scalar(database, select(func.min(s.asof))) >= NOW - 2 * DAY

    total = await _scalar(database, select(func.sum(s.mid_ratio)))
    for table in (ratio_minutes, ratio_hours, ratio_days):
        assert await _scalar(database, select(func.sum(table.c.n))) == written
        assert await _scalar(database, select(func.sum(table.c.total))) == pytest.approx(
            total, rel=1e-9
        )
    rows = await Repository(database).window_stats(NOW - 2 * DAY, NOW + 60, field="mid_ratio")
    for pair in pairs:
        stats = rows[pair.id]
        assert stats.count == 2 * 1440
        assert stats.mean is not None
        assert abs(stats.mean / levels[pair.id] - 1) < 0.05
        assert stats.minimum is not None and stats.maximum is not None
        assert 0.8 < stats.minimum / levels[pair.id] <= stats.maximum / levels[pair.id] < 1.2


async def test_backfill_skips_pairs_with_history_and_joins_recent_samples(
    database: Database,
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> None:
    """Pairs with old history or no level are skipped; fresh live samples are not overlapped."""
    repo = Repository(database)
    pairs, levels = await _pairs(repo)
    old, live, unknown = pairs
    del levels[unknown.id]
    writer = Writer(database, make_settings())
    await writer.start()
    await writer.submit_sample(make_sample(old.id, NOW - 3 * DAY, 1150.0))
    await writer.submit_sample(make_sample(live.id, NOW - 3600 + 30, 1160.0))
    await writer.flush()
    await writer.stop(5)

    written = await backfill_demo_history(database, pairs, levels, 1, NOW, seed=3)
    assert written == 1440  # only the live pair, up to its first stored sample
    per_pair = select(
        ratio_samples.c.pair_id, func.count(), func.max(ratio_samples.c.asof)
    ).group_by(ratio_samples.c.pair_id)
    async with database.engine.connect() as conn:
        counts = {row[0]: (row[1], row[2]) for row in await conn.execute(per_pair)}
    assert counts[old.id] == (1, NOW - 3 * DAY)
    assert counts[live.id] == (1441, NOW - 3600 + 30)
    assert unknown.id not in counts
    # Every minute, hour and day bucket agrees with the samples, including the buckets
    # shared by the live sample and the simulated ones just before it.
    for size, table in ((60, ratio_minutes), (3600, ratio_hours), (DAY, ratio_days)):
        bucket = (
            func.floor(ratio_samples.c.asof / size)
            if database.dialect == "postgresql"
            else ((ratio_samples.c.asof / size).cast(Integer))
        )
        from_samples = select(
            ratio_samples.c.pair_id,
            (bucket * size).label("bucket"),
            func.count(),
            func.sum(ratio_samples.c.mid_ratio),
        ).group_by(ratio_samples.c.pair_id, bucket)
        async with database.engine.connect() as conn:
            want = {(r[0], int(r[1])): (r[2], r[3]) for r in await conn.execute(from_samples)}
            got = {
                (r[0], int(r[1])): (r[2], r[3])
                for r in await conn.execute(
                    select(table.c.pair_id, table.c.bucket, table.c.n, table.c.total)
                )
            }
        assert got.keys() == want.keys()
        for key, (n, total) in want.items():
            assert got[key][0] == n
            assert got[key][1] == pytest.approx(total, rel=1e-12)
    assert await backfill_demo_history(database, pairs, levels, 1, NOW, seed=3) == 0


async def _mids(database: Database, pair_id: int) -> list[tuple[float, float]]:
    s = ratio_samples.c
    query = select(s.asof, s.mid_ratio).where(s.pair_id == pair_id).order_by(s.asof)
    async with database.engine.connect() as conn:
        return [(row[0], row[1]) for row in await conn.execute(query)]


async def test_backfill_ends_on_the_live_level_without_a_jump(database: Database) -> None:
    """The simulated walk lands exactly on the level the live simulator opens at, step by step."""
    pairs, levels = await _pairs(Repository(database))
    await backfill_demo_history(database, pairs, levels, 2, NOW, seed=11)
    for pair in pairs:
        mids = [mid for _, mid in await _mids(database, pair.id)]
        assert mids[-1] == pytest.approx(levels[pair.id], rel=1e-12)
        steps = [abs(b / a - 1) for a, b in itertools.pairwise(mids)]
        typical = sorted(steps)[len(steps) // 2]
        # The last steps are ordinary steps of the walk, not a jump onto the level.
        assert max(steps[-10:]) < 8 * typical


async def test_backfill_joins_the_first_stored_sample(
    database: Database,
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> None:
    """Before stored samples, the history ends on the first stored mid, not the opening level."""
    repo = Repository(database)
    pairs, levels = await _pairs(repo)
    pair = pairs[0]
    writer = Writer(database, make_settings())
    await writer.start()
    await writer.submit_sample(make_sample(pair.id, NOW - 3600, 1234.5))
    await writer.flush()
    await writer.stop(5)
    await backfill_demo_history(database, [pair], levels, 1, NOW, seed=5)
    mids = await _mids(database, pair.id)
    (before_t, before), (stored_t, stored) = mids[-2], mids[-1]
    assert (stored_t, stored) == (NOW - 3600, 1234.5)
    assert before_t < stored_t
    assert before == pytest.approx(1234.5, rel=1e-12)


async def test_demo_bid_and_ask_join_the_live_simulator(
    database: Database, make_settings: Callable[..., Settings]
) -> None:
    """The demo history's bid/ask spread matches the live simulator's, pair by pair.

    Otherwise the chart's bid and ask lines would jump apart (or together) where the
    history meets the live data, although the mid joins exactly.
    """
    settings = make_settings(demo_history_days=1)
    repo = Repository(database)
    assert await backfill_demo(settings, database, repo) > 0
    pairs = await repo.list_pairs(active_only=True)

    market = SimFeed(settings).select()
    latest = {q.symbol: q for q in market.snapshot()}
    live: dict[int, list[float]] = {pair.id: [] for pair in pairs}
    for index, tick in enumerate(market.generate(60_000)):
        latest[tick.symbol] = tick
        if index % 20:
            continue
        for pair in pairs:
            base, quote = latest.get(pair.base), latest.get(pair.quote)
            if base is None or quote is None or not (base.bid and base.offer):
                continue
            if not (quote.bid and quote.offer and base.mid and quote.mid):
                continue
            bid, ask = base.bid / quote.offer, base.offer / quote.bid
            live[pair.id].append((ask - bid) / (2 * base.mid / quote.mid))

    s = ratio_samples.c
    checked = 0
    for pair in pairs:
        if not live[pair.id]:
            continue
        relative = (s.ask_ratio - s.bid_ratio) / (2 * s.mid_ratio)
        demo = await _scalar(database, select(func.avg(relative)).where(s.pair_id == pair.id))
        expected = sum(live[pair.id]) / len(live[pair.id])
        assert demo == pytest.approx(expected, rel=0.25), pair.name
        checked += 1
    assert checked >= 3
