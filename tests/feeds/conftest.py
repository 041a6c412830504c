"""Fixtures of the feed tests: a fake Primary server on a free port, per test."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest

from cotiza.fake_primary import FakePrimary


@pytest.fixture
async def fake() -> AsyncIterator[FakePrimary]:
    """A fake Primary with the simulator's catalogue, quoting 200 ticks per second."""
    async with FakePrimary(rate=200.0) as server:
        yield server


@pytest.fixture(autouse=True)
def _collect_garbage_first() -> None:
    """Start each test without the previous tests' garbage.

    Feed tests create hundreds of thousands of short-lived objects; a full collection of
    that garbage landing inside a later test's timing window would be charged to it.
    """
    gc.collect()
