"""Simulated ratio history, so that a demo dashboard has weeks of averages from the start."""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, cast, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.errors import InvalidRequestError
from cotiza.models import RatioPair
from cotiza.ratios import DEFAULT_PAIRS
from cotiza.settings import Settings
from cotiza.storage.aggregates import DAY, LEVELS, MINUTE, merge_statement
from cotiza.storage.database import Database
from cotiza.storage.repository import Repository
from cotiza.storage.tables import RATIO_FIELDS, ratio_samples

logger = logging.getLogger(__name__)

_CHUNK = 20_000
COLUMNS = ("pair_id", "asof", *RATIO_FIELDS)
_BAND_WIDTH = 1.5
_LONG, _SHORT = 180, 60
# Mean reversion and volatility per minute of the log-ratio around its level: about 1.3 %
# stationary deviation, reverting within a few hours.
_REVERSION_PER_MINUTE = 0.002
_VOLATILITY_PER_MINUTE = 0.0008
# Typical half-spread of a ratio, as a fraction of its mid, when the caller knows no better.
DEFAULT_HALF_SPREAD = 0.00065


class _Window:
    """Running sum and sum of squares over the last ``size`` values (shifted for accuracy)."""

    def __init__(self, size: int, shift: float) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._shift = shift
        self._sum = 0.0
        self._squares = 0.0

    def push(self, value: float) -> None:
        x = value - self._shift
        if len(self._values) == self._values.maxlen:
            old = self._values[0]
            self._sum -= old
            self._squares -= old * old
        self._values.append(x)
        self._sum += x
        self._squares += x * x

    def mean(self) -> float:
        return self._sum / len(self._values) + self._shift

    def pstdev(self) -> float | None:
        n = len(self._values)
        if n < 2:
            return None
        mean = self._sum / n
        return math.sqrt(max(self._squares / n - mean * mean, 0.0))


def simulate_rows(
    pair_id: int,
    level: float,
    first: float,
    end: float,
    step: float,
    rng: random.Random,
    half_spread: float = DEFAULT_HALF_SPREAD,
) -> Iterator[tuple[float | None, ...]]:
    """Rows (in ``COLUMNS`` order) at ``first, first + step, ...`` before ``end``.

    The mid follows a mean-reverting walk around ``level`` that *ends* at ``level``, so
    the history joins whatever continues it (the live simulator, or stored samples)
    without a jump; bid and ask sit 0.5x to 1.5x of ``half_spread`` (a fraction of the
    mid) below and above it, as the simulator's quotes do; indicators use the same
    windows as the live engine.
    """
    minutes = step / MINUTE
    reversion = min(_REVERSION_PER_MINUTE * minutes, 0.5)
    volatility = _VOLATILITY_PER_MINUTE * math.sqrt(minutes)
    mids, short = _Window(_LONG, level), _Window(_SHORT, level)
    bids, asks = _Window(_LONG, level), _Window(_LONG, level)
    count = max(0, math.ceil((end - first) / step))
    deviations = joining_walk(count, reversion, volatility, rng)
    for index, deviation in enumerate(deviations):
        mid = level * math.exp(deviation)
        half = mid * half_spread * rng.uniform(0.5, 1.5)
        bid, ask = mid - half, mid + half
        last = mid + half * rng.uniform(-0.9, 0.9) if rng.random() > 0.05 else None
        for window, value in ((mids, mid), (short, mid), (bids, bid), (asks, ask)):
            window.push(value)
        sma = mids.mean()
        std_long, std_short = mids.pstdev(), short.pstdev()
        yield (
            pair_id,
            first + index * step,
            bid,
            ask,
            mid,
            last,
            sma,
            bids.mean(),
            asks.mean(),
            std_short,
            std_long,
            None if std_long is None else sma + _BAND_WIDTH * std_long,
            None if std_long is None else sma - _BAND_WIDTH * std_long,
            (bid - sma) / std_short if std_short else None,
            (ask - sma) / std_short if std_short else None,
            std_short / std_long if std_short is not None and std_long else None,
            ask - bid,
        )


def joining_walk(
    count: int, reversion: float, volatility: float, rng: random.Random
) -> list[float]:
    """``count`` log-deviations of a mean-reverting walk whose last value is exactly 0.

    A stationary Gaussian AR(1) walk is reversible in time, so walking backwards from 0
    and reading the result forwards gives a walk with the usual statistics that lands on
    the level instead of somewhere around it.
    """
    walk = [0.0] * count
    for index in range(count - 2, -1, -1):
        walk[index] = (1 - reversion) * walk[index + 1] + rng.gauss(0.0, volatility)
    return walk


async def backfill_demo_history(
    database: Database,
    pairs: Sequence[RatioPair],
    levels: Mapping[int, float],
    days: int,
    now: float,
    seed: int,
    step: float = 60.0,
    *,
    field: str = "mid_ratio",
    half_spreads: Mapping[int, float] | None = None,
) -> int:
    """Write ``days`` days of simulated samples per pair, with their aggregates of ``field``.

    A pair is skipped when it has no level or already has samples older than a day; the
    simulated history ends where the stored one begins. ``half_spreads`` gives a pair's
    typical bid/ask half-spread as a fraction of its mid (``DEFAULT_HALF_SPREAD`` if
    absent). Returns the sample rows written.
    """
    if not math.isfinite(step) or step <= 0:
        raise InvalidRequestError("step must be a positive number of seconds")
    if field not in RATIO_FIELDS:
        raise InvalidRequestError(f"unknown ratio field {field!r}")
    if days <= 0:
        return 0
    written = 0
    for pair in pairs:
        level = levels.get(pair.id)
        if level is None or not math.isfinite(level) or level <= 0:
            logger.info("demo history: no level for pair %s, skipped", pair.name)
            continue
        async with database.engine.connect() as conn:
            oldest = await conn.scalar(
                select(func.min(ratio_samples.c.asof)).where(ratio_samples.c.pair_id == pair.id)
            )
        if oldest is not None and oldest < now - DAY:
            logger.info("demo history: pair %s already has history, skipped", pair.name)
            continue
        end = now if oldest is None else min(now, oldest)
        if oldest is not None:
            # Join the stored history where it begins, not the simulator's opening level.
            level = await _first_value(database, pair.id, field, oldest) or level
        first = math.ceil((end - days * DAY) / step) * step
        rng = random.Random(f"{seed}:{pair.base}:{pair.quote}:{pair.client_id}")
        spread = (half_spreads or {}).get(pair.id, DEFAULT_HALF_SPREAD)
        rows = simulate_rows(pair.id, level, first, end, step, rng, spread)
        async with database.engine.begin() as conn:
            written += await _insert_rows(conn, rows)
            for size, table in LEVELS:
                source = _aggregate_samples(conn.dialect.name, size, field, pair.id, first, end)
                await conn.execute(merge_statement(table, conn.dialect.name, source))
    return written


async def backfill_demo(settings: Settings, database: Database, repository: Repository) -> int:
    """``DEMO_HISTORY_DAYS`` of history for the default pairs, joined to the simulator's levels.

    Levels come from the simulator's opening quotes, so the history ends where the live
    data starts, and each pair's spread from its legs' typical spreads (a ratio of bid over
    offer is about the two legs' relative half-spreads wider on each side), so the bid and
    ask lines join too. Returns the sample rows written.
    """
    from cotiza.feeds.sim import SimFeed, nominal_half_spread

    await repository.seed_pairs(DEFAULT_PAIRS)
    pairs = await repository.list_pairs(active_only=True)
    sim = SimFeed(settings)
    quotes = {q.symbol: q for q in sim.select(sim.catalogue()).snapshot()}
    levels: dict[int, float] = {}
    spreads: dict[int, float] = {}
    for pair in pairs:
        base, quote = quotes.get(pair.base), quotes.get(pair.quote)
        if base and quote and base.mid and quote.mid:
            levels[pair.id] = pair.factor * base.mid / quote.mid
        legs = nominal_half_spread(pair.base), nominal_half_spread(pair.quote)
        if legs[0] is not None and legs[1] is not None:
            spreads[pair.id] = legs[0] + legs[1]
    written = await backfill_demo_history(
        database,
        pairs,
        levels,
        settings.demo_history_days,
        time.time(),
        settings.sim_seed,
        field=settings.ratio_field.value,
        half_spreads=spreads,
    )
    logger.info("demo history: %d samples written", written)
    return written


async def _first_value(database: Database, pair_id: int, field: str, at: float) -> float | None:
    """The stored ``field`` of a pair's oldest sample (at ``at``), when usable."""
    column = ratio_samples.c[field]
    async with database.engine.connect() as conn:
        value = await conn.scalar(
            select(column).where(ratio_samples.c.pair_id == pair_id, ratio_samples.c.asof == at)
        )
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


async def _insert_rows(conn: AsyncConnection, rows: Iterator[tuple[float | None, ...]]) -> int:
    """Insert in large chunks straight through the driver.

    Per-row SQLAlchemy parameter processing would dominate for hundreds of thousands of
    rows: SQLite gets a plain executemany, PostgreSQL one INSERT ... SELECT FROM unnest()
    of column arrays per chunk (asyncpg's executemany is a round trip per row).
    """
    names = ", ".join(COLUMNS)
    dialect = conn.dialect.name
    if dialect == "postgresql" and conn.dialect.paramstyle == "numeric_dollar":
        arrays = ", ".join(
            f"${i}::{'int4' if name == 'pair_id' else 'float8'}[]"
            for i, name in enumerate(COLUMNS, start=1)
        )
        sql = f"INSERT INTO ratio_samples ({names}) SELECT * FROM unnest({arrays})"
    elif dialect == "sqlite" and conn.dialect.paramstyle == "qmark":
        sql = f"INSERT INTO ratio_samples ({names}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    else:
        sql = ""
    written = 0
    while chunk := list(itertools.islice(rows, _CHUNK)):
        if dialect == "postgresql" and sql:
            await conn.exec_driver_sql(
                sql, tuple(list(column) for column in zip(*chunk, strict=True))
            )
        elif sql:
            await conn.exec_driver_sql(sql, chunk)
        else:
            await conn.execute(
                insert(ratio_samples), [dict(zip(COLUMNS, r, strict=True)) for r in chunk]
            )
        written += len(chunk)
    return written


def _aggregate_samples(
    dialect: str, size: int, field: str, pair_id: int, first: float, end: float
) -> Select[Any]:
    """Buckets of ``size`` seconds over the stored samples of one pair in [first, end)."""
    s = ratio_samples.c
    value = s[field]
    # Inline, not bound: PostgreSQL must see the same expression in SELECT and GROUP BY.
    seconds = literal_column(str(int(size)), Integer)
    if dialect == "sqlite":
        bucket = cast(s.asof / seconds, Integer) * seconds
    else:
        bucket = cast(func.floor(s.asof / seconds) * seconds, BigInteger)
    return (
        select(
            s.pair_id,
            bucket,
            func.count(value),
            func.sum(value),
            func.min(value),
            func.max(value),
        )
        .where(s.pair_id == pair_id, s.asof >= first, s.asof < end, value.is_not(None))
        .group_by(s.pair_id, bucket)
    )
