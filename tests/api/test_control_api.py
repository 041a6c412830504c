"""Feed control endpoints: start, stop, restart in any order, and their token."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from support.poll import eventually
from support.server import LiveService, live_service, named_tasks
from support.wsclient import ws_client

from cotiza.settings import Settings

pytestmark = pytest.mark.live

AL30 = "MERV - XMEV - AL30 - 24hs"
DIC26 = "DLR/DIC26"
TOKEN = "ctl-token-9f8e7d6c5b4a"
CONTROL = ("iniciar", "detener", "reiniciar", "iniciar_auto")


@pytest.fixture
async def idle(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveService]:
    """A service whose feed has not been started."""
    async with live_service(make_settings(feed_autostart=False)) as live:
        yield live


async def post(http: httpx.AsyncClient, action: str, body: Any = None) -> dict[str, Any]:
    response = await http.post(f"/cotizaciones/{action}", json=body)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    assert reply["status"] == "success"
    return reply


async def assert_running(live: LiveService) -> None:
    """The feed runs as exactly one task and ticks keep arriving."""
    feed = live.services.feed
    cache = live.services.cache
    assert feed.state.value == "running" and feed.running
    assert len(named_tasks("feed-")) == 1
    before = cache.updates
    await eventually(lambda: cache.updates > before + 3, message="ticks flowing")


async def assert_stopped(live: LiveService) -> None:
    """No feed task is left and no tick arrives over a short window."""
    feed = live.services.feed
    cache = live.services.cache
    assert feed.state.value == "stopped" and not feed.running
    assert named_tasks("feed-") == []
    before = cache.updates
    await asyncio.sleep(0.3)  # asserting that nothing happens over a window
    assert cache.updates == before


async def test_start_with_and_without_instruments(idle: LiveService) -> None:
    """iniciar with instrumentos runs exactly those; without a body it runs the configuration."""
    async with idle.http() as http:
        reply = await post(http, "iniciar", {"instrumentos": [AL30, DIC26]})
        assert reply["message"] == "feed started"
        assert reply["state"] == "running"
        assert reply["instruments"] == [AL30, DIC26]
        await assert_running(idle)
        assert set(idle.services.cache.symbols()) == {AL30, DIC26}
        reply = await post(http, "iniciar", {"instrumentos": [AL30, DIC26]})
        assert reply["message"] == "feed already running"
        reply = await post(http, "iniciar")
        assert reply["message"] == "feed started"
        assert len(reply["instruments"]) == 21
        await assert_running(idle)
        await eventually(lambda: len(idle.services.cache.symbols()) == 21, message="all symbols")


async def test_start_with_unknown_instrument_is_422(idle: LiveService) -> None:
    """An unknown instrument is refused with 422 and a detail, leaving the feed as it was."""
    async with idle.http() as http:
        response = await http.post(
            "/cotizaciones/iniciar", json={"instrumentos": [AL30, "NOPE - 24hs"]}
        )
        assert response.status_code == 422
        assert "NOPE - 24hs" in response.json()["detail"]
        await assert_stopped(idle)
        await post(http, "iniciar", {"instrumentos": [AL30]})
        response = await http.post("/cotizaciones/reiniciar", json={"instrumentos": ["NOPE"]})
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], str)
        assert idle.services.feed.instruments == [AL30]
        await assert_running(idle)
        response = await http.post("/cotizaciones/iniciar", json={"instrumentos": "AL30"})
        assert response.status_code == 422
        assert "detail" in response.json()


async def test_stop_twice_and_start_twice(service: LiveService) -> None:
    """Repeated stops and starts are harmless and say what they did."""
    async with service.http() as http:
        await assert_running(service)
        assert (await post(http, "detener"))["message"] == "feed stopped"
        await assert_stopped(service)
        assert (await post(http, "detener"))["message"] == "feed was not running"
        await assert_stopped(service)
        assert (await post(http, "iniciar"))["message"] == "feed started"
        await assert_running(service)
        assert (await post(http, "iniciar"))["message"] == "feed already running"
        await assert_running(service)


async def test_restart_when_running_and_when_stopped(service: LiveService) -> None:
    """reiniciar replaces a running feed and revives a stopped one, keeping its instruments."""
    feed = service.services.feed
    async with service.http() as http:
        starts = feed.starts
        reply = await post(http, "reiniciar", {"instrumentos": [DIC26]})
        assert reply["message"] == "feed restarted" and reply["instruments"] == [DIC26]
        assert feed.starts == starts + 1
        await assert_running(service)
        await post(http, "detener")
        await assert_stopped(service)
        reply = await post(http, "reiniciar")
        assert reply["state"] == "running" and reply["instruments"] == [DIC26]
        await assert_running(service)
        await post(http, "reiniciar")
        assert feed.starts == starts + 3
        await assert_running(service)


async def test_iniciar_auto_uses_the_configuration(
    make_settings: Callable[..., Settings],
) -> None:
    """iniciar_auto starts FEED_INSTRUMENTS, and a repeat reports it already running."""
    settings = make_settings(feed_autostart=False, feed_instruments=f"{AL30},{DIC26}")
    async with live_service(settings) as live, live.http() as http:
        reply = await post(http, "iniciar_auto")
        assert reply["message"] == "feed started"
        assert reply["instruments"] == [AL30, DIC26]
        await assert_running(live)
        assert (await post(http, "iniciar_auto"))["message"] == "feed already running"
        await post(http, "detener")
        await assert_stopped(live)
        await post(http, "iniciar_auto")
        await assert_running(live)


async def test_concurrent_mixed_calls_leave_a_consistent_state(service: LiveService) -> None:
    """Ten concurrent mixed control calls serialise and leave at most one feed task."""
    rng = random.Random(7)
    async with service.http() as http:
        for _ in range(3):
            actions = [rng.choice(CONTROL) for _ in range(10)]
            replies = await asyncio.gather(*(post(http, a) for a in actions))
            assert len(replies) == 10
            feed = service.services.feed
            if feed.state.value == "running":
                await assert_running(service)
            else:
                await assert_stopped(service)
        await post(http, "detener")
        await assert_stopped(service)
        await asyncio.gather(*(post(http, a) for a in ("iniciar", "reiniciar") * 5))
        await assert_running(service)


async def test_control_needs_the_token(make_settings: Callable[..., Settings]) -> None:
    """With API_TOKEN set, control calls are 401 without a valid token and 200 with Bearer."""
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        for action in CONTROL:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = await http.post(f"/cotizaciones/{action}", headers=headers)
                assert response.status_code == 401, (action, headers)
                assert response.json()["detail"]
                assert response.headers["www-authenticate"] == "Bearer"
        pair = {"base": AL30, "quote": DIC26}
        assert (await http.post("/api/ratios/pairs", json=pair)).status_code == 401
        assert (await http.delete("/api/ratios/pairs/1")).status_code == 401
        await assert_running(live)
        good = {"Authorization": f"Bearer {TOKEN}"}
        for action in ("detener", "iniciar", "reiniciar", "iniciar_auto"):
            response = await http.post(f"/cotizaciones/{action}", headers=good)
            assert response.status_code == 200, action
        await assert_running(live)
        # Reading needs no token.
        assert (await http.get("/cotizaciones/status")).status_code == 200


async def test_token_never_appears_in_responses(make_settings: Callable[..., Settings]) -> None:
    """No endpoint ever returns the configured token, even to a caller who presented it."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            live.http(headers=good) as http,
            ws_client(live, f"/ws/cotizaciones?token={TOKEN}"),
        ):
            bodies = [
                (await http.post(f"/cotizaciones/{action}")).text
                for action in ("detener", "iniciar", "reiniciar")
            ]
            for path in (
                "/health/detailed",
                "/livez",
                "/readyz",
                "/cotizaciones/status",
                "/cotizaciones/websocket_status",
                "/metrics",
                "/api/ratios/pairs",
                "/openapi.json",
            ):
                response = await http.get(path)
                assert response.status_code in {200, 503}, path
                bodies.append(response.text)
    for body in bodies:
        assert TOKEN not in body
