"""Reads and pair management on top of the database; every method is one short transaction."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from cotiza.errors import ConflictError, InvalidRequestError, NotFoundError, StorageError
from cotiza.models import Indicators, RatioPair, RatioSample, RatioValues, WindowStats
from cotiza.storage.aggregates import MINUTE
from cotiza.storage.database import Database, describe_error
from cotiza.storage.tables import (
    RATIO_FIELDS,
    ratio_days,
    ratio_hours,
    ratio_minutes,
    ratio_pairs,
    ratio_samples,
    ticks,
)
from cotiza.storage.windows import window_stats_many

HISTORY_FIELDS = (
    "bid_ratio",
    "ask_ratio",
    "mid_ratio",
    "last_ratio",
    "band_upper",
    "band_lower",
    "sma180_mid",
)
_VALUE_FIELDS = ("bid_ratio", "ask_ratio", "mid_ratio", "last_ratio")

_PAIR_COLUMNS = (
    ratio_pairs.c.id,
    ratio_pairs.c.base,
    ratio_pairs.c.quote,
    ratio_pairs.c.factor,
    ratio_pairs.c.client_id,
    ratio_pairs.c.active,
)


def _pair(row: RowMapping) -> RatioPair:
    return RatioPair(
        id=row["id"],
        base=row["base"],
        quote=row["quote"],
        factor=row["factor"],
        client_id=row["client_id"],
        active=bool(row["active"]),
    )


def _sample(data: RowMapping) -> RatioSample:
    return RatioSample(
        pair_id=data["pair_id"],
        asof=data["asof"],
        values=RatioValues(**{name: data[name] for name in _VALUE_FIELDS}),
        indicators=Indicators(
            **{name: data[name] for name in RATIO_FIELDS if name not in _VALUE_FIELDS}
        ),
    )


def _check_factor(factor: float) -> None:
    if not math.isfinite(factor) or factor <= 0:
        raise InvalidRequestError("factor must be a positive number")


class Repository:
    """Pair definitions and the queries over stored samples and aggregates."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction whose driver failures surface as ``StorageError``."""
        try:
            async with self._database.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database query failed: {describe_error(exc)}") from exc

    # --- pairs ---

    async def list_pairs(self, active_only: bool = False) -> list[RatioPair]:
        query = select(*_PAIR_COLUMNS).order_by(ratio_pairs.c.id)
        if active_only:
            query = query.where(ratio_pairs.c.active.is_(True))
        async with self._begin() as conn:
            return [_pair(row) for row in (await conn.execute(query)).mappings()]

    async def get_pair(self, pair_id: int) -> RatioPair:
        async with self._begin() as conn:
            return await self._get_pair(conn, pair_id)

    async def _get_pair(self, conn: AsyncConnection, pair_id: int) -> RatioPair:
        result = await conn.execute(select(*_PAIR_COLUMNS).where(ratio_pairs.c.id == pair_id))
        row = result.mappings().first()
        if row is None:
            raise NotFoundError(f"ratio pair {pair_id} not found")
        return _pair(row)

    async def create_pair(
        self,
        base: str,
        quote: str,
        factor: float = 1.0,
        client_id: str = "default",
        active: bool = True,
    ) -> RatioPair:
        base, quote, client_id = base.strip(), quote.strip(), client_id.strip()
        if not base or not quote or not client_id:
            raise InvalidRequestError("base, quote and client_id must not be empty")
        if base == quote:
            raise InvalidRequestError("base and quote must be different instruments")
        _check_factor(factor)
        values = {
            "base": base,
            "quote": quote,
            "factor": factor,
            "client_id": client_id,
            "active": active,
            "created_at": time.time(),
        }
        try:
            async with self._begin() as conn:
                result = await conn.execute(
                    insert(ratio_pairs).values(**values).returning(ratio_pairs.c.id)
                )
                pair_id: int = result.scalar_one()
        except IntegrityError as exc:
            raise ConflictError(
                f"pair {base} / {quote} already exists for client {client_id!r}"
            ) from exc
        return RatioPair(pair_id, base, quote, factor, client_id, active)

    async def update_pair(
        self,
        pair_id: int,
        *,
        factor: float | None = None,
        active: bool | None = None,
        client_id: str | None = None,
    ) -> RatioPair:
        changes: dict[str, float | bool | str] = {}
        if factor is not None:
            _check_factor(factor)
            changes["factor"] = factor
        if active is not None:
            changes["active"] = active
        if client_id is not None:
            if not client_id.strip():
                raise InvalidRequestError("client_id must not be empty")
            changes["client_id"] = client_id.strip()
        try:
            async with self._begin() as conn:
                if changes:
                    await conn.execute(
                        update(ratio_pairs).where(ratio_pairs.c.id == pair_id).values(**changes)
                    )
                return await self._get_pair(conn, pair_id)
        except IntegrityError as exc:
            raise ConflictError(
                f"another pair with the same instruments exists for client {client_id!r}"
            ) from exc

    async def delete_pair(self, pair_id: int) -> None:
        """Delete a pair with its samples and aggregates."""
        async with self._begin() as conn:
            await self._get_pair(conn, pair_id)
            for table in (ratio_minutes, ratio_hours, ratio_days, ratio_samples):
                await conn.execute(delete(table).where(table.c.pair_id == pair_id))
            await conn.execute(delete(ratio_pairs).where(ratio_pairs.c.id == pair_id))

    async def seed_pairs(self, defaults: Sequence[tuple[str, str, float, str]]) -> int:
        """Insert ``(base, quote, factor, client_id)`` pairs when there are none yet."""
        if not defaults:
            return 0
        now = time.time()
        rows = [
            {
                "base": base,
                "quote": quote,
                "factor": factor,
                "client_id": client_id,
                "active": True,
                "created_at": now,
            }
            for base, quote, factor, client_id in defaults
        ]
        try:
            async with self._begin() as conn:
                count = await conn.scalar(select(func.count()).select_from(ratio_pairs))
                if count:
                    return 0
                await conn.execute(insert(ratio_pairs), rows)
        except IntegrityError:
            return 0  # another process seeded the table at the same moment
        return len(rows)

    # --- samples ---

    async def recent_samples(self, pair_id: int, limit: int = 180) -> list[RatioSample]:
        """The newest ``limit`` samples of a pair, oldest first."""
        query = (
            select(ratio_samples)
            .where(ratio_samples.c.pair_id == pair_id)
            .order_by(ratio_samples.c.asof.desc())
            .limit(limit)
        )
        async with self._begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_sample(row) for row in reversed(rows)]

    async def latest_values(self, field: str) -> dict[int, tuple[float, float]]:
        """Per pair, ``(asof, value)`` of its newest sample where ``field`` is not null."""
        if field not in RATIO_FIELDS:
            raise InvalidRequestError(f"unknown ratio field {field!r}")
        newest = ratio_samples.alias("newest")
        # One index probe per pair on (pair_id, asof), walking backwards past null values.
        newest_id = (
            select(newest.c.id)
            .where(newest.c.pair_id == ratio_pairs.c.id, newest.c[field].is_not(None))
            .order_by(newest.c.asof.desc())
            .limit(1)
            .correlate(ratio_pairs)
            .scalar_subquery()
        )
        query = select(ratio_samples.c.pair_id, ratio_samples.c.asof, ratio_samples.c[field]).where(
            ratio_samples.c.id.in_(select(newest_id).select_from(ratio_pairs))
        )
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        return {row[0]: (row[1], row[2]) for row in rows}

    async def window_stats(self, start: float, end: float, *, field: str) -> dict[int, WindowStats]:
        """Count, sum, minimum and maximum of ``field`` per pair over ``start <= asof < end``.

        Exact at both edges: whole minutes, hours and days come from the aggregates, the
        cut minutes at the edges from the raw samples, so the cost does not depend on the
        number of samples. ``field`` must be the one the aggregates hold (``RATIO_FIELD``,
        which the writer aggregates); samples where it is null do not count.
        """
        return (await self.window_stats_many([("window", start, end)], field=field))["window"]

    async def window_stats_many(
        self, windows: Sequence[tuple[str, float, float]], *, field: str
    ) -> dict[str, dict[int, WindowStats]]:
        """``window_stats`` of every ``(name, start, end)`` window, in one transaction.

        Spans shared by several windows are read once; every name is in the result, with
        an empty mapping when its window has no data.
        """
        async with self._begin() as conn:
            return await window_stats_many(conn, windows, field)

    async def history(
        self,
        pair_id: int,
        start: float,
        end: float,
        resolution: float | None,
        limit: int = 5000,
    ) -> list[dict[str, float | None]]:
        """Samples of a pair in [start, end), oldest first, or bucket averages per resolution."""
        if resolution is not None and (not math.isfinite(resolution) or resolution <= 0):
            raise InvalidRequestError("resolution must be a positive number of seconds")
        if limit <= 0:
            raise InvalidRequestError("limit must be positive")
        in_range = and_(
            ratio_samples.c.pair_id == pair_id,
            ratio_samples.c.asof >= start,
            ratio_samples.c.asof < end,
        )
        if resolution is None:
            query = (
                select(ratio_samples.c.asof, *(ratio_samples.c[f] for f in RATIO_FIELDS))
                .where(in_range)
                .order_by(ratio_samples.c.asof)
                .limit(limit)
            )
        else:
            step = literal(float(resolution), Float)
            # Grouping on a column of a subquery: PostgreSQL cannot tell that two
            # expressions with separately bound parameters are the same group key.
            slotted = (
                select(
                    self._slot(step).label("slot"),
                    *(ratio_samples.c[f] for f in HISTORY_FIELDS),
                )
                .where(in_range)
                .subquery()
            )
            query = (
                select(
                    (slotted.c.slot * step).label("asof"),
                    *(func.avg(slotted.c[f]).label(f) for f in HISTORY_FIELDS),
                )
                .group_by(slotted.c.slot)
                .order_by(slotted.c.slot)
                .limit(limit)
            )
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {key: None if value is None else float(value) for key, value in row._mapping.items()}
            for row in rows
        ]

    def _slot(self, resolution: ColumnElement[float]) -> ColumnElement[Any]:
        """floor(asof / resolution), in SQL both dialects understand."""
        ratio = ratio_samples.c.asof / resolution
        if self._database.dialect == "sqlite":
            # SQLite's CAST truncates, which is floor for the positive epoch times stored;
            # floor() itself is only present in builds with the math functions.
            return cast(ratio, Integer)
        return func.floor(ratio)

    async def newest_sample_asof(self) -> float | None:
        """The time of the newest stored sample of any pair."""
        per_pair = (
            select(func.max(ratio_samples.c.asof))
            .where(ratio_samples.c.pair_id == ratio_pairs.c.id)
            .correlate(ratio_pairs)
            .scalar_subquery()
        )
        per_pair_max = select(per_pair.label("newest")).select_from(ratio_pairs).subquery()
        async with self._begin() as conn:
            value = await conn.scalar(select(func.max(per_pair_max.c.newest)))
        return None if value is None else float(value)

    async def purge_before(self, ts: float) -> int:
        """Delete samples, ticks and minute buckets older than ``ts``; hours and days are kept."""
        # Naming the pairs lets the (pair_id, asof) index serve the sample deletion.
        pair_ids = select(ratio_pairs.c.id)
        statements = (
            delete(ratio_samples).where(
                ratio_samples.c.pair_id.in_(pair_ids), ratio_samples.c.asof < ts
            ),
            delete(ratio_minutes).where(ratio_minutes.c.bucket <= ts - MINUTE),
            delete(ticks).where(ticks.c.recv_ts < ts),
        )
        deleted = 0
        async with self._begin() as conn:
            for statement in statements:
                result = await conn.execute(statement)
                deleted += max(result.rowcount, 0)
        return deleted
