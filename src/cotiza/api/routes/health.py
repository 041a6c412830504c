"""Health endpoints: liveness, readiness, the detailed view and status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cotiza.api.deps import ServicesDep
from cotiza.health import Scope, Status, overall, ready, render
from cotiza.ops.ledger import monitor_summary

router = APIRouter(tags=["health"])

NO_STORE = {"Cache-Control": "no-store"}
HEALTH_JSON = "application/health+json"


@router.get("/cotizaciones/health")
async def health() -> JSONResponse:
    """Answered on the event loop: a blocked loop makes this time out."""
    return JSONResponse({"status": "healthy", "timestamp": time.time()}, headers=NO_STORE)


@router.get("/livez")
async def livez(services: ServicesDep) -> JSONResponse:
    """Liveness: only this process's own checks, never anything external."""
    checks = [c for c in await services.checks() if c.scope is Scope.LIVENESS]
    failed = any(c.status is Status.FAIL for c in checks)
    now = time.time()
    body = {"status": "fail" if failed else "pass", "checks": render(checks, now)}
    return JSONResponse(
        body, status_code=503 if failed else 200, headers=NO_STORE, media_type=HEALTH_JSON
    )


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: database reachable and feed fresh (market-hours aware)."""
    checks = await services.checks()
    ok = ready(checks) and not services.draining
    now = time.time()
    body: dict[str, Any] = {"status": "pass" if ok else "fail", "checks": render(checks, now)}
    if services.draining:
        body["output"] = "draining before a restart"
    return JSONResponse(
        body, status_code=200 if ok else 503, headers=NO_STORE, media_type=HEALTH_JSON
    )


@router.get("/health/detailed")
async def health_detailed(services: ServicesDep) -> JSONResponse:
    checks = await services.checks()
    now = time.time()
    status = overall(checks)
    body: dict[str, Any] = {
        "status": status,
        "timestamp": now,
        "websocket_connections": len(services.hub.connections),
        "dashboard_subscribers": services.dashboard.subscribers,
        "dashboard_worker_running": services.dashboard.running,
        "event_loop_available": services.lag.running and not _loop_closed(),
        "feed": services.feed.status(now),
        "uptime": now - services.started_at,
        "checks": render(checks, now),
    }
    settings = services.settings
    monitor = await asyncio.to_thread(monitor_summary, settings.run_dir, settings.port)
    if monitor is not None:
        body["monitor"] = monitor
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200, headers=NO_STORE)


def _loop_closed() -> bool:
    return asyncio.get_running_loop().is_closed()


@router.get("/cotizaciones/status")
async def status(services: ServicesDep) -> dict[str, Any]:
    now = time.time()
    return {
        **services.feed.status(now),
        "workers": services.worker_states(),
        "dashboard": services.dashboard.status(),
        "connections": services.hub.status(),
        "cached_symbols": len(services.cache.symbols()),
        "market_open": services.calendar.is_open(now),
        "market_tz": services.settings.market_tz,
        "service_started_at": services.started_at,
        "service_uptime": now - services.started_at,
        "timestamp": now,
    }


@router.get("/cotizaciones/websocket_status")
async def websocket_status(services: ServicesDep) -> dict[str, Any]:
    hub = services.hub
    return {
        **hub.status(),
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
