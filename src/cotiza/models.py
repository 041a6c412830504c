"""Normalised domain types shared by feeds, the cache, the ratio engine and storage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from typing_extensions import TypedDict


class TickPayload(TypedDict):
    """The fields of a WebSocket ``tick`` frame (without ``type``)."""

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


class PairRecord(TypedDict):
    """A ratio pair as stored and as returned by the API."""

    id: int
    base: str
    quote: str
    factor: float
    client_id: str
    active: bool


class SampleRow(TypedDict):
    """A ratio sample flattened: the stored row and the fields of a pushed ratio."""

    pair_id: int
    asof: float
    bid_ratio: float | None
    ask_ratio: float | None
    mid_ratio: float | None
    last_ratio: float | None
    sma180_mid: float | None
    sma180_bid: float | None
    sma180_ask: float | None
    std60_mid: float | None
    std180_mid: float | None
    band_upper: float | None
    band_lower: float | None
    z_bid: float | None
    z_ask: float | None
    vol_ratio: float | None
    ratio_spread: float | None


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

    def tick_payload(self) -> TickPayload:
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

    def as_dict(self) -> PairRecord:
        return {
            "id": self.id,
            "base": self.base,
            "quote": self.quote,
            "factor": self.factor,
            "client_id": self.client_id,
            "active": self.active,
        }


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

    def flat(self) -> SampleRow:
        """All fields in one flat dict, as stored and as pushed."""
        v, i = self.values, self.indicators
        return {
            "pair_id": self.pair_id,
            "asof": self.asof,
            "bid_ratio": v.bid_ratio,
            "ask_ratio": v.ask_ratio,
            "mid_ratio": v.mid_ratio,
            "last_ratio": v.last_ratio,
            "sma180_mid": i.sma180_mid,
            "sma180_bid": i.sma180_bid,
            "sma180_ask": i.sma180_ask,
            "std60_mid": i.std60_mid,
            "std180_mid": i.std180_mid,
            "band_upper": i.band_upper,
            "band_lower": i.band_lower,
            "z_bid": i.z_bid,
            "z_ask": i.z_ask,
            "vol_ratio": i.vol_ratio,
            "ratio_spread": i.ratio_spread,
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


DEFAULT_SETTLEMENT = "24hs"  # a bare ticker such as ``AL30`` means this settlement


def short_symbol(symbol: str) -> str:
    """The short name of a symbol, unique among BYMA settlements.

    ``MERV - XMEV - AL30 - 24hs`` -> ``AL30``; another settlement keeps it as a suffix,
    ``MERV - XMEV - AL30 - CI`` -> ``AL30 CI``; futures such as ``DLR/DIC26`` unchanged.
    """
    parts = [part.strip() for part in symbol.split(" - ")]
    if len(parts) >= 3 and parts[0] == "MERV":
        ticker = parts[2]
        settlement = parts[3] if len(parts) > 3 else DEFAULT_SETTLEMENT
        return ticker if settlement == DEFAULT_SETTLEMENT else f"{ticker} {settlement}"
    return symbol


def symbol_resolver(known: Iterable[str]) -> Callable[[str], str | None]:
    """A function giving the symbol among ``known`` that a name means: the name itself, or
    the one it is the short name of (``AL30`` -> ``MERV - XMEV - AL30 - 24hs``, ``AL30 CI``
    -> the CI settlement), case-insensitive; None when nothing, or more than one, matches.

    The index is built once, so resolving many names costs one lookup each.
    """
    exact = set(known)
    by_name: dict[str, set[str]] = {}
    for symbol in exact:
        by_name.setdefault(symbol.casefold(), set()).add(symbol)
        by_name.setdefault(short_symbol(symbol).casefold(), set()).add(symbol)

    def resolve(name: str) -> str | None:
        wanted = name.strip()
        if wanted in exact:
            return wanted
        matches = by_name.get(wanted.casefold(), set())
        return next(iter(matches)) if len(matches) == 1 else None

    return resolve


def resolve_symbol(name: str, known: Iterable[str]) -> str | None:
    """``symbol_resolver(known)(name)``, for a single name."""
    return symbol_resolver(known)(name)
