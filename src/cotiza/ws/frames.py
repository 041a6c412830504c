"""Outbound WebSocket frames: their types, their builders, and their bytes on the wire.

Every frame the server sends has a ``TypedDict`` here and exactly one builder, so its
field names live in one place (contract section 4). A frame is serialised with orjson once
per publish into a ``Wire``, which every interested connection shares: the JSON text for
the ASGI path and the whole RFC 6455 frame for the direct path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal, NotRequired

import orjson

# pydantic (FastAPI's response models) needs typing_extensions' TypedDict before 3.12.
from typing_extensions import TypedDict

from cotiza.dashboard import DashboardRowData
from cotiza.models import Indicators, Quote, RatioPair, RatioValues

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked server-to-client text frame (RFC 6455, section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


class Wire:
    """One frame serialised once: its JSON bytes framed for the direct path, text on demand."""

    __slots__ = ("_text", "data", "frame")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.frame = text_frame(data)
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The JSON as text, for ``websocket.send`` on the ASGI path (decoded once)."""
        text = self._text
        if text is None:
            text = self._text = self.data.decode()
        return text


# -- pushes ------------------------------------------------------------------------


class TickFrame(TypedDict):
    type: Literal["tick"]
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


class RatioFrame(TypedDict):
    type: Literal["ratio"]
    pair_id: int
    par: str
    base: str
    quote: str
    factor: float
    client_id: str
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


class DashboardTable(TypedDict):
    """The dashboard query's result, served by HTTP as is and by WebSocket as a frame."""

    status: Literal["success"]
    data: list[DashboardRowData]
    count: int
    query_time_ms: float
    method: str  # how the table was computed (the prototype named its strategies here)
    freshness: str  # how old the numbers may be


class DashboardDataFrame(TypedDict):
    type: Literal["dashboard_data"]
    status: Literal["success"]
    data: list[DashboardRowData]
    count: int
    query_time_ms: float
    method: str
    freshness: str
    timestamp: float


class DashboardErrorFrame(TypedDict):
    type: Literal["dashboard_error"]
    status: Literal["error"]
    message: str
    error: str  # the prototype's name for the message
    timestamp: float


class PingFrame(TypedDict):
    type: Literal["ping"]
    timestamp: float


def tick(quote: Quote) -> TickFrame:
    return {
        "type": "tick",
        "symbol": quote.symbol,
        "bid": quote.bid,
        "bid_size": quote.bid_size,
        "offer": quote.offer,
        "offer_size": quote.offer_size,
        "last": quote.last,
        "last_size": quote.last_size,
        "cl": quote.cl,
        "op": quote.op,
        "ts_ms": quote.ts_ms,
    }


def ratio(pair: RatioPair, asof: float, values: RatioValues, ind: Indicators) -> RatioFrame:
    """A pair's live ratios and indicators, as pushed and as the ratio snapshot serves them."""
    return {
        "type": "ratio",
        "pair_id": pair.id,
        "par": pair.name,
        "base": pair.base,
        "quote": pair.quote,
        "factor": pair.factor,
        "client_id": pair.client_id,
        "asof": asof,
        "bid_ratio": values.bid_ratio,
        "ask_ratio": values.ask_ratio,
        "mid_ratio": values.mid_ratio,
        "last_ratio": values.last_ratio,
        "sma180_mid": ind.sma180_mid,
        "sma180_bid": ind.sma180_bid,
        "sma180_ask": ind.sma180_ask,
        "std60_mid": ind.std60_mid,
        "std180_mid": ind.std180_mid,
        "band_upper": ind.band_upper,
        "band_lower": ind.band_lower,
        "z_bid": ind.z_bid,
        "z_ask": ind.z_ask,
        "vol_ratio": ind.vol_ratio,
        "ratio_spread": ind.ratio_spread,
    }


def dashboard_data(table: DashboardTable) -> DashboardDataFrame:
    return {
        "type": "dashboard_data",
        "status": table["status"],
        "data": table["data"],
        "count": table["count"],
        "query_time_ms": table["query_time_ms"],
        "method": table["method"],
        "freshness": table["freshness"],
        "timestamp": time.time(),
    }


def dashboard_error() -> DashboardErrorFrame:
    message = "dashboard query failed"
    return {
        "type": "dashboard_error",
        "status": "error",
        "message": message,
        "error": message,
        "timestamp": time.time(),
    }


def ping() -> PingFrame:
    """The JSON keep-alive sent after a long client silence."""
    return {"type": "ping", "timestamp": time.time()}


# -- replies -----------------------------------------------------------------------


class ConnectionFrame(TypedDict):
    type: Literal["connection"]
    status: Literal["connected"]
    message: str
    timestamp: float


class PongFrame(TypedDict):
    type: Literal["pong"]
    action: Literal["pong"]  # the prototype's dashboard clients read this one
    timestamp: float


class SubscribedFrame(TypedDict):
    type: Literal["subscribed"]
    instruments: list[str]
    unknown: NotRequired[list[str]]


class UnsubscribedFrame(TypedDict):
    type: Literal["unsubscribed"]
    instruments: list[str]


class RatioSubscribedFrame(TypedDict):
    type: Literal["ratio_subscribed"]
    pairs: list[int]


class RatioUnsubscribedFrame(TypedDict):
    type: Literal["ratio_unsubscribed"]


class DashboardSubscribedFrame(TypedDict):
    type: Literal["dashboard_subscribed"]
    message: str
    refresh_interval: float
    timestamp: float


class DashboardUnsubscribedFrame(TypedDict):
    type: Literal["dashboard_unsubscribed"]
    message: str
    timestamp: float


class AlertFrame(TypedDict):
    """One market-alert firing (also the webhook's JSON body)."""

    type: Literal["alert"]
    id: int | None
    rule_id: int | None
    pair_id: int
    par: str
    field: str
    op: str
    value: float
    observed: float
    previous: float | None
    fired_at: float
    note: str | None
    text: str


class AlertsSubscribedFrame(TypedDict):
    type: Literal["alerts_subscribed"]
    timestamp: float


class AlertsUnsubscribedFrame(TypedDict):
    type: Literal["alerts_unsubscribed"]
    timestamp: float


class HubStatus(TypedDict):
    """Connection counts of the hub (the ``status`` frame and the HTTP status pages)."""

    active_connections: int
    max_connections: int
    dashboard_subscribers: int
    subscribed_symbols: int


class StatusFrame(TypedDict):
    type: Literal["status"]
    active_connections: int
    max_connections: int
    dashboard_subscribers: int
    subscribed_symbols: int
    dashboard_worker_running: bool
    feed_state: str
    subscriptions: list[str]  # a sample: at most STATUS_SAMPLE, sorted
    subscription_count: int
    timestamp: float


class ErrorFrame(TypedDict):
    type: Literal["error"]
    message: str
    command: NotRequired[str]
    timestamp: float


# The prototype's clients show these Spanish messages as they come.
MESSAGE_CONNECTED = "Conectado al servicio de cotizaciones"
MESSAGE_DASHBOARD_SUBSCRIBED = "Suscripto a las actualizaciones del dashboard"
MESSAGE_DASHBOARD_UNSUBSCRIBED = "Desuscripto de las actualizaciones del dashboard"


def connection() -> ConnectionFrame:
    return {
        "type": "connection",
        "status": "connected",
        "message": MESSAGE_CONNECTED,
        "timestamp": time.time(),
    }


def pong() -> PongFrame:
    return {"type": "pong", "action": "pong", "timestamp": time.time()}


def subscribed(instruments: list[str], unknown: list[str]) -> SubscribedFrame:
    """``unknown`` (symbols no feed or cache knows) is present only when not empty."""
    if unknown:
        return {"type": "subscribed", "instruments": instruments, "unknown": unknown}
    return {"type": "subscribed", "instruments": instruments}


def unsubscribed(instruments: list[str]) -> UnsubscribedFrame:
    return {"type": "unsubscribed", "instruments": instruments}


def ratio_subscribed(pairs: list[int]) -> RatioSubscribedFrame:
    return {"type": "ratio_subscribed", "pairs": pairs}


def ratio_unsubscribed() -> RatioUnsubscribedFrame:
    return {"type": "ratio_unsubscribed"}


def dashboard_subscribed(refresh_interval: float) -> DashboardSubscribedFrame:
    return {
        "type": "dashboard_subscribed",
        "message": MESSAGE_DASHBOARD_SUBSCRIBED,
        "refresh_interval": refresh_interval,
        "timestamp": time.time(),
    }


def dashboard_unsubscribed() -> DashboardUnsubscribedFrame:
    return {
        "type": "dashboard_unsubscribed",
        "message": MESSAGE_DASHBOARD_UNSUBSCRIBED,
        "timestamp": time.time(),
    }


def alerts_subscribed() -> AlertsSubscribedFrame:
    return {"type": "alerts_subscribed", "timestamp": time.time()}


def alerts_unsubscribed() -> AlertsUnsubscribedFrame:
    return {"type": "alerts_unsubscribed", "timestamp": time.time()}


STATUS_SAMPLE = 100  # a status reply stays small whatever a client follows


def status(
    hub: HubStatus, worker_running: bool, feed_state: str, subscriptions: Sequence[str]
) -> StatusFrame:
    return {
        "type": "status",
        "active_connections": hub["active_connections"],
        "max_connections": hub["max_connections"],
        "dashboard_subscribers": hub["dashboard_subscribers"],
        "subscribed_symbols": hub["subscribed_symbols"],
        "dashboard_worker_running": worker_running,
        "feed_state": feed_state,
        "subscriptions": sorted(subscriptions)[:STATUS_SAMPLE],
        "subscription_count": len(subscriptions),
        "timestamp": time.time(),
    }


def error(message: str, command: str | None = None) -> ErrorFrame:
    """An error reply; ``command`` names the command it answers, when there was one."""
    if command is None:
        return {"type": "error", "message": message, "timestamp": time.time()}
    return {"type": "error", "message": message, "command": command, "timestamp": time.time()}


OutboundFrame = (
    TickFrame
    | RatioFrame
    | DashboardDataFrame
    | DashboardErrorFrame
    | PingFrame
    | ConnectionFrame
    | PongFrame
    | SubscribedFrame
    | UnsubscribedFrame
    | RatioSubscribedFrame
    | RatioUnsubscribedFrame
    | DashboardSubscribedFrame
    | DashboardUnsubscribedFrame
    | StatusFrame
    | ErrorFrame
    | AlertFrame
    | AlertsSubscribedFrame
    | AlertsUnsubscribedFrame
)


def encode(frame: OutboundFrame) -> Wire:
    """Serialise ``frame`` once (orjson) for every connection that will receive it."""
    return Wire(orjson.dumps(frame))
