"""Pair management and the read queries of the repository."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select
from storage_kit import count_rows

from cotiza.errors import ConflictError, InvalidRequestError, NotFoundError
from cotiza.models import Quote, RatioSample
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.repository import HISTORY_FIELDS, Repository
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_samples, ticks
from cotiza.storage.writer import Writer

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
GD30 = "MERV - XMEV - GD30 - 24hs"
GD30D = "MERV - XMEV - GD30D - 24hs"
T0 = 1_700_000_400.0  # a whole hour


@pytest.fixture
def repo(database: Database) -> Repository:
    return Repository(database)


@pytest.fixture
async def writer(
    database: Database, make_settings: Callable[..., Settings]
) -> AsyncIterator[Writer]:
    w = Writer(database, make_settings())
    await w.start()
    try:
        yield w
    finally:
        await w.stop(5)


async def _store(writer: Writer, samples: list[RatioSample]) -> None:
    for sample in samples:
        await writer.submit_sample(sample)
    await writer.flush()


async def test_pair_crud(repo: Repository) -> None:
    """Pairs can be created, read, listed, updated and deleted."""
    pair = await repo.create_pair(AL30, AL30D)
    assert (pair.factor, pair.client_id, pair.active) == (1.0, "default", True)
    assert await repo.get_pair(pair.id) == pair
    other = await repo.create_pair(GD30, GD30D, factor=100.0, client_id="desk", active=False)
    assert await repo.list_pairs() == [pair, other]
    assert await repo.list_pairs(active_only=True) == [pair]

    updated = await repo.update_pair(other.id, factor=2.5, active=True, client_id="desk2")
    assert (updated.factor, updated.active, updated.client_id) == (2.5, True, "desk2")
    assert await repo.get_pair(other.id) == updated
    assert await repo.update_pair(other.id) == updated

    await repo.delete_pair(pair.id)
    assert await repo.list_pairs() == [updated]


async def test_pair_conflicts(repo: Repository) -> None:
    """A duplicate (base, quote, client_id) is a conflict, on create and on update."""
    await repo.create_pair(AL30, AL30D)
    with pytest.raises(ConflictError):
        await repo.create_pair(AL30, AL30D)
    second = await repo.create_pair(AL30, AL30D, client_id="other")
    with pytest.raises(ConflictError):
        await repo.update_pair(second.id, client_id="default")
    assert len(await repo.list_pairs()) == 2


async def test_pair_validation(repo: Repository) -> None:
    """Non-positive factors, identical legs and empty names are rejected."""
    for kwargs in ({"factor": 0.0}, {"factor": -1.0}, {"factor": math.nan}):
        with pytest.raises(InvalidRequestError):
            await repo.create_pair(AL30, AL30D, **kwargs)
    with pytest.raises(InvalidRequestError):
        await repo.create_pair(AL30, AL30)
    with pytest.raises(InvalidRequestError):
        await repo.create_pair("", AL30)
    pair = await repo.create_pair(AL30, AL30D)
    with pytest.raises(InvalidRequestError):
        await repo.update_pair(pair.id, factor=0.0)
    assert await repo.list_pairs() == [pair]


async def test_pair_not_found(repo: Repository) -> None:
    """Reading, updating or deleting a missing pair raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await repo.get_pair(999)
    with pytest.raises(NotFoundError):
        await repo.update_pair(999, active=False)
    with pytest.raises(NotFoundError):
        await repo.delete_pair(999)


async def test_seed_pairs_only_into_an_empty_table(repo: Repository) -> None:
    """Seeding inserts the defaults once and never again."""
    defaults = [(AL30, AL30D, 1.0, "default"), (GD30, GD30D, 1.0, "default")]
    assert await repo.seed_pairs(defaults) == 2
    assert await repo.seed_pairs(defaults) == 0
    assert [(p.base, p.quote) for p in await repo.list_pairs()] == [(AL30, AL30D), (GD30, GD30D)]


async def test_delete_pair_removes_its_samples_and_aggregates(
    repo: Repository,
    database: Database,
    writer: Writer,
    make_sample: Callable[..., RatioSample],
) -> None:
    """Deleting a pair deletes its samples and its aggregate buckets, not others'."""
    gone = await repo.create_pair(AL30, AL30D)
    kept = await repo.create_pair(GD30, GD30D)
    await _store(
        writer,
        [make_sample(p.id, T0 + i * 10, 1.0 + i) for p in (gone, kept) for i in range(12)],
    )
    await repo.delete_pair(gone.id)
    for table in (ratio_samples, ratio_minutes, ratio_hours, ratio_days):
        async with database.engine.connect() as conn:
            pair_ids = set((await conn.execute(select(table.c.pair_id))).scalars())
        assert pair_ids == {kept.id}


async def test_recent_samples_are_the_newest_oldest_first(
    repo: Repository, writer: Writer, make_sample: Callable[..., RatioSample]
) -> None:
    """recent_samples returns the newest samples in chronological order, fully restored."""
    pair = await repo.create_pair(AL30, AL30D)
    samples = [
        make_sample(pair.id, T0 + i * 10, 1000.0 + i, last=999.0, sma=1000.5) for i in range(30)
    ]
    await _store(writer, samples)
    assert await repo.recent_samples(pair.id, limit=5) == samples[-5:]
    assert await repo.recent_samples(pair.id) == samples
    assert await repo.recent_samples(pair.id + 1) == []


async def test_latest_values_skip_null_fields(
    repo: Repository, writer: Writer, make_sample: Callable[..., RatioSample]
) -> None:
    """latest_values gives each pair's newest non-null value of the field."""
    first = await repo.create_pair(AL30, AL30D)
    second = await repo.create_pair(GD30, GD30D)
    await repo.create_pair(AL30, GD30D)  # no samples at all
    await _store(
        writer,
        [
            make_sample(first.id, T0, 1.5, last=1.4),
            make_sample(first.id, T0 + 10, 1.6),  # newest, but last_ratio is null
            make_sample(first.id, T0 + 20, None),  # newest, but mid_ratio is null
            make_sample(second.id, T0 + 5, 2.5, last=2.4),
        ],
    )
    assert await repo.latest_values("mid_ratio") == {
        first.id: (T0 + 10, 1.6),
        second.id: (T0 + 5, 2.5),
    }
    assert await repo.latest_values("last_ratio") == {
        first.id: (T0, 1.4),
        second.id: (T0 + 5, 2.4),
    }
    with pytest.raises(InvalidRequestError):
        await repo.latest_values("id; DROP TABLE ticks")


async def test_history_raw_and_downsampled(
    repo: Repository, writer: Writer, make_sample: Callable[..., RatioSample]
) -> None:
    """history returns raw samples in range, or per-bucket averages with the bucket start."""
    pair = await repo.create_pair(AL30, AL30D)
    samples = [
        make_sample(pair.id, T0 + i * 10, 100.0 + i, sma=None if i % 4 else 100.0 + i)
        for i in range(60)
    ]
    await _store(writer, samples)

    raw = await repo.history(pair.id, T0 + 100, T0 + 200, None)
    assert [row["asof"] for row in raw] == [T0 + t for t in range(100, 200, 10)]
    assert raw[0]["mid_ratio"] == 110.0
    assert raw[0]["band_upper"] is None
    assert len(await repo.history(pair.id, T0, T0 + 600, None, limit=7)) == 7

    rows = await repo.history(pair.id, T0 + 30, T0 + 600, 120.0)
    in_range = [s for s in samples if T0 + 30 <= s.asof < T0 + 600]
    expected: dict[float, list[RatioSample]] = {}
    for s in in_range:
        expected.setdefault(math.floor(s.asof / 120.0) * 120.0, []).append(s)
    assert [row["asof"] for row in rows] == list(expected)
    for row, group in zip(rows, expected.values(), strict=True):
        assert set(row) == {"asof", *HISTORY_FIELDS}
        for field in HISTORY_FIELDS:
            values = [v for s in group if (v := s.flat()[field]) is not None]
            want = sum(values) / len(values) if values else None
            assert row[field] == pytest.approx(want)
    assert len(await repo.history(pair.id, T0, T0 + 600, 60.0, limit=3)) == 3
    with pytest.raises(InvalidRequestError):
        await repo.history(pair.id, T0, T0 + 600, 0.0)


async def test_newest_sample_asof(
    repo: Repository, writer: Writer, make_sample: Callable[..., RatioSample]
) -> None:
    """newest_sample_asof is None without samples and the latest time across pairs after."""
    assert await repo.newest_sample_asof() is None
    first = await repo.create_pair(AL30, AL30D)
    second = await repo.create_pair(GD30, GD30D)
    await _store(
        writer, [make_sample(first.id, T0 + 50, 1.0), make_sample(second.id, T0 + 20, 1.0)]
    )
    assert await repo.newest_sample_asof() == T0 + 50


async def test_purge_before_keeps_hours_and_days(
    repo: Repository,
    database: Database,
    writer: Writer,
    make_sample: Callable[..., RatioSample],
    make_quote: Callable[..., Quote],
) -> None:
    """purge_before deletes old samples, ticks and minute buckets; hours and days stay."""
    pair = await repo.create_pair(AL30, AL30D)
    for i in range(6):
        writer.submit_tick(make_quote(AL30, T0 + i * 60))
    await _store(writer, [make_sample(pair.id, T0 + i * 60, 1.0) for i in range(6)])
    deleted = await repo.purge_before(T0 + 180)
    assert deleted == 3 + 3 + 3
    assert await count_rows(database, ratio_samples) == 3
    assert await count_rows(database, ticks) == 3
    assert await count_rows(database, ratio_minutes) == 3
    assert await count_rows(database, ratio_hours) == 1
    assert await count_rows(database, ratio_days) == 1
