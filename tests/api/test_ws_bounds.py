"""What one WebSocket client may make the server hold: subscriptions, replies, bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from support.poll import eventually
from support.server import live_service
from support.wsclient import recv_until, send_json, ws_client

from cotiza.settings import Settings

HANDSHAKE = (
    "GET /ws/cotizaciones HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)
# A masked ping with a 125-byte payload (the mask key is zero, so the payload is as is).
PING = b"\x89\xfd\x00\x00\x00\x00" + b"p" * 125


def symbols(count: int, prefix: str = "SYM") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(count)]


async def test_subscriptions_per_connection_are_capped(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(ws_max_subscriptions=50)
    async with live_service(settings) as live, ws_client(live) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": symbols(40)})
        assert (await recv_until(ws, lambda m: m["type"] == "subscribed"))["type"]
        # 40 + 20 new > 50: refused whole, with an error frame; nothing added.
        await send_json(ws, {"type": "subscribe", "instruments": symbols(60)})
        error = await recv_until(ws, lambda m: m["type"] == "error")
        assert "subscription limit" in error["message"] and "50" in error["message"]
        await send_json(ws, {"type": "get_status"})
        status = await recv_until(ws, lambda m: m["type"] == "status")
        assert status["subscription_count"] == 40
        # Symbols already followed do not count twice.
        await send_json(ws, {"type": "subscribe", "instruments": symbols(50)})
        reply = await recv_until(ws, lambda m: m["type"] in ("subscribed", "error"))
        assert reply["type"] == "subscribed"


async def test_default_cap_and_small_status_replies(
    make_settings: Callable[..., Settings],
) -> None:
    """1,000 by default; get_status reports the count and a bounded sample."""
    async with live_service(make_settings()) as live, ws_client(live) as ws:
        for part in (symbols(500, "A"), symbols(500, "B")):  # 500 per command at most
            await send_json(ws, {"type": "subscribe", "instruments": part})
            await recv_until(ws, lambda m: m["type"] == "subscribed")
        await send_json(ws, {"type": "subscribe", "instruments": ["ONE-TOO-MANY"]})
        error = await recv_until(ws, lambda m: m["type"] == "error")
        assert "1000" in error["message"]
        await send_json(ws, {"type": "get_status"})
        raw = await asyncio.wait_for(_recv_raw(ws, "status"), 5)
        status = json.loads(raw)
        assert status["subscription_count"] == 1000
        assert 0 < len(status["subscriptions"]) <= 100
        assert len(raw) < 8 * 1024, len(raw)
        async with live.http() as http:
            listed = (await http.get("/cotizaciones/websocket_status")).json()
        (mine,) = listed["connections"]
        assert mine["instrument_count"] == 1000 and len(mine["instruments"]) <= 100


async def _recv_raw(ws, kind: str) -> str:  # type: ignore[no-untyped-def]
    while True:
        raw = await ws.recv()
        if json.loads(raw)["type"] == kind:
            return str(raw)


async def test_pongs_to_a_ping_flood_are_bounded(make_settings: Callable[..., Settings]) -> None:
    """A client that sends protocol pings and never reads the pongs is evicted once its
    unread bytes pass WS_MAX_PENDING_BYTES, instead of growing the server's buffers."""
    settings = make_settings(ws_max_pending_bytes=256 * 1024)
    async with live_service(settings) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(HANDSHAKE.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        await eventually(lambda: len(live.services.hub.connections) == 1, 5)
        (conn,) = live.services.hub.connections.values()
        before = live.services.hub.stats.slow_consumers
        batch = PING * 1000
        sent = 0
        with contextlib.suppress(ConnectionError):
            # Up to 400,000 pings (52 MB): far more pong bytes than the bound allows.
            for _ in range(400):
                if live.services.hub.stats.slow_consumers > before:
                    break
                writer.write(batch)
                await asyncio.wait_for(writer.drain(), 10)
                sent += 1000
                largest = conn.backlog()
                assert largest < 64 * 1024 * 1024, largest
        await eventually(
            lambda: live.services.hub.stats.slow_consumers > before,
            10,
            message=f"eviction after {sent} pings",
        )
        await eventually(lambda: not live.services.hub.connections, 10)
        writer.close()
        # Everyone else is still served.
        async with ws_client(live) as ws:
            await send_json(ws, {"type": "ping"})
            assert (await recv_until(ws, lambda m: m["type"] == "pong"))["type"] == "pong"
