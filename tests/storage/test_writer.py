"""The batching writer: aggregates, flushing, overflow and retries on real databases."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from storage_kit import (
    assert_buckets_equal,
    count_rows,
    expected_buckets,
    expected_window,
    stored_buckets,
)

from cotiza.errors import StorageError
from cotiza.models import Quote, RatioSample
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_samples, ticks
from cotiza.storage.writer import Writer, WriterStats, backoff_delay

T0 = 1_700_002_800.0  # a whole hour
AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
GD30 = "MERV - XMEV - GD30 - 24hs"
GD30D = "MERV - XMEV - GD30D - 24hs"


async def _rename(database: Database, old: str, new: str) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def _wait_stats(writer: Writer, predicate: Callable[[WriterStats], bool]) -> WriterStats:
    async with asyncio.timeout(20):
        return await writer.wait_stats(predicate)


@pytest.fixture
async def pair_ids(database: Database) -> list[int]:
    repo = Repository(database)
    return [(await repo.create_pair(AL30, AL30D)).id, (await repo.create_pair(GD30, GD30D)).id]


async def test_aggregates_and_window_stats_match_python(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> None:
    """Minute, hour and day buckets and window_stats equal sums over the same samples."""
    rng = random.Random(7)
    samples = [
        make_sample(
            pid, T0 + 1234.5 + i * 10, None if rng.random() < 0.1 else rng.uniform(900, 1100)
        )
        for i in range(3 * 360 + 120)
        for pid in pair_ids
    ]
    writer = Writer(database, make_settings(write_batch_size=37))
    await writer.start()
    for sample in samples:
        await writer.submit_sample(sample)
    await writer.flush()
    await writer.stop(5)
    assert writer.stats.written_samples == len(samples)
    assert writer.stats.pending == 0
    assert await count_rows(database, ratio_samples) == len(samples)

    assert_buckets_equal(
        await stored_buckets(database, ratio_minutes), expected_buckets(samples, 60)
    )
    assert_buckets_equal(
        await stored_buckets(database, ratio_hours), expected_buckets(samples, 3600)
    )
    assert_buckets_equal(
        await stored_buckets(database, ratio_days), expected_buckets(samples, 86400)
    )

    repo = Repository(database)
    windows = [
        (T0 + 1500.3, T0 + 3 * 3600 + 777.7),  # partial hours at both edges
        (T0 + 3600, T0 + 3 * 3600),  # whole hours only
        (T0 + 4000, T0 + 4500),  # inside one hour
        (T0 + 3599, T0 + 7201),  # one whole hour plus one minute on each side
        (T0, T0 + 10 * 3600),  # everything
        (T0 - 7200, T0),  # before the data
    ]
    for start, end in windows:
        actual = await repo.window_stats(start, end, field="mid_ratio")
        expected = expected_window(samples, start, end)
        assert actual.keys() == expected.keys(), (start, end)
        for pid, want in expected.items():
            got = actual[pid]
            assert (got.count, got.minimum, got.maximum) == (want.count, want.minimum, want.maximum)
            assert got.total == pytest.approx(want.total, rel=1e-12)


async def test_ticks_are_written_in_batches(
    database: Database, make_settings: Callable[..., Settings], make_quote: Callable[..., Quote]
) -> None:
    """Ticks are stored with all their fields."""
    writer = Writer(database, make_settings(write_batch_size=7))
    await writer.start()
    quotes = [make_quote(AL30, T0 + i, 100.0 + i) for i in range(20)]
    assert all(writer.submit_tick(q) for q in quotes)
    await writer.flush()
    await writer.stop(5)
    assert writer.stats.written_ticks == 20
    async with database.engine.connect() as conn:
        rows = (await conn.execute(select(ticks).order_by(ticks.c.id))).mappings().all()
    assert [Quote(**{k: v for k, v in row.items() if k != "id"}) for row in rows] == quotes


async def test_stop_writes_everything_queued(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
    make_quote: Callable[..., Quote],
) -> None:
    """stop() writes what is queued at once, without waiting for the flush interval."""
    writer = Writer(database, make_settings(write_flush_interval=60.0, write_batch_size=10_000))
    await writer.start()
    await writer.start()
    for i in range(120):
        await writer.submit_sample(make_sample(pair_ids[0], T0 + i, 1.0))
        writer.submit_tick(make_quote(AL30, T0 + i))
    async with asyncio.timeout(10):
        await writer.stop(30)
    await writer.stop(30)
    assert not writer.running
    assert await count_rows(database, ratio_samples) == 120
    assert await count_rows(database, ticks) == 120
    with pytest.raises(StorageError):
        await writer.submit_sample(make_sample(pair_ids[0], T0, 1.0))


async def test_ticks_dropped_when_queue_full_but_samples_fit(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
    make_quote: Callable[..., Quote],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full queue drops ticks (counted, logged once) but keeps room for samples."""
    writer = Writer(database, make_settings(write_queue_size=10))
    with caplog.at_level(logging.WARNING, logger="cotiza.storage.writer"):
        accepted = [writer.submit_tick(make_quote(AL30, T0 + i)) for i in range(15)]
    assert accepted == [True] * 9 + [False] * 6
    assert writer.stats.dropped_ticks == 6
    assert writer.stats.pending == 9
    assert len([r for r in caplog.records if "tick(s) dropped" in r.message]) == 1

    await writer.submit_sample(make_sample(pair_ids[0], T0, 1.0))  # the reserved slot
    blocked = asyncio.create_task(writer.submit_sample(make_sample(pair_ids[0], T0 + 1, 1.0)))
    done, _ = await asyncio.wait({blocked}, timeout=0.05)
    assert not done  # the queue is full: the sample waits instead of being dropped

    await writer.start()
    async with asyncio.timeout(10):
        await blocked
        await writer.flush()
    await writer.stop(5)
    stats = writer.stats
    assert (stats.written_ticks, stats.written_samples, stats.dropped_ticks) == (9, 2, 6)
    assert await count_rows(database, ticks) == 9


async def test_ticks_ignored_when_not_stored(
    database: Database, make_settings: Callable[..., Settings], make_quote: Callable[..., Quote]
) -> None:
    """With store_ticks off, submit_tick accepts and discards ticks."""
    writer = Writer(database, make_settings(store_ticks=False))
    await writer.start()
    assert writer.submit_tick(make_quote(AL30, T0))
    await writer.flush()
    await writer.stop(5)
    assert writer.stats.pending == 0
    assert await count_rows(database, ticks) == 0


async def test_failed_writes_are_retried_and_not_lost(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
    make_quote: Callable[..., Quote],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While a table is missing every batch fails whole; once it is back all rows arrive."""
    samples = [make_sample(pair_ids[i % 2], T0 + i * 10, 1.0 + i) for i in range(40)]
    writer = Writer(database, make_settings())
    await writer.start()
    await _rename(database, "ratio_hours", "ratio_hours_away")
    try:
        for sample in samples:
            await writer.submit_sample(sample)
            writer.submit_tick(make_quote(AL30, sample.asof))
        stats = await _wait_stats(writer, lambda s: s.failures >= 3)
        assert not stats.healthy
        assert stats.pending == 80
        assert stats.last_error is not None and "ratio_hours" in stats.last_error
        assert "postgres@" not in stats.last_error and "INSERT" not in stats.last_error
        assert stats.last_error_at is not None
        # The failing transaction wrote nothing: ticks and samples roll back with the buckets.
        assert await count_rows(database, ratio_samples) == 0
        assert await count_rows(database, ticks) == 0
    finally:
        await _rename(database, "ratio_hours_away", "ratio_hours")
    async with asyncio.timeout(20):
        await writer.flush()
    stats = writer.stats
    await writer.stop(5)
    assert stats.healthy and stats.retries >= 3 and stats.failures >= 3
    assert stats.last_success_at is not None
    assert (stats.written_samples, stats.written_ticks, stats.pending) == (40, 40, 0)
    assert await count_rows(database, ratio_samples) == 40
    assert_buckets_equal(
        await stored_buckets(database, ratio_hours), expected_buckets(samples, 3600)
    )
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR)


async def test_stop_reports_what_could_not_be_written(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the database keeps failing, stop() gives up at its deadline and logs the count."""
    writer = Writer(database, make_settings(write_retry_base=0.5, write_retry_max=1.0))
    await writer.start()
    await _rename(database, "ratio_samples", "ratio_samples_away")
    try:
        for i in range(5):
            await writer.submit_sample(make_sample(pair_ids[0], T0 + i, 1.0))
        await _wait_stats(writer, lambda s: s.failures >= 1)
        async with asyncio.timeout(5):
            await writer.stop(0.3)
    finally:
        await _rename(database, "ratio_samples_away", "ratio_samples")
    assert not writer.running
    assert writer.stats.pending == 5
    assert any("5 item(s) not written" in r.getMessage() for r in caplog.records)
    with pytest.raises(StorageError):
        await writer.flush()


async def test_samples_of_deleted_pairs_do_not_block_the_queue(
    database: Database,
    pair_ids: list[int],
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> None:
    """Samples of a pair deleted meanwhile are discarded; the rest of the batch is written."""
    await Repository(database).delete_pair(pair_ids[1])
    writer = Writer(database, make_settings())
    await writer.start()
    await writer.submit_sample(make_sample(pair_ids[1], T0, 1.0))
    await writer.submit_sample(make_sample(pair_ids[0], T0, 1.0))
    async with asyncio.timeout(10):
        await writer.flush()
    await writer.stop(5)
    assert writer.stats.failures == 0
    assert writer.stats.written_samples == 1
    assert await count_rows(database, ratio_samples) == 1


def test_backoff_delay_doubles_up_to_the_maximum_with_jitter() -> None:
    """The backoff doubles from the base, stops at the maximum and jitters downwards."""
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (100, 10.0)]:
        delays = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
