"""Half-open requests and handshakes are closed after WEBSOCKET_TIMEOUT, and logged once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.ports import free_port
from support.process import service_env, wait_healthy
from support.settings import fast_settings
from support.wsclient import recv_json, send_json, ws_client

from cotiza.api.app import create_app
from cotiza.server import Server, uvicorn_config

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1.0
PARTIALS = [
    b"",  # connected, said nothing
    b"GET /cotizaciones/health HTTP/1.1\r\nHost: x",  # headers never end
    b"GET /ws/cotizaciones HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    b"GE",
]


async def open_partials(
    port: int, copies: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Connections that send ``PARTIALS`` and then nothing (kept open on this side)."""
    opened = []
    for _ in range(copies):
        for data in PARTIALS:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            opened.append((reader, writer))
    return opened


async def closed_within(
    opened: tuple[asyncio.StreamReader, asyncio.StreamWriter], seconds: float
) -> bool:
    """True once the server closed the connection (EOF or reset) within ``seconds``."""
    reader, writer = opened
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    finally:
        writer.close()
    return True


@contextlib.asynccontextmanager
async def served(tmp_path: Path, http: str) -> AsyncIterator[int]:
    settings = fast_settings(tmp_path, websocket_timeout=TIMEOUT)
    app = create_app(settings)
    config = uvicorn_config(app, settings)
    config.http = http
    config.port = 0
    server = Server(config, app.state.runtime)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server did not start"
        await asyncio.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_partial_requests_are_closed_and_logged(
    tmp_path: Path, http: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cotiza.slow_clients")
    async with served(tmp_path, http) as port:
        started = time.monotonic()
        readers = await open_partials(port, copies=25)
        # Meanwhile a WebSocket client and a plain request are served, and stay served.
        async with ws_client_at(port) as ws:
            results = await asyncio.gather(*(closed_within(r, 2 * TIMEOUT + 8) for r in readers))
            elapsed = time.monotonic() - started
            assert all(results), f"{results.count(False)} of {len(results)} still open"
            assert elapsed < 2 * TIMEOUT + 8
            await asyncio.sleep(TIMEOUT)  # a live WebSocket is not a half-open request
            await send_json(ws, {"type": "get_status"})
            assert (await recv_json(ws))["type"] == "status"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /cotizaciones/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "cotiza.slow_clients"]
    assert len(lines) == 1, lines  # rate-limited: one line for the whole burst
    assert "WEBSOCKET_TIMEOUT" in lines[0] and "closed" in lines[0]


@contextlib.asynccontextmanager
async def ws_client_at(port: int) -> AsyncIterator[object]:
    class Live:  # the little of LiveService that ws_client needs
        def ws_url(self, path: str) -> str:
            return f"ws://127.0.0.1:{port}{path}"

    async with ws_client(Live(), "/ws/cotizaciones") as ws:  # type: ignore[arg-type]
        yield ws


def test_plain_uvicorn_closes_partial_requests_too(tmp_path: Path) -> None:
    """``uvicorn main:app`` is not started by cotiza: the app guards the server it runs in."""
    port = free_port()
    log_path = tmp_path / "service.log"
    argv = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1"]
    env = service_env(tmp_path, WEBSOCKET_TIMEOUT=str(TIMEOUT))
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
        try:
            wait_healthy(port, proc)

            async def check() -> list[bool]:
                readers = await open_partials(port, copies=5)
                return await asyncio.gather(*(closed_within(r, 2 * TIMEOUT + 8) for r in readers))

            results = asyncio.run(check())
            assert all(results), f"{results.count(False)} of {len(results)} still open"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "WEBSOCKET_TIMEOUT" in log_path.read_text()


@pytest.mark.parametrize("unit", ["cotiza.service", "cotiza-monitor.service"])
def test_deploy_units_raise_the_descriptor_limit(unit: str) -> None:
    """1,024 descriptors were exhausted by 1,100 half-open requests: the units raise it."""
    service = (ROOT / "deploy" / unit).read_text().split("[Service]", 1)[1].split("[Install]")[0]
    limits = [line for line in service.splitlines() if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1 and int(limits[0].split("=", 1)[1]) >= 8192, limits


def test_guarded_protocols_find_what_they_read() -> None:
    """The guard reads ``transport``, ``cycle`` and ``client`` of uvicorn's HTTP protocols."""
    import inspect

    from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as ToolsCycle

    for protocol in (H11Protocol, HttpToolsProtocol):
        source = inspect.getsource(protocol.__init__)
        for attribute in ("self.transport", "self.cycle", "self.client"):
            assert attribute in source, (protocol, attribute)
        # Overridden to stop watching (and release) a protocol handed to a WebSocket.
        assert callable(getattr(protocol, "handle_websocket_upgrade", None)), protocol
    for cycle in (RequestResponseCycle, ToolsCycle):
        assert "self.response_complete" in inspect.getsource(cycle.__init__)
