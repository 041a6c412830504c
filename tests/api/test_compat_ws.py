"""The prototype's WebSocket shapes (issue 9), stated against a running service."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from support.server import LiveService, live_service
from support.wsclient import collect, recv_json, recv_until, send_json, ws_client

from cotiza.settings import Settings
from cotiza.storage.tables import ratio_hours

AL30 = "MERV - XMEV - AL30 - 24hs"

pytestmark = pytest.mark.live


def ticks(frames: list[dict[str, Any]]) -> set[str]:
    return {m["symbol"] for m in frames if m["type"] == "tick"}


async def test_welcome_and_dashboard_replies_carry_a_spanish_message(
    service: LiveService,
) -> None:
    """connection, dashboard_subscribed and dashboard_unsubscribed say what happened, in Spanish."""
    async with websockets.connect(service.ws_url("/ws/dashboard"), open_timeout=5) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection" and hello["status"] == "connected"
        assert hello["message"] == "Conectado al servicio de cotizaciones"
        await send_json(ws, {"action": "dashboard_subscribe"})
        subscribed = await recv_json(ws)  # the very next frame, as the prototype's script reads
        assert subscribed["type"] == "dashboard_subscribed"
        await send_json(ws, {"action": "dashboard_unsubscribe"})
        unsubscribed = await recv_until(ws, lambda m: m["type"] == "dashboard_unsubscribed")
    assert subscribed["message"] == "Suscripto a las actualizaciones del dashboard"
    assert unsubscribed["message"] == "Desuscripto de las actualizaciones del dashboard"


async def test_dashboard_pong_names_itself_by_type_and_action(service: LiveService) -> None:
    """/ws/dashboard answers ping with type and action both "pong"."""
    async with ws_client(service, "/ws/dashboard") as ws:
        await send_json(ws, {"action": "ping"})
        pong = await recv_json(ws)
    assert (pong["type"], pong["action"]) == ("pong", "pong")


async def test_action_is_read_first_and_names_are_case_insensitive(service: LiveService) -> None:
    """action wins over type; PING and Get_Status are the same commands as ping and get_status."""
    async with ws_client(service) as ws:
        await send_json(ws, {"action": "ping", "type": "get_status"})
        assert (await recv_json(ws))["type"] == "pong"
        await send_json(ws, {"type": "PING"})
        assert (await recv_json(ws))["type"] == "pong"
        await send_json(ws, {"action": "Get_Status"})
        assert (await recv_json(ws))["type"] == "status"
        await send_json(ws, {"action": "nope", "type": "ping"})
        error = await recv_json(ws)
    assert error["type"] == "error" and "nope" in error["message"]


async def test_dashboard_error_has_status_and_error(service: LiveService) -> None:
    """A failed dashboard query answers with status "error", error and message."""
    async with ws_client(service, "/ws/dashboard") as ws:
        async with service.services.database.engine.begin() as conn:
            await conn.run_sync(ratio_hours.drop)
        await send_json(ws, {"action": "get_data"})
        error = await recv_until(ws, lambda m: m["type"] == "dashboard_error")
        async with service.services.database.engine.begin() as conn:
            await conn.run_sync(ratio_hours.create)
    assert error["status"] == "error"
    assert isinstance(error["error"], str) and error["error"] == error["message"]


async def test_a_silent_connection_gets_every_tick_until_it_subscribes(
    service: LiveService,
) -> None:
    """A silent client gets every tick (after WS_BROADCAST_GRACE, 1 s); subscribe narrows it."""
    assert service.settings.ws_broadcast_grace == 1.0
    async with ws_client(service, everything=True) as ws:
        before = await collect(ws, 2.5)
        assert len(ticks(before)) >= 3, ticks(before)
        await send_json(ws, {"action": "subscribe", "instruments": [AL30]})
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        after = await collect(ws, 1.5)
    assert ticks(after) == {AL30}


async def test_a_first_ping_is_answered_before_any_tick(service: LiveService) -> None:
    """As the prototype's scripts expect: welcome, ping, then pong is the very next frame;
    every tick follows while the client subscribes to nothing."""
    for _ in range(3):
        async with ws_client(service, everything=True) as ws:
            await send_json(ws, {"type": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
            after = await collect(ws, 1.0)
        assert len(ticks(after)) >= 3, ticks(after)


async def test_any_subscription_command_narrows(service: LiveService) -> None:
    """dashboard_subscribe or subscribe_ratios as the first command stops the tick broadcast."""
    commands = [
        ({"action": "dashboard_subscribe"}, "dashboard_subscribed"),
        ({"action": "subscribe_ratios", "pairs": "all"}, "ratio_subscribed"),
    ]
    for command, reply in commands:
        async with ws_client(service, everything=True) as ws:
            await recv_until(ws, lambda m: m["type"] == "tick")
            await send_json(ws, command)
            await recv_until(ws, lambda m, r=reply: m["type"] == r)
            after = await collect(ws, 1.0)
        assert ticks(after) == set(), command
        if reply == "ratio_subscribed":
            assert any(m["type"] == "ratio" for m in after)


async def test_json_ping_waits_for_long_silence(make_settings: Callable[..., Settings]) -> None:
    """With protocol pings every 0.2 s, no JSON ping comes before WS_IDLE_PING_AFTER (300 s)."""
    settings = make_settings(ws_keepalive_interval=0.2)
    assert settings.ws_idle_ping_after == 300
    async with live_service(settings) as live, ws_client(live) as ws:
        quiet = await collect(ws, 1.5)
        await send_json(ws, {"action": "ping"})
        pong = await recv_json(ws)
    assert [m for m in quiet if m["type"] == "ping"] == []
    assert pong["type"] == "pong"
