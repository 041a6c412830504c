"""The hub's direct frame writes: valid RFC 6455 frames, used under uvicorn."""

from __future__ import annotations

import json

import pytest
from support.server import LiveService
from support.wsclient import recv_until, ws_client
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from cotiza.ws.frames import text_frame
from cotiza.ws.transport import WritePath


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_text_frame_parses_as_one_text_message(size: int) -> None:
    """A client protocol reads each length encoding back as exactly the text written."""
    client = ClientProtocol(parse_uri("ws://example/"), max_size=None, state=State.OPEN)
    text = ("é" * size)[:size]
    client.receive_data(text_frame(text.encode()))
    [event] = client.events_received()
    assert event.opcode is Opcode.TEXT and event.fin
    assert event.data.decode() == text


@pytest.mark.live
async def test_live_connections_use_direct_writes(service: LiveService) -> None:
    """Under uvicorn the fast path is active, and a large reply still arrives intact."""
    async with ws_client(service) as ws:
        conn = next(iter(service.services.hub.connections.values()))
        assert conn.write_path is WritePath.DIRECT
        symbols = service.services.feed.instruments
        await ws.send(json.dumps({"type": "subscribe", "instruments": symbols}))
        reply = await recv_until(ws, lambda m: m["type"] == "subscribed")
        assert reply["instruments"] == symbols
        await ws.send(json.dumps({"type": "get_data"}))
        data = await recv_until(ws, lambda m: m["type"] == "dashboard_data")
        assert data["status"] == "success"
