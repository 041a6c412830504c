"""The API token: an empty one is refused at start-up; it guards the connection list."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.ports import free_port
from support.process import service_env
from support.server import live_service

from cotiza.errors import ConfigurationError
from cotiza.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-websocket-status-1"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_api_token_stops_start_up(tmp_path: Path, value: str) -> None:
    """API_TOKEN="" would make an empty ?token= pass: exit 2, one line naming it."""
    proc = subprocess.run(
        [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(free_port())],
        check=False,
        cwd=ROOT,
        env=service_env(tmp_path, API_TOKEN=value),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr.decode()
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "API_TOKEN" in lines[0]


def test_empty_api_token_refused_by_the_settings() -> None:
    with pytest.raises(ConfigurationError, match="API_TOKEN"):
        load_settings(api_token="")


async def test_websocket_status_needs_the_token(make_settings: Callable[..., Settings]) -> None:
    """The connection list (addresses, subscriptions) is not public when a token is set."""
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Token": ""}):
            response = await http.get("/cotizaciones/websocket_status", headers=headers)
            assert response.status_code == 401, (headers, response.text)
        response = await http.get("/cotizaciones/websocket_status", params={"token": ""})
        assert response.status_code == 401
        response = await http.get(
            "/cotizaciones/websocket_status", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 200
        assert "connections" in response.json()


async def test_websocket_status_open_without_a_token(
    make_settings: Callable[..., Settings],
) -> None:
    async with live_service(make_settings()) as live, live.http() as http:
        response = await http.get("/cotizaciones/websocket_status")
        assert response.status_code == 200
