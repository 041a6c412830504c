"""Fixtures for the operations tests: a harness that owns every process a test starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opskit import Harness, Recorder


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Harness]:
    """Real processes for one test; every one of them is killed at the end."""
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An HTTP server recording what the monitor's alerts post (webhook, Telegram)."""
    server = Recorder()
    try:
        yield server
    finally:
        server.close()
