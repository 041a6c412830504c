"""The prototype's endpoint names, kept so its dashboards, scripts and bot work unchanged.

Each one is served from the same components as cotiza's own routes; only names and
shapes differ. Secrets (the Primary password, the API token) never appear in a reply.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Literal

from fastapi import APIRouter, Response
from typing_extensions import TypedDict

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.api.routes import control
from cotiza.api.schemas import ControlReply, PrototypeStatus, error_responses
from cotiza.dashboard_worker import DashboardWorkerStatus
from cotiza.feed_runner import RunnerState
from cotiza.feeds.base import FeedState
from cotiza.service import Services
from cotiza.ws.frames import DashboardTable

router = APIRouter(tags=["prototype compatibility"])


def prototype_status(services: Services) -> PrototypeStatus:
    """``started`` (the feed runs), the ratio workers, the upstream connection, user, account."""
    runner = services.feed
    settings = services.settings
    connected = runner.feed is not None and runner.feed.state is FeedState.CONNECTED
    workers = services.ratios.workers()
    worker_running = bool(workers) and all(workers.values())
    last = services.cache.last_update_at
    return {
        "started": runner.running and runner.state is RunnerState.RUNNING,
        "worker_running": worker_running,
        "ws_connected": connected,
        "worker_status": "running" if worker_running else "stopped",
        "ws_details": {
            "ws": "ok" if connected else "disabled",
            "user_id": settings.primary_user,
            "subscribed": sorted(runner.instruments),
            "last_md_ms": round(last * 1000) if last else None,
            "subscribers": len(services.hub.connections),
        },
        "user": settings.primary_user,
        "account": settings.primary_account,
    }


# --- the dashboard table under the prototype's three strategy names ----------------------


async def _table(services: ServicesDep) -> DashboardTable:
    return await services.dashboard_query()


for _strategy in ("fast", "balanced", "flexible"):
    router.add_api_route(
        f"/api/ratios/dashboard/{_strategy}",
        _table,
        methods=["GET"],
        responses=error_responses(503),
        summary=f"The dashboard table (the prototype's '{_strategy}' name; same data)",
        tags=["ratios"],
    )


# --- the dashboard worker --------------------------------------------------------------


class WorkerReply(TypedDict):
    status: Literal["ok"]
    message: str
    running: bool


class WorkerStatus(DashboardWorkerStatus):
    last_beat: float | None
    uptime_seconds: float | None


@router.post("/dashboard/start", responses=error_responses(401))
async def dashboard_start(services: ServicesDep, _: TokenDep) -> WorkerReply:
    """Start the dashboard worker; it runs without subscribers until ``/dashboard/stop``."""
    started = await services.dashboard.start_pinned()
    message = "Dashboard iniciado" if started else "Dashboard ya estaba activo"
    return {"status": "ok", "message": message, "running": services.dashboard.running}


@router.post("/dashboard/stop", responses=error_responses(401))
async def dashboard_stop(services: ServicesDep, _: TokenDep) -> WorkerReply:
    """Stop the dashboard worker; the next ``dashboard_subscribe`` starts it again."""
    stopped = await services.dashboard.stop_pinned()
    message = "Dashboard detenido" if stopped else "Dashboard no estaba activo"
    return {"status": "ok", "message": message, "running": services.dashboard.running}


@router.get("/dashboard/status")
async def dashboard_status(services: ServicesDep) -> WorkerStatus:
    """The dashboard worker: running, last push (``last_beat``), uptime and counters."""
    worker = services.dashboard
    started = worker.started_at
    return {
        **worker.status(),
        "last_beat": worker.cached_at,
        "uptime_seconds": time.time() - started if started is not None else None,
    }


# --- the feed ------------------------------------------------------------------------------


class LastParams(TypedDict, total=False):
    """The last start's parameters; empty before the feed ever started. Never the password."""

    user: str | None
    account: str | None
    instrumentos: list[str]
    feed: str
    started_at: float | None


@router.get("/cotizaciones/last_params")
async def last_params(services: ServicesDep) -> LastParams:
    """The instruments and parameters of the feed's last start (``{}`` before the first)."""
    runner = services.feed
    if not runner.starts:
        return {}
    settings = services.settings
    return {
        "user": settings.primary_user,
        "account": settings.primary_account,
        "instrumentos": list(runner.instruments),
        "feed": settings.feed.value,
        "started_at": runner.started_at,
    }


@router.post("/cotizaciones/reconnect_rofex", responses=error_responses(401, 422))
async def reconnect_rofex(services: ServicesDep, response: Response, _: TokenDep) -> ControlReply:
    """Reconnect the feed: exactly ``/cotizaciones/reiniciar`` with its last instruments (in
    cluster mode, through the leader); it ends running."""
    return await control.reiniciar(services, response, None, None)


# --- a WebSocket console ---------------------------------------------------------------------


@router.get("/ws-test", include_in_schema=False)
async def ws_test_page() -> Response:
    """A small page to open a WebSocket, send commands and read the frames."""
    html = (resources.files("cotiza") / "static" / "ws_test.html").read_text(encoding="utf-8")
    return Response(html, media_type="text/html", headers={"Cache-Control": "no-cache"})
