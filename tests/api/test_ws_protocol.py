"""The WebSocket protocol of contract section 4, row by row, against a real server.

Every test runs under each uvicorn WebSocket implementation (websockets-sansio, wsproto),
with compression off and on, so both write paths (direct and ASGI) are exercised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from support.contract import DASHBOARD_ROW_FIELDS, INDICATOR_FIELDS, RATIO_FIELDS, TICK_FIELDS
from support.poll import eventually
from support.server import LiveService, live_service
from support.wsclient import closed_by_server, collect, recv_json, recv_until, send_json, ws_client
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from cotiza.settings import Settings

pytestmark = pytest.mark.live

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
DIC26 = "DLR/DIC26"
TOKEN = "s3cret-token-value"


@pytest.fixture
def make_settings(variant_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Every service of this module, ``service`` included, runs under each WebSocket variant."""
    return variant_settings


@pytest.fixture
async def busy(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveService]:
    """A service whose simulator ticks fast enough that a short window sees every symbol."""
    async with live_service(make_settings(sim_ticks_per_second=400.0)) as live:
        yield live


async def assert_alive(ws: ClientConnection) -> None:
    """The connection still answers commands."""
    await send_json(ws, {"type": "ping"})
    pong = await recv_until(ws, lambda m: m["type"] == "pong")
    assert isinstance(pong["timestamp"], float)


async def test_connection_frame_on_connect(service: LiveService) -> None:
    """A new connection is greeted with a connection frame carrying a timestamp."""
    async with websockets.connect(service.ws_url(), open_timeout=5) as ws:
        hello = await recv_json(ws)
    assert hello["type"] == "connection"
    assert hello["status"] == "connected"
    assert isinstance(hello["timestamp"], float)


@pytest.mark.parametrize("key", ["type", "action"])
async def test_ping_answers_pong(service: LiveService, key: str) -> None:
    """A ping named by type or by action is answered with a pong."""
    async with ws_client(service) as ws:
        await send_json(ws, {key: "ping"})
        pong = await recv_json(ws)
    assert pong["type"] == "pong"
    assert isinstance(pong["timestamp"], float)


@pytest.mark.parametrize("key", ["type", "action"])
async def test_subscribe_sends_snapshot_then_only_subscribed_ticks(
    busy: LiveService, key: str
) -> None:
    """Subscribing answers subscribed, one current tick per symbol, then only those symbols."""
    wanted = [AL30, DIC26]
    async with ws_client(busy) as ws:
        await send_json(ws, {key: "subscribe", "instruments": wanted})
        reply = await recv_json(ws)
        assert reply == {"type": "subscribed", "instruments": wanted}
        snapshot = [await recv_json(ws) for _ in wanted]
        assert [m["type"] for m in snapshot] == ["tick", "tick"]
        assert {m["symbol"] for m in snapshot} == set(wanted)
        for tick in snapshot:
            assert tick.keys() >= TICK_FIELDS
            assert tick["offer"] > tick["bid"] > 0
        frames = await collect(ws, 0.6)
    assert frames, "no live ticks arrived"
    assert {m["type"] for m in frames} == {"tick"}
    assert {m["symbol"] for m in frames} <= set(wanted)


async def test_unsubscribe_stops_those_ticks(busy: LiveService) -> None:
    """After unsubscribed, the dropped symbol never arrives while the kept one still flows."""
    async with ws_client(busy) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": [AL30, DIC26]})
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await send_json(ws, {"action": "unsubscribe", "instruments": [AL30]})
        reply = await recv_until(ws, lambda m: m["type"] == "unsubscribed")
        assert reply["instruments"] == [AL30]
        frames = await collect(ws, 0.6)
    symbols = [m["symbol"] for m in frames if m["type"] == "tick"]
    assert AL30 not in symbols
    assert DIC26 in symbols


async def test_no_subscription_no_ticks(busy: LiveService) -> None:
    """A connection that never subscribes receives nothing while ticks flow for others."""
    async with ws_client(busy) as silent, ws_client(busy) as listener:
        await send_json(listener, {"type": "subscribe", "instruments": [AL30]})
        await recv_until(listener, lambda m: m["type"] == "tick")
        frames = await collect(silent, 0.6)
    assert frames == []


def ratio_ids(live: LiveService, name: str) -> list[int]:
    return [p.id for p in live.services.ratios.pairs.values() if p.name == name]


def assert_ratio_frame(message: dict[str, Any]) -> None:
    assert message["type"] == "ratio"
    assert message.keys() >= RATIO_FIELDS
    assert message.keys() >= INDICATOR_FIELDS
    assert isinstance(message["asof"], float)
    assert isinstance(message["client_id"], str)


@pytest.mark.parametrize("spec", [{"pairs": "all"}, {}])
async def test_subscribe_ratios_all(busy: LiveService, spec: dict[str, Any]) -> None:
    """Subscribing to all ratios (explicitly or by default) pushes every active pair."""
    all_ids = set(busy.services.ratios.pairs)
    async with ws_client(busy) as ws:
        await send_json(ws, {"type": "subscribe_ratios", **spec})
        reply = await recv_json(ws)
        assert reply["type"] == "ratio_subscribed"
        assert set(reply["pairs"]) == all_ids
        seen: set[int] = set()

        def record(message: dict[str, Any]) -> bool:
            assert_ratio_frame(message)
            seen.add(message["pair_id"])
            return seen == all_ids

        await recv_until(ws, record)


async def test_subscribe_ratios_by_id_and_name(busy: LiveService) -> None:
    """A list of ids and "BASE-QUOTE" names subscribes to exactly those pairs."""
    gd30_mep = ratio_ids(busy, "GD30-GD30D")
    al30_mep = ratio_ids(busy, "AL30-AL30D")
    assert gd30_mep and al30_mep
    wanted = set(gd30_mep) | set(al30_mep)
    async with ws_client(busy) as ws:
        await send_json(ws, {"action": "subscribe_ratios", "pairs": [gd30_mep[0], "AL30-AL30D"]})
        reply = await recv_json(ws)
        assert reply["type"] == "ratio_subscribed"
        assert set(reply["pairs"]) == wanted
        frames = await collect(ws, 0.6)
    assert frames
    for message in frames:
        assert_ratio_frame(message)
    assert {m["pair_id"] for m in frames} == wanted
    by_id = {m["pair_id"]: m for m in frames}
    mep = by_id[al30_mep[0]]
    assert (mep["base"], mep["quote"], mep["par"]) == (AL30, AL30D, "AL30-AL30D")
    assert mep["mid_ratio"] is not None and mep["mid_ratio"] > 0


async def test_subscribe_ratios_unknown_pair_is_an_error(service: LiveService) -> None:
    """Unknown pairs are answered with an error frame and the connection stays open."""
    async with ws_client(service) as ws:
        await send_json(ws, {"type": "subscribe_ratios", "pairs": ["NOPE-NADA", 99999]})
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert "NOPE-NADA" in error["message"] and "99999" in error["message"]
        await assert_alive(ws)


def assert_dashboard_data(message: dict[str, Any]) -> None:
    assert message["type"] == "dashboard_data"
    assert message["status"] == "success"
    assert message["count"] == len(message["data"])
    assert isinstance(message["query_time_ms"], float | int)
    assert isinstance(message["timestamp"], float)
    for row in message["data"]:
        assert row.keys() >= DASHBOARD_ROW_FIELDS


@pytest.mark.parametrize(
    ("subscribe", "unsubscribe"),
    [
        ("dashboard_subscribe", "dashboard_unsubscribe"),
        ("subscribe_dashboard", "unsubscribe_dashboard"),
    ],
)
async def test_dashboard_subscribe_and_unsubscribe(
    service: LiveService, subscribe: str, unsubscribe: str
) -> None:
    """Both spellings subscribe (dashboard_subscribed then dashboard_data) and unsubscribe."""
    async with ws_client(service) as ws:
        await send_json(ws, {"type": subscribe})
        reply = await recv_json(ws)
        assert reply["type"] == "dashboard_subscribed"
        data = await recv_json(ws)
        assert_dashboard_data(data)
        assert data["count"] == len(service.services.ratios.pairs)
        await send_json(ws, {"action": unsubscribe})
        await recv_until(ws, lambda m: m["type"] == "dashboard_unsubscribed")
        # Three refresh intervals without a push prove the subscription is gone.
        frames = await collect(ws, 3 * service.settings.dashboard_refresh_interval)
    assert frames == []


@pytest.mark.parametrize("command", ["get_data", "dashboard_get_data"])
async def test_get_data_answers_one_dashboard_data(service: LiveService, command: str) -> None:
    """A one-off dashboard query answers exactly one dashboard_data without subscribing."""
    async with ws_client(service) as ws:
        await send_json(ws, {"type": command})
        assert_dashboard_data(await recv_json(ws))
        assert not service.services.dashboard.running
        frames = await collect(ws, 3 * service.settings.dashboard_refresh_interval)
    assert frames == []


@pytest.mark.parametrize("command", ["get_status", "dashboard_status"])
async def test_get_status_reports_counts(service: LiveService, command: str) -> None:
    """The status frame counts active connections and dashboard subscribers."""
    async with ws_client(service) as watcher, ws_client(service) as ws:
        await send_json(watcher, {"type": "dashboard_subscribe"})
        await recv_until(watcher, lambda m: m["type"] == "dashboard_subscribed")
        await send_json(ws, {"action": command})
        status = await recv_json(ws)
    assert status["type"] == "status"
    assert status["active_connections"] == 2
    assert status["dashboard_subscribers"] == 1


BAD_FRAMES = [
    "this is not JSON",
    "{",
    "[1, 2, 3]",
    '"ping"',
    "42",
    "{}",
    '{"type": 7}',
    '{"type": "launch_rockets"}',
    '{"action": "nope"}',
    '{"type": "subscribe"}',
    '{"type": "subscribe", "instruments": "MERV - XMEV - AL30 - 24hs"}',
    '{"type": "subscribe", "instruments": []}',
    '{"type": "subscribe", "instruments": [1, 2]}',
    '{"type": "subscribe", "instruments": [""]}',
    '{"type": "unsubscribe", "instruments": {"a": 1}}',
    '{"type": "subscribe_ratios", "pairs": []}',
    '{"type": "subscribe_ratios", "pairs": 5}',
]


async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    service: LiveService,
) -> None:
    """Invalid JSON, non-objects, unknown commands and bad fields answer an error frame."""
    async with ws_client(service) as ws:
        for frame in BAD_FRAMES:
            await ws.send(frame)
            error = await recv_json(ws)
            assert error["type"] == "error", frame
            assert isinstance(error["message"], str) and error["message"], frame
            await assert_alive(ws)


async def test_connection_limit_closes_with_1013(
    make_settings: Callable[..., Settings],
) -> None:
    """The connection past MAX_WEBSOCKET_CONNECTIONS is closed with 1013 Too many connections."""
    async with live_service(make_settings(max_websocket_connections=2)) as live:
        async with ws_client(live), ws_client(live) as second:
            async with websockets.connect(live.ws_url(), open_timeout=5) as third:
                closed = await closed_by_server(third)
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (1013, "Too many connections")
            await assert_alive(second)
        await eventually(lambda: not live.services.hub.connections, message="connections gone")
        async with ws_client(live, "/ws/dashboard") as again:
            await assert_alive(again)


async def test_token_required_when_configured(make_settings: Callable[..., Settings]) -> None:
    """With API_TOKEN set, a missing or wrong token closes 1008; query and Bearer are accepted."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        for url in (live.ws_url(), live.ws_url() + "?token=wrong"):
            async with websockets.connect(url, open_timeout=5) as ws:
                closed = await closed_by_server(ws)
            assert closed.rcvd is not None and closed.rcvd.code == 1008, url
        async with websockets.connect(
            live.ws_url(), open_timeout=5, additional_headers={"Authorization": "Bearer nope"}
        ) as ws:
            closed = await closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        async with ws_client(live, f"/ws/cotizaciones?token={TOKEN}") as ws:
            await assert_alive(ws)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with ws_client(live, "/ws/dashboard", additional_headers=headers) as ws:
            await assert_alive(ws)


async def test_origin_outside_allowed_is_rejected(
    make_settings: Callable[..., Settings],
) -> None:
    """A browser Origin outside ALLOWED_ORIGINS fails the handshake; an allowed one connects."""
    settings = make_settings(allowed_origins="https://trader.example")
    async with live_service(settings) as live:
        with pytest.raises(InvalidStatus) as rejected:
            async with websockets.connect(
                live.ws_url(), open_timeout=5, origin="https://evil.example"
            ):
                pass
        assert rejected.value.response.status_code == 403
        async with ws_client(live, origin="https://trader.example") as ws:
            await assert_alive(ws)
        async with ws_client(live) as ws:  # not a browser: no Origin header at all
            await assert_alive(ws)
        assert live.services.hub.stats.rejected == 1


async def test_oversized_frame_closes_with_1009(make_settings: Callable[..., Settings]) -> None:
    """A frame over the size limit closes the connection with 1009."""
    settings = make_settings(ws_max_frame_bytes=1024)
    async with live_service(settings) as live, ws_client(live) as ws:
        await send_json(ws, {"type": "ping", "padding": "x" * 900})
        await recv_until(ws, lambda m: m["type"] == "pong")
        await send_json(ws, {"type": "ping", "padding": "x" * 2048})
        closed = await closed_by_server(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1009


async def test_command_flood_closes_with_1008(make_settings: Callable[..., Settings]) -> None:
    """Commands past the per-connection rate limit close the connection with 1008."""
    settings = make_settings(ws_rate_limit=2.0, ws_rate_burst=5)
    async with live_service(settings) as live:
        async with ws_client(live) as ws:
            for _ in range(30):
                await send_json(ws, {"type": "ping"})
            closed = await closed_by_server(ws)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "Rate limit exceeded")
        async with ws_client(live) as ws:  # the limit is per connection
            await assert_alive(ws)


async def test_keepalive_ping_after_silence(make_settings: Callable[..., Settings]) -> None:
    """A silent client receives a JSON ping keep-alive (after WS_IDLE_PING_AFTER) and stays
    connected."""
    settings = make_settings(ws_idle_ping_after=0.3)
    async with live_service(settings) as live, ws_client(live) as ws:
        ping = await recv_json(ws, timeout=3)
        assert ping["type"] == "ping"
        assert isinstance(ping["timestamp"], float)
        await assert_alive(ws)


async def test_dashboard_path_speaks_the_same_protocol(busy: LiveService) -> None:
    """/ws/dashboard answers pings, ticks, ratios, status and dashboard commands alike."""
    async with ws_client(busy, "/ws/dashboard") as ws:
        await assert_alive(ws)
        await send_json(ws, {"type": "subscribe", "instruments": [AL30D]})
        assert (await recv_json(ws))["type"] == "subscribed"
        tick = await recv_json(ws)
        assert tick["type"] == "tick" and tick["symbol"] == AL30D
        await send_json(ws, {"type": "unsubscribe", "instruments": [AL30D]})
        await recv_until(ws, lambda m: m["type"] == "unsubscribed")
        await send_json(ws, {"action": "subscribe_ratios", "pairs": ["AL30-AL30D"]})
        await recv_until(ws, lambda m: m["type"] == "ratio_subscribed")
        assert_ratio_frame(await recv_until(ws, lambda m: m["type"] == "ratio"))
        await send_json(ws, {"type": "unsubscribe_ratios"})
        await recv_until(ws, lambda m: m["type"] == "ratio_unsubscribed")
        await send_json(ws, {"action": "subscribe_dashboard"})
        await recv_until(ws, lambda m: m["type"] == "dashboard_subscribed")
        assert_dashboard_data(await recv_until(ws, lambda m: m["type"] == "dashboard_data"))
        await send_json(ws, {"type": "dashboard_status"})
        status = await recv_until(ws, lambda m: m["type"] == "status")
        assert status["dashboard_subscribers"] == 1
        await ws.send(json.dumps({"type": "unknown"}))
        assert (await recv_until(ws, lambda m: m["type"] == "error"))["message"]
        await assert_alive(ws)


async def test_shutdown_closes_clients_with_1001(make_settings: Callable[..., Settings]) -> None:
    """Stopping the server closes every client with 1001 going away."""
    async with (
        live_service(make_settings()) as live,
        ws_client(live) as first,
        ws_client(live, "/ws/dashboard") as second,
    ):
        stopping = asyncio.create_task(live.stop())
        closes = [await closed_by_server(ws) for ws in (first, second)]
        await stopping
    for closed in closes:
        assert closed.rcvd is not None and closed.rcvd.code == 1001


async def test_drain_closes_clients_with_1012(make_settings: Callable[..., Settings]) -> None:
    """A drain before a planned restart closes clients with 1012 and turns new ones away."""
    async with live_service(make_settings()) as live, live.http() as http:
        async with ws_client(live) as ws:
            response = await http.post("/admin/drain")
            assert response.status_code == 200
            assert response.json()["closed"] == 1
            closed = await closed_by_server(ws)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1012, "Service restart")
        async with websockets.connect(live.ws_url(), open_timeout=5) as late:
            refused = await closed_by_server(late)
        assert refused.rcvd is not None and refused.rcvd.code == 1013
        assert (await http.get("/readyz")).status_code == 503
