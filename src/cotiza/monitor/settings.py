"""The monitor's settings: every knob with its one default, its variable and its bounds.

A flag beats the environment, the environment beats ``.env``, and ``.env`` beats the
default. ``MONITORING_INTERVAL`` and ``MAX_RESTARTS`` keep the specification's names;
the rest are ``MONITOR_*``, ``ALERT_*`` and ``TELEGRAM_*``. Each field names its
variable explicitly (``validation_alias``), so this class is also the table of them.

The service's own ``Settings`` does not know these: only the monitor reads them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from cotiza.errors import ConfigurationError
from cotiza.monitor.alerts import TELEGRAM_API, AlertConfig

# The timing and limit knobs: each gets a generated ``--flag`` of the same name.
KNOBS = (
    "interval",
    "max_restarts",
    "failure_threshold",
    "failure_grace",
    "probe_timeout",
    "canary_window",
    "startup_budget",
    "startup_poll",
    "term_grace",
    "handover_wait",
    "backoff_base",
    "backoff_cap",
    "backoff_jitter",
    "restart_window",
    "stable_after",
    "giveup_interval",
    "memory_limit_mb",
    "memory_samples",
    "cpu_warn_percent",
    "cpu_samples",
    "log_lines",
)


def _probe_timeout(values: dict[str, Any]) -> float:
    return min(5.0, float(values["interval"]))


def _canary_window(values: dict[str, Any]) -> float:
    # Long enough for a tick at the simulator's pace, short at fast intervals.
    return min(5.0, max(1.0, float(values["interval"])))


class MonitorSettings(BaseSettings):
    """Every knob of the monitor, built once at its start and passed down."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # an empty variable means "not set", as before
        validate_default=True,
        frozen=True,
    )

    # Probing and restarting. Later defaults may be computed from ``interval``.
    interval: float = Field(
        30.0, ge=0.01, validation_alias="MONITORING_INTERVAL", description="seconds between probes"
    )
    max_restarts: int = Field(
        3, ge=0, validation_alias="MAX_RESTARTS", description="restarts allowed in the window"
    )
    failure_threshold: int = Field(
        3, ge=1, validation_alias="MONITOR_FAILURE_THRESHOLD", description="failed probes in a row"
    )
    failure_grace: float = Field(
        0.0,
        ge=0,
        validation_alias="MONITOR_FAILURE_GRACE",
        description="seconds failures must last",
    )
    probe_timeout: float = Field(
        default_factory=_probe_timeout,
        ge=0.01,
        validation_alias="MONITOR_PROBE_TIMEOUT",
        description="per probe (min(5, interval))",
    )
    canary_window: float = Field(
        default_factory=_canary_window,
        ge=0.01,
        validation_alias="MONITOR_CANARY_WINDOW",
        description="seconds to wait for a fresh tick",
    )
    startup_budget: float = Field(
        60.0,
        ge=0.01,
        validation_alias="MONITOR_STARTUP_BUDGET",
        description="seconds to become healthy",
    )
    startup_poll: float = Field(
        0.25,
        ge=0.01,
        validation_alias="MONITOR_STARTUP_POLL",
        description="probe period while starting",
    )
    term_grace: float = Field(
        15.0,
        ge=0,
        validation_alias="MONITOR_TERM_GRACE",
        description="seconds from SIGTERM to SIGKILL",
    )
    handover_wait: float = Field(
        5.0,
        ge=0,
        validation_alias="MONITOR_HANDOVER_WAIT",
        description="seconds a leader's restart waits for the lease to move",
    )
    backoff_base: float = Field(
        1.0, ge=0, validation_alias="MONITOR_BACKOFF_BASE", description="first backoff delay"
    )
    backoff_cap: float = Field(
        60.0, ge=0, validation_alias="MONITOR_BACKOFF_CAP", description="longest backoff delay"
    )
    backoff_jitter: float = Field(
        0.2,
        ge=0,
        le=1,
        validation_alias="MONITOR_BACKOFF_JITTER",
        description="fraction of a delay drawn at random",
    )
    restart_window: float = Field(
        600.0,
        ge=0.01,
        validation_alias="MONITOR_RESTART_WINDOW",
        description="sliding window of the restart budget",
    )
    stable_after: float = Field(
        60.0,
        ge=0,
        validation_alias="MONITOR_STABLE_AFTER",
        description="healthy this long resets the backoff",
    )
    giveup_interval: float = Field(
        300.0,
        ge=0.01,
        validation_alias="MONITOR_GIVEUP_INTERVAL",
        description="probe period after giving up",
    )

    # Resources.
    memory_limit_mb: float = Field(
        2048.0,
        ge=0,
        validation_alias="MONITOR_MEMORY_LIMIT_MB",
        description="RSS limit of the tree (0: off)",
    )
    memory_samples: int = Field(
        3,
        ge=1,
        validation_alias="MONITOR_MEMORY_SAMPLES",
        description="samples over the limit before a restart",
    )
    cpu_warn_percent: float = Field(
        90.0,
        ge=0,
        validation_alias="MONITOR_CPU_WARN",
        description="CPU percent that warns (never restarts)",
    )
    cpu_samples: int = Field(
        3,
        ge=1,
        validation_alias="MONITOR_CPU_SAMPLES",
        description="samples over it before the warning",
    )
    log_lines: int = Field(
        50,
        ge=0,
        validation_alias="MONITOR_LOG_LINES",
        description="log lines kept in an incident file",
    )

    # How it runs.
    host: str = Field("127.0.0.1", validation_alias="MONITOR_HOST", description="address to probe")
    leave_running: bool = Field(
        False,
        validation_alias="MONITOR_LEAVE_RUNNING",
        description="on SIGINT/SIGTERM leave the service running",
    )
    exit_on_give_up: bool = Field(
        False, validation_alias="MONITOR_EXIT_ON_GIVE_UP", description="exit with 4 when giving up"
    )

    # Alerts. The Telegram bot token comes only from the environment (or ``.env``).
    webhook_url: str | None = Field(
        None, validation_alias="ALERT_WEBHOOK_URL", description="alert webhook"
    )
    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias="TELEGRAM_BOT_TOKEN", description="Telegram bot"
    )
    telegram_chat_id: str | None = Field(
        None, validation_alias="TELEGRAM_CHAT_ID", description="Telegram chat"
    )
    telegram_api: str = Field(
        TELEGRAM_API, validation_alias="TELEGRAM_API_BASE", description="Bot API base URL"
    )
    alert_timeout: float = Field(
        5.0, validation_alias="ALERT_TIMEOUT", description="seconds per alert"
    )

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of the field ``name``."""
        alias = cls.model_fields[name].validation_alias
        assert isinstance(alias, str)  # every field declares its variable
        return alias

    def alert_config(self) -> AlertConfig:
        token = self.telegram_bot_token
        return AlertConfig(
            webhook_url=self.webhook_url,
            telegram_token=token.get_secret_value() if token else None,
            telegram_chat_id=self.telegram_chat_id,
            telegram_api=self.telegram_api,
            timeout=self.alert_timeout,
        )


def flag(name: str) -> str:
    """The command-line flag of the field ``name``."""
    return "--" + name.replace("_", "-")


def load_monitor_settings(**flags: Any) -> MonitorSettings:
    """Build the settings, ``flags`` (by field name) on top of the environment and ``.env``.

    Raises ``ConfigurationError`` with one line naming the flag or the variable that was
    wrong. ``None`` means "flag not given".
    """
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return MonitorSettings(**{MonitorSettings.variable(k): v for k, v in given.items()})
    except ValidationError as exc:
        error = exc.errors()[0]
        fields = {
            MonitorSettings.variable(name).lower(): name for name in MonitorSettings.model_fields
        }
        loc = str(error["loc"][0]) if error["loc"] else ""
        name = fields.get(loc.lower())
        if name is None:
            source = loc.upper() or "configuration"
        else:
            source = flag(name) if name in given else MonitorSettings.variable(name)
        raise ConfigurationError(f"invalid configuration: {source}: {_explain(error)}") from None


def _explain(error: ErrorDetails) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind in {"float_parsing", "float_type"}:
        return "expected a number"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "expected an integer"
    if kind in {"bool_parsing", "bool_type"}:
        return "expected true or false (1/0, yes/no, on/off)"
    if kind == "greater_than_equal":
        return f"must be at least {float(context['ge']):g}"
    if kind == "less_than_equal":
        return f"must be at most {float(context['le']):g}"
    return str(error["msg"])
