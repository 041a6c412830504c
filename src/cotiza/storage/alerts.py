"""Alert rules and the history of firings in the database; every method one short transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.alerts.rules import AlertField, AlertOp, AlertRule, Channel, Firing, RuleState
from cotiza.errors import InvalidRequestError, NotFoundError, StorageError
from cotiza.models import RatioPair
from cotiza.storage.database import Database, describe_error
from cotiza.storage.tables import alert_firings, alert_rules, ratio_pairs


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule as stored: the rule itself plus its persisted evaluator state and times."""

    rule: AlertRule
    state: RuleState
    last_fired_at: float | None
    created_at: float
    updated_at: float


def _rule(row: RowMapping) -> StoredRule:
    channels = tuple(Channel(name) for name in row["channels"].split(",") if name)
    rule = AlertRule(
        id=row["id"],
        pair_id=row["pair_id"],
        field=AlertField(row["field"]),
        op=AlertOp(row["op"]),
        value=row["value"],
        hysteresis=row["hysteresis"],
        cooldown_s=row["cooldown_s"],
        channels=channels,
        active=bool(row["active"]),
        note=row["note"],
    )
    return StoredRule(
        rule, RuleState(row["state"]), row["last_fired_at"], row["created_at"], row["updated_at"]
    )


def _firing(row: RowMapping) -> dict[str, Any]:
    item = dict(row)
    item["deliveries"] = orjson.loads(item["deliveries"])
    return item


class AlertStore:
    """CRUD of rules, their evaluator state, and firings with their delivery results."""

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

    # --- rules ---

    async def list_rules(self, pair_id: int | None = None) -> list[StoredRule]:
        query = select(alert_rules).order_by(alert_rules.c.id)
        if pair_id is not None:
            query = query.where(alert_rules.c.pair_id == pair_id)
        async with self._begin() as conn:
            return [_rule(row) for row in (await conn.execute(query)).mappings()]

    async def get_rule(self, rule_id: int) -> StoredRule:
        async with self._begin() as conn:
            return await self._get(conn, rule_id)

    async def _get(self, conn: AsyncConnection, rule_id: int) -> StoredRule:
        result = await conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id))
        row = result.mappings().first()
        if row is None:
            raise NotFoundError(f"alert rule {rule_id} not found")
        return _rule(row)

    async def pair(self, pair_id: int) -> RatioPair | None:
        """The pair a rule refers to, or None when there is no such pair."""
        query = select(ratio_pairs).where(ratio_pairs.c.id == pair_id)
        async with self._begin() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        return RatioPair(
            row["id"], row["base"], row["quote"], row["factor"], row["client_id"], row["active"]
        )

    async def create_rule(self, rule: AlertRule) -> StoredRule:
        """Insert ``rule`` (its ``id`` is ignored) armed; the pair must exist."""
        now = time.time()
        values = {
            **_rule_values(rule),
            "state": RuleState.ARMED.value,
            "last_fired_at": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._begin() as conn:
                result = await conn.execute(
                    insert(alert_rules).values(**values).returning(alert_rules.c.id)
                )
                rule_id: int = result.scalar_one()
                return await self._get(conn, rule_id)
        except IntegrityError as exc:  # the pair was deleted in the meantime
            raise InvalidRequestError(f"ratio pair {rule.pair_id} does not exist") from exc

    async def replace_rule(self, rule: AlertRule, reset: bool) -> StoredRule:
        """Store an edited rule; ``reset`` re-arms it (its condition changed)."""
        values: dict[str, Any] = {**_rule_values(rule), "updated_at": time.time()}
        if reset:
            values["state"] = RuleState.ARMED.value
        try:
            async with self._begin() as conn:
                await self._get(conn, rule.id)
                await conn.execute(
                    update(alert_rules).where(alert_rules.c.id == rule.id).values(**values)
                )
                return await self._get(conn, rule.id)
        except IntegrityError as exc:
            raise InvalidRequestError(f"ratio pair {rule.pair_id} does not exist") from exc

    async def delete_rule(self, rule_id: int) -> None:
        """Delete a rule; its firings stay in the history without it."""
        async with self._begin() as conn:
            await self._get(conn, rule_id)
            await conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))

    async def set_state(self, rule_id: int, state: RuleState) -> None:
        """Persist an evaluator transition that fired nothing (a re-arm)."""
        async with self._begin() as conn:
            await conn.execute(
                update(alert_rules).where(alert_rules.c.id == rule_id).values(state=state.value)
            )

    # --- firings ---

    async def record_firing(self, firing: Firing, deliveries: dict[str, Any]) -> int:
        """Store a firing and mark its rule fired, in one transaction; returns the firing id."""
        rule = firing.rule
        row = {
            "rule_id": rule.id,
            "pair_id": rule.pair_id,
            "par": firing.pair_name[:64],
            "field": rule.field.value,
            "op": rule.op.value,
            "value": rule.value,
            "observed": firing.observed,
            "previous": firing.previous,
            "fired_at": firing.fired_at,
            "deliveries": orjson.dumps(deliveries).decode(),
        }
        async with self._begin() as conn:
            exists = await conn.scalar(select(alert_rules.c.id).where(alert_rules.c.id == rule.id))
            if exists is None:
                row["rule_id"] = None  # deleted between firing and recording
            else:
                await conn.execute(
                    update(alert_rules)
                    .where(alert_rules.c.id == rule.id)
                    .values(state=RuleState.FIRED.value, last_fired_at=firing.fired_at)
                )
            result = await conn.execute(
                insert(alert_firings).values(**row).returning(alert_firings.c.id)
            )
            firing_id: int = result.scalar_one()
        return firing_id

    async def set_deliveries(self, firing_id: int, deliveries: dict[str, Any]) -> None:
        async with self._begin() as conn:
            await conn.execute(
                update(alert_firings)
                .where(alert_firings.c.id == firing_id)
                .values(deliveries=orjson.dumps(deliveries).decode())
            )

    async def history(
        self,
        limit: int,
        rule_id: int | None = None,
        pair_id: int | None = None,
        before: float | None = None,
    ) -> list[dict[str, Any]]:
        """Firings, newest first, optionally of one rule or pair and before a time."""
        query = select(alert_firings).order_by(
            alert_firings.c.fired_at.desc(), alert_firings.c.id.desc()
        )
        if rule_id is not None:
            query = query.where(alert_firings.c.rule_id == rule_id)
        if pair_id is not None:
            query = query.where(alert_firings.c.pair_id == pair_id)
        if before is not None:
            query = query.where(alert_firings.c.fired_at < before)
        async with self._begin() as conn:
            rows = (await conn.execute(query.limit(limit))).mappings().all()
        return [_firing(row) for row in rows]


def _rule_values(rule: AlertRule) -> dict[str, Any]:
    return {
        "pair_id": rule.pair_id,
        "field": rule.field.value,
        "op": rule.op.value,
        "value": rule.value,
        "hysteresis": rule.hysteresis,
        "cooldown_s": rule.cooldown_s,
        "channels": ",".join(channel.value for channel in rule.channels),
        "active": rule.active,
        "note": rule.note,
    }


def channels_of(names: Sequence[str]) -> tuple[Channel, ...]:
    """Channel names to channels, in order, without duplicates."""
    return tuple(dict.fromkeys(Channel(name) for name in names))
