"""The control plane: desired state in PostgreSQL, written by any node, applied by the leader.

Feed control (start, stop, restart with instruments) and "pairs changed" are rows of
``cluster_control`` whose ``version`` grows on every write; the writing transaction also
sends ``NOTIFY cotiza_control``. Every node's ``ControlListener`` holds a dedicated asyncpg
connection on ``LISTEN`` and, because a notification sent while that connection is down
is simply lost, also polls the versions every ``CONTROL_POLL_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cotiza.cluster.tasks import stop_task
from cotiza.errors import ClusterError
from cotiza.storage.database import describe_error

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "cotiza_control"
FEED = "feed"
PAIRS = "pairs"
RELEASED = "released:"  # notification payload prefix: the lease was freed by this node

_WRITE = text(
    """INSERT INTO cluster_control (name, version, action, instruments, updated_by, updated_at)
    VALUES (:name, 1, :action, :instruments, :me, clock_timestamp())
    ON CONFLICT (name) DO UPDATE SET
        version = cluster_control.version + 1, action = EXCLUDED.action,
        instruments = EXCLUDED.instruments, updated_by = EXCLUDED.updated_by,
        updated_at = EXCLUDED.updated_at
    RETURNING version, extract(epoch from updated_at)::float8 AS updated_at"""
)
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_READ = text(
    """SELECT name, version, action, instruments, updated_by,
        extract(epoch from updated_at)::float8 AS updated_at
    FROM cluster_control WHERE name = :name"""
)
_VERSIONS = text("SELECT name, version FROM cluster_control")


class FeedAction(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


@dataclass(frozen=True, slots=True)
class FeedCommand:
    """The feed's desired state: the latest command any node accepted."""

    version: int
    action: FeedAction
    instruments: tuple[str, ...]  # empty: the configured instruments
    updated_by: str
    updated_at: float  # epoch seconds, database clock

    @property
    def running(self) -> bool:
        return self.action is not FeedAction.STOP


def asyncpg_dsn(database_url: str) -> str:
    """The DSN asyncpg wants for a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ClusterError("the control plane needs PostgreSQL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ControlStore:
    """Reads and writes the desired state; every write notifies the listeners on commit."""

    def __init__(self, engine: AsyncEngine, node_id: str) -> None:
        self._engine = engine
        self.node_id = node_id

    async def _write(self, name: str, action: str | None, instruments: str | None) -> int:
        params = {"name": name, "action": action, "instruments": instruments, "me": self.node_id}
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(_WRITE, params)).mappings().one()
                payload = f"{name}:{row['version']}"
                await conn.execute(_NOTIFY, {"channel": CONTROL_CHANNEL, "payload": payload})
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(
                f"cannot write the desired {name} state: {describe_error(exc)}"
            ) from exc
        return int(row["version"])

    async def submit_feed(self, action: FeedAction, instruments: Sequence[str] = ()) -> FeedCommand:
        """Record a feed command for the leader to apply; returns it with its version."""
        listed = orjson.dumps(list(instruments)).decode()
        await self._write(FEED, str(action), listed)
        command = await self.feed()
        assert command is not None  # just written
        return command

    async def pairs_changed(self) -> int:
        """Tell every node to reload the pairs; returns the new pairs version."""
        return await self._write(PAIRS, None, None)

    async def announce_release(self) -> None:
        """Tell the other nodes the lease was just freed, so they campaign at once.

        A plain notification: nothing is stored, and a node that misses it campaigns at its
        next ``LEASE_RETRY`` as before.
        """
        payload = f"{RELEASED}{self.node_id}"
        try:
            async with self._engine.begin() as conn:
                await conn.execute(_NOTIFY, {"channel": CONTROL_CHANNEL, "payload": payload})
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"cannot announce the release: {describe_error(exc)}") from exc

    async def _read(self, name: str) -> dict[str, Any] | None:
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_READ, {"name": name})).mappings().first()
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(
                f"cannot read the desired {name} state: {describe_error(exc)}"
            ) from exc
        return None if row is None else dict(row)

    async def feed(self) -> FeedCommand | None:
        row = await self._read(FEED)
        if row is None:
            return None
        return FeedCommand(
            version=int(row["version"]),
            action=FeedAction(row["action"]),
            instruments=tuple(orjson.loads(row["instruments"] or "[]")),
            updated_by=row["updated_by"] or "",
            updated_at=row["updated_at"],
        )

    async def versions(self) -> dict[str, int]:
        """The current version of every kind of desired state (0 when never written)."""
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_VERSIONS)).all()
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"cannot read the control versions: {describe_error(exc)}") from exc
        found = {str(name): int(version) for name, version in rows}
        return {FEED: found.get(FEED, 0), PAIRS: found.get(PAIRS, 0)}


OnFeed = Callable[[FeedCommand], Awaitable[None]]
OnPairs = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class ListenerStats:
    notifications: int = 0
    polls: int = 0
    poll_failures: int = 0
    listens: int = 0  # LISTEN connections opened (1 + reconnections)
    feed_commands: int = 0
    pairs_reloads: int = 0


class ControlListener:
    """Calls ``on_feed`` / ``on_pairs`` once per new version, in order, on one task."""

    def __init__(
        self,
        store: ControlStore,
        database_url: str,
        *,
        poll_interval: float,
        timeout: float,
        on_feed: OnFeed | None = None,
        on_pairs: OnPairs | None = None,
        on_released: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._on_released = on_released
        self._dsn = asyncpg_dsn(database_url)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._on_feed = on_feed
        self._on_pairs = on_pairs
        self.feed_version = 0
        self.pairs_version = 0
        self.stats = ListenerStats()
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self, *, baseline: bool = True) -> None:
        """Start listening; with ``baseline`` the state already there is not reported."""
        if self._task is not None:
            return
        if baseline:
            versions = await self.store.versions()
            self.feed_version, self.pairs_version = versions[FEED], versions[PAIRS]
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="control-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.wait_for(conn.close(), self.timeout)

    def check_now(self) -> None:
        """Look at the versions now (as a notification would make it)."""
        self._wake.set()

    async def _listen(self) -> None:
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self.timeout)
            await conn.add_listener(CONTROL_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("control plane: cannot LISTEN (polling only): %s", exc)
            return
        conn.add_termination_listener(lambda _conn: self._wake.set())
        self._conn = conn
        self.stats.listens += 1

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.stats.notifications += 1
        log.debug("control notification %s", payload)
        if payload.startswith(RELEASED):
            node = payload.removeprefix(RELEASED)
            if self._on_released is not None and node != self.store.node_id:
                self._on_released(node)
            return
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self.listening:
                self._conn = None
                await self._listen()  # after a reconnection, the check below catches up
            try:
                await self._check()
            except ClusterError as exc:
                self.stats.poll_failures += 1
                log.warning("control plane poll failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def _check(self) -> None:
        self.stats.polls += 1
        versions = await self.store.versions()
        if versions[FEED] > self.feed_version:
            command = await self.store.feed()
            if command is not None:
                self.feed_version = command.version
                self.stats.feed_commands += 1
                await self._dispatch(self._on_feed, command)
        if versions[PAIRS] > self.pairs_version:
            self.pairs_version = versions[PAIRS]
            self.stats.pairs_reloads += 1
            await self._dispatch(self._on_pairs, self.pairs_version)

    @staticmethod
    async def _dispatch(callback: Callable[[Any], Awaitable[None]] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            await callback(value)
        except Exception:
            # The callback's boundary: a command that cannot be applied is logged and not
            # retried (retrying the same version would fail the same way forever).
            log.exception("control plane: applying %r failed", value)
