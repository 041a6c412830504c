"""The control plane on the real PostgreSQL: desired state, NOTIFY, LISTEN and the slow poll."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text
from support.poll import eventually

from cotiza.cluster import ControlListener, ControlStore, FeedAction, FeedCommand
from cotiza.cluster.control import asyncpg_dsn
from cotiza.errors import ClusterError
from cotiza.storage.database import Database

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

POLL = 0.5


@dataclass
class Applied:
    commands: list[tuple[FeedCommand, float]] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)

    async def on_feed(self, command: FeedCommand) -> None:
        self.commands.append((command, time.monotonic()))

    async def on_pairs(self, version: int) -> None:
        self.pairs.append(version)


@asynccontextmanager
async def listening(
    database: Database, node: str, applied: Applied, **options: object
) -> AsyncIterator[ControlListener]:
    listener = ControlListener(
        ControlStore(database.engine, node),
        database.engine.url.render_as_string(hide_password=False),
        poll_interval=float(options.get("poll_interval", POLL)),  # type: ignore[arg-type]
        timeout=2.0,
        on_feed=applied.on_feed,
        on_pairs=applied.on_pairs,
    )
    await listener.start(baseline=bool(options.get("baseline", True)))
    try:
        yield listener
    finally:
        await listener.stop()
        await listener.stop()  # idempotent


async def test_feed_command_sent_to_any_node_reaches_the_leader_at_once(
    database: Database,
) -> None:
    """A command written by a non-leader is applied by the leader's listener within 1 s."""
    applied = Applied()
    async with listening(database, "leader", applied, poll_interval=30.0) as listener:
        edge = ControlStore(database.engine, "edge")
        sent = time.monotonic()
        command = await edge.submit_feed(FeedAction.START, ["AL30", "GD30"])
        assert (command.version, command.running, command.updated_by) == (1, True, "edge")
        await eventually(lambda: len(applied.commands) == 1, 5)
        received, at = applied.commands[0]
        assert received == command
        assert at - sent <= 1.0  # by NOTIFY: the 30 s poll cannot have done it
        assert listener.stats.notifications == 1 and listener.listening
        stop = await edge.submit_feed(FeedAction.STOP)
        await eventually(lambda: len(applied.commands) == 2, 5)
        assert applied.commands[1][0] == stop and not stop.running and stop.instruments == ()
        assert stop.version == 2


async def test_a_lost_notification_is_caught_up_by_the_slow_poll(database: Database) -> None:
    """A change that never notified (as for a dropped listener) is applied by the next poll."""
    applied = Applied()
    store = ControlStore(database.engine, "edge")
    await store.submit_feed(FeedAction.START)
    async with listening(database, "leader", applied) as listener:
        async with database.engine.begin() as conn:  # the write, without its NOTIFY
            await conn.execute(
                text(
                    "UPDATE cluster_control SET version = version + 1, action = 'restart' "
                    "WHERE name = 'feed'"
                )
            )
        changed = time.monotonic()
        await eventually(lambda: len(applied.commands) == 1, POLL + 3)
        command, at = applied.commands[0]
        assert command.action is FeedAction.RESTART and command.version == 2
        assert at - changed <= POLL + 1.0
        assert listener.stats.notifications == 0


async def test_listener_reconnects_after_its_connection_is_killed(database: Database) -> None:
    """When PostgreSQL drops the LISTEN connection, the listener opens a new one and catches up."""
    applied = Applied()
    async with listening(database, "leader", applied, poll_interval=0.2) as listener:
        async with database.engine.begin() as conn:
            killed = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            assert killed.scalar_one() == 1
        await eventually(lambda: listener.stats.listens == 2 and listener.listening, 5)
        await ControlStore(database.engine, "edge").submit_feed(FeedAction.RESTART, ["AL30"])
        await eventually(lambda: len(applied.commands) == 1, 5)
        assert applied.commands[0][0].instruments == ("AL30",)
        assert listener.stats.notifications == 1


async def test_pairs_changed_reaches_every_node(database: Database) -> None:
    """ "Pairs changed" written once is reported to every node's listener, with its version."""
    first, second = Applied(), Applied()
    async with (
        listening(database, "a", first),
        listening(database, "b", second),
    ):
        store = ControlStore(database.engine, "c")
        assert await store.pairs_changed() == 1
        assert await store.pairs_changed() == 2
        await eventually(lambda: first.pairs[-1:] == [2] and second.pairs[-1:] == [2], 5)
        assert first.pairs in ([1, 2], [2]) and second.pairs in ([1, 2], [2])
        assert first.commands == [] and await store.versions() == {"feed": 0, "pairs": 2}


async def test_baseline_skips_the_state_found_at_start_unless_asked(database: Database) -> None:
    """By default what was already there is not reported; baseline=False reports it at once."""
    store = ControlStore(database.engine, "edge")
    await store.submit_feed(FeedAction.START, ["AL30"])
    await store.pairs_changed()
    quiet, eager = Applied(), Applied()
    async with (
        listening(database, "a", quiet) as a,
        listening(database, "b", eager, baseline=False),
    ):
        await eventually(lambda: len(eager.commands) == 1 and eager.pairs == [1], 5)
        a.check_now()
        await eventually(lambda: a.stats.polls >= 2, 5)
        assert quiet.commands == [] and quiet.pairs == []
        assert (a.feed_version, a.pairs_version) == (1, 1)


async def test_failing_command_is_logged_and_not_retried(database: Database) -> None:
    """A command the leader cannot apply is logged once; later commands still arrive."""
    seen: list[int] = []

    async def broken(command: FeedCommand) -> None:
        seen.append(command.version)
        if command.version == 1:
            raise RuntimeError("unknown instrument")

    listener = ControlListener(
        ControlStore(database.engine, "leader"),
        database.engine.url.render_as_string(hide_password=False),
        poll_interval=0.1,
        timeout=2.0,
        on_feed=broken,
    )
    await listener.start()
    try:
        store = ControlStore(database.engine, "edge")
        await store.submit_feed(FeedAction.START, ["NOPE"])
        await eventually(lambda: seen == [1], 5)
        await eventually(lambda: listener.stats.polls >= 5, 5)
        assert seen == [1]
        await store.submit_feed(FeedAction.START, ["AL30"])
        await eventually(lambda: seen == [1, 2], 5)
    finally:
        await listener.stop()


def test_asyncpg_dsn_from_the_sqlalchemy_url() -> None:
    """The listener's DSN keeps host, port, user, password and database; SQLite is refused."""
    dsn = asyncpg_dsn("postgresql+asyncpg://u:p@db.local:5433/cotiza")
    assert dsn == "postgresql://u:p@db.local:5433/cotiza"
    with pytest.raises(ClusterError, match="PostgreSQL"):
        asyncpg_dsn("sqlite+aiosqlite:///x.db")


async def test_unreachable_database_fails_clearly() -> None:
    """Writing the desired state without a database raises ClusterError naming what failed."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(ClusterError, match="desired feed state"):
            await ControlStore(engine, "a").submit_feed(FeedAction.STOP)
        with pytest.raises(ClusterError, match="control versions"):
            await ControlStore(engine, "a").versions()
    finally:
        await engine.dispose()


async def test_a_released_lease_is_announced_to_the_other_nodes_only(database: Database) -> None:
    """announce_release reaches every other listener by NOTIFY (not the poll), not its sender."""
    heard: dict[str, list[str]] = {"leader": [], "standby": []}
    listeners = [
        ControlListener(
            ControlStore(database.engine, node),
            database.engine.url.render_as_string(hide_password=False),
            poll_interval=30.0,
            timeout=2.0,
            on_released=heard[node].append,
        )
        for node in heard
    ]
    for listener in listeners:
        await listener.start()
    try:
        await listeners[0].store.announce_release()
        await eventually(lambda: heard["standby"] == ["leader"], 5)
        assert heard["leader"] == []
        # A release notice is not a change of desired state: nothing is re-read or applied.
        assert [listener.stats.feed_commands for listener in listeners] == [0, 0]
    finally:
        for listener in listeners:
            await listener.stop()
