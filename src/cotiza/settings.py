"""Configuration: one typed ``Settings`` object built once at start-up and passed down.

Values come from the environment, an optional ``.env`` file, and CLI flags (which
override both). Invalid values stop start-up with one line naming the variable."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from cotiza.errors import ConfigurationError
from cotiza.origins import validate as validate_origins
from cotiza.settings_bounds import CheckedSettings
from cotiza.settings_cluster import ClusterChecks
from cotiza.settings_parts import (
    BACKPLANE_RE,
    LOOPBACK,
    TELEGRAM_TOKEN_RE,
    FeedKind,
    LogFormat,
    RatioField,
    Role,
    WsImpl,
    normalise_market_hours,
    redact_url,
    session_bounds,
    split_csv,
)

__all__ = [
    "TELEGRAM_TOKEN_RE",
    "FeedKind",
    "LogFormat",
    "RatioField",
    "Role",
    "Settings",
    "WsImpl",
    "load_settings",
    "redact_url",
]


class Settings(CheckedSettings, ClusterChecks):
    """Every knob of the service. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # Four of the six variables of the specification; the monitor's own two,
    # MONITORING_INTERVAL and MAX_RESTARTS, are in cotiza.monitor.settings.
    websocket_timeout: float = Field(10.0, gt=0)
    max_websocket_connections: int = Field(100, ge=1)
    dashboard_refresh_interval: float = Field(10.0, gt=0)
    dashboard_max_subscribers: int = Field(50, ge=1)

    # Network.
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3)  # larger bodies get 413
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Storage.
    database_url: str = "sqlite+aiosqlite:///./cotiza.db"
    store_ticks: bool = True
    write_queue_size: int = Field(10_000, ge=10)
    write_batch_size: int = Field(500, ge=1)
    write_flush_interval: float = Field(0.5, gt=0)
    write_retry_base: float = Field(0.5, gt=0)
    write_retry_max: float = Field(10.0, gt=0)
    write_drop_log_interval: float = Field(10.0, gt=0)  # at most one "queue full" line per
    sqlite_busy_timeout: float = Field(5.0, gt=0)  # how long SQLite waits for a writer's lock
    demo_history_days: int = Field(0, ge=0, le=365)

    # Feeds.
    feed: FeedKind = FeedKind.SIM
    feed_instruments: Annotated[list[str], NoDecode] = Field(default_factory=list)
    feed_autostart: bool = True
    sim_ticks_per_second: float = Field(20.0, gt=0, le=1_000_000)
    sim_seed: int = 42
    replay_file: Path | None = None
    replay_speed: float = Field(1.0, ge=0)
    replay_loop: bool = False
    primary_user: str | None = None
    primary_password: SecretStr | None = None
    primary_account: str | None = None
    primary_env: str = "remarket"
    primary_market_id: str = "ROFX"
    primary_batch_size: int = Field(50, ge=1, le=1000)
    primary_order_reports: bool = False
    primary_open_timeout: float = Field(10.0, gt=0)
    primary_ping_interval: float = Field(10.0, gt=0)
    primary_pong_timeout: float = Field(10.0, gt=0)
    primary_close_timeout: float = Field(2.0, gt=0)
    primary_silence_timeout: float = Field(60.0, gt=0)
    primary_backoff_base: float = Field(0.5, gt=0)
    primary_backoff_cap: float = Field(30.0, gt=0)
    primary_stable_after: float = Field(60.0, gt=0)
    primary_token_lifetime: float = Field(24 * 3600.0, gt=0)
    primary_token_margin: float = Field(3600.0, ge=0)
    primary_http_timeout: float = Field(10.0, gt=0)
    primary_max_handshake_rejections: int = Field(3, ge=1)  # refused right after a new token
    primary_yield_every: int = Field(256, ge=1)  # frames of a burst between yields to the loop
    replay_yield_every: int = Field(500, ge=1)
    record_flush_interval: float = Field(1.0, gt=0)

    # Market calendar.
    market_tz: str = "America/Argentina/Buenos_Aires"
    market_hours: str = "11:00-17:00"
    market_holidays: Annotated[list[dt.date], NoDecode] = Field(default_factory=list)

    # Ratios and dashboard.
    ratio_sample_interval: float = Field(10.0, gt=0)
    ratio_publish_interval: float = Field(0.1, ge=0)
    ratio_field: RatioField = RatioField.MID
    quote_stale_after: float = Field(60.0, gt=0)

    # Health thresholds.
    feed_warn_after: float = Field(10.0, gt=0)
    feed_fail_after: float = Field(60.0, gt=0)
    loop_lag_interval: float = Field(0.25, gt=0)
    loop_lag_warn: float = Field(0.1, gt=0)
    loop_lag_fail: float = Field(1.0, gt=0)
    loop_lag_window: int = Field(40, ge=1)  # beats the worst lag is taken over
    database_slow_after: float = Field(1.0, gt=0)  # a slower ping warns
    health_check_timeout: float = Field(2.0, gt=0)
    memory_warn_mb: float = Field(1024.0, gt=0)

    # WebSocket hub.
    ws_queue_size: int = Field(1024, ge=8)
    ws_max_pending_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)  # per client, queued+unsent
    ws_max_subscriptions: int = Field(1000, ge=1)  # instruments one connection may follow
    ws_send_buffer: int = Field(64 * 1024, ge=4096)
    ws_max_frame_bytes: int = Field(64 * 1024, ge=256)
    ws_rate_limit: float = Field(20.0, gt=0)
    ws_rate_burst: int = Field(40, ge=1)
    ws_keepalive_interval: float = Field(30.0, gt=0)  # protocol-level pings (dead peers)
    ws_idle_ping_after: float = Field(300.0, gt=0)  # the JSON ``ping`` after client silence
    ws_broadcast_grace: float = Field(1.0, ge=0, le=60)  # silent new client: every tick after
    ws_impl: WsImpl = WsImpl.WEBSOCKETS_SANSIO
    ws_compression: bool = False  # permessage-deflate, for clients that offer it

    # Market alerts (cotiza.alerts).
    alert_webhook_url: SecretStr | None = None  # may carry a secret in its path
    alert_webhook_timeout: float = Field(5.0, gt=0)
    alert_webhook_attempts: int = Field(5, ge=1, le=50)
    alert_retry_base: float = Field(1.0, gt=0)
    alert_retry_cap: float = Field(60.0, gt=0)
    alert_queue_size: int = Field(1000, ge=1)
    alert_max_inflight: int = Field(32, ge=1)
    alert_default_cooldown: float = Field(300.0, ge=0)
    alert_history_limit: int = Field(500, ge=1)  # most firings one history request returns

    # Telegram control bot (cotiza.telegram); the token is also the monitor's.
    telegram_bot_token: SecretStr | None = None
    telegram_chat_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    telegram_chat_id: int | None = None  # the monitor's single chat; also allowed here
    telegram_api_url: str = "https://api.telegram.org"
    telegram_poll_timeout: float = Field(25.0, ge=0)  # long-poll wait inside getUpdates
    telegram_http_timeout: float = Field(10.0, gt=0)
    telegram_backoff_base: float = Field(1.0, gt=0)
    telegram_backoff_cap: float = Field(60.0, gt=0)
    telegram_stable_after: float = Field(60.0, gt=0)  # a poller up this long resets backoff
    telegram_max_message_age: float = Field(120.0, gt=0)  # older commands are not executed
    telegram_max_refused_chats: int = Field(10_000, ge=0)

    # Lifecycle.
    shutdown_timeout: float = Field(10.0, gt=0)
    run_dir: Path = Path("var")  # stack dumps; the monitor's state, ledger and logs
    cotiza_env: str = "production"
    debug_faults: bool = False  # fault-injection routes; see _debug_faults

    # Cluster mode (docs/cluster.md). BACKPLANE unset: one standalone process, as always.
    backplane: str | None = None
    role: Role = Role.AUTO
    node_id: str | None = None  # default: hostname:PORT
    node_url: str | None = None  # how others reach this node; default http://hostname:PORT
    backplane_prefix: str = "cotiza"
    lease_ttl: float = Field(6.0, gt=0)
    lease_retry: float = Field(1.0, gt=0)
    lease_renew_deadline: float = Field(4.0, gt=0)
    primary_session_grace: float = Field(0.0, ge=0)
    bus_heartbeat: float = Field(1.0, gt=0)
    bus_stale_after: float = Field(3.0, gt=0)
    bus_timeout: float = Field(2.0, gt=0)  # connect and command timeout towards Redis
    bus_retry_base: float = Field(0.05, gt=0)  # reconnection backoff, first delay
    bus_retry_max: float = Field(1.0, gt=0)  # reconnection backoff, longest delay
    bus_outbox_size: int = Field(10_000, ge=16)  # distinct (kind, key) entries waiting to go
    bus_batch_size: int = Field(500, ge=1)  # envelopes per publish script call
    node_report_interval: float = Field(2.0, gt=0)  # node registry refresh
    node_ttl: float = Field(10.0, gt=0)  # a node missing this long drops out of the registry
    control_poll_interval: float = Field(5.0, gt=0)  # slow poll behind LISTEN/NOTIFY

    # Logging.
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT

    @field_validator("feed_instruments", "allowed_origins", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # http://host:port entries, or "*" (any origin, explicitly); see cotiza.origins.
        return validate_origins(value)

    @field_validator("telegram_chat_ids", mode="before")
    @classmethod
    def _chat_ids(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, value: SecretStr | None) -> SecretStr | None:  # "" would let "" in
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset API_TOKEN to run without a token)")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _telegram_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not TELEGRAM_TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("expected a Bot API token such as 123456789:AAE... (from BotFather)")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not re.match(r"^https?://[^/\s]+", value.get_secret_value()):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _telegram_api(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// base URL")
        return value

    @field_validator("market_holidays", mode="before")
    @classmethod
    def _holidays(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("market_tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("market_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        return normalise_market_hours(value)

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return value

    @field_validator("primary_env")
    @classmethod
    def _primary_env(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in {"remarket", "live"}:
            return value.lower()
        if not re.match(r"^(https?|wss?)://[^/\s]+", value):
            raise ValueError("expected remarket, live or a base URL such as https://host/")
        return value

    @field_validator("debug_faults")
    @classmethod
    def _debug_faults(cls, value: bool, info: ValidationInfo) -> bool:
        # Fault injection can block the loop and stop the feed: it must never be reachable
        # in production, so it needs an explicit test environment and a loopback address.
        if value and (
            info.data.get("cotiza_env") != "test" or info.data.get("host") not in LOOPBACK
        ):
            raise ValueError("needs COTIZA_ENV=test and a loopback HOST (127.0.0.1, ::1)")
        return value

    @field_validator("backplane")
    @classmethod
    def _backplane(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        match = BACKPLANE_RE.match(value)
        if not match or not 0 < int(match.group(2)) <= 65535:
            raise ValueError("expected redis://host:port/db, for example redis://127.0.0.1:6379/0")
        database = str(info.data.get("database_url", ""))
        if not database.startswith("postgresql"):
            raise ValueError("cluster mode needs a PostgreSQL DATABASE_URL (SQLite is per process)")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.feed is FeedKind.REPLAY and self.replay_file is None:
            raise ValueError("REPLAY_FILE is required when FEED=replay")
        if self.feed is FeedKind.PRIMARY and not (self.primary_user and self.primary_password):
            raise ValueError("PRIMARY_USER and PRIMARY_PASSWORD are required when FEED=primary")
        if self.alert_retry_cap < self.alert_retry_base:
            raise ValueError("ALERT_RETRY_CAP must not be below ALERT_RETRY_BASE")
        if self.telegram_backoff_cap < self.telegram_backoff_base:
            raise ValueError("TELEGRAM_BACKOFF_CAP must not be below TELEGRAM_BACKOFF_BASE")
        if self.feed_fail_after < self.feed_warn_after:
            raise ValueError("FEED_FAIL_AFTER must not be below FEED_WARN_AFTER")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.market_tz)

    @property
    def session_hours(self) -> tuple[dt.time, dt.time | None]:
        """Opening and closing time; a closing time of ``None`` means midnight."""
        return session_bounds(self.market_hours)

    @property
    def telegram_allowed_chats(self) -> frozenset[int]:
        """Chats the bot serves: ``TELEGRAM_CHAT_IDS`` plus the monitor's ``TELEGRAM_CHAT_ID``."""
        chats = set(self.telegram_chat_ids)
        if self.telegram_chat_id is not None:
            chats.add(self.telegram_chat_id)
        return frozenset(chats)

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None and bool(self.telegram_allowed_chats)

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, for log redaction."""
        secrets = (self.api_token, self.primary_password, self.telegram_bot_token)
        values = [s.get_secret_value() for s in secrets if s is not None]
        if self.alert_webhook_url is not None:
            values.append(self.alert_webhook_url.get_secret_value())
        return tuple(v for v in values if v)

    def redacted(self) -> dict[str, object]:
        """The settings as JSON-ready values safe to log or return: secrets masked."""
        data: dict[str, object] = self.model_dump(mode="json")
        for key in ("api_token", "primary_password", "telegram_bot_token", "alert_webhook_url"):
            if data.get(key):
                data[key] = "***"
        data["database_url"] = redact_url(self.database_url)
        if self.backplane:
            data["backplane"] = redact_url(self.backplane)
        return data

    @property
    def cluster(self) -> bool:
        """Cluster mode: several processes on the Redis backplane and PostgreSQL."""
        return self.backplane is not None


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise ``ConfigurationError`` naming the first bad variable."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"]) or "configuration"
        name = loc.upper() if loc != "configuration" else loc
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"invalid configuration: {name}: {message}") from None
