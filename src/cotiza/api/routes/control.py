"""Feed control: start, stop, restart; and the drain used before a planned restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.ws.frames import CLOSE_SERVICE_RESTART

router = APIRouter(prefix="/cotizaciones", tags=["control"])


class StartRequest(BaseModel):
    instrumentos: list[str] = Field(default_factory=list, max_length=1000)


@router.post("/iniciar")
async def iniciar(
    services: ServicesDep, _: TokenDep, body: StartRequest | None = None
) -> dict[str, Any]:
    """Start the feed (optionally with explicit instruments); credentials come from settings."""
    started = await services.feed.start(body.instrumentos if body else [])
    message = "feed started" if started else "feed already running"
    return {"status": "success", "message": message, **services.feed.status()}


@router.post("/iniciar_auto")
async def iniciar_auto(services: ServicesDep, _: TokenDep) -> dict[str, Any]:
    """Start the feed with the configured instruments."""
    started = await services.feed.start(services.feed.configured_instruments())
    message = "feed started" if started else "feed already running"
    return {"status": "success", "message": message, **services.feed.status()}


@router.post("/detener")
async def detener(services: ServicesDep, _: TokenDep) -> dict[str, Any]:
    stopped = await services.feed.stop()
    message = "feed stopped" if stopped else "feed was not running"
    return {"status": "success", "message": message, **services.feed.status()}


@router.post("/reiniciar")
async def reiniciar(
    services: ServicesDep, _: TokenDep, body: StartRequest | None = None
) -> dict[str, Any]:
    """Restart the feed; works whether or not it ran before in this process."""
    await services.feed.restart(body.instrumentos if body else [])
    return {"status": "success", "message": "feed restarted", **services.feed.status()}


admin = APIRouter(prefix="/admin", tags=["control"])


@admin.post("/drain")
async def drain(services: ServicesDep, _: TokenDep) -> dict[str, Any]:
    """Close every WebSocket client with 1012 before a planned restart; refuse new ones."""
    services.draining = True
    services.hub.stop_accepting()
    closed = await services.hub.close_all(CLOSE_SERVICE_RESTART, "Service restart")
    return {"status": "success", "closed": closed}
