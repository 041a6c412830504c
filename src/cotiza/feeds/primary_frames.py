"""Pure builders of Primary frames: what a client sends and what the server answers.

The live adapter builds its subscriptions here; the fake Primary server and the recorder
of the simulated feed render quotes as ``Md`` frames here, so every recording has the
same frame format whatever feed produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from typing_extensions import TypedDict

from cotiza.feeds.primary_parse import QUOTE_ENTRIES
from cotiza.models import Quote

DEFAULT_MARKET_ID = "ROFX"

Frame = Mapping[str, object]
"""Any frame on the wire: one built here (a typed dict) or a decoded one (check its values)."""


class Level(TypedDict):
    price: float | None
    size: float | None


class Trade(TypedDict):
    price: float | None
    size: float | None
    date: int


class MarketData(TypedDict):
    """The entries of an ``Md`` frame that a ``Quote`` is built from."""

    BI: list[Level]
    OF: list[Level]
    LA: Trade | None
    OP: float | None
    CL: Trade | None


class InstrumentId(TypedDict):
    marketId: str
    symbol: str


class MdFrame(TypedDict):
    type: Literal["Md"]
    timestamp: int
    instrumentId: InstrumentId
    marketData: MarketData


class Product(TypedDict):
    symbol: str
    marketId: str


class SmdMessage(TypedDict):
    type: Literal["smd"]
    level: int
    depth: int
    entries: list[str]
    products: list[Product]


class Account(TypedDict):
    id: str


class OsMessage(TypedDict):
    type: Literal["os"]
    account: Account
    snapshotOnlyActive: bool


class ErrorFrame(TypedDict):
    status: Literal["ERROR"]
    description: str
    message: None


def md_frame(quote: Quote, market_id: str = DEFAULT_MARKET_ID) -> MdFrame:
    """``quote`` as the ``Md`` frame Primary would send for it (book depth 1).

    Missing sides render as ``[]`` and missing trades as ``null``, as Primary does, and
    ``parse_market_data`` turns the frame back into the same quote.
    """
    data: MarketData = {
        "BI": [{"price": quote.bid, "size": quote.bid_size}] if quote.bid is not None else [],
        "OF": [{"price": quote.offer, "size": quote.offer_size}] if quote.offer is not None else [],
        "LA": (
            {"price": quote.last, "size": quote.last_size, "date": quote.ts_ms}
            if quote.last is not None
            else None
        ),
        "OP": quote.op,
        "CL": {"price": quote.cl, "size": None, "date": quote.ts_ms}
        if quote.cl is not None
        else None,
    }
    return {
        "type": "Md",
        "timestamp": quote.ts_ms,
        "instrumentId": {"marketId": market_id, "symbol": quote.symbol},
        "marketData": data,
    }


def product(symbol: str, market_id: str = DEFAULT_MARKET_ID) -> Product:
    return {"symbol": symbol, "marketId": market_id}


def smd_message(
    symbols: Iterable[str],
    entries: Sequence[str] = QUOTE_ENTRIES,
    depth: int = 1,
    market_id: str = DEFAULT_MARKET_ID,
) -> SmdMessage:
    """A market-data subscription for ``symbols`` (additive: there is no unsubscribe)."""
    return {
        "type": "smd",
        "level": 1,
        "depth": depth,
        "entries": [str(entry) for entry in entries],
        "products": [product(symbol, market_id) for symbol in symbols],
    }


def os_message(account: str, snapshot_only_active: bool = True) -> OsMessage:
    """An order-report subscription for ``account``."""
    return {"type": "os", "account": {"id": account}, "snapshotOnlyActive": snapshot_only_active}


def error_frame(description: str) -> ErrorFrame:
    """An error frame as Primary sends it; the connection stays open."""
    return {"status": "ERROR", "description": description, "message": None}


def unknown_product(symbol: str, market_id: str = DEFAULT_MARKET_ID) -> str:
    return f"Product {symbol}:{market_id} doesn't exist"


def batches(symbols: Sequence[str], size: int) -> list[list[str]]:
    """``symbols`` split into lists of at most ``size`` (at least one per list)."""
    size = max(1, size)
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]
