"""Normalised domain types shared by feeds, the cache, the ratio engine and storage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest top-of-book state of one instrument, as a feed reported it.

    ``ts_ms`` is the exchange timestamp (epoch milliseconds); ``recv_ts`` the local wall
    clock (epoch seconds) when cotiza received it, which is what staleness is judged on.
    """

    symbol: str
    bid: float | None
    bid_size: float | None
    offer: float | None
    offer_size: float | None
    last: float | None
    last_size: float | None
    cl: float | None
    op: float | None
    ts_ms: int
    recv_ts: float

    @property
    def mid(self) -> float | None:
        """(bid + offer) / 2 when both sides exist, else the last price."""
        if self.bid and self.offer:
            return (self.bid + self.offer) / 2
        return self.last or None

    def tick_payload(self) -> dict[str, Any]:
        """The fields of a WebSocket ``tick`` frame (without ``type``)."""
        return {
            "symbol": self.symbol,
            "bid": self.bid,
            "bid_size": self.bid_size,
            "offer": self.offer,
            "offer_size": self.offer_size,
            "last": self.last,
            "last_size": self.last_size,
            "cl": self.cl,
            "op": self.op,
            "ts_ms": self.ts_ms,
        }


@dataclass(frozen=True, slots=True)
class RatioPair:
    """A ratio definition: ``factor * base / quote`` for one client."""

    id: int
    base: str
    quote: str
    factor: float = 1.0
    client_id: str = "default"
    active: bool = True

    @property
    def name(self) -> str:
        return f"{short_symbol(self.base)}-{short_symbol(self.quote)}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RatioValues:
    """The four live ratios of a pair; ``None`` where a side is missing, zero or stale."""

    bid_ratio: float | None
    ask_ratio: float | None
    mid_ratio: float | None
    last_ratio: float | None


@dataclass(frozen=True, slots=True)
class Indicators:
    """Rolling statistics of a pair over its recent samples (contract section 5)."""

    sma180_mid: float | None = None
    sma180_bid: float | None = None
    sma180_ask: float | None = None
    std60_mid: float | None = None
    std180_mid: float | None = None
    band_upper: float | None = None
    band_lower: float | None = None
    z_bid: float | None = None
    z_ask: float | None = None
    vol_ratio: float | None = None
    ratio_spread: float | None = None


@dataclass(frozen=True, slots=True)
class RatioSample:
    """One stored observation of a pair: the ratios at ``asof`` plus their indicators."""

    pair_id: int
    asof: float
    values: RatioValues
    indicators: Indicators

    def flat(self) -> dict[str, Any]:
        """All fields in one flat dict, as stored and as pushed."""
        return {
            "pair_id": self.pair_id,
            "asof": self.asof,
            **asdict(self.values),
            **asdict(self.indicators),
        }


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Aggregate of one ratio field over a time window."""

    count: int
    total: float
    minimum: float | None
    maximum: float | None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def short_symbol(symbol: str) -> str:
    """``MERV - XMEV - AL30 - 24hs`` -> ``AL30``; futures such as ``DLR/DIC26`` unchanged."""
    parts = [part.strip() for part in symbol.split(" - ")]
    if len(parts) >= 3 and parts[0] == "MERV":
        return parts[2]
    return symbol
