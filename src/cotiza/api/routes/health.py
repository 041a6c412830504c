"""Health endpoints: liveness, readiness, the detailed view and status."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response

from cotiza.api.deps import OriginsDep, ServicesDep, TokenDep
from cotiza.api.routes.compat import prototype_status
from cotiza.api.schemas import (
    BasicHealth,
    DetailedHealth,
    HealthJSONResponse,
    HealthReport,
    ServiceStatus,
    WebSocketStatus,
    error_responses,
)
from cotiza.cluster.health import ClusterHealth, standalone_status
from cotiza.health import Scope, Status, overall, ready, render
from cotiza.monitor.ledger import monitor_summary
from cotiza.service import Services

router = APIRouter(tags=["health"])

NO_STORE = "no-store"


def _uncached(response: Response) -> None:
    response.headers["Cache-Control"] = NO_STORE


@router.get("/cotizaciones/health")
async def health(response: Response) -> BasicHealth:
    """Answered on the event loop: a blocked loop makes this time out."""
    _uncached(response)
    return {"status": "healthy", "timestamp": time.time()}


@router.get(
    "/livez",
    response_class=HealthJSONResponse,
    responses={503: {"model": HealthReport, "description": "the process itself is broken"}},
)
async def livez(services: ServicesDep, response: Response) -> HealthReport:
    """Liveness: only this process's own checks, never anything external."""
    checks = [c for c in await services.health.checks() if c.scope is Scope.LIVENESS]
    failed = any(c.status is Status.FAIL for c in checks)
    _uncached(response)
    response.status_code = 503 if failed else 200
    return {"status": "fail" if failed else "pass", "checks": render(checks, time.time())}


@router.get(
    "/readyz",
    response_class=HealthJSONResponse,
    responses={503: {"model": HealthReport, "description": "not ready: see the checks"}},
)
async def readyz(services: ServicesDep, response: Response) -> HealthReport:
    """Readiness: database reachable and feed fresh (market-hours aware)."""
    checks = await services.health.checks()
    ok = ready(checks) and not services.draining
    body: HealthReport = {"status": "pass" if ok else "fail", "checks": render(checks, time.time())}
    if services.draining:
        body["output"] = "draining before a restart"
    _uncached(response)
    response.status_code = 200 if ok else 503
    return body


@router.get(
    "/health/detailed",
    responses={503: {"model": DetailedHealth, "description": "unhealthy"}},
)
async def health_detailed(
    services: ServicesDep, origins: OriginsDep, response: Response
) -> DetailedHealth:
    """Every check, with connection and worker counters; 503 when the process is unhealthy."""
    checks = await services.health.checks()
    now = time.time()
    status = overall(checks)
    body: DetailedHealth = {
        "status": status,
        "timestamp": now,
        "websocket_connections": len(services.hub.connections),
        "dashboard_subscribers": services.dashboard.subscribers,
        "dashboard_worker_running": services.dashboard.running,
        "event_loop_available": services.lag.running and not _loop_closed(),
        "feed": services.feed.status(now),
        "uptime": now - services.started_at,
        "checks": render(checks, now),
        "origins": origins.report(),
        "cluster": cluster_status(services),
    }
    settings = services.settings
    monitor = await asyncio.to_thread(monitor_summary, settings.run_dir, settings.port)
    if monitor is not None:
        body["monitor"] = monitor
    _uncached(response)
    response.status_code = 503 if status == "unhealthy" else 200
    return body


def cluster_status(services: Services) -> ClusterHealth:
    """Role, node id, leader flag and node, epoch, backplane (standalone: the only leader)."""
    if services.cluster is None:
        return standalone_status(services.settings.node_id)
    return services.cluster.status()


def _loop_closed() -> bool:
    return asyncio.get_running_loop().is_closed()


@router.get("/cotizaciones/status")
async def status(services: ServicesDep) -> ServiceStatus:
    """The feed's state and counters, worker states, connections, and the market session."""
    now = time.time()
    return {
        **services.feed.status(now),
        "workers": services.health.worker_states(),
        "dashboard": services.dashboard.status(),
        "connections": services.hub.status(),
        "cached_symbols": len(services.cache.symbols()),
        "market_open": services.calendar.is_open(now),
        "market_tz": services.settings.market_tz,
        "service_started_at": services.started_at,
        "service_uptime": now - services.started_at,
        "timestamp": now,
        **prototype_status(services),
    }


@router.get("/cotizaciones/websocket_status", responses=error_responses(401))
async def websocket_status(services: ServicesDep, _: TokenDep) -> WebSocketStatus:
    """Connection counts, every connection's subscriptions and traffic, and hub counters."""
    hub = services.hub
    return {
        **hub.status(),
        "timestamp": time.time(),
        "connections": hub.describe_connections(),
        "stats": {
            "accepted": hub.stats.accepted,
            "rejected": hub.stats.rejected,
            "messages_sent": hub.stats.messages_sent,
            "messages_coalesced": hub.stats.messages_coalesced,
            "messages_dropped": hub.stats.messages_dropped,
            "slow_consumers": hub.stats.slow_consumers,
        },
    }
