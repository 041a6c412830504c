"""Every entry point gets the same composition: logging, redaction, JSON, close code 1001."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from support.ports import free_port
from support.process import service_env, wait_healthy
from support.wsclient import closed_by_server, recv_json

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-entry-token"
ENTRY_POINTS = {
    "main.py": [sys.executable, "main.py", "--host", "127.0.0.1", "--port", "{port}"],
    "uvicorn": [
        sys.executable,
        "-m",
        "uvicorn",
        "main:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ],
    "cotiza-serve": [
        sys.executable,
        "-m",
        "cotiza",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ],
}
# uvicorn logs these two lines in its own format before it first calls the app, so before
# the app can configure logging; everything after them is cotiza's.
UVICORN_PRELUDE = ("Started server process", "Waiting for application startup.")


class Running:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/cotizaciones?token={token}"

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 30)

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


@contextlib.asynccontextmanager
async def started(entry: str, tmp_path: Path, **env: str) -> AsyncIterator[Running]:
    """The service started by ``entry`` as a real process on a free port, stopped at the end."""
    port = free_port()
    argv = [part.format(port=port) for part in ENTRY_POINTS[entry]]
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            argv,
            cwd=ROOT,
            env=service_env(tmp_path, API_TOKEN=TOKEN, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            await asyncio.to_thread(wait_healthy, port, proc)
            yield Running(proc, port, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def json_lines(lines: list[str], entry: str) -> list[dict[str, str]]:
    """Parse every log line as JSON; only uvicorn's prelude may precede them in plain text."""
    parsed: list[dict[str, str]] = []
    for index, line in enumerate(lines):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            prelude = entry == "uvicorn" and not parsed and index < len(UVICORN_PRELUDE)
            assert prelude and UVICORN_PRELUDE[index] in line, f"not JSON: {line!r}"
            continue
        assert isinstance(item, dict) and {"ts", "level", "logger", "message"} <= item.keys()
        parsed.append(item)
    return parsed


@pytest.mark.subprocess
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_logs_are_json_and_never_show_the_token(entry: str, tmp_path: Path) -> None:
    """With LOG_FORMAT=json every line is a JSON object, and a ?token= connect is masked."""
    async with started(entry, tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO") as service:
        async with websockets.connect(service.ws_url(TOKEN)) as ws:
            assert (await recv_json(ws))["type"] == "connection"
        assert await service.stop() in (0, -signal.SIGTERM)
    lines = service.lines()
    assert not any(TOKEN in line for line in lines)
    items = json_lines(lines, entry)
    accepted = [i["message"] for i in items if '"WebSocket /ws/cotizaciones' in i["message"]]
    assert accepted, "uvicorn's WebSocket line reached the handler"
    assert all("token=***" in message for message in accepted), accepted
    assert any(i["logger"] == "cotiza.service" for i in items)
    warnings = [i["message"] for i in items if "WebSocket options" in i["message"]]
    if entry == "uvicorn":  # uvicorn's defaults (16 MiB frames, deflate on) are not ours
        assert len(warnings) == 1 and "ws_max_size=16777216" in warnings[0], warnings
    else:
        assert warnings == []


@pytest.mark.subprocess
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_sigterm_closes_connected_clients_with_1001(entry: str, tmp_path: Path) -> None:
    """Each entry point serves health; a client connected when the service gets SIGTERM is
    closed with 1001 (going away), and the process exits 0."""
    async with started(entry, tmp_path) as service:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
            detailed = (await http.get("/health/detailed", timeout=5)).json()
        assert detailed["event_loop_available"] is True
        async with websockets.connect(service.ws_url(TOKEN)) as ws:
            assert (await recv_json(ws))["type"] == "connection"
            service.proc.send_signal(signal.SIGTERM)
            closed = await closed_by_server(ws, timeout=20)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1001, closed.rcvd
        # Plain uvicorn re-raises the signal after its graceful shutdown; ours exits 0.
        expected = (0, -signal.SIGTERM) if entry == "uvicorn" else (0,)
        assert await asyncio.to_thread(service.proc.wait, 30) in expected


def test_option_check_sees_what_plain_uvicorn_changes(make_settings) -> None:
    """cotiza's own uvicorn configuration matches its settings; uvicorn's defaults do not."""
    import uvicorn

    from cotiza.server import option_differences, uvicorn_config, websocket_options

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never called")

    settings = make_settings()
    wanted = websocket_options(settings)
    ours = uvicorn_config(app, settings)
    ours.load()
    assert option_differences(ours, wanted) == []
    plain = uvicorn.Config(app)
    plain.load()
    found = option_differences(plain, wanted)
    assert [item.split("=")[0] for item in found] == [
        "ws_max_size",
        "ws_ping_interval",
        "ws_ping_timeout",
        "ws_per_message_deflate",
    ]
    without = uvicorn.Config(app, ws="none", **_same_numbers(settings))
    without.load()
    assert [item.split("=")[0] for item in option_differences(without, wanted)] == ["ws"]


def _same_numbers(settings) -> dict[str, object]:
    return {
        "ws_max_size": settings.ws_max_frame_bytes,
        "ws_ping_interval": settings.ws_keepalive_interval,
        "ws_ping_timeout": settings.ws_keepalive_interval,
        "ws_per_message_deflate": False,
    }
