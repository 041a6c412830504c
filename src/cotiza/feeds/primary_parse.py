"""Pure, defensive parsing of Primary WebSocket frames into normalised quotes.

Primary sends one ``Md`` frame per instrument per change, carrying the current state of
the requested entries. Any entry may be missing, ``null`` or ``[]``; ``BI``/``OF`` are lists
(best first), ``LA``/``CL``/``SE`` objects and the rest plain numbers, but the parser takes
either shape for every entry. ``type`` compares case-insensitively. Error frames have no
type, only ``"status": "ERROR"``.

``FrameApplier`` is the one path from a decoded frame to a quote sink; the live adapter and
the replay feed both use it, so a replayed recording yields exactly the quotes the live run
delivered.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import orjson

from cotiza.feeds.base import FeedStats
from cotiza.models import Quote

log = logging.getLogger(__name__)

JsonObject = dict[str, object]
"""A decoded JSON object: nothing is known about its values until they are checked."""


class Entry(StrEnum):
    """Market-data entry codes of the Primary API."""

    BIDS = "BI"
    OFFERS = "OF"
    LAST = "LA"
    OPEN = "OP"
    CLOSE = "CL"
    SETTLEMENT = "SE"
    HIGH = "HI"
    LOW = "LO"
    TRADE_VOLUME = "TV"
    OPEN_INTEREST = "OI"
    INDEX_VALUE = "IV"
    EFFECTIVE_VOLUME = "EV"
    NOMINAL_VOLUME = "NV"
    CLOSING_AUCTION_PRICE = "ACP"
    TRADE_COUNT = "TC"


QUOTE_ENTRIES: tuple[Entry, ...] = (Entry.BIDS, Entry.OFFERS, Entry.LAST, Entry.OPEN, Entry.CLOSE)
"""The entries a ``Quote`` is built from: what cotiza subscribes to."""


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error frame; the connection stays open (for example an unknown product)."""

    description: str


@dataclass(frozen=True, slots=True)
class OrderReport:
    """An ``or`` frame, passed through untouched."""

    timestamp: int | None
    report: JsonObject


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame that carries nothing cotiza uses; ``malformed`` when it broke the protocol."""

    reason: str
    malformed: bool


Parsed = Quote | ServerError | OrderReport | Ignored


def decode(raw: str | bytes) -> object:
    """The JSON value of a raw frame, or the raw text itself when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _number(value: object) -> float | None:
    kind = type(value)  # exact types: a bool is not a price
    if kind is float:
        return value if value - value == 0.0 else None  # type: ignore[return-value,operator]
    if kind is int:
        return float(value) if -1e300 < value < 1e300 else None  # type: ignore[arg-type,operator]
    if kind is str:
        try:
            number = float(value)  # type: ignore[arg-type]
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _price_size(value: object) -> tuple[float | None, float | None]:
    """Price and size of one entry: an object, a bare number, or a list (first item)."""
    if type(value) is list:
        value = value[0] if value else None
    if type(value) is dict:
        return _number(value.get("price")), _number(value.get("size"))
    return _number(value), None


_NO_DATA: JsonObject = {}


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_market_data(frame: JsonObject, recv_ts: float) -> Quote | Ignored:
    """A quote from an ``Md`` frame; missing entries become ``None``."""
    instrument = frame.get("instrumentId")
    if type(instrument) is not dict:
        return Ignored("Md frame without instrumentId", malformed=True)
    symbol = instrument.get("symbol")
    if type(symbol) is not str or not symbol:
        return Ignored("Md frame without a symbol", malformed=True)
    data = frame.get("marketData")
    if type(data) is not dict:
        data = _NO_DATA
    # The hot path inlines the documented shapes (lists of objects for the book, an object
    # for the last trade) and falls back to the general helpers for anything else.
    number = _number
    entry = data.get("BI")
    if type(entry) is list and entry and type(level := entry[0]) is dict:
        bid, bid_size = number(level.get("price")), number(level.get("size"))
    else:
        bid, bid_size = _price_size(entry)
    entry = data.get("OF")
    if type(entry) is list and entry and type(level := entry[0]) is dict:
        offer, offer_size = number(level.get("price")), number(level.get("size"))
    else:
        offer, offer_size = _price_size(entry)
    entry = data.get("LA")
    if type(entry) is dict:
        last, last_size = number(entry.get("price")), number(entry.get("size"))
    else:
        last, last_size = _price_size(entry)
    entry = data.get("CL")
    cl = number(entry.get("price")) if type(entry) is dict else _price_size(entry)[0]
    entry = data.get("OP")
    op = number(entry) if type(entry) is not dict else number(entry.get("price"))
    stamp = frame.get("timestamp")
    if type(stamp) is not int:
        stamp = number(stamp)
        stamp = int(stamp) if stamp is not None else int(recv_ts * 1000)
    return Quote(symbol, bid, bid_size, offer, offer_size, last, last_size, cl, op, stamp, recv_ts)


def parse_frame(frame: object, recv_ts: float) -> Parsed:
    """Classify a decoded frame and normalise what cotiza uses. Never raises."""
    if type(frame) is not dict:
        if isinstance(frame, str):
            return Ignored("frame is not JSON", malformed=True)
        return Ignored(f"frame is a JSON {type(frame).__name__}, not an object", malformed=True)
    kind = frame.get("type")
    if kind == "Md":  # the hot path: skip the case folding
        return parse_market_data(frame, recv_ts)
    status = frame.get("status")
    if type(status) is str and status.upper() == "ERROR":
        description = _text(frame.get("description")) or _text(frame.get("message"))
        return ServerError(description or "error frame without a description")
    if type(kind) is not str:
        return Ignored("frame without a string type", malformed=status is None)
    folded = kind.lower()
    if folded == "md":
        return parse_market_data(frame, recv_ts)
    if folded == "or":
        report = frame.get("orderReport")
        stamp = _number(frame.get("timestamp"))
        if type(report) is not dict:
            return Ignored("or frame without orderReport", malformed=True)
        return OrderReport(int(stamp) if stamp is not None else None, report)
    return Ignored(f"unknown frame type {kind[:40]!r}", malformed=False)


QuoteSink = Callable[[Quote], None]


class FrameApplier:
    """Parses decoded frames, delivers quotes to ``sink`` and keeps the feed's counters.

    Error frames, malformed and unknown frames are counted and logged (throttled: the first
    few, then every thousandth), never raised: one bad frame must not drop a connection.
    """

    _LOG_FIRST = 5
    _LOG_EVERY = 1000

    def __init__(
        self,
        sink: QuoteSink,
        stats: FeedStats,
        symbols: frozenset[str] | None = None,
        on_error: Callable[[ServerError], None] | None = None,
    ) -> None:
        self.sink = sink
        self.stats = stats
        self.symbols = symbols or None
        self.on_error = on_error
        self.last_quote: Quote | None = None
        for key in ("malformed", "ignored", "server_errors", "order_reports"):
            stats.extra.setdefault(key, 0.0)

    def apply(self, frame: object, recv_ts: float) -> Parsed:
        stats = self.stats
        stats.frames += 1
        parsed = parse_frame(frame, recv_ts)
        if isinstance(parsed, Quote):
            symbols = self.symbols
            if symbols is None or parsed.symbol in symbols:
                stats.quotes += 1
                self.last_quote = parsed
                self.sink(parsed)
            return parsed
        extra = stats.extra
        if isinstance(parsed, ServerError):
            stats.errors += 1
            stats.last_error = parsed.description[:200]
            extra["server_errors"] += 1
            self._log("error frame from Primary: %s", parsed.description, extra["server_errors"])
            if self.on_error is not None:
                self.on_error(parsed)
        elif isinstance(parsed, OrderReport):
            extra["order_reports"] += 1
        elif parsed.malformed:
            stats.errors += 1
            extra["malformed"] += 1
            self._log("malformed frame ignored: %s", parsed.reason, extra["malformed"])
        else:
            extra["ignored"] += 1
            self._log("frame ignored: %s", parsed.reason, extra["ignored"])
        return parsed

    def _log(self, message: str, detail: str, count: float) -> None:
        if count <= self._LOG_FIRST or count % self._LOG_EVERY == 0:
            log.warning(message + " (%d so far)", detail[:200], count)
