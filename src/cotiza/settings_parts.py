"""The value types and parsing rules ``Settings`` is built from.

Enumerations of the choices a variable offers, the patterns its validators match, and small
pure helpers; ``cotiza.settings`` re-exports what callers use.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any


class FeedKind(StrEnum):
    SIM = "sim"
    REPLAY = "replay"
    PRIMARY = "primary"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class WsImpl(StrEnum):
    """uvicorn's WebSocket implementations cotiza runs under (its ``ws=`` option)."""

    WEBSOCKETS_SANSIO = "websockets-sansio"
    WSPROTO = "wsproto"


class Role(StrEnum):
    """What a process does in cluster mode (``ROLE``); standalone when BACKPLANE is unset."""

    AUTO = "auto"  # campaigns for the lease and serves clients
    FEEDER = "feeder"  # campaigns for the lease; not meant to serve clients at scale
    EDGE = "edge"  # never campaigns: serves clients from the bus


class RatioField(StrEnum):
    MID = "mid_ratio"
    LAST = "last_ratio"
    BID = "bid_ratio"
    ASK = "ask_ratio"


# A Bot API token: the bot's numeric id, a colon, a secret (BotFather's are 35 characters).
# Log redaction (``cotiza.logs``) masks tokens of that shape anywhere, and the configured
# secrets literally (``Settings.secret_values``).
TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
# redis://[[user]:password@]host:port/db -- host, port and database number all explicit.
BACKPLANE_RE = re.compile(
    r"^redis://(?:[^@/\s]*@)?(\[[0-9A-Fa-f:.]+\]|[^:/@\s\[\]]+):(\d{1,5})/(\d{1,2})$"
)
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def redact_url(url: str) -> str:
    """Hide the password of a database URL."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def normalise_market_hours(value: str) -> str:
    """``MARKET_HOURS`` as ``HH:MM-HH:MM`` (``always``/``24h``: the whole day), checked."""
    value = value.strip()
    if value.lower() in {"always", "24h"}:
        return "00:00-24:00"
    match = HOURS_RE.match(value)
    if not match:
        raise ValueError("expected HH:MM-HH:MM, for example 11:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (0 <= h1 <= 23 and 0 <= m1 <= 59 and 0 <= h2 <= 24 and 0 <= m2 <= 59):
        raise ValueError("hours out of range")
    if h2 == 24 and m2 != 0:
        raise ValueError("hours out of range")
    if (h1, m1) >= (h2, m2):
        raise ValueError("the session must open before it closes")
    return value


def session_bounds(hours: str) -> tuple[dt.time, dt.time | None]:
    """Opening and closing time of normalised ``hours``; a closing time of ``None`` means
    midnight."""
    match = HOURS_RE.match(hours)
    if match is None:
        raise ValueError(f"not normalised market hours: {hours!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    close = None if h2 == 24 else dt.time(h2, m2)
    return dt.time(h1, m1), close
