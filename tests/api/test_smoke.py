"""End-to-end smoke checks of the running service."""

from __future__ import annotations

import json

import pytest
from support.server import LiveService
from support.wsclient import recv_until, ws_client

pytestmark = pytest.mark.live


async def test_health_answers(service: LiveService) -> None:
    """The basic health endpoint answers 200 with status healthy and a timestamp."""
    async with service.http() as http:
        response = await http.get("/cotizaciones/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert isinstance(body["timestamp"], float)
    assert response.headers["cache-control"] == "no-store"


async def test_subscribe_receives_ticks(service: LiveService) -> None:
    """A subscriber gets the snapshot tick of its instrument and then live ones."""
    symbol = "MERV - XMEV - AL30 - 24hs"
    async with ws_client(service) as ws:
        await ws.send(json.dumps({"type": "subscribe", "instruments": [symbol]}))
        reply = await recv_until(ws, lambda m: m["type"] == "subscribed")
        assert reply["instruments"] == [symbol]
        tick = await recv_until(ws, lambda m: m["type"] == "tick")
        assert tick["symbol"] == symbol
        assert tick["offer"] > tick["bid"] > 0
