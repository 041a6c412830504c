"""ALLOWED_ORIGINS: one line opens REST (CORS) and WebSockets to a page on another origin."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets
from support.ports import free_port
from support.process import service_env
from support.server import live_service
from support.wsclient import recv_json, send_json, ws_client
from websockets.exceptions import InvalidStatus

from cotiza.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = "http://desk.example:8123"
EVIL = "http://evil.example"

pytestmark = pytest.mark.live


async def test_default_allows_same_host_and_refuses_others_once(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """With no setting: same-host pages connect; another origin is refused, logged once,
    gets no CORS headers, and /health/detailed lists it."""
    async with live_service(make_settings()) as live, live.http() as http:
        same = f"http://127.0.0.1:{live.port}"
        async with ws_client(live, origin=same) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
        with caplog.at_level(logging.WARNING, logger="cotiza.origins"):
            for _ in range(2):
                with pytest.raises(InvalidStatus) as refused:
                    async with websockets.connect(live.ws_url(), origin=EVIL, open_timeout=5):
                        pass
                assert refused.value.response.status_code == 403
            simple = await http.get("/cotizaciones/status", headers={"Origin": EVIL})
        preflight = await http.options(
            "/cotizaciones/status",
            headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"},
        )
        body = (await http.get("/health/detailed")).json()
    logged = [r.getMessage() for r in caplog.records if "ALLOWED_ORIGINS" in r.getMessage()]
    assert len(logged) == 1 and EVIL in logged[0]
    assert "access-control-allow-origin" not in simple.headers
    assert preflight.status_code == 400
    assert body["origins"]["allowed"] == [] and body["origins"]["same_host"] is True
    (entry,) = body["origins"]["refused"]
    assert entry["origin"] == EVIL and entry["count"] == 4  # two sockets, a GET, a preflight


async def test_one_line_opens_rest_and_websockets_to_a_page(
    make_settings: Callable[..., Settings],
) -> None:
    """ALLOWED_ORIGINS=http://desk.example:8123 admits that page on both paths, not others."""
    async with live_service(make_settings(allowed_origins=PAGE)) as live, live.http() as http:
        async with ws_client(live, origin=PAGE) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
        with pytest.raises(InvalidStatus):
            async with websockets.connect(live.ws_url(), origin=EVIL, open_timeout=5):
                pass
        simple = await http.get("/api/ratios/dashboard", headers={"Origin": PAGE})
        preflight = await http.options(
            "/cotizaciones/iniciar",
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    assert simple.headers["access-control-allow-origin"] == PAGE
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE


async def test_star_is_accepted_explicitly(make_settings: Callable[..., Settings]) -> None:
    """ALLOWED_ORIGINS=* lets any origin in, over WebSocket and CORS."""
    async with live_service(make_settings(allowed_origins="*")) as live, live.http() as http:
        async with ws_client(live, origin=EVIL) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
        simple = await http.get("/cotizaciones/status", headers={"Origin": EVIL})
        report = (await http.get("/health/detailed")).json()["origins"]
    assert simple.headers["access-control-allow-origin"] == "*"
    assert report["allowed"] == ["*"] and report["refused"] == []


@pytest.mark.subprocess
@pytest.mark.parametrize("value", ["junk", "http://desk.example/path", "desk.example:8123"])
def test_a_bad_value_stops_start_up(tmp_path: Path, value: str) -> None:
    """ALLOWED_ORIGINS that is not a list of origins (or *) stops start-up: exit 2, one line."""
    proc = subprocess.run(
        [sys.executable, "main.py", "--port", str(free_port())],
        check=False,
        cwd=ROOT,
        env=service_env(tmp_path, ALLOWED_ORIGINS=value),
        capture_output=True,
        timeout=30,
    )
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "ALLOWED_ORIGINS" in lines[0]
