"""Database start-up, migrations and schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from cotiza.errors import StorageError
from cotiza.storage import database as database_module
from cotiza.storage.database import Database
from cotiza.storage.tables import metadata

TABLES = {
    "ratio_pairs",
    "ratio_samples",
    "ratio_minutes",
    "ratio_hours",
    "ratio_days",
    "ticks",
    "cluster_leases",
    "cluster_control",
}
ALEMBIC_INI = Path(database_module.__file__).parent / "migrations" / "alembic.ini"


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_start_migrates_to_head(db_url: str) -> None:
    """Starting on an empty database creates every table and records revision 0004."""
    db = Database(db_url)
    await db.start()
    try:
        assert await db.revision() == "0004"
        assert db.expected_revision == "0004"
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_table_names) >= TABLES
    finally:
        await db.stop()


async def test_migrated_schema_matches_metadata(db_url: str) -> None:
    """The migrated schema has no differences from ``tables.metadata``."""
    async with Database(db_url) as db, db.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


async def test_start_and_stop_are_idempotent(db_url: str) -> None:
    """Repeated start and stop calls are harmless and the database can start again."""
    db = Database(db_url)
    await db.start()
    engine = db.engine
    await db.start()
    assert db.engine is engine
    assert await db.ping() >= 0
    await db.stop()
    await db.stop()
    assert not db.running
    with pytest.raises(StorageError):
        db.engine  # noqa: B018 - the property access is what is tested
    await db.start()
    assert await db.revision() == "0004"
    await db.stop()


async def test_sqlite_file_directory_and_pragmas(tmp_path: Path) -> None:
    """A SQLite file in a missing directory is created, with WAL and foreign keys on."""
    path = tmp_path / "nested" / "deeper" / "cotiza.db"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        assert path.exists()
        assert db.dialect == "sqlite"
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000


async def test_unreachable_database_raises_storage_error_without_password() -> None:
    """A database that cannot be reached fails start-up with StorageError and no secret."""
    db = Database("postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/nothing")
    with pytest.raises(StorageError) as caught:
        await db.start()
    assert "s3cret" not in str(caught.value)
    assert not db.running


async def _alembic(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "-c",
        str(ALEMBIC_INI),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _tables_without_migrating(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_table_names)
    finally:
        await engine.dispose()


@pytest.mark.subprocess
async def test_alembic_command_line_upgrades_and_downgrades(fresh_db_url: str) -> None:
    """The alembic CLI migrates with ``-x url=...``; downgrade removes every table."""
    await _alembic("-x", f"url={fresh_db_url}", "upgrade", "head")
    assert await _tables_without_migrating(fresh_db_url) >= TABLES
    async with Database(fresh_db_url) as db:
        assert await db.revision() == "0004"

    await _alembic("-x", f"url={fresh_db_url}", "downgrade", "base")
    assert not TABLES & await _tables_without_migrating(fresh_db_url)

    async with Database(fresh_db_url) as db:  # start-up migrates the emptied database
        assert await db.revision() == "0004"
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []


async def test_unknown_revision_fails_start_up(db_url: str) -> None:
    """A database migrated by a newer version of cotiza is refused with StorageError."""
    async with Database(db_url) as db, db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(StorageError, match="9999"):
            await Database(db_url).start()
    finally:
        engine = create_async_engine(db_url)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        await engine.dispose()


def test_schema_revision_constant_is_the_alembic_head() -> None:
    """``tables.SCHEMA_REVISION`` (used to skip Alembic at start-up) is the migrations' head."""
    from alembic.script import ScriptDirectory

    from cotiza.storage.database import alembic_config
    from cotiza.storage.tables import SCHEMA_REVISION

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_REVISION
