"""Reference computations and database look-ups shared by the storage tests."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import func, select

from cotiza.models import RatioSample, WindowStats
from cotiza.storage.database import Database

Buckets = dict[tuple[int, int], tuple[int, float, float, float]]


async def count_rows(database: Database, table: Any) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def stored_buckets(database: Database, table: Any) -> Buckets:
    """Every aggregate bucket of ``table`` as {(pair_id, bucket): (n, total, min, max)}."""
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            select(
                table.c.pair_id,
                table.c.bucket,
                table.c.n,
                table.c.total,
                table.c.minimum,
                table.c.maximum,
            )
        )
        return {(r[0], int(r[1])): (r[2], r[3], r[4], r[5]) for r in rows}


def expected_buckets(samples: Iterable[RatioSample], size: int) -> Buckets:
    """Python reference: mid ratios aggregated per pair and ``size``-second bucket."""
    found: dict[tuple[int, int], list[float]] = {}
    for s in samples:
        if s.values.mid_ratio is not None:
            key = (s.pair_id, math.floor(s.asof / size) * size)
            found.setdefault(key, []).append(s.values.mid_ratio)
    return {key: (len(v), sum(v), min(v), max(v)) for key, v in found.items()}


def assert_buckets_equal(actual: Buckets, expected: Buckets) -> None:
    assert actual.keys() == expected.keys()
    for key, (n, total, low, high) in expected.items():
        assert actual[key][0] == n
        assert actual[key][1] == pytest.approx(total, rel=1e-12)
        assert actual[key][2:] == (low, high)


def expected_window(
    samples: Iterable[RatioSample], start: float, end: float, field: str = "mid_ratio"
) -> dict[int, WindowStats]:
    """Python reference: ``field`` of the samples with ``start <= asof < end``, per pair."""
    found: dict[int, list[float]] = {}
    for s in samples:
        value = getattr(s.values, field)
        if value is not None and start <= s.asof < end:
            found.setdefault(s.pair_id, []).append(value)
    return {pid: WindowStats(len(v), math.fsum(v), min(v), max(v)) for pid, v in found.items()}
