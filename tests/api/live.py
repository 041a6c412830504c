"""A real uvicorn server on a free port, and real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from cotiza.api.app import create_app
from cotiza.server import Server, uvicorn_config
from cotiza.service import Services
from cotiza.settings import Settings

# Field names the contract (sections 4 and 5) promises to clients.
TICK_FIELDS = frozenset(
    {"symbol", "bid", "bid_size", "offer", "offer_size", "last", "last_size", "cl", "op", "ts_ms"}
)
RATIO_FIELDS = frozenset(
    {"base", "quote", "client_id", "asof", "bid_ratio", "ask_ratio", "mid_ratio", "last_ratio"}
)
INDICATOR_FIELDS = frozenset(
    {
        "sma180_mid",
        "sma180_bid",
        "sma180_ask",
        "std60_mid",
        "std180_mid",
        "band_upper",
        "band_lower",
        "z_bid",
        "z_ask",
        "vol_ratio",
        "ratio_spread",
    }
)
DASHBOARD_ROW_FIELDS = frozenset(
    {
        "par",
        "client_id",
        "ultimo_ratio_operado",
        "ultimo_timestamp",
        "promedio_rueda",
        "promedio_dia_anterior",
        "promedio_1semana",
        "promedio_1mes",
        "minimo_mensual",
        "maximo_mensual",
        "dif_rueda_pct",
        "dif_dia_anterior_pct",
        "dif_1semana_pct",
        "dif_1mes_pct",
        "dif_minimo_pct",
        "dif_maximo_pct",
    }
)

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


async def collect(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives within ``seconds``: for asserting what does *not* happen."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(await recv_json(ws, left))
        except TimeoutError:
            break
    return frames


async def send_json(ws: ClientConnection, message: Any) -> None:
    await ws.send(json.dumps(message))


async def closed_by_server(ws: ClientConnection, timeout: float = 5.0) -> ConnectionClosed:
    """Read until the server closes the connection; return the closing exception."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                return exc


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str = "condition",
) -> None:
    """Poll ``predicate`` (sync or async) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout:g} s")
        await asyncio.sleep(interval)


def named_tasks(prefix: str) -> list[asyncio.Task[Any]]:
    """The unfinished tasks of this loop whose name starts with ``prefix``."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]


@contextlib.asynccontextmanager
async def ws_client(
    live: LiveService, path: str = "/ws/cotizaciones", *, everything: bool = False, **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    """A connected client past the welcome frame.

    A new connection receives every tick until its first subscription command (issue 9);
    unless ``everything`` is asked for, the client narrows itself at once with a harmless
    ``unsubscribe_ratios`` so a test sees only what it subscribes to.
    """
    async with websockets.connect(live.ws_url(path), open_timeout=5, **kwargs) as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "connection" and hello["status"] == "connected"
        if not everything:
            await send_json(ws, {"action": "unsubscribe_ratios"})
            await recv_until(ws, lambda m: m["type"] == "ratio_unsubscribed")
        yield ws


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for tests: fast intervals, a SQLite file in ``tmp_path``, an ephemeral port."""
    values: dict[str, Any] = {
        **FAST,
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/cotiza.db",
        "host": "127.0.0.1",
        "port": 0,
    }
    values.update(overrides)
    return Settings(**values)


def variant_settings(tmp_path: Path, variant: WsVariant) -> Callable[..., Settings]:
    """A ``make_settings`` whose services run under ``variant``."""

    def build(**overrides: Any) -> Settings:
        return fast_settings(tmp_path, **{**variant.settings(), **overrides})

    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"service exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/cotizaciones/health", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become healthy")


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db", MARKET_HOURS="always")
    env.update(extra)
    return env
