"""Shared fixtures: settings, a live service, temporary databases on the real PostgreSQL
server and SQLite files."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import fastapi.dependencies.models as fastapi_dependencies
import pytest
from support.server import LiveService, live_service
from support.settings import settings_factory

from cotiza.settings import Settings

# A test carrying none of these is marked ``quick``: ``pytest -m quick`` runs in seconds,
# plain ``pytest`` (and ``scripts/dev test``, CI) runs everything.
SLOW_MARKERS = ("live", "subprocess", "postgres", "browser", "cluster")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.quick)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what importing the code and the tests created (~200k objects that live for
    the whole run), so a full collection walks only what tests create: a pause of the
    loop in the middle of a live test is then tens of milliseconds, not a second."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _release_apps() -> Iterator[None]:
    """Let each test's app go once it ends.

    FastAPI keeps module-level LRU caches (4096 entries each) keyed by endpoint callables;
    ours are closures over one app's services, so those caches held the last ~50 apps of
    the run, ~1.5 M objects by the end of tests/api, and full collections then stalled the
    loop for over a second -- enough to fail timing assertions of live tests.
    """
    yield
    for value in vars(fastapi_dependencies).values():
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


PG_HOST = os.environ.get("COTIZA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("COTIZA_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("COTIZA_TEST_PG_USER", "postgres")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for fast tests (``support.settings.fast_settings``); keywords override.

    Folders whose tests need other defaults override this fixture with ``settings_factory``.
    """
    return settings_factory(tmp_path)


@pytest.fixture
async def service(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveService]:
    """The real app under uvicorn on an ephemeral port, with the closest ``make_settings``."""
    async with live_service(make_settings()) as live:
        yield live


_TABLES = ("ratio_pairs", "ratio_samples", "ratio_minutes", "ratio_hours", "ticks")


def pg_database_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def _admin(statements: list[str]) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database() -> str:
    """Create an empty, uniquely named database and return its name."""
    name = f"cotiza_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin([f'CREATE DATABASE "{name}"']))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(
        _admin(
            [
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
                f'DROP DATABASE IF EXISTS "{name}"',
            ]
        )
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A temporary PostgreSQL database for the whole session, dropped at the end."""
    name = create_pg_database()
    try:
        yield pg_database_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of its own, for tests that migrate up and down."""
    name = create_pg_database()
    try:
        yield pg_database_url(name)
    finally:
        drop_pg_database(name)


async def _truncate(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=name)
    try:
        present = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1)",
            list(_TABLES),
        )
        if present == len(_TABLES):
            await conn.execute(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> str:
    """An empty database of each dialect: a new SQLite file, or the emptied session database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'cotiza.db'}"
    await _truncate(pg_url)
    return pg_url
