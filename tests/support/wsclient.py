"""A real WebSocket client's side of the conversation with a live service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from support.server import LiveService


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
