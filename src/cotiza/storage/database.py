"""The database component: one async engine, migrated to the head revision at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from cotiza.errors import StorageError
from cotiza.settings import redact_url
from cotiza.storage.tables import SCHEMA_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)

# Any 64-bit constant works; it only has to be the same for every cotiza process so that
# two processes starting at once do not run the migrations concurrently.
_MIGRATION_LOCK_ID = 0x636F74697A61


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the bundled migrations, without any ``alembic.ini``.

    When ``connection`` is given, ``env.py`` runs the migrations on it.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """A short, single-line description of ``exc`` without SQL, parameters or secrets."""
    original = getattr(exc, "orig", None)
    source = original if isinstance(original, BaseException) else exc
    lines = str(source).strip().splitlines()
    message = redact_url(lines[0] if lines else "")
    summary = f"{type(source).__name__}: {message}" if message else type(source).__name__
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


class Database:
    """Owns the async engine; ``start`` creates it and upgrades the schema to head."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        retry_max: float = 30.0,
    ) -> None:
        """``busy_timeout``: seconds a SQLite statement waits for another writer's lock;
        ``connect_timeout``: the longest a PostgreSQL connection attempt (and start-up's
        migration) may take, so a server that accepts TCP but never answers cannot hang
        start-up; ``retry_max``: the longest pause between start-up retries."""
        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"invalid database URL: {redact_url(url)}") from exc
        self._echo = echo
        self._busy_timeout_ms = round(busy_timeout * 1000)
        self._engine: AsyncEngine | None = None
        self._file_identity: tuple[int, int] | None = None  # SQLite file (st_dev, st_ino)
        self._connect_timeout = connect_timeout
        self._retry_max = retry_max
        self._retry: asyncio.Task[None] | None = None
        self._on_ready: list[Callable[[], Awaitable[None]]] = []

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: ``sqlite`` or ``postgresql``."""
        return self._url.get_backend_name()

    @property
    def url(self) -> str:
        """The database URL with the password hidden; safe to log and to return."""
        return self._url.render_as_string(hide_password=True)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in logs or error reports (the password)."""
        return (self._url.password,) if self._url.password else ()

    @property
    def running(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StorageError("the database is not started")
        return self._engine

    @property
    def expected_revision(self) -> str:
        """The head revision of the bundled migrations (``tables.SCHEMA_REVISION``).

        A test checks it against Alembic's own head, so reading the constant is enough.
        """
        return SCHEMA_REVISION

    async def start(self) -> None:
        """Create the engine and migrate the schema to head; a no-op when already started."""
        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            async with asyncio.timeout(self._connect_timeout * 3), engine.begin() as conn:
                await conn.run_sync(self._upgrade)
        except TimeoutError as exc:
            await engine.dispose()
            raise StorageError(
                f"cannot open and migrate {self.url}: no answer within "
                f"{self._connect_timeout * 3:g} s"
            ) from exc
        except StorageError:
            await engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StorageError(
                f"cannot open and migrate {self.url}: {describe_error(exc)}"
            ) from exc
        self._engine = engine
        self._file_identity = self._identity()
        logger.info("database %s ready at revision %s", self.url, self.expected_revision)

    async def start_or_retry(self) -> bool:
        """Start now, or keep retrying in the background with backoff (one log line per
        attempt) and run the ``on_ready`` callbacks once it answers; True when started now.

        The service starts either way: live quotes and WebSockets need no database, and
        health (``/readyz``) reports it missing meanwhile."""
        try:
            await self.start()
        except StorageError as exc:
            logger.warning("database unavailable at start-up, starting without it: %s", exc)
            self._retry = asyncio.create_task(self._retry_start(), name="database-retry")
            return False
        return True

    def on_ready(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when a deferred start succeeds (pairs, rules, ...)."""
        self._on_ready.append(callback)

    async def _retry_start(self) -> None:
        delay, attempt, reason = 1.0, 1, "unreachable at start-up"
        while True:  # one line per attempt, with why it failed
            logger.warning(
                "database attempt %d failed (%s); next attempt in %.0f s", attempt, reason, delay
            )
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self.start()
            except StorageError as exc:
                reason = str(exc)
                delay = min(self._retry_max, delay * 2)
                continue
            logger.info("database %s answered after %d attempt(s)", self.url, attempt)
            for callback in self._on_ready:
                try:
                    await callback()
                except Exception:  # one component's loading must not stop the others'
                    logger.exception("loading after the database came back failed")
            return

    async def stop(self) -> None:
        """Dispose of the engine and its pooled connections; a no-op when stopped."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
            logger.info("database %s closed", self.url)

    async def __aenter__(self) -> Database:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def ping(self) -> float:
        """Run ``SELECT 1`` and return the seconds it took."""
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database ping failed: {describe_error(exc)}") from exc
        return time.perf_counter() - started

    async def revision(self) -> str | None:
        """The revision the database is at, or ``None`` when it was never migrated."""
        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(_current_revision)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"cannot read the schema revision: {describe_error(exc)}") from exc

    @property
    def file_path(self) -> Path | None:
        """The SQLite database file, or None (PostgreSQL, in memory)."""
        database = self._url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return Path(database).expanduser().absolute()

    def _identity(self) -> tuple[int, int] | None:
        path = self.file_path
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino)

    def file_problem(self) -> str | None:
        """Why the SQLite file this process writes is no longer the one at its path.

        SQLite keeps writing to an open file after it is unlinked, so a database whose file
        (or directory) was removed, or replaced by another file, still answers: everything
        written from then on is lost. None when all is well or there is no file.
        """
        path, expected = self.file_path, self._file_identity
        if path is None or expected is None or self._engine is None:
            return None
        if not path.parent.exists():
            return f"the directory {path.parent} was removed; writes since then are lost"
        try:
            stat = path.stat()
        except FileNotFoundError:
            return f"the database file {path} was removed; writes since then are lost"
        except OSError as exc:
            return f"the database file {path} cannot be read: {exc.strerror}"
        if (stat.st_dev, stat.st_ino) != expected:
            return f"the database file {path} was replaced by another file; restart to use it"
        return None

    def _create_engine(self) -> AsyncEngine:
        in_memory = self.dialect == "sqlite" and self._url.database in (None, "", ":memory:")
        engine = create_async_engine(
            self._url,
            echo=self._echo,
            pool_pre_ping=self.dialect == "postgresql",
            # asyncpg: connection and statement timeouts (a silent server must not hang us).
            **(
                {
                    "connect_args": {
                        "timeout": self._connect_timeout,
                        "command_timeout": self._connect_timeout * 3,
                    }
                }
                if self.dialect == "postgresql"
                else {}
            ),
            # Every connection to an in-memory SQLite database is a different database.
            **({"poolclass": StaticPool} if in_memory else {}),
        )
        if self.dialect == "sqlite":
            self._prepare_sqlite_file()
            pragmas = (*_SQLITE_PRAGMAS, f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            event.listen(engine.sync_engine, "connect", _pragma_setter(pragmas))
        return engine

    def _prepare_sqlite_file(self) -> None:
        database = self._url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def _upgrade(self, connection: Connection) -> None:
        # Importing Alembic costs about a third of a second of start-up; a database already
        # at the head revision (every start but the first after an upgrade) skips it.
        if _read_revision(connection) == SCHEMA_REVISION:
            return
        from alembic import command
        from alembic.util import CommandError

        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_ID}
            )
        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as exc:
            # e.g. the database is at a revision this version does not know.
            raise StorageError(f"cannot migrate {self.url}: {describe_error(exc)}") from exc


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _read_revision(connection: Connection) -> str | None:
    """The stamped revision, read with plain SQL; ``None`` on a database never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def _pragma_setter(
    pragmas: tuple[str, ...],
) -> Callable[[DBAPIConnection, ConnectionPoolEntry], None]:
    def set_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return set_pragmas
