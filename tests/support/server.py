"""The real app under a real uvicorn, on an ephemeral port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from cotiza.api.app import create_app
from cotiza.server import Server, uvicorn_config
from cotiza.service import Services
from cotiza.settings import Settings
from cotiza.ws.transport import listening_port
from support.poll import eventually


@dataclass(frozen=True)
class WsVariant:
    """One uvicorn WebSocket configuration the protocol must hold under."""

    impl: str
    compression: bool

    @property
    def id(self) -> str:
        name = "sansio" if self.impl == "websockets-sansio" else self.impl
        return f"{name}-deflate" if self.compression else name

    def settings(self) -> dict[str, Any]:
        return {"ws_impl": self.impl, "ws_compression": self.compression}

    def env(self) -> dict[str, str]:
        return {"WS_IMPL": self.impl, "WS_COMPRESSION": str(self.compression).lower()}

    def write_path(self, client_offers_deflate: bool = True) -> str:
        """The write path a connection takes: direct only under websockets-sansio when no
        compression is negotiated."""
        negotiated = self.compression and client_offers_deflate
        return "direct" if self.impl == "websockets-sansio" and not negotiated else "asgi"


WS_VARIANTS = [
    WsVariant("websockets-sansio", False),
    WsVariant("websockets-sansio", True),
    WsVariant("wsproto", False),
    WsVariant("wsproto", True),
]


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
async def live_service(settings: Settings, port: int = 0) -> AsyncIterator[LiveService]:
    """Run the real app under uvicorn inside the test's loop, on ``port`` (0: ephemeral)."""
    app = create_app(settings)
    server = Server(uvicorn_config(app, settings), app.state.runtime)
    server.config.port = port
    task = asyncio.create_task(server.serve())
    await eventually(
        lambda: server.started or task.done(), timeout=10, interval=0.025, message="start-up"
    )
    if task.done():
        task.result()
    assert server.started, "server did not start"
    live = LiveService(server, settings, listening_port(server), task)
    try:
        yield live
    finally:
        if not task.done():
            await live.stop()


def named_tasks(prefix: str) -> list[asyncio.Task[Any]]:
    """The unfinished tasks of this loop whose name starts with ``prefix``."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]
