"""Fixtures of the cluster tests: a migrated PostgreSQL database and a Redis prefix per test,
and a dedicated redis-server for tests that kill it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_kit import RedisServer, cluster_settings, delete_prefix

from cotiza.settings import Settings
from cotiza.storage.database import Database

SHARED_REDIS = "redis://127.0.0.1:6379/0"
UNUSED_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/unused"  # validated, never opened


@pytest.fixture
def prefix() -> str:
    """A backplane prefix no other test uses."""
    return f"cotiza-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def shared_redis(prefix: str) -> AsyncIterator[str]:
    """The shared Redis on 6379 (never killed); the test's keys are removed afterwards."""
    yield SHARED_REDIS
    await delete_prefix(SHARED_REDIS, prefix)


@pytest.fixture
async def database(fresh_pg_url: str) -> AsyncIterator[Database]:
    """A PostgreSQL database of the test's own, migrated to head (lease and control tables)."""
    db = Database(fresh_pg_url)
    await db.start()
    try:
        yield db
    finally:
        await db.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port, without persistence."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def node_settings(fresh_pg_url: str, prefix: str) -> Callable[..., Settings]:
    """Settings of one node of the test's cluster (shared Redis unless ``backplane`` given)."""

    def build(**overrides: Any) -> Settings:
        overrides.setdefault("backplane", SHARED_REDIS)
        return cluster_settings(fresh_pg_url, overrides.pop("backplane"), prefix, **overrides)

    return build


@pytest.fixture
def bus_settings(prefix: str) -> Callable[..., Settings]:
    """Settings of one node for bus tests, which need Redis but no database."""

    def build(**overrides: Any) -> Settings:
        backplane = overrides.pop("backplane", SHARED_REDIS)
        return cluster_settings(UNUSED_PG, backplane, prefix, **overrides)

    return build
