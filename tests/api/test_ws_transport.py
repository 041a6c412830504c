"""The write path of each connection: chosen once, logged at start, counted in /metrics."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.server import LiveService, WsVariant, live_service
from support.settings import fast_settings
from support.wsclient import recv_json, recv_until, send_json, ws_client

from cotiza.settings import Settings
from cotiza.ws.transport import AsgiSocket, DirectSocket, WritePath

pytestmark = pytest.mark.live

AL30 = "MERV - XMEV - AL30 - 24hs"
START_LOG = {
    "sansio": "direct (websockets-sansio, no compression)",
    "sansio-deflate": (
        "asgi for clients that negotiate compression, direct otherwise "
        "(websockets-sansio, compression on)"
    ),
    "wsproto": "asgi (wsproto, no compression)",
    "wsproto-deflate": "asgi (wsproto, compression on)",
}


@pytest.fixture
def make_settings(variant_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Every service of this module, ``service`` included, runs under each WebSocket variant."""
    return variant_settings


async def writes_by_path(live: LiveService) -> dict[str, float]:
    """``cotiza_websocket_writes_total`` from /metrics, by its ``path`` label."""
    async with live.http() as http:
        text = (await http.get("/metrics")).text
    found = re.findall(r'^cotiza_websocket_writes_total\{path="(\w+)"\} (\S+)$', text, re.M)
    return {path: float(value) for path, value in found}


async def test_the_write_path_is_logged_taken_and_counted(
    make_settings: Callable[..., Settings],
    ws_variant: WsVariant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Start-up logs the configured write path once; a client's frames all take it and
    /metrics counts them under it."""
    caplog.set_level(logging.INFO, logger="cotiza.server")
    expected = ws_variant.write_path()
    other = "asgi" if expected == "direct" else "direct"
    async with live_service(make_settings()) as live, ws_client(live) as ws:
        lines = [r.getMessage() for r in caplog.records if r.name == "cotiza.server"]
        paths = [line for line in lines if line.startswith("WebSocket write path: ")]
        assert paths == [f"WebSocket write path: {START_LOG[ws_variant.id]}"]
        [conn] = live.services.hub.connections.values()
        assert conn.write_path.value == expected
        socket_type = DirectSocket if expected == "direct" else AsgiSocket
        assert isinstance(conn._socket, socket_type)
        symbols = live.services.feed.instruments
        await send_json(ws, {"type": "subscribe", "instruments": symbols})
        assert (await recv_json(ws))["type"] == "subscribed"
        for _ in range(10):
            await recv_until(ws, lambda m: m["type"] == "tick")
        # Read up to the reply, so no unread backlog delays the client's closing handshake.
        await send_json(ws, {"type": "unsubscribe", "instruments": symbols})
        await recv_until(ws, lambda m: m["type"] == "unsubscribed")
        async with live.http() as http:
            listed = (await http.get("/cotizaciones/websocket_status")).json()["connections"]
        assert [c["write_path"] for c in listed] == [expected]
        writes = await writes_by_path(live)
    assert writes[expected] >= 13  # connection, subscribed, ten ticks or more, unsubscribed
    assert writes[other] == 0


async def test_the_path_is_chosen_per_connection(tmp_path: Path) -> None:
    """With compression on, a client that negotiates it gets the ASGI path, one that does not
    the direct path, and both receive the same ticks intact."""
    settings = fast_settings(tmp_path, ws_impl="websockets-sansio", ws_compression=True)
    async with live_service(settings) as live:
        async with (
            ws_client(live) as compressed,
            ws_client(live, compression=None) as plain,
        ):
            by_path = {c.write_path: c for c in live.services.hub.connections.values()}
            assert set(by_path) == {WritePath.ASGI, WritePath.DIRECT}
            for ws in (compressed, plain):
                await send_json(ws, {"type": "subscribe", "instruments": [AL30]})
                await recv_until(ws, lambda m: m["type"] == "subscribed")
            for ws in (compressed, plain):
                tick = await recv_until(ws, lambda m: m["type"] == "tick")
                assert tick["symbol"] == AL30 and tick["offer"] > tick["bid"] > 0
        writes = await writes_by_path(live)
    assert writes["direct"] > 0 and writes["asgi"] > 0
