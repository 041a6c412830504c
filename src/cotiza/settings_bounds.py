"""Sensible bounds for every numeric setting, and the syntax checks ``Settings`` shares.

pydantic's ``Field`` constraints only say "positive"; a value such as
``RATIO_SAMPLE_INTERVAL=1e-9`` passed and pinned a core, ``inf`` slept forever. Every
``int``/``float`` field of ``Settings`` has an entry here (a test enforces it), checked by
a field validator so the error names the variable.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
MIB = 1024 * 1024

# field name -> (lowest, highest), both inclusive.
BOUNDS: dict[str, tuple[float, float]] = {
    "websocket_timeout": (0.05, HOUR),
    "max_websocket_connections": (1, 1_000_000),
    "dashboard_refresh_interval": (0.05, DAY),
    "dashboard_max_subscribers": (1, 1_000_000),
    "port": (0, 65535),
    "write_queue_size": (10, 10_000_000),
    "write_batch_size": (1, 1_000_000),
    "write_flush_interval": (0.005, HOUR),
    "write_retry_base": (0.001, HOUR),
    "write_retry_max": (0.001, DAY),
    "write_drop_log_interval": (0.01, DAY),
    "write_drop_window": (0.1, DAY),
    "write_sample_buffer": (1, 10_000_000),
    "sqlite_busy_timeout": (0.001, HOUR),
    "database_connect_timeout": (0.1, 10 * MINUTE),
    "demo_history_days": (0, 365),
    "sim_ticks_per_second": (0.001, 1_000_000),
    "sim_seed": (0, 2**32 - 1),
    "replay_speed": (0, 1_000_000),
    "primary_batch_size": (1, 1000),
    "primary_open_timeout": (0.01, HOUR),
    "primary_ping_interval": (0.01, HOUR),
    "primary_pong_timeout": (0.01, HOUR),
    "primary_close_timeout": (0.01, HOUR),
    "primary_silence_timeout": (0.01, DAY),
    "primary_backoff_base": (0.001, HOUR),
    "primary_backoff_cap": (0.001, DAY),
    "primary_stable_after": (0.01, DAY),
    "primary_token_lifetime": (0.01, 30 * DAY),
    "primary_token_margin": (0, 30 * DAY),
    "primary_http_timeout": (0.01, HOUR),
    "primary_max_handshake_rejections": (1, 1000),
    "primary_yield_every": (1, 1_000_000),
    "replay_yield_every": (1, 1_000_000),
    "record_flush_interval": (0.01, HOUR),
    "ratio_sample_interval": (0.05, DAY),
    "ratio_publish_interval": (0, HOUR),
    "quote_stale_after": (0.01, WEEK),
    "feed_warn_after": (0.01, WEEK),
    "feed_fail_after": (0.01, WEEK),
    "loop_lag_interval": (0.01, MINUTE),
    "loop_lag_warn": (0.001, HOUR),
    "loop_lag_fail": (0.001, HOUR),
    "loop_lag_window": (1, 100_000),
    "database_slow_after": (0.001, HOUR),
    "health_check_timeout": (0.01, HOUR),
    "memory_warn_mb": (1, 16 * MIB),
    "ws_queue_size": (8, 10_000_000),
    "ws_send_buffer": (4096, 1024 * MIB),
    "ws_max_frame_bytes": (256, 1024 * MIB),
    "ws_rate_limit": (0.001, 1_000_000),
    "ws_rate_burst": (1, 1_000_000),
    "ws_keepalive_interval": (0.05, DAY),
    "ws_idle_ping_after": (0.05, DAY),
    "ws_max_pending_bytes": (64 * 1024, 1024 * MIB),
    "ws_max_subscriptions": (1, 1_000_000),
    "max_body_bytes": (1024, 1024 * MIB),
    "ws_broadcast_grace": (0, MINUTE),
    "alert_webhook_timeout": (0.01, HOUR),
    "alert_webhook_attempts": (1, 50),
    "alert_retry_base": (0.001, HOUR),
    "alert_retry_cap": (0.001, DAY),
    "alert_queue_size": (1, 10_000_000),
    "alert_max_inflight": (1, 10_000),
    "alert_default_cooldown": (0, WEEK),
    "alert_history_limit": (1, 1_000_000),
    "telegram_poll_timeout": (0, HOUR),
    "telegram_http_timeout": (0.01, HOUR),
    "telegram_backoff_base": (0.001, HOUR),
    "telegram_backoff_cap": (0.001, DAY),
    "telegram_stable_after": (0.01, DAY),
    "telegram_max_message_age": (0.01, WEEK),
    "telegram_max_refused_chats": (0, 10_000_000),
    "telegram_chat_id": (-(2**63), 2**63 - 1),
    "shutdown_timeout": (0.01, HOUR),
    "lease_ttl": (0.01, HOUR),
    "lease_retry": (0.001, HOUR),
    "lease_renew_deadline": (0.001, HOUR),
    "primary_session_grace": (0, HOUR),
    "bus_heartbeat": (0.001, HOUR),
    "bus_stale_after": (0.001, DAY),
    "bus_timeout": (0.001, HOUR),
    "bus_retry_base": (0.001, HOUR),
    "bus_retry_max": (0.001, DAY),
    "bus_outbox_size": (16, 10_000_000),
    "bus_batch_size": (1, 1_000_000),
    "node_report_interval": (0.01, DAY),
    "node_ttl": (0.01, DAY),
    "control_poll_interval": (0.01, DAY),
}


def check_bounds(name: str, value: object) -> None:
    """Raise ``ValueError`` when a numeric setting is not finite or outside its bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    bounds = BOUNDS.get(name)
    if bounds is None:
        return
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"expected a value between {low:g} and {high:g}, got {value:g}")


_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_host(value: str) -> str:
    """A bind address: an IP address, or a host name this machine resolves."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(value) or value.replace(".", "").isdigit():
        raise ValueError(f"expected an IP address or a host name, got {value!r}")
    try:
        socket.getaddrinfo(value, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"host name {value!r} does not resolve") from exc
    return value


def check_sqlite_path(url: str) -> None:
    """A SQLite file URL that can be created: not a directory, under a writable directory.

    Missing folders are fine (the database creates them); a path through a regular file or
    under a folder that cannot be written is not.
    """
    if not url.startswith("sqlite"):
        return
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        return  # sqlite+aiosqlite:// (in memory)
    raw = rest[1:].split("?", 1)[0]
    if raw in {"", ":memory:"} or raw.startswith("file:"):
        return
    path = Path(raw).expanduser()
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a database file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, so {path} cannot be created")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"the directory {folder} is not writable")


def check_sim_instruments(symbols: list[str]) -> list[str]:
    """FEED_INSTRUMENTS for FEED=sim: symbols the simulator knows (its catalogue is local)."""
    from cotiza.feeds.sim import sim_catalogue

    catalogue = sim_catalogue()
    # Full Primary names, or the species of a BYMA name ("AL30" for "MERV - XMEV - AL30 - 24hs").
    known = set(catalogue) | {s.split(" - ")[2] for s in catalogue if s.count(" - ") == 3}
    unknown = [symbol for symbol in symbols if symbol not in known]
    if unknown:
        raise ValueError(
            "unknown to the simulator: "
            + ", ".join(map(repr, unknown[:5]))
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    return symbols


def check_field(name: str, value: Any, others: Mapping[str, Any]) -> Any:
    """The checks ``Settings`` runs on every field (``others``: the fields before it)."""
    check_bounds(name, value)
    if name == "host":
        return check_host(value)
    if name == "database_url":
        check_sqlite_path(value)
    if name == "feed_instruments" and str(others.get("feed")) == "sim":
        return check_sim_instruments(value)
    return value


class CheckedSettings(BaseSettings):
    """The base of ``Settings``: the checks above on every field, and the storage-outage
    knobs (kept here so that ``settings.py`` stays small)."""

    write_drop_window: float = Field(60.0, gt=0)  # health judges ticks dropped this recently
    write_sample_buffer: int = Field(50_000, ge=1)  # samples kept beyond the queue in an outage
    database_connect_timeout: float = Field(10.0, gt=0)  # PostgreSQL connect; start-up x3

    @field_validator("*")
    @classmethod
    def _checked(cls, value: Any, info: ValidationInfo) -> Any:
        return check_field(info.field_name or "", value, info.data)
