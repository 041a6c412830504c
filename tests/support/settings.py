"""Settings for tests: intervals short enough to observe, a SQLite file per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cotiza.settings import Settings

FAST: dict[str, Any] = {
    "market_hours": "always",
    "sim_ticks_per_second": 50.0,
    "ratio_sample_interval": 0.2,
    "ratio_publish_interval": 0.02,
    "dashboard_refresh_interval": 0.3,
    "write_flush_interval": 0.05,
    "loop_lag_interval": 0.05,
    "shutdown_timeout": 5.0,
}


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for tests: fast intervals, a SQLite file in ``tmp_path``, an ephemeral port."""
    values: dict[str, Any] = {
        **FAST,
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/cotiza.db",
        "host": "127.0.0.1",
        "port": 0,
    }
    values.update(overrides)
    return Settings(**values)


def settings_factory(tmp_path: Path, **defaults: Any) -> Callable[..., Settings]:
    """A ``make_settings``: ``fast_settings`` with ``defaults``; keyword arguments win."""

    def build(**overrides: Any) -> Settings:
        return fast_settings(tmp_path, **{**defaults, **overrides})

    return build
