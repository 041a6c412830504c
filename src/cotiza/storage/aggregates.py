"""Per-minute, per-hour and per-day aggregates of the dashboard ratio field.

The writer merges every batch into all three levels and the demo backfill fills them
with INSERT ... SELECT. A bucket holds the samples with ``bucket <= asof < bucket + size``.
``cover`` splits whole minutes into whole days, hours at the day edges and minutes at the
hour edges; ``cotiza.storage.windows`` reads windows through it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.errors import StorageError
from cotiza.models import RatioSample
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes

MINUTE = 60
HOUR = 3600
DAY = 86_400
BUCKET_COLUMNS = ("pair_id", "bucket", "n", "total", "minimum", "maximum")

# Bucket size in seconds and table of every level, finest first. Each size divides the
# next one, so a bucket of one level is exactly covered by buckets of the finer levels.
LEVELS: tuple[tuple[int, Table], ...] = (
    (MINUTE, ratio_minutes),
    (HOUR, ratio_hours),
    (DAY, ratio_days),
)

# A range of buckets of one level: (table, first bucket, end bucket), end excluded.
Range = tuple[Table, int, int]


@dataclass(slots=True)
class Bucket:
    """Count, sum, minimum and maximum of one ratio field within one time bucket."""

    n: int
    total: float
    minimum: float
    maximum: float

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


BucketMap = dict[tuple[int, int], Bucket]


def accumulate(
    buckets: BucketMap, pair_id: int, asof: float, value: float | None, size: int
) -> None:
    """Add ``value`` to the bucket of ``size`` seconds containing ``asof``; skip non-numbers."""
    if value is None or not math.isfinite(value):
        return
    key = (pair_id, int(asof // size) * size)
    found = buckets.get(key)
    if found is None:
        buckets[key] = Bucket(1, value, value, value)
    else:
        found.add(value)


def merge_statement(table: Table, dialect: str, source: Select[Any] | None = None) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE that adds into existing buckets of ``table``.

    Without ``source`` it takes executemany parameters; with it, the rows of that SELECT
    (columns pair_id, bucket, n, total, minimum, maximum).
    """
    statement: Any
    if dialect == "postgresql":
        statement, smaller, larger = postgresql.insert(table), "least", "greatest"
    elif dialect == "sqlite":
        # SQLite's two-argument min()/max() are scalar functions, not aggregates.
        statement, smaller, larger = sqlite.insert(table), "min", "max"
    else:
        raise StorageError(f"unsupported database dialect {dialect!r}")
    if source is not None:
        statement = statement.from_select(BUCKET_COLUMNS, source)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.pair_id, table.c.bucket],
        set_={
            "n": table.c.n + new.n,
            "total": table.c.total + new.total,
            "minimum": getattr(func, smaller)(table.c.minimum, new.minimum),
            "maximum": getattr(func, larger)(table.c.maximum, new.maximum),
        },
    )


async def upsert_buckets(conn: AsyncConnection, table: Table, buckets: BucketMap) -> None:
    """Merge pre-aggregated buckets into ``table`` with one INSERT ... ON CONFLICT statement."""
    if not buckets:
        return
    # Sorted keys keep the lock order stable between concurrent writers.
    rows = [
        dict(zip(BUCKET_COLUMNS, (key[0], key[1], b.n, b.total, b.minimum, b.maximum), strict=True))
        for key, b in sorted(buckets.items())
    ]
    await conn.execute(merge_statement(table, conn.dialect.name), rows)


async def write_aggregates(
    conn: AsyncConnection, samples: Iterable[RatioSample], field: str
) -> None:
    """Merge the minute, hour and day aggregates of ``field`` over ``samples``."""
    per_level: list[tuple[int, Table, BucketMap]] = [(size, table, {}) for size, table in LEVELS]
    for sample in samples:
        value = getattr(sample.values, field)
        for size, _, buckets in per_level:
            accumulate(buckets, sample.pair_id, sample.asof, value, size)
    for _, table, buckets in per_level:
        await upsert_buckets(conn, table, buckets)


def cover(first: int, end: int) -> list[Range]:
    """Split the minutes [first, end) into bucket ranges of the coarsest levels that fit.

    ``first`` and ``end`` are whole minutes. The result holds ``(table, lower, upper)``
    with whole days in the middle, whole hours at the day edges and minutes at the hour
    edges; the ranges are disjoint and together cover exactly [first, end).
    """
    return _cover(first, end, len(LEVELS) - 1)


def _cover(first: int, end: int, level: int) -> list[Range]:
    if first >= end:
        return []
    size, table = LEVELS[level]
    if level == 0:
        return [(table, first, end)]
    inner_first, inner_end = -(-first // size) * size, end // size * size
    if inner_first >= inner_end:
        return _cover(first, end, level - 1)
    return [
        *_cover(first, inner_first, level - 1),
        (table, inner_first, inner_end),
        *_cover(inner_end, end, level - 1),
    ]
