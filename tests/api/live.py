"""A real uvicorn server on a free port, and real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from cotiza.api.app import create_app
from cotiza.server import Server, uvicorn_config
from cotiza.service import Services
from cotiza.settings import Settings

FAST = {
    "market_hours": "always",
    "sim_ticks_per_second": 50.0,
    "ratio_sample_interval": 0.2,
    "ratio_publish_interval": 0.02,
    "dashboard_refresh_interval": 0.3,
    "write_flush_interval": 0.05,
    "loop_lag_interval": 0.05,
    "shutdown_timeout": 5.0,
}


@dataclass
class LiveService:
    server: Server
    settings: Settings
    port: int
    task: asyncio.Task[None]

    @property
    def services(self) -> Services:
        services = self.server.runtime.services
        assert services is not None
        return services

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/ws/cotizaciones") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=10, **kwargs)

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


@contextlib.asynccontextmanager
async def live_service(settings: Settings) -> AsyncIterator[LiveService]:
    """Run the real app under uvicorn on an ephemeral port inside the test's loop."""
    app = create_app(settings)
    server = Server(uvicorn_config(app, settings), app.state.runtime)
    server.config.port = 0
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    if task.done():
        task.result()
    assert server.started, "server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    live = LiveService(server, settings, port, task)
    try:
        yield live
    finally:
        if not task.done():
            await live.stop()


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    message: dict[str, Any] = json.loads(raw)
    return message


async def recv_until(
    ws: ClientConnection,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Read frames until one satisfies ``predicate``; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            message = await recv_json(ws, timeout)
            if predicate(message):
                return message


@contextlib.asynccontextmanager
async def ws_client(
    live: LiveService, path: str = "/ws/cotizaciones", **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(live.ws_url(path), open_timeout=5, **kwargs) as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "connection" and hello["status"] == "connected"
        yield ws
