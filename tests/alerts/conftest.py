"""Fixtures: settings for fast tests and a live service per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alerts_kit import FAST_ALERTS
from live import fast_settings

from cotiza.settings import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return fast_settings(tmp_path, **{**FAST_ALERTS, **overrides})

    return build
