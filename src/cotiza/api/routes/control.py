"""Feed control: start, stop, restart; and the drain used before a planned restart."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.api.schemas import ControlReply, DrainReply, UndrainReply, error_responses

router = APIRouter(prefix="/cotizaciones", tags=["control"])

_START_ERRORS = error_responses(401, 422)


class StartRequest(BaseModel):
    instrumentos: list[str] = Field(default_factory=list, max_length=1000)


def _reply(services: ServicesDep, message: str) -> ControlReply:
    return {"status": "success", "message": message, **services.feed.status()}


@router.post("/iniciar", responses=_START_ERRORS)
async def iniciar(
    services: ServicesDep, _: TokenDep, body: StartRequest | None = None
) -> ControlReply:
    """Start the feed (optionally with explicit instruments); credentials come from settings."""
    started = await services.feed.start(body.instrumentos if body else [])
    return _reply(services, "feed started" if started else "feed already running")


@router.post("/iniciar_auto", responses=error_responses(401))
async def iniciar_auto(services: ServicesDep, _: TokenDep) -> ControlReply:
    """Start the feed with the configured instruments."""
    started = await services.feed.start(services.feed.configured_instruments())
    return _reply(services, "feed started" if started else "feed already running")


@router.post("/detener", responses=error_responses(401))
async def detener(services: ServicesDep, _: TokenDep) -> ControlReply:
    """Stop the feed."""
    stopped = await services.feed.stop()
    return _reply(services, "feed stopped" if stopped else "feed was not running")


@router.post("/reiniciar", responses=_START_ERRORS)
async def reiniciar(
    services: ServicesDep, _: TokenDep, body: StartRequest | None = None
) -> ControlReply:
    """Restart the feed; works whether or not it ran before in this process."""
    await services.feed.restart(body.instrumentos if body else [])
    return _reply(services, "feed restarted")


admin = APIRouter(prefix="/admin", tags=["control"])


@admin.post("/drain", responses=error_responses(401))
async def drain(services: ServicesDep, _: TokenDep) -> DrainReply:
    """Close every WebSocket client with 1012 before a planned restart; refuse new ones."""
    return {"status": "success", "closed": await services.drain()}


@admin.post("/undrain", responses=error_responses(401))
async def undrain(services: ServicesDep, _: TokenDep) -> UndrainReply:
    """Undo a drain: accept WebSocket clients again and pass readiness."""
    undone = services.undrain()
    return {"status": "success", "draining": services.draining, "undone": undone}
