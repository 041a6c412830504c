"""The dashboard broadcast worker: one per process, driven by its subscribers."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest
from support.poll import eventually
from support.server import LiveService, live_service, named_tasks
from support.wsclient import collect, recv_json, recv_until, send_json, ws_client
from websockets.asyncio.client import ClientConnection

from cotiza.settings import Settings
from cotiza.storage.tables import ratio_hours

pytestmark = pytest.mark.live

WORKER = "dashboard-worker"


async def subscribe(ws: ClientConnection) -> None:
    await send_json(ws, {"type": "dashboard_subscribe"})
    await recv_until(ws, lambda m: m["type"] == "dashboard_subscribed")


async def unsubscribe(ws: ClientConnection) -> None:
    await send_json(ws, {"type": "dashboard_unsubscribe"})
    await recv_until(ws, lambda m: m["type"] == "dashboard_unsubscribed")


@contextlib.asynccontextmanager
async def subscribers(live: LiveService, count: int) -> AsyncIterator[list[ClientConnection]]:
    """``count`` connections, alternating paths, each subscribed to the dashboard."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i in range(count):
            path = "/ws/dashboard" if i % 2 else "/ws/cotizaciones"
            ws = await stack.enter_async_context(ws_client(live, path))
            await subscribe(ws)
            clients.append(ws)
        yield clients


async def test_one_worker_however_many_subscribers(service: LiveService) -> None:
    """Eight subscribers on both paths share exactly one worker task, started once."""
    worker = service.services.dashboard
    async with subscribers(service, 8) as clients:
        for ws in clients:
            await recv_until(ws, lambda m: m["type"] == "dashboard_data")
        assert worker.subscribers == 8
        assert worker.starts == 1
        assert worker.running
        assert len(named_tasks(WORKER)) == 1
        # Re-subscribing an existing subscriber changes nothing.
        await subscribe(clients[0])
        assert (worker.starts, worker.subscribers, len(named_tasks(WORKER))) == (1, 8, 1)


async def test_last_unsubscribe_stops_the_worker(service: LiveService) -> None:
    """The worker runs while anyone subscribes and stops when the last one unsubscribes."""
    worker = service.services.dashboard
    assert not worker.running and named_tasks(WORKER) == []
    async with subscribers(service, 2) as (first, second):
        await unsubscribe(first)
        assert worker.running and worker.subscribers == 1
        await unsubscribe(second)
        await eventually(lambda: not worker.running, message="worker stopped")
        assert named_tasks(WORKER) == []
        assert worker.status()["state"] == "stopped"
        await subscribe(first)
        assert worker.running and worker.starts == 2
        assert len(named_tasks(WORKER)) == 1


async def test_abrupt_disconnect_of_last_subscriber_stops_the_worker(
    service: LiveService,
) -> None:
    """A subscriber that vanishes without a close handshake still releases the worker."""
    worker = service.services.dashboard
    async with subscribers(service, 2) as (polite, rude):
        await polite.close()
        await eventually(lambda: worker.subscribers == 1, message="polite client gone")
        assert worker.running
        rude.transport.abort()
        await eventually(
            lambda: not worker.running and worker.subscribers == 0, message="worker stopped"
        )
    assert named_tasks(WORKER) == []


async def test_cached_snapshot_is_sent_at_once(make_settings: Callable[..., Settings]) -> None:
    """A later subscriber gets the cached table at once, long before the next refresh."""
    async with live_service(make_settings(dashboard_refresh_interval=30.0)) as live:
        worker = live.services.dashboard
        async with ws_client(live) as first, ws_client(live) as second:
            await subscribe(first)
            fresh = await recv_until(first, lambda m: m["type"] == "dashboard_data")
            started = time.monotonic()
            await subscribe(second)
            cached = await recv_json(second, timeout=25.0)  # the next refresh is 30 s away
            elapsed = time.monotonic() - started
    assert cached == fresh
    assert elapsed < 5.0, elapsed  # at once: a loaded machine takes well under this
    assert worker.runs == 1  # only the cache can explain the second copy


async def test_pushes_every_refresh_interval(make_settings: Callable[..., Settings]) -> None:
    """A subscriber receives one dashboard_data per DASHBOARD_REFRESH_INTERVAL."""
    settings = make_settings(dashboard_refresh_interval=0.2)
    async with live_service(settings) as live, ws_client(live) as ws:
        await subscribe(ws)
        await recv_until(ws, lambda m: m["type"] == "dashboard_data")
        frames = await collect(ws, 1.2)
    pushes = [m for m in frames if m["type"] == "dashboard_data"]
    # Six are due; the bounds tolerate a loaded machine without accepting a busy loop.
    assert 3 <= len(pushes) <= 8, len(pushes)
    stamps = [m["timestamp"] for m in pushes]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) > 0.1, gaps


async def test_subscriber_limit_answers_an_error(make_settings: Callable[..., Settings]) -> None:
    """DASHBOARD_MAX_SUBSCRIBERS is enforced with an error frame on a connection left open."""
    async with live_service(make_settings(dashboard_max_subscribers=2)) as live:
        worker = live.services.dashboard
        async with subscribers(live, 2) as (first, _), ws_client(live) as third:
            await send_json(third, {"type": "subscribe_dashboard"})
            error = await recv_until(third, lambda m: m["type"] == "error")
            assert "limit" in error["message"]
            assert worker.subscribers == 2
            await send_json(third, {"type": "ping"})
            await recv_until(third, lambda m: m["type"] == "pong")
            frames = await collect(third, 2 * live.settings.dashboard_refresh_interval)
            assert [m for m in frames if m["type"].startswith("dashboard")] == []
            await unsubscribe(first)
            await subscribe(third)
            await recv_until(third, lambda m: m["type"] == "dashboard_data")
            assert worker.subscribers == 2 and worker.starts == 1


async def test_query_failure_sends_dashboard_error_and_recovers(service: LiveService) -> None:
    """A failing query pushes dashboard_error; the worker survives and resumes once fixed."""
    services = service.services
    worker = services.dashboard
    async with ws_client(service) as ws, ws_client(service) as asker, service.http() as http:
        await subscribe(ws)
        await recv_until(ws, lambda m: m["type"] == "dashboard_data")
        async with services.database.engine.begin() as conn:
            await conn.run_sync(ratio_hours.drop)
        error = await recv_until(ws, lambda m: m["type"] != "dashboard_data")
        assert error["type"] == "dashboard_error"
        assert isinstance(error["message"], str) and isinstance(error["timestamp"], float)
        assert worker.running and worker.errors >= 1
        assert worker.status()["last_error"]
        # The one-off query and the HTTP table report the same failure, each in its own way.
        await send_json(asker, {"type": "get_data"})
        assert (await recv_json(asker))["type"] == "dashboard_error"
        response = await http.get("/api/ratios/dashboard")
        assert response.status_code == 503
        assert "ratio_hours" in response.json()["detail"]
        async with services.database.engine.begin() as conn:
            await conn.run_sync(ratio_hours.create)
        recovered = await recv_until(ws, lambda m: m["type"] == "dashboard_data")
        assert recovered["status"] == "success"
        assert worker.running and worker.starts == 1
        assert len(named_tasks(WORKER)) == 1
