"""Slow consumers: stalled clients are cut off and never delay the others.

Every test runs under each uvicorn WebSocket implementation, with compression off and on;
with compression on, the stalled clients offer permessage-deflate too, so the bound is
proven on the ASGI write path as well as the direct one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.poll import eventually
from support.ports import free_port
from support.process import service_env, wait_healthy
from support.server import LiveService, WsVariant, live_service
from support.wsclient import recv_until, ws_client

from cotiza.settings import Settings

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_settings(variant_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Every service of this module, ``service`` included, runs under each WebSocket variant."""
    return variant_settings


def masked_text_frame(text: str) -> bytes:
    """One client-to-server text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    length = len(payload)
    if length < 126:
        header += bytes([0x80 | length])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def stalled_client(port: int, symbols: list[str], deflate: bool = False) -> socket.socket:
    """Handshake (offering compression if ``deflate``), subscribe to ``symbols``, never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws/cotizaciones HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + ("Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else "")
            + "\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        assert chunk, "server closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.sendall(masked_text_frame(json.dumps({"type": "subscribe", "instruments": symbols})))
    return sock


def server_side_closed(sock: socket.socket, timeout: float) -> bool:
    """Drain what the server sent; True once it reports EOF or a reset."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sock.recv(1 << 20) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def fast_feed_settings(base: Settings) -> Settings:
    return base.model_copy(
        update={"sim_ticks_per_second": 3000.0, "websocket_timeout": 1.0, "store_ticks": False}
    )


async def test_stalled_clients_are_closed_and_others_keep_flowing(
    make_settings, ws_variant: WsVariant
) -> None:
    """Three stalled sockets are closed as slow consumers while a reader keeps getting ticks."""
    settings = fast_feed_settings(make_settings())
    deflate = ws_variant.compression
    async with live_service(settings) as live:
        symbols = live.services.feed.instruments
        stalled = [
            await asyncio.to_thread(stalled_client, live.port, symbols, deflate) for _ in range(3)
        ]
        try:
            async with ws_client(live) as ws:
                await ws.send(json.dumps({"type": "subscribe", "instruments": symbols}))
                await recv_until(ws, lambda m: m["type"] == "subscribed")
                worst_gap = 0.0
                received = 0
                last = time.monotonic()
                deadline = last + 6.0
                while time.monotonic() < deadline:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 2.0))
                    now = time.monotonic()
                    if message["type"] == "tick":
                        received += 1
                        worst_gap = max(worst_gap, now - last)
                        last = now
                    if live.services.hub.stats.slow_consumers >= 3 and received > 2000:
                        break
                hub = live.services.hub
                assert hub.stats.slow_consumers >= 3
                assert received > 500
                assert worst_gap < 0.5, f"the reader stalled for {worst_gap:.3f} s"
                await eventually(
                    lambda: len(hub.connections) == 1, 5.0, message="one connection left"
                )
                # Read through to the reply, so no unread backlog delays the closing handshake.
                await ws.send(json.dumps({"type": "unsubscribe", "instruments": symbols}))
                await recv_until(ws, lambda m: m["type"] == "unsubscribed")
            for sock in stalled:
                assert await asyncio.to_thread(server_side_closed, sock, 5.0)
        finally:
            for sock in stalled:
                sock.close()


async def test_reader_that_keeps_up_is_not_cut_off(service: LiveService) -> None:
    """A client that reads normally is never judged a slow consumer."""
    async with ws_client(service) as ws:
        symbols = service.services.feed.instruments
        await ws.send(json.dumps({"type": "subscribe", "instruments": symbols}))
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        for _ in range(50):
            await recv_until(ws, lambda m: m["type"] == "tick")
    assert service.services.hub.stats.slow_consumers == 0


@pytest.mark.subprocess
def test_stalled_client_is_reset_by_the_production_server(
    tmp_path: Path, ws_variant: WsVariant
) -> None:
    """Under ``python3 main.py`` (uvloop) a stalled reader is judged slow and its socket reset."""
    port = free_port()
    env = service_env(
        tmp_path,
        SIM_TICKS_PER_SECOND="2000",
        WEBSOCKET_TIMEOUT="1",
        STORE_TICKS="false",
        **ws_variant.env(),
    )
    with (tmp_path / "service.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(port, proc)
            status_url = f"http://127.0.0.1:{port}/cotizaciones/websocket_status"
            symbols = httpx.get(f"http://127.0.0.1:{port}/cotizaciones/status").json()[
                "instruments"
            ]
            sock = stalled_client(port, symbols, ws_variant.compression)
            try:
                deadline = time.monotonic() + 20
                while httpx.get(status_url).json()["stats"]["slow_consumers"] < 1:
                    assert time.monotonic() < deadline, "the stalled client was never judged"
                    time.sleep(0.1)
                assert server_side_closed(sock, 5.0)
                assert httpx.get(status_url).json()["active_connections"] == 0
            finally:
                sock.close()
        finally:
            proc.terminate()
            proc.wait(20)
