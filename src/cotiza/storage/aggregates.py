"""Per-minute, per-hour and per-day aggregates of the dashboard ratio field.

The writer merges every batch into all three levels and the demo backfill fills them
with INSERT ... SELECT; the repository reads whole days, hours at the day edges and
minutes at the hour edges, so that no window ever scans raw samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Executable,
    Integer,
    Select,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.errors import StorageError
from cotiza.models import RatioSample, WindowStats
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_pairs

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
_TABLES = {table.name: table for _, table in LEVELS}

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


def range_totals(ranges: Sequence[Range]) -> tuple[Executable, dict[str, int]]:
    """One query of per-pair totals over each ``(table, lower, upper)`` bucket range.

    Its rows are (range index, pair_id, count, sum, minimum, maximum), one per range and
    pair with data. Returns the statement and its parameters.
    """
    params: dict[str, int] = {}
    for index, (_, lower, upper) in enumerate(ranges):
        params[f"lo{index}"], params[f"hi{index}"] = lower, upper
    return _range_totals(tuple(table.name for table, _, _ in ranges)), params


@functools.lru_cache(maxsize=256)
def _range_totals(tables: tuple[str, ...]) -> Executable:
    # Building the statement costs more than running it; the shapes repeat between calls.
    terms = []
    for index, name in enumerate(tables):
        table = _TABLES[name]
        terms.append(
            select(
                literal_column(str(index), Integer),
                table.c.pair_id,
                func.sum(table.c.n),
                func.sum(table.c.total),
                func.min(table.c.minimum),
                func.max(table.c.maximum),
            )
            .where(
                # Naming the pairs lets SQLite walk the (pair_id, bucket) key pair by
                # pair, already in group order, instead of sorting bucket-index results.
                table.c.pair_id.in_(select(ratio_pairs.c.id)),
                table.c.bucket >= bindparam(f"lo{index}", type_=BigInteger),
                table.c.bucket < bindparam(f"hi{index}", type_=BigInteger),
            )
            .group_by(table.c.pair_id)
        )
    return union_all(*terms) if len(terms) > 1 else terms[0]


def merge_totals(parts: Iterable[Mapping[int, WindowStats]]) -> dict[int, WindowStats]:
    """Per pair, the stats of disjoint ranges put together."""
    merged: dict[int, WindowStats] = {}
    for part in parts:
        for pair_id, stats in part.items():
            found = merged.get(pair_id)
            merged[pair_id] = stats if found is None else _merge(found, stats)
    return merged


def _merge(a: WindowStats, b: WindowStats) -> WindowStats:
    low = [value for value in (a.minimum, b.minimum) if value is not None]
    high = [value for value in (a.maximum, b.maximum) if value is not None]
    return WindowStats(
        a.count + b.count,
        a.total + b.total,
        min(low) if low else None,
        max(high) if high else None,
    )
