"""Day aggregates, the window decomposition, several windows at once and migration 0002."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from storage_kit import (
    Buckets,
    assert_buckets_equal,
    expected_buckets,
    expected_window,
    stored_buckets,
)

from cotiza.errors import InvalidRequestError
from cotiza.models import RatioSample, WindowStats
from cotiza.settings import Settings
from cotiza.storage.aggregates import DAY, HOUR, MINUTE, cover
from cotiza.storage.database import Database, alembic_config
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_pairs
from cotiza.storage.writer import Writer

D0 = 1_699_920_000  # 2023-11-14 00:00 UTC
AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
GD30 = "MERV - XMEV - GD30 - 24hs"
GD30D = "MERV - XMEV - GD30D - 24hs"

# (start, end) windows over the samples of ``_samples``, which run from D0 - 5000 s to
# about D0 + 3.3 days with a missing hour on the second day.
WINDOWS = [
    (D0 - 3000.3, D0 + 2 * DAY + 5000.7),  # partial hours and minutes at both edges
    (D0, D0 + 3 * DAY),  # whole days only
    (D0 + DAY, D0 + 2 * DAY),  # one day, with the missing hour
    (D0 + 5 * HOUR + 30, D0 + DAY + 2 * HOUR - 10),  # across midnight, no whole day
    (D0 + DAY - 61, D0 + 2 * DAY + 1),  # one whole day plus one minute on each side
    (D0 + 3 * HOUR, D0 + DAY + 3 * HOUR),  # a local calendar day (UTC-3)
    (D0 + 2 * DAY + 7 * HOUR + 1234.5, D0 + 2 * DAY + 7 * HOUR + 2345.6),  # inside an hour
    (D0 - DAY, D0 + 5 * DAY),  # everything
    (D0 - 3 * DAY, D0 - 2 * DAY),  # before the data
    (D0 + 10.0, D0 + 10.0),  # empty
]


def _samples(pair_ids: Iterable[int], make_sample: Callable[..., RatioSample]) -> list[RatioSample]:
    rng = random.Random(11)
    gap = (D0 + DAY + 6 * HOUR, D0 + DAY + 7 * HOUR)
    return [
        make_sample(pid, asof, None if rng.random() < 0.1 else rng.uniform(900, 1100))
        for asof in (D0 - 5000.5 + i * 131 for i in range(2250))
        if not gap[0] <= asof < gap[1]
        for pid in pair_ids
    ]


def _assert_stats_equal(
    actual: dict[int, WindowStats], expected: dict[int, WindowStats], label: object
) -> None:
    assert actual.keys() == expected.keys(), label
    for pid, want in expected.items():
        got = actual[pid]
        assert (got.count, got.minimum, got.maximum) == (want.count, want.minimum, want.maximum)
        assert got.total == pytest.approx(want.total, rel=1e-12), label


@pytest.fixture
async def stored(
    database: Database,
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> list[RatioSample]:
    """Three days of samples of two pairs, written through the writer in odd batches."""
    repo = Repository(database)
    pair_ids = [(await repo.create_pair(AL30, AL30D)).id, (await repo.create_pair(GD30, GD30D)).id]
    samples = _samples(pair_ids, make_sample)
    writer = Writer(database, make_settings(write_batch_size=173))
    await writer.start()
    try:
        for sample in samples:
            await writer.submit_sample(sample)
        await writer.flush()
    finally:
        await writer.stop(5)
    assert writer.stats.written_samples == len(samples)
    return samples


def test_cover_uses_the_coarsest_levels_that_fit() -> None:
    """Whole days in the middle, hours at the day edges, minutes at the hour edges."""
    assert cover(D0, D0) == []
    assert cover(D0, D0 + 2 * DAY) == [(ratio_days, D0, D0 + 2 * DAY)]
    assert cover(D0 + 60, D0 + 600) == [(ratio_minutes, D0 + 60, D0 + 600)]
    assert cover(D0 - 120, D0 + DAY + HOUR + 60) == [
        (ratio_minutes, D0 - 120, D0),
        (ratio_days, D0, D0 + DAY),
        (ratio_hours, D0 + DAY, D0 + DAY + HOUR),
        (ratio_minutes, D0 + DAY + HOUR, D0 + DAY + HOUR + 60),
    ]
    assert cover(D0 - HOUR - 60, D0 + HOUR) == [
        (ratio_minutes, D0 - HOUR - 60, D0 - HOUR),
        (ratio_hours, D0 - HOUR, D0 + HOUR),
    ]


def test_cover_is_exact_and_minimal() -> None:
    """For random minute bounds the ranges are aligned, contiguous and cover exactly."""
    rng = random.Random(5)
    size_of = {ratio_minutes: MINUTE, ratio_hours: HOUR, ratio_days: DAY}
    coarser = {ratio_minutes: HOUR, ratio_hours: DAY}
    for _ in range(500):
        first = D0 + rng.randrange(-3 * 1440, 3 * 1440) * MINUTE
        end = first + rng.randrange(0, 40 * 1440) * MINUTE
        ranges = cover(first, end)
        position = first
        for table, lower, upper in ranges:
            size = size_of[table]
            assert lower == position < upper
            assert lower % size == 0 and upper % size == 0
            if table in coarser:  # a finer range never holds a whole coarser bucket
                step = coarser[table]
                assert -(-lower // step) * step + step > upper
            position = upper
        assert position == end
        assert len(ranges) <= 5


async def test_day_buckets_and_windows_match_python(
    database: Database, stored: list[RatioSample]
) -> None:
    """Day buckets equal Python sums; windows over several days equal the reference."""
    assert_buckets_equal(await stored_buckets(database, ratio_days), expected_buckets(stored, DAY))
    assert_buckets_equal(
        await stored_buckets(database, ratio_hours), expected_buckets(stored, HOUR)
    )
    assert len({bucket for _, bucket in await stored_buckets(database, ratio_days)}) == 5
    repo = Repository(database)
    for start, end in WINDOWS:
        expected = expected_window(stored, start, end)
        _assert_stats_equal(
            await repo.window_stats(start, end, field="mid_ratio"), expected, (start, end)
        )


async def test_window_stats_many_equals_one_window_at_a_time(
    database: Database, stored: list[RatioSample]
) -> None:
    """Several windows in one query give what each window gives alone."""
    repo = Repository(database)
    named = [(f"w{i}", start, end) for i, (start, end) in enumerate(WINDOWS)]
    many = await repo.window_stats_many(named, field="mid_ratio")
    assert list(many) == [name for name, _, _ in named]
    for name, start, end in named:
        alone = await repo.window_stats(start, end, field="mid_ratio")
        _assert_stats_equal(many[name], alone, name)
        _assert_stats_equal(many[name], expected_window(stored, start, end), name)
    assert many["w8"] == {} and many["w9"] == {}

    assert await repo.window_stats_many([], field="mid_ratio") == {}
    with pytest.raises(InvalidRequestError):
        await repo.window_stats_many([("a", D0, D0 + DAY), ("a", D0, D0 + HOUR)], field="mid_ratio")


async def test_window_stats_many_splits_very_many_windows(
    database: Database, stored: list[RatioSample]
) -> None:
    """More bucket ranges than one UNION ALL may hold still give every window."""
    repo = Repository(database)
    named = [(f"w{i}", D0 + i * 61.0, D0 + DAY + 3 * HOUR + i * 127.0) for i in range(150)]
    many = await repo.window_stats_many(named, field="mid_ratio")
    assert len(many) == 150
    for name, start, end in named[::37]:
        _assert_stats_equal(many[name], expected_window(stored, start, end), name)


# --- migration 0002 ---------------------------------------------------------------------


async def _run(url: str, action: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(action)
    finally:
        await engine.dispose()


def _hour_rows(pair_ids: list[int]) -> list[dict[str, Any]]:
    rng = random.Random(3)
    rows = []
    for pid in pair_ids:
        for hour in range(-5, 3 * 24 + 7):
            if rng.random() < 0.15:
                continue  # hours without data
            low = rng.uniform(900, 1000)
            rows.append(
                {
                    "pair_id": pid,
                    "bucket": D0 + hour * HOUR,
                    "n": rng.randrange(1, 360),
                    "total": rng.uniform(1e4, 1e5),
                    "minimum": low,
                    "maximum": low + rng.uniform(0, 50),
                }
            )
    return rows


def _days_from_hours(rows: list[dict[str, Any]]) -> Buckets:
    days: Buckets = {}
    for row in rows:
        key = (row["pair_id"], row["bucket"] // DAY * DAY)
        value = (row["n"], row["total"], row["minimum"], row["maximum"])
        found = days.get(key)
        days[key] = (
            value
            if found is None
            else (
                found[0] + value[0],
                found[1] + value[1],
                min(found[2], value[2]),
                max(found[3], value[3]),
            )
        )
    return days


def _insert_at_0001(rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    def insert_rows(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "0001")
        for pid in sorted({row["pair_id"] for row in rows}):
            conn.execute(
                insert(ratio_pairs).values(
                    id=pid, base=f"B{pid}", quote=f"Q{pid}", factor=1.0, created_at=0.0
                )
            )
        conn.execute(insert(ratio_hours), rows)

    return insert_rows


async def test_migration_0002_backfills_days_from_hours(fresh_db_url: str) -> None:
    """Upgrading a 0001 database fills ratio_days from its hours; downgrade drops it."""
    rows = _hour_rows([1, 2])
    await _run(fresh_db_url, _insert_at_0001(rows))
    assert "ratio_days" not in await _run(fresh_db_url, lambda c: inspect(c).get_table_names())

    expected = _days_from_hours(rows)
    assert len(expected) == 2 * 5
    async with Database(fresh_db_url) as db:  # start-up upgrades to head
        assert await db.revision() == "0004"
        assert_buckets_equal(await stored_buckets(db, ratio_days), expected)
        stats = await Repository(db).window_stats(D0 - DAY, D0 + 5 * DAY, field="mid_ratio")
        for pid in (1, 2):
            mine = [row for row in rows if row["pair_id"] == pid]
            assert stats[pid].count == sum(row["n"] for row in mine)
            assert stats[pid].total == pytest.approx(sum(row["total"] for row in mine))

    await _run(fresh_db_url, lambda c: command.downgrade(alembic_config(c), "0001"))
    assert "ratio_days" not in await _run(fresh_db_url, lambda c: inspect(c).get_table_names())
    await _run(fresh_db_url, lambda c: command.upgrade(alembic_config(c), "head"))
    async with Database(fresh_db_url) as db:
        assert_buckets_equal(await stored_buckets(db, ratio_days), expected)
        async with db.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(ratio_hours)) == len(rows)
