"""Exact statistics of the dashboard field over time windows (contract section 5).

A window ``[start, end)`` holds the samples with ``start <= asof < end``, exactly. Its
interior is read from whole buckets of the minute, hour and day aggregates (``cover``);
the part of a minute cut by each edge is read from the raw samples with the very same
bounds. So the count, sum, minimum and maximum are those of exactly the samples inside
the window, and the cost still does not grow with the length of the window: at most one
minute of raw samples per edge and pair, the rest at most five bucket ranges.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Executable,
    Float,
    Integer,
    Select,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from cotiza.errors import InvalidRequestError
from cotiza.models import WindowStats
from cotiza.storage.aggregates import LEVELS, MINUTE, cover
from cotiza.storage.tables import RATIO_FIELDS, ratio_pairs, ratio_samples

# A part of a window: (source table, lower bound, upper bound), upper bound excluded. The
# source is an aggregate table (bounds are whole buckets) or ``ratio_samples`` (bounds are
# ``asof`` values).
Span = tuple[Table, float, float]

# Spans per query (at most seven per window): SQLite allows 500 UNION ALL terms.
_MAX_UNION = 400
_TABLES = {table.name: table for table in (ratio_samples, *(table for _, table in LEVELS))}
# SET LOCAL of both, in one round trip (see window_stats_many).
_LOCAL_SETTINGS = text(
    "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
    " set_config('jit', 'off', true)"
)


def floor_to(value: float, size: int) -> int:
    """The greatest multiple of ``size`` not above ``value``.

    Exact for every finite float: Python's float floor division returns the true floor of
    the quotient, the same rule the writer uses to put a sample into its bucket.
    """
    return int(value // size) * size


def window_spans(start: float, end: float) -> list[Span]:
    """Disjoint spans whose samples are exactly those with ``start <= asof < end``.

    Whole minutes from ``ceil(start)`` to ``floor(end)`` come from the aggregates, in the
    coarsest buckets that fit; the cut minutes at the edges, if any, from ``ratio_samples``.
    A window inside a single minute, or across one minute boundary only, is read raw.
    """
    if not (math.isfinite(start) and math.isfinite(end)):
        raise InvalidRequestError("window bounds must be finite numbers")
    if start >= end:
        return []
    first = floor_to(start, MINUTE)
    if first < start:
        first += MINUTE
    last = floor_to(end, MINUTE)
    if first >= last:
        return [(ratio_samples, start, end)]
    spans: list[Span] = []
    if start < first:
        spans.append((ratio_samples, start, first))
    spans.extend(cover(first, last))
    if last < end:
        spans.append((ratio_samples, last, end))
    return spans


def span_totals(spans: Sequence[Span], field: str) -> tuple[Executable, dict[str, float]]:
    """One query of per-pair totals of ``field`` over each span.

    Its rows are (span index, pair_id, count, sum, minimum, maximum), one per span and pair
    with data. Returns the statement and its parameters.
    """
    if field not in RATIO_FIELDS:
        raise InvalidRequestError(f"unknown ratio field {field!r}")
    params: dict[str, float] = {}
    for index, (table, lower, upper) in enumerate(spans):
        cast = float if table is ratio_samples else int
        params[f"lo{index}"], params[f"hi{index}"] = cast(lower), cast(upper)
    return _span_totals(tuple(table.name for table, _, _ in spans), field), params


@functools.lru_cache(maxsize=256)
def _span_totals(tables: tuple[str, ...], field: str) -> Executable:
    # Building the statement costs more than running it; the shapes repeat between calls.
    terms = [_span_term(index, _TABLES[name], field) for index, name in enumerate(tables)]
    return union_all(*terms) if len(terms) > 1 else terms[0]


def _span_term(index: int, table: Table, field: str) -> Select[Any]:
    c = table.c
    totals: tuple[ColumnElement[Any], ...]
    bound: type[TypeEngine[Any]]
    if table is ratio_samples:
        value = c[field]
        # count() skips nulls: a sample without this field is not in the window's count.
        totals = (func.count(value), func.sum(value), func.min(value), func.max(value))
        moment, bound = c.asof, Float
    else:
        totals = (func.sum(c.n), func.sum(c.total), func.min(c.minimum), func.max(c.maximum))
        moment, bound = c.bucket, BigInteger
    return (
        select(literal_column(str(index), Integer), c.pair_id, *totals)
        .where(
            # Naming the pairs lets both dialects walk the (pair_id, bucket or asof) key
            # pair by pair, already in group order, instead of sorting a range scan.
            c.pair_id.in_(select(ratio_pairs.c.id)),
            moment >= bindparam(f"lo{index}", type_=bound),
            moment < bindparam(f"hi{index}", type_=bound),
        )
        .group_by(c.pair_id)
    )


async def window_stats_many(
    conn: AsyncConnection, windows: Sequence[tuple[str, float, float]], field: str
) -> dict[str, dict[int, WindowStats]]:
    """Per window name and pair, the stats of ``field`` over the samples in ``[start, end)``.

    Each distinct span is summed per pair once, even when several windows share it (the
    last minute before "now", for instance), in UNION ALL queries of up to ``_MAX_UNION``
    spans; each window is then put together from its spans. Every name is in the result,
    with an empty mapping when its window has no data.
    """
    result: dict[str, dict[int, WindowStats]] = {}
    spans: dict[Span, int] = {}
    members: list[tuple[str, list[int]]] = []
    for name, start, end in windows:
        if name in result:
            raise InvalidRequestError(f"duplicate window name {name!r}")
        result[name] = {}
        members.append((name, [spans.setdefault(s, len(spans)) for s in window_spans(start, end)]))
    if not spans:
        return result
    keys = list(spans)
    totals: list[dict[int, WindowStats]] = [{} for _ in keys]
    if conn.dialect.name == "postgresql":
        # The planner runs a long UNION ALL on parallel workers, and compiles it with JIT
        # once the summed estimates pass jit_above_cost (the raw-sample terms are estimated
        # high before ANALYZE or in a generic plan): either costs far more, 100-400 ms for
        # JIT, than reading the few thousand rows involved.
        await conn.execute(_LOCAL_SETTINGS)
    for offset in range(0, len(keys), _MAX_UNION):
        statement, params = span_totals(keys[offset : offset + _MAX_UNION], field)
        for index, pair_id, n, total, low, high in await conn.execute(statement, params):
            if n:
                totals[offset + index][pair_id] = WindowStats(int(n), float(total), low, high)
    for name, indices in members:
        result[name] = merge_totals(totals[index] for index in indices)
    return result


def merge_totals(parts: Iterable[Mapping[int, WindowStats]]) -> dict[int, WindowStats]:
    """Per pair, the stats of disjoint spans put together."""
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
