"""The lease row in PostgreSQL: campaign, renew, release, expiry on the database clock, fence."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from support.poll import eventually

from cotiza.cluster import LocalLease, PgLease
from cotiza.errors import ClusterError, Fenced
from cotiza.storage.database import Database
from cotiza.storage.tables import ratio_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def make_lease(db: Database, node: str, ttl: float = 30.0) -> PgLease:
    return PgLease(db.engine, node, f"http://{node}:8000", ttl)


async def pair_count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(ratio_pairs))).scalar_one())


async def write_pair_fenced(db: Database, lease: PgLease, base: str) -> None:
    """A history-write transaction as the writer does it: fence first, then write."""
    async with db.engine.begin() as conn:
        await lease.fence(conn)
        await conn.execute(
            insert(ratio_pairs).values(
                base=base, quote="Q", factor=1.0, client_id="c", active=True, created_at=0.0
            )
        )


async def test_local_lease_is_always_held_with_epoch_1() -> None:
    """The standalone lease wins at once with epoch 1 and fences nothing while held."""
    lease = LocalLease("solo")
    info = await lease.campaign()
    assert (info.holder, info.epoch, info.held, info.remaining) == ("solo", 1, True, None)
    assert await lease.renew() and lease.epoch == 1
    await lease.fence(None)  # type: ignore[arg-type]  # no database needed standalone
    assert await lease.release() and lease.epoch is None
    with pytest.raises(Fenced):
        await lease.fence(None)  # type: ignore[arg-type]
    assert (await lease.campaign()).epoch == 1


async def test_first_campaign_creates_the_row_and_others_wait(database: Database) -> None:
    """The first node creates the row with epoch 1; a second node sees it held and waits."""
    a, b = make_lease(database, "a"), make_lease(database, "b")
    assert await a.current() is None
    won = await a.campaign()
    assert (won.holder, won.holder_url, won.epoch, a.epoch) == ("a", "http://a:8000", 1, 1)
    assert won.remaining is not None and 29 < won.remaining <= 30
    lost = await b.campaign()
    assert (lost.holder, lost.epoch, b.epoch) == ("a", 1, None)
    current = await b.current()
    assert current is not None and current.holder == "a" and current.held


async def test_renew_extends_the_term_on_the_database_clock(database: Database) -> None:
    """Renewal moves expires_at forward by the TTL from the database's now."""
    a = make_lease(database, "a", ttl=5.0)
    first = await a.campaign()
    assert await a.renew()
    after = await a.current()
    assert after is not None and first.expires_at is not None and after.expires_at is not None
    assert after.expires_at > first.expires_at
    assert after.renewed_at is not None and after.acquired_at == first.acquired_at
    assert after.remaining is not None and 4.5 < after.remaining <= 5.0


async def test_expired_lease_is_taken_with_the_next_epoch(database: Database) -> None:
    """Once the term expires another node takes it (epoch 2); the old holder's renew fails."""
    a, b = make_lease(database, "a", ttl=0.3), make_lease(database, "b", ttl=0.3)
    await a.campaign()
    assert (await b.campaign()).holder == "a"

    async def b_won() -> bool:
        return (await b.campaign()).holder == "b"

    await eventually(b_won, timeout=5, interval=0.05)
    assert b.epoch == 2
    assert not await a.renew()
    assert a.epoch is None
    assert (await b.current()).epoch == 2  # type: ignore[union-attr]


async def test_release_frees_the_lease_at_once(database: Database) -> None:
    """A released lease is taken by the next campaign without waiting for expiry."""
    a, b = make_lease(database, "a"), make_lease(database, "b")
    await a.campaign()
    assert await a.release()
    assert a.epoch is None
    released = await b.current()
    assert released is not None and released.holder is None and not released.held
    won = await b.campaign()
    assert (won.holder, won.epoch) == ("b", 2)
    assert not await a.release()  # nothing held any more


async def test_restarted_node_with_the_same_id_waits_for_its_old_term(database: Database) -> None:
    """A node that lost its epoch (restart) does not reclaim its unexpired row blindly."""
    old, new = make_lease(database, "a"), make_lease(database, "a")
    await old.campaign()
    info = await new.campaign()
    assert info.holder == "a" and new.epoch is None


async def test_fence_lets_the_holder_write_and_refuses_a_deposed_one(database: Database) -> None:
    """fence() passes for the current term; after a takeover the old holder's write rolls back."""
    a, b = make_lease(database, "a", ttl=0.3), make_lease(database, "b", ttl=30)
    await a.campaign()
    await write_pair_fenced(database, a, "A1")
    assert await pair_count(database) == 1

    async def b_won() -> bool:
        return (await b.campaign()).holder == "b"

    await eventually(b_won, timeout=5, interval=0.05)
    assert a.epoch == 1  # a has not noticed: only the fence can stop it
    with pytest.raises(Fenced, match="epoch 1"):
        await write_pair_fenced(database, a, "A2")
    assert a.epoch is None
    assert await pair_count(database) == 1  # the stale write was rolled back
    await write_pair_fenced(database, b, "B1")
    assert await pair_count(database) == 2


async def test_fence_refuses_an_expired_term_nobody_took(database: Database) -> None:
    """A holder whose term expired (a frozen leader) cannot write even before a takeover."""
    a = make_lease(database, "a", ttl=0.2)
    await a.campaign()
    started = time.monotonic()
    while time.monotonic() - started < 5:
        try:
            await write_pair_fenced(database, a, f"A{time.monotonic()}")
        except Fenced:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the expired term kept writing")
    current = await a.current()
    assert current is not None and current.holder == "a" and not current.held


async def test_fence_holds_off_a_takeover_until_the_write_commits(database: Database) -> None:
    """FOR SHARE: a campaign on an expired row waits until the fenced transaction ends."""
    a, b = make_lease(database, "a", ttl=0.2), make_lease(database, "b", ttl=30)
    await a.campaign()
    conn = await database.engine.connect()
    transaction = await conn.begin()
    await a.fence(conn)
    await conn.execute(text("SELECT pg_sleep(0.3)"))  # the term expires inside the write
    campaign = asyncio.create_task(b.campaign())

    async def waiting_on_lock() -> bool:
        async with database.engine.connect() as probe:
            waiting = await probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE cluster_leases%'"
                )
            )
            return bool(waiting.scalar_one())

    await eventually(waiting_on_lock, timeout=5, interval=0.02)
    assert not campaign.done()
    await transaction.commit()
    await conn.close()
    won = await asyncio.wait_for(campaign, 5)
    assert (won.holder, won.epoch) == ("b", 2)


async def test_lease_needs_postgresql(tmp_path: object) -> None:
    """PgLease refuses an engine of another dialect."""
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        with pytest.raises(ClusterError, match="PostgreSQL"):
            PgLease(engine, "a", None, 1.0)
    finally:
        await engine.dispose()


async def test_unreachable_database_raises_cluster_error() -> None:
    """With PostgreSQL unreachable every call fails with ClusterError, not a driver error."""
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    lease = PgLease(engine, "a", None, 1.0)
    try:
        with pytest.raises(ClusterError, match="campaign failed"):
            await lease.campaign()
        with pytest.raises(ClusterError, match="cannot read"):
            await lease.current()
    finally:
        await engine.dispose()
