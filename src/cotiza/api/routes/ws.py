"""The WebSocket endpoints of contract section 4; the protocol lives in ``cotiza.ws.session``."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from cotiza.api.deps import get_origins, get_services, token_valid
from cotiza.ws.session import serve

router = APIRouter()


async def _serve(websocket: WebSocket, path: str) -> None:
    services = get_services(websocket)
    await serve(
        websocket,
        services,
        path,
        token_ok=token_valid(services, websocket),
        origins=get_origins(websocket),
    )


@router.websocket("/ws/cotizaciones")
async def ws_cotizaciones(websocket: WebSocket) -> None:
    await _serve(websocket, "/ws/cotizaciones")


@router.websocket("/ws/dashboard")
async def ws_dashboard(websocket: WebSocket) -> None:
    await _serve(websocket, "/ws/dashboard")
