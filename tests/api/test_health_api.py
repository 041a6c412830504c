"""Health, status and metrics endpoints of contract section 3."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.poll import eventually
from support.server import LiveService, live_service, named_tasks
from support.wsclient import recv_until, send_json, ws_client

from cotiza.settings import Settings

pytestmark = pytest.mark.live

HEALTH_JSON = "application/health+json"
CHECK_NAMES = {
    "event_loop:lag",
    "feed:staleness",
    "feed:state",
    "database:responseTime",
    "workers:running",
    "process:memory",
}
# Generous loop-lag thresholds: a busy test machine must not make a healthy service degraded.
CALM = {"loop_lag_warn": 5.0, "loop_lag_fail": 10.0}


async def get_json(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await http.get(path)
    body: dict[str, Any] = response.json()
    return body


def check(body: dict[str, Any], name: str) -> dict[str, Any]:
    entries = body["checks"][name]
    assert isinstance(entries, list) and len(entries) == 1
    entry: dict[str, Any] = entries[0]
    return entry


async def test_basic_health_is_healthy_and_uncached(service: LiveService) -> None:
    """/cotizaciones/health answers 200 healthy with the current epoch and no-store."""
    async with service.http() as http:
        response = await http.get("/cotizaciones/health")
    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"status", "timestamp"}
    assert body["status"] == "healthy"
    assert abs(body["timestamp"] - time.time()) < 5
    assert response.headers["cache-control"] == "no-store"


async def test_detailed_health_fields_have_real_types(service: LiveService) -> None:
    """Every field of /health/detailed is a real boolean or integer, and every check is shaped."""
    async with service.http() as http:
        response = await http.get("/health/detailed")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] in {"healthy", "degraded"}
    assert isinstance(body["timestamp"], float)
    assert type(body["websocket_connections"]) is int
    assert type(body["dashboard_subscribers"]) is int
    assert type(body["dashboard_worker_running"]) is bool
    assert body["event_loop_available"] is True
    assert body["checks"].keys() >= CHECK_NAMES
    for name, entries in body["checks"].items():
        assert ":" in name
        for entry in entries:
            assert entry["status"] in {"pass", "warn", "fail"}, name
            assert {"status", "observedValue", "time"} <= entry.keys(), name
    assert check(body, "database:responseTime")["status"] == "pass"
    assert check(body, "database:responseTime")["observedUnit"] == "ms"
    workers = check(body, "workers:running")
    assert workers["status"] == "pass"
    assert all(type(v) is bool for v in workers["observedValue"].values())
    assert isinstance(check(body, "process:memory")["observedValue"], float)
    assert check(body, "feed:state")["observedValue"] == "connected"


async def test_detailed_health_reflects_connections_and_dashboard(service: LiveService) -> None:
    """Connection and dashboard counters follow the clients, and the worker flag its life."""
    async with service.http() as http:
        assert (await get_json(http, "/health/detailed"))["websocket_connections"] == 0
        async with ws_client(service) as first, ws_client(service, "/ws/dashboard"):
            body = await get_json(http, "/health/detailed")
            assert body["websocket_connections"] == 2
            assert body["dashboard_subscribers"] == 0
            assert body["dashboard_worker_running"] is False
            await send_json(first, {"type": "dashboard_subscribe"})
            await recv_until(first, lambda m: m["type"] == "dashboard_subscribed")
            body = await get_json(http, "/health/detailed")
            assert body["dashboard_subscribers"] == 1
            assert body["dashboard_worker_running"] is True
            assert check(body, "workers:running")["observedValue"]["dashboard_worker"] is True
            await send_json(first, {"type": "dashboard_unsubscribe"})
            await recv_until(first, lambda m: m["type"] == "dashboard_unsubscribed")
            body = await get_json(http, "/health/detailed")
            assert body["dashboard_subscribers"] == 0
            assert body["dashboard_worker_running"] is False

        async def closed() -> bool:
            return (await get_json(http, "/health/detailed"))["websocket_connections"] == 0

        await eventually(closed, message="connections counted down")


async def test_stopped_feed_degrades_and_fails_readiness_only(
    make_settings: Callable[..., Settings],
) -> None:
    """A feed stopped in market hours degrades health and fails readyz while livez stays 200."""
    settings = make_settings(feed_warn_after=0.3, feed_fail_after=0.3, **CALM)
    async with live_service(settings) as live, live.http() as http:

        async def status_is(wanted: str, ready: int) -> bool:
            body = await get_json(http, "/health/detailed")
            return body["status"] == wanted and (await http.get("/readyz")).status_code == ready

        await eventually(lambda: status_is("healthy", 200), message="healthy while running")
        assert (await http.post("/cotizaciones/detener")).status_code == 200
        await eventually(lambda: status_is("degraded", 503), message="degraded once stopped")
        body = await get_json(http, "/health/detailed")
        assert check(body, "feed:state")["status"] == "warn"
        assert check(body, "feed:staleness")["status"] == "fail"
        readyz = await http.get("/readyz")
        assert readyz.headers["content-type"].startswith(HEALTH_JSON)
        assert readyz.json()["status"] == "fail"
        livez = await http.get("/livez")
        assert livez.status_code == 200
        assert livez.json()["status"] == "pass"
        assert (await http.post("/cotizaciones/iniciar")).status_code == 200
        await eventually(lambda: status_is("healthy", 200), message="healthy once restarted")


async def test_feed_that_never_delivered_is_not_fresh(
    make_settings: Callable[..., Settings],
) -> None:
    """Without a single tick during market hours the staleness check does not pass."""
    settings = make_settings(feed_autostart=False, **CALM)
    async with live_service(settings) as live, live.http() as http:
        body = await get_json(http, "/health/detailed")
    staleness = check(body, "feed:staleness")
    assert staleness["status"] != "pass"
    assert staleness["observedValue"] is None
    assert "no data" in staleness["output"]
    assert check(body, "feed:state")["status"] != "pass"
    assert body["status"] == "degraded"


async def test_livez_and_readyz_speak_health_json(make_settings: Callable[..., Settings]) -> None:
    """/livez and /readyz answer application/health+json with pass while all is well."""
    async with live_service(make_settings(**CALM)) as live, live.http() as http:
        for path in ("/livez", "/readyz"):

            async def passing(path: str = path) -> bool:
                return (await http.get(path)).status_code == 200

            await eventually(passing, message=f"{path} passing")
            response = await http.get(path)
            assert response.headers["content-type"].startswith(HEALTH_JSON), path
            assert response.headers["cache-control"] == "no-store"
            body = response.json()
            assert body["status"] == "pass"
            assert isinstance(body["checks"], dict)
        livez = await get_json(http, "/livez")
        # Liveness never depends on anything outside the process.
        assert "database:responseTime" not in livez["checks"]
        assert "feed:staleness" not in livez["checks"]
        readyz = await get_json(http, "/readyz")
        assert {"database:responseTime", "feed:staleness"} <= readyz["checks"].keys()


async def test_status_reports_feed_workers_and_connections(service: LiveService) -> None:
    """/cotizaciones/status carries feed state, instruments, times, ages, workers and counts."""
    async with ws_client(service), service.http() as http:
        await eventually(lambda: service.services.cache.updates > 0, message="first tick")
        response = await http.get("/cotizaciones/status")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "running"
    assert body["instruments"] == service.services.feed.instruments
    assert len(body["instruments"]) == 21
    assert isinstance(body["started_at"], float)
    assert body["uptime"] >= 0
    assert 0 <= body["last_tick_age"] < 5
    workers = body["workers"]
    assert {"writer", "dashboard_worker", "ratio_publisher", "ratio_sampler"} <= workers.keys()
    assert workers["writer"] is True and workers["dashboard_worker"] is False
    assert body["connections"]["active_connections"] == 1
    assert body["connections"]["max_connections"] == service.settings.max_websocket_connections
    assert body["dashboard"]["subscribers"] == 0


async def test_websocket_status_lists_each_connection(service: LiveService) -> None:
    """/cotizaciones/websocket_status counts connections and describes each one."""
    symbol = "MERV - XMEV - GD30 - 24hs"
    async with (
        ws_client(service) as ticker,
        ws_client(service, "/ws/dashboard") as board,
        service.http() as http,
    ):
        await send_json(ticker, {"type": "subscribe", "instruments": [symbol]})
        await recv_until(ticker, lambda m: m["type"] == "subscribed")
        await send_json(board, {"type": "dashboard_subscribe"})
        await recv_until(board, lambda m: m["type"] == "dashboard_subscribed")
        body = await get_json(http, "/cotizaciones/websocket_status")
    assert body["active_connections"] == 2
    assert body["dashboard_subscribers"] == 1
    by_path = {c["path"]: c for c in body["connections"]}
    assert by_path.keys() == {"/ws/cotizaciones", "/ws/dashboard"}
    assert by_path["/ws/cotizaciones"]["instruments"] == [symbol]
    assert by_path["/ws/cotizaciones"]["dashboard"] is False
    assert by_path["/ws/dashboard"]["dashboard"] is True
    for info in body["connections"]:
        assert info["state"] == "open"
        assert info["remote"].startswith("127.0.0.1:")
        assert info["received"] >= 1 and info["sent"] >= 1
    assert body["stats"]["accepted"] == 2


async def test_metrics_are_prometheus_text(service: LiveService) -> None:
    """/metrics exposes the service's counters and gauges in Prometheus text format."""
    async with ws_client(service), service.http() as http:
        await eventually(lambda: service.services.ratios.samples_taken > 0, message="a sample")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["cotiza_websocket_connections"] == 1
    assert values["cotiza_websocket_messages_sent_total"] >= 1
    assert values["cotiza_websocket_slow_consumers_total"] == 0
    assert values["cotiza_ticks_total"] > 0
    assert values["cotiza_ratio_samples_total"] > 0
    assert values["cotiza_write_queue_depth"] >= 0
    assert values["cotiza_event_loop_lag_seconds"] >= 0
    assert "# TYPE cotiza_ticks_total counter" in response.text
    assert "# TYPE cotiza_websocket_connections gauge" in response.text


async def test_root_redirects_to_the_dashboard_page(service: LiveService) -> None:
    """GET / redirects to /dashboard, which serves the HTML dashboard."""
    async with service.http() as http:
        root = await http.get("/")
        assert root.status_code in {302, 307}
        assert root.headers["location"] == "/dashboard"
        page = await http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()


async def test_dead_worker_makes_the_service_unhealthy(
    make_settings: Callable[..., Settings],
) -> None:
    """A dead internal worker is a liveness failure: unhealthy with 503 on detailed and livez."""
    async with live_service(make_settings(**CALM)) as live, live.http() as http:
        (sampler,) = named_tasks("ratio-sampler")
        sampler.cancel()
        await eventually(sampler.done, message="sampler cancelled")
        response = await http.get("/health/detailed")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        workers = check(body, "workers:running")
        assert workers["status"] == "fail"
        assert workers["observedValue"]["ratio_sampler"] is False
        assert "ratio_sampler" in workers["output"]
        livez = await http.get("/livez")
        assert livez.status_code == 503
        assert livez.json()["status"] == "fail"
        assert (await http.get("/cotizaciones/health")).status_code == 200


async def test_metrics_report_the_tick_rate(service) -> None:
    """The tick-rate gauge reports the simulator's rate, not zero, while the feed runs."""
    async with service.http() as http:

        async def tick_rate() -> float:
            text = (await http.get("/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("cotiza_tick_rate "))
            return float(line.split()[1])

        rate = await eventually(tick_rate, 5, interval=0.2, message="a non-zero tick rate")
    settings_rate = service.settings.sim_ticks_per_second
    assert 0.3 * settings_rate <= rate <= 3 * settings_rate
