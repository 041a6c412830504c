"""The monitor's knobs: one table gives each its flag, environment variable and default.

A flag beats the variable, the variable beats the default. ``MONITORING_INTERVAL`` and
``MAX_RESTARTS`` keep the specification's names; everything else is ``MONITOR_*``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cotiza.errors import ConfigurationError
from cotiza.ops.alerts import TELEGRAM_API, AlertConfig
from cotiza.ops.monitor import MonitorConfig
from cotiza.settings import Settings


@dataclass(frozen=True)
class Knob:
    field: str
    env: str
    kind: type
    default: Any
    minimum: float | None
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


_AUTO = object()  # a default computed from other values (see resolve)

KNOBS = (
    Knob("interval", "MONITORING_INTERVAL", float, _AUTO, 0.01, "seconds between probes"),
    Knob("max_restarts", "MAX_RESTARTS", int, _AUTO, 0, "restarts allowed in the window"),
    Knob("failure_threshold", "MONITOR_FAILURE_THRESHOLD", int, 3, 1, "failed probes in a row"),
    Knob("failure_grace", "MONITOR_FAILURE_GRACE", float, 0.0, 0, "seconds failures must last"),
    Knob(
        "probe_timeout", "MONITOR_PROBE_TIMEOUT", float, _AUTO, 0.01, "per probe (min(5, interval))"
    ),
    Knob(
        "canary_window",
        "MONITOR_CANARY_WINDOW",
        float,
        _AUTO,
        0.01,
        "seconds to wait for a fresh tick",
    ),
    Knob(
        "startup_budget", "MONITOR_STARTUP_BUDGET", float, 60.0, 0.01, "seconds to become healthy"
    ),
    Knob("startup_poll", "MONITOR_STARTUP_POLL", float, 0.25, 0.01, "probe period while starting"),
    Knob("term_grace", "MONITOR_TERM_GRACE", float, 15.0, 0, "seconds from SIGTERM to SIGKILL"),
    Knob("backoff_base", "MONITOR_BACKOFF_BASE", float, 1.0, 0, "first backoff delay"),
    Knob("backoff_cap", "MONITOR_BACKOFF_CAP", float, 60.0, 0, "longest backoff delay"),
    Knob(
        "backoff_jitter",
        "MONITOR_BACKOFF_JITTER",
        float,
        0.2,
        0,
        "fraction of a delay drawn at random",
    ),
    Knob(
        "restart_window",
        "MONITOR_RESTART_WINDOW",
        float,
        600.0,
        0.01,
        "sliding window of the restart budget",
    ),
    Knob(
        "stable_after",
        "MONITOR_STABLE_AFTER",
        float,
        60.0,
        0,
        "healthy this long resets the backoff",
    ),
    Knob(
        "giveup_interval",
        "MONITOR_GIVEUP_INTERVAL",
        float,
        300.0,
        0.01,
        "probe period after giving up",
    ),
    Knob(
        "memory_limit_mb",
        "MONITOR_MEMORY_LIMIT_MB",
        float,
        2048.0,
        0,
        "RSS limit of the tree (0: off)",
    ),
    Knob(
        "memory_samples",
        "MONITOR_MEMORY_SAMPLES",
        int,
        3,
        1,
        "samples over the limit before a restart",
    ),
    Knob(
        "cpu_warn_percent",
        "MONITOR_CPU_WARN",
        float,
        90.0,
        0,
        "CPU percent that warns (never restarts)",
    ),
    Knob("cpu_samples", "MONITOR_CPU_SAMPLES", int, 3, 1, "samples over it before the warning"),
    Knob("log_lines", "MONITOR_LOG_LINES", int, 50, 0, "log lines kept in an incident file"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for knob in KNOBS:
        metavar = "N" if knob.kind is int else "S"
        if knob.field.endswith(("_mb", "_percent", "_jitter")):
            metavar = {"_mb": "MIB", "_percent": "PCT", "_jitter": "FRACTION"}[
                "_" + knob.field.rsplit("_", 1)[1]
            ]
        parser.add_argument(
            knob.flag,
            type=knob.kind,
            default=None,
            metavar=metavar,
            help=f"{knob.help} [{knob.env}]",
        )


def _from_env(knob: Knob, env: Mapping[str, str]) -> Any:
    raw = env.get(knob.env)
    if raw is None or raw == "":
        return None
    try:
        return knob.kind(raw)
    except ValueError:
        expected = "an integer" if knob.kind is int else "a number"
        raise ConfigurationError(
            f"invalid configuration: {knob.env}: expected {expected}"
        ) from None


def resolve(
    args: argparse.Namespace, settings: Settings, env: Mapping[str, str] | None = None
) -> MonitorConfig:
    """Build the monitor's configuration from flags, environment and defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for knob in KNOBS:
        value = getattr(args, knob.field, None)
        source = knob.flag
        if value is None:
            value, source = _from_env(knob, env), knob.env
        if value is None:
            value = _default(knob, values, settings)
        elif knob.minimum is not None and value < knob.minimum:
            raise ConfigurationError(
                f"invalid configuration: {source}: must be at least {knob.minimum:g}"
            )
        values[knob.field] = value
    if values["backoff_jitter"] > 1:
        raise ConfigurationError("invalid configuration: MONITOR_BACKOFF_JITTER: at most 1")
    port = args.port if args.port is not None else settings.port
    host = args.host or env.get("MONITOR_HOST") or "127.0.0.1"
    return MonitorConfig(port=port, host=host, canary=not args.no_canary, **values)


def _default(knob: Knob, values: dict[str, Any], settings: Settings) -> Any:
    if knob.default is not _AUTO:
        return knob.default
    if knob.field == "interval":
        return settings.monitoring_interval
    if knob.field == "max_restarts":
        return settings.max_restarts
    if knob.field == "probe_timeout":
        return min(5.0, values["interval"])
    # canary_window: long enough for a tick at the simulator's pace, short at fast intervals
    return min(5.0, max(1.0, values["interval"]))


def alert_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> AlertConfig:
    """Alert targets; the Telegram bot token comes only from the environment."""
    env = os.environ if env is None else env
    timeout = args.alert_timeout if args.alert_timeout is not None else env.get("ALERT_TIMEOUT")
    try:
        seconds = float(timeout) if timeout is not None else 5.0
    except ValueError:
        raise ConfigurationError(
            "invalid configuration: ALERT_TIMEOUT: expected a number"
        ) from None
    return AlertConfig(
        webhook_url=args.webhook_url or env.get("ALERT_WEBHOOK_URL") or None,
        telegram_token=env.get("TELEGRAM_BOT_TOKEN") or None,
        telegram_chat_id=args.telegram_chat_id or env.get("TELEGRAM_CHAT_ID") or None,
        telegram_api=args.telegram_api or env.get("TELEGRAM_API_BASE") or TELEGRAM_API,
        timeout=seconds,
    )
