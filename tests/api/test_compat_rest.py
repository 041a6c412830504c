"""The prototype's REST names and fields (issue 9), stated against a running service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.poll import eventually
from support.server import LiveService, live_service
from support.wsclient import recv_until, send_json, ws_client

from cotiza.settings import Settings

SECRET = "pw-never-shown-7731"
TOKEN = "tok-compat-5521"
FEED_DETAILS = {"ws", "user_id", "subscribed", "last_md_ms", "subscribers"}

pytestmark = pytest.mark.live


async def get_json(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    body: dict[str, Any] = response.json()
    return body


async def test_status_has_the_prototype_fields(make_settings: Callable[..., Settings]) -> None:
    """started, worker_running, ws_connected, worker_status, ws_details, user and account."""
    settings = make_settings(
        primary_user="desk-user", primary_account="ACC-9", primary_password=SECRET
    )
    async with live_service(settings) as live, live.http() as http:

        async def flowing() -> bool:
            body = await get_json(http, "/cotizaciones/status")
            return bool(body["ws_connected"] and body["ws_details"]["last_md_ms"])

        await eventually(flowing, timeout=10, message="a connected feed with data")
        async with ws_client(live):
            body = await get_json(http, "/cotizaciones/status")
        assert body["started"] is True and body["worker_running"] is True
        assert body["worker_status"] == "running"
        assert (body["user"], body["account"]) == ("desk-user", "ACC-9")
        details = body["ws_details"]
        assert set(details) == FEED_DETAILS
        assert details["ws"] == "ok" and details["user_id"] == "desk-user"
        assert details["subscribed"] == sorted(body["instruments"]) and details["subscribed"]
        assert isinstance(details["last_md_ms"], int) and details["subscribers"] == 1
        assert body["state"] == "running"  # cotiza's own fields stay
        assert (await http.post("/cotizaciones/detener")).status_code == 200
        stopped = await get_json(http, "/cotizaciones/status")
    assert stopped["started"] is False and stopped["ws_connected"] is False
    assert stopped["ws_details"]["ws"] == "disabled"


async def test_websocket_status_lists_host_port_and_timestamp(service: LiveService) -> None:
    """Each connection carries the client's host and port; the reply has a timestamp."""
    async with ws_client(service) as ws, service.http() as http:
        local_host, local_port = ws.local_address[:2]
        body = await get_json(http, "/cotizaciones/websocket_status")
    assert isinstance(body["timestamp"], float) and body["active_connections"] == 1
    (conn,) = body["connections"]
    assert (conn["host"], conn["port"]) == (local_host, local_port)
    assert conn["remote"] == f"{local_host}:{local_port}"


async def test_dashboard_method_freshness_and_client_id_result(service: LiveService) -> None:
    """HTTP, the three aliases and the WebSocket frame carry method, freshness, client_id_result."""
    async with service.http() as http:
        main = await get_json(http, "/api/ratios/dashboard")
        aliases = [
            await get_json(http, f"/api/ratios/dashboard/{n}")
            for n in ("fast", "balanced", "flexible")
        ]
    for body in (main, *aliases):
        assert body["status"] == "success" and body["count"] == len(body["data"]) > 0
        assert isinstance(body["method"], str) and body["method"]
        assert isinstance(body["freshness"], str) and body["freshness"]
        for row in body["data"]:
            assert row["client_id_result"] == row["client_id"]
        assert {r["par"] for r in body["data"]} == {r["par"] for r in main["data"]}
    async with ws_client(service, "/ws/dashboard") as ws:
        await send_json(ws, {"action": "dashboard_subscribe"})
        frame = await recv_until(ws, lambda m: m["type"] == "dashboard_data", timeout=10)
    assert frame["method"] == main["method"] and frame["freshness"] == main["freshness"]
    assert frame["data"] and all(r["client_id_result"] == r["client_id"] for r in frame["data"])


async def test_dashboard_worker_start_stop_status(make_settings: Callable[..., Settings]) -> None:
    """/dashboard/start runs the worker without subscribers; stop ends it; both need the token."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        idle = await get_json(http, "/dashboard/status")
        assert idle["running"] is False and idle["uptime_seconds"] is None
        assert (await http.post("/dashboard/start")).status_code == 401
        started = await http.post("/dashboard/start", headers=auth)
        assert started.status_code == 200
        assert started.json() == {"status": "ok", "message": "Dashboard iniciado", "running": True}

        async def beating() -> bool:
            return (await get_json(http, "/dashboard/status"))["last_beat"] is not None

        await eventually(beating, timeout=10, message="a dashboard refresh")
        running = await get_json(http, "/dashboard/status")
        assert running["running"] is True and running["uptime_seconds"] >= 0
        again = await http.post("/dashboard/start", headers=auth)
        assert again.json()["message"] == "Dashboard ya estaba activo"
        assert (await http.post("/dashboard/stop")).status_code == 401
        stopped = await http.post("/dashboard/stop", headers=auth)
        assert stopped.json() == {"status": "ok", "message": "Dashboard detenido", "running": False}
        after = await get_json(http, "/dashboard/status")
        assert after["running"] is False and live.services.dashboard.running is False


async def test_last_params_and_reconnect(make_settings: Callable[..., Settings]) -> None:
    """last_params names the last instruments without the password; reconnect ends running."""
    settings = make_settings(
        primary_user="desk-user", primary_account="ACC-9", primary_password=SECRET
    )
    async with live_service(settings) as live, live.http() as http:
        params = await get_json(http, "/cotizaciones/last_params")
        assert params["instrumentos"] == live.services.feed.instruments and params["instrumentos"]
        assert (params["user"], params["account"], params["feed"]) == ("desk-user", "ACC-9", "sim")
        assert "password" not in params
        starts = live.services.feed.starts
        assert (await http.post("/cotizaciones/detener")).status_code == 200
        reconnected = await http.post("/cotizaciones/reconnect_rofex")
        assert reconnected.status_code == 200 and SECRET not in reconnected.text
        body = reconnected.json()
        assert body["status"] == "success" and body["state"] == "running"
        assert live.services.feed.running and live.services.feed.starts == starts + 1


async def test_ws_test_page_is_served(service: LiveService) -> None:
    """/ws-test is a small WebSocket console of our own, with its script."""
    async with service.http() as http:
        page = await http.get("/ws-test")
        script = await http.get("/static/wstest.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/wstest.js" in page.text and 'id="log"' in page.text
    assert script.status_code == 200 and "new WebSocket" in script.text
