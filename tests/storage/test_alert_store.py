"""Alert rules and firings in the database (SQLite and PostgreSQL), and migration 0003."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from cotiza.alerts.rules import AlertField, AlertOp, AlertRule, Channel, Firing, RuleState
from cotiza.errors import InvalidRequestError, NotFoundError
from cotiza.storage.alerts import AlertStore
from cotiza.storage.database import Database, alembic_config
from cotiza.storage.repository import Repository

ALERT_TABLES = {"alert_rules", "alert_firings"}


def _rule(pair_id: int, value: float = 1.0) -> AlertRule:
    return AlertRule(
        id=0,
        pair_id=pair_id,
        field=AlertField.Z_BID,
        op=AlertOp.CROSSES_ABOVE,
        value=value,
        hysteresis=0.1,
        cooldown_s=30.0,
        channels=(Channel.WS, Channel.TELEGRAM),
        note="nota",
    )


async def test_rules_firings_and_state(database: Database) -> None:
    """A rule round-trips; a firing marks it fired; history is newest first with deliveries."""
    store = AlertStore(database)
    pair = await Repository(database).create_pair("A", "B")
    stored = await store.create_rule(_rule(pair.id))
    assert stored.rule == AlertRule(**{**_fields(_rule(pair.id)), "id": stored.rule.id})
    assert stored.state is RuleState.ARMED and stored.last_fired_at is None

    first = await store.record_firing(
        Firing(stored.rule, "A-B", 1.5, 0.9, 100.0), {"ws": {"status": "pending"}}
    )
    second = await store.record_firing(Firing(stored.rule, "A-B", 1.7, 0.8, 200.0), {})
    await store.set_deliveries(first, {"ws": {"status": "delivered", "clients": 2}})
    after = await store.get_rule(stored.rule.id)
    assert after.state is RuleState.FIRED and after.last_fired_at == 200.0
    await store.set_state(stored.rule.id, RuleState.ARMED)
    assert (await store.get_rule(stored.rule.id)).state is RuleState.ARMED

    rows = await store.history(10)
    assert [r["id"] for r in rows] == [second, first]
    assert rows[1]["deliveries"] == {"ws": {"status": "delivered", "clients": 2}}
    assert (rows[1]["observed"], rows[1]["previous"], rows[1]["op"]) == (1.5, 0.9, "crosses_above")
    assert [r["id"] for r in await store.history(10, before=150.0)] == [first]
    assert [r["id"] for r in await store.history(1)] == [second]


async def test_unknown_pair_deleted_rule_and_deleted_pair(database: Database) -> None:
    """A rule needs its pair; deleting the rule or the pair keeps the firings, detached."""
    store = AlertStore(database)
    repository = Repository(database)
    with pytest.raises(InvalidRequestError):
        await store.create_rule(_rule(999))
    pair = await repository.create_pair("A", "B")
    kept = await store.create_rule(_rule(pair.id))
    gone = await store.create_rule(_rule(pair.id, 2.0))
    await store.record_firing(Firing(gone.rule, "A-B", 2.5, 1.0, 10.0), {})
    await store.delete_rule(gone.rule.id)
    with pytest.raises(NotFoundError):
        await store.get_rule(gone.rule.id)
    await store.record_firing(Firing(kept.rule, "A-B", 1.5, 1.0, 20.0), {})
    await repository.delete_pair(pair.id)
    assert await store.list_rules() == []
    rows = await store.history(10)
    assert [(r["rule_id"], r["par"]) for r in rows] == [(None, "A-B"), (None, "A-B")]
    # A firing recorded after its rule vanished is kept too.
    await store.record_firing(Firing(kept.rule, "A-B", 1.6, 1.0, 30.0), {})
    assert (await store.history(1))[0]["rule_id"] is None


def _fields(rule: AlertRule) -> dict[str, object]:
    return {name: getattr(rule, name) for name in AlertRule.__slots__}


async def test_migration_0003_up_and_down(fresh_db_url: str) -> None:
    """Downgrading to 0002 drops the alert tables; starting again brings them back."""
    async with Database(fresh_db_url) as db:
        async with db.engine.connect() as conn:
            assert set(await conn.run_sync(lambda c: inspect(c).get_table_names())) >= ALERT_TABLES
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0002"))
        async with db.engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not ALERT_TABLES & names and "ratio_days" in names
        assert await db.revision() == "0002"
    async with Database(fresh_db_url) as db:
        assert await db.revision() == "0004"
        assert await AlertStore(db).list_rules() == []
