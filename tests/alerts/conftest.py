"""Fixtures of the alert tests: settings with quick retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alerts_kit import FAST_ALERTS
from support.settings import settings_factory

from cotiza.settings import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """The generic ``make_settings`` with quick alert retries."""
    return settings_factory(tmp_path, **FAST_ALERTS)
