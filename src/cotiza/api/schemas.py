"""Response models of the REST routes: what the OpenAPI document promises, field by field.

They are pydantic-validated ``TypedDict``s, so the payload types the components already
produce (``FeedStatus``, ``DashboardResult``, ``CheckItem``, ...) are the schema itself,
with no second copy to drift; FastAPI validates every response against them and drops
nothing a client relies on (the route tests compare the fields). Keys marked
``NotRequired`` are left out of a response when absent, exactly as before.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from fastapi import Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from typing_extensions import TypedDict

from cotiza.cluster.health import ClusterHealth
from cotiza.dashboard_worker import DashboardWorkerStatus
from cotiza.feed_runner import FeedStatus
from cotiza.health import CheckItem
from cotiza.models import PairRecord, TickPayload
from cotiza.monitor.ledger import MonitorSummary
from cotiza.origins import OriginsReport
from cotiza.ws.frames import HubStatus, RatioFrame
from cotiza.ws.hub import ConnectionInfo

# --- errors -------------------------------------------------------------------------


class ValidationIssue(TypedDict):
    """One problem found by request validation (FastAPI's own shape)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error: an HTTP status code and ``{"detail": ...}``, never 200."""

    detail: str | list[ValidationIssue]


# Row ids are 64-bit integers in the database: anything larger is refused (422), never
# handed to a driver that would overflow (a 500).
DB_ID_MAX = 2**63 - 1
PathId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]
QueryId = Annotated[int | None, Query(ge=1, le=DB_ID_MAX)]

_ERROR_DESCRIPTIONS = {
    401: "API_TOKEN is set and no valid token was presented",
    404: "no such resource",
    409: "conflicts with the current state (e.g. a duplicate pair)",
    422: "the request's values are not acceptable",
    503: "the database cannot be reached",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """The ``responses=`` of a route for these error codes, all shaped ``{"detail": ...}``."""
    responses: dict[int | str, dict[str, object]] = {}
    for code in codes:
        responses[code] = {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]}
        if code == 401:
            responses[code]["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
    return responses


# --- health ---------------------------------------------------------------------------


class HealthJSONResponse(JSONResponse):
    """``application/health+json``, the media type of the IETF health-check draft."""

    media_type = "application/health+json"


class BasicHealth(TypedDict):
    status: Literal["healthy"]
    timestamp: float


class HealthReport(TypedDict):
    """``/livez`` and ``/readyz``: pass or fail, with the checks that decided it."""

    status: Literal["pass", "fail"]
    checks: dict[str, list[CheckItem]]
    output: NotRequired[str]


class DetailedHealth(TypedDict):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: float
    websocket_connections: int
    dashboard_subscribers: int
    dashboard_worker_running: bool
    event_loop_available: bool
    feed: FeedStatus
    uptime: float
    checks: dict[str, list[CheckItem]]
    origins: OriginsReport  # ALLOWED_ORIGINS in force and the browser origins it refused
    cluster: ClusterHealth
    monitor: NotRequired[MonitorSummary]


class FeedDetails(TypedDict):
    """The prototype's ``ws_details``: the upstream market-data connection."""

    ws: Literal["ok", "disabled"]
    user_id: str | None
    subscribed: list[str]
    last_md_ms: int | None
    subscribers: int


class PrototypeStatus(TypedDict):
    """The fields the prototype's ``/cotizaciones/status`` had, beside cotiza's own."""

    started: bool
    worker_running: bool
    ws_connected: bool
    worker_status: Literal["running", "stopped"]
    ws_details: FeedDetails
    user: str | None
    account: str | None


class ServiceStatus(FeedStatus, PrototypeStatus):
    """``/cotizaciones/status``: the feed's status plus workers, connections and times, and the
    prototype's fields (``started``, ``worker_status``, ``ws_details``...)."""

    workers: dict[str, bool]
    dashboard: DashboardWorkerStatus
    connections: HubStatus
    cached_symbols: int
    market_open: bool
    market_tz: str
    service_started_at: float
    service_uptime: float
    timestamp: float


class HubCounters(TypedDict):
    accepted: int
    rejected: int
    messages_sent: int
    messages_coalesced: int
    messages_dropped: int
    slow_consumers: int


class WebSocketStatus(HubStatus):
    timestamp: float
    connections: list[ConnectionInfo]
    stats: HubCounters


# --- control --------------------------------------------------------------------------


class ControlReply(FeedStatus):
    """The answer of every feed control: what happened, then the feed's status.

    In cluster mode a node that does not lead answers 202 ``accepted``: the command is
    recorded (``control_version``) and the leader (``leader_node``) applies it.
    """

    status: Literal["success", "accepted"]
    message: str
    leader_node: NotRequired[str | None]
    control_version: NotRequired[int]


class HandoverReply(TypedDict):
    status: Literal["success"]
    message: str
    node_id: str
    epoch: int | None


class DrainReply(TypedDict):
    status: Literal["success"]
    closed: int


class UndrainReply(TypedDict):
    status: Literal["success"]
    draining: bool  # always false after an undrain
    undone: bool  # false when the service was not draining


# --- quotes and ratios ------------------------------------------------------------------


class QuoteView(TickPayload):
    """A cached quote with its mid, receive time, age and staleness."""

    mid: float | None
    recv_ts: float
    age: float
    stale: bool


class QuoteList(TypedDict):
    count: int
    quotes: list[QuoteView]
    timestamp: float


class PairView(PairRecord):
    par: str


class PairList(TypedDict):
    count: int
    pairs: list[PairView]


class RatioList(TypedDict):
    count: int
    data: list[RatioFrame]
    timestamp: float


RatioHistory = TypedDict(
    "RatioHistory",
    {
        "pair": PairView,
        "from": float,
        "to": float,
        "resolution": float | None,
        "count": int,
        "data": list[dict[str, float | None]],
    },
)
