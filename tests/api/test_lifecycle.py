"""Start-up and shutdown: ordered, clean, nothing of ours left behind."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest
import websockets
from support.poll import eventually
from support.ports import free_port
from support.process import service_env, service_process
from support.server import live_service
from support.wsclient import recv_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.live
async def test_shutdown_closes_clients_with_1001_and_leaves_nothing(make_settings) -> None:
    """Every client gets 1001, and no task, thread or socket of ours survives shutdown."""
    threads_before = set(threading.enumerate())
    tasks_before = asyncio.all_tasks()
    async with live_service(make_settings()) as live:
        clients = [await websockets.connect(live.ws_url()) for _ in range(3)]
        for ws in clients:
            await ws.recv()
        await clients[0].send(json.dumps({"type": "dashboard_subscribe"}))
        await recv_until(clients[0], lambda m: m["type"] == "dashboard_subscribed")
        await clients[1].send(json.dumps({"type": "subscribe", "instruments": ["DLR/DIC26"]}))
        await recv_until(clients[1], lambda m: m["type"] == "tick")
        port = live.port
        await live.stop()
        for ws in clients:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    leftover = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert leftover == [], [t.get_name() for t in leftover]
    new_threads = set(threading.enumerate()) - threads_before
    for thread in new_threads:  # closed database connections end their worker threads
        await asyncio.to_thread(thread.join, 5)
    alive = [t for t in new_threads if t.is_alive()]
    assert alive == [], alive
    ours = [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status != psutil.CONN_TIME_WAIT
    ]
    assert ours == [], ours


@pytest.mark.live
async def test_writer_flushes_on_shutdown(make_settings) -> None:
    """Ratio samples queued at shutdown are written, not lost."""
    settings = make_settings(ratio_sample_interval=0.1, write_flush_interval=5.0)
    async with live_service(settings) as live:
        services = live.services
        await recv_until_samples(services)
        database, repository = services.database, services.repository
        taken = services.ratios.samples_taken
    # The database component is stopped now; reopen the file to count.
    from cotiza.storage.database import Database
    from cotiza.storage.repository import Repository

    reopened = Database(settings.database_url)
    await reopened.start()
    try:
        pairs = await Repository(reopened).list_pairs()
        stored = 0
        for pair in pairs:
            stored += len(await Repository(reopened).recent_samples(pair.id, limit=100_000))
        assert stored >= taken > 0
    finally:
        await reopened.stop()
    assert database is not None and repository is not None


async def recv_until_samples(services) -> None:
    await eventually(lambda: services.ratios.samples_taken >= 6, 10, message="six ratio samples")


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_WEBSOCKET_CONNECTIONS", "lots"),
        ("DASHBOARD_REFRESH_INTERVAL", "-1"),
        ("WEBSOCKET_TIMEOUT", "0"),
        ("MARKET_TZ", "Mars/Olympus"),
        ("DATABASE_URL", "mysql://x"),
        ("FEED", "telepathy"),
        ("MARKET_HOURS", "17:00-11:00"),
        ("WS_IMPL", "websockets-legacy"),
        ("WS_COMPRESSION", "sometimes"),
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("TELEGRAM_CHAT_IDS", "12,abc"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
        ("ALERT_WEBHOOK_URL", "ftp://example.invalid/hook"),
    ],
)
def test_invalid_configuration_stops_with_one_line(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A bad value stops start-up with exit 2 and one line naming the variable."""
    env = service_env(tmp_path, **{variable: value})
    proc = subprocess.run(
        [sys.executable, "main.py", "--port", str(free_port())],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert variable in lines[0]


@pytest.mark.subprocess
def test_secrets_never_logged(tmp_path: Path) -> None:
    """The API token never appears in the service's output or responses, even at DEBUG."""
    env = {"API_TOKEN": "s3cr3t-token-value", "LOG_LEVEL": "DEBUG"}
    with service_process(tmp_path, **env) as (proc, port):
        for path in ("/health/detailed", "/cotizaciones/status"):
            body = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).text
            assert "s3cr3t" not in body
        headers = {"Authorization": "Bearer s3cr3t-token-value"}
        response = httpx.post(
            f"http://127.0.0.1:{port}/cotizaciones/detener", headers=headers, timeout=5
        )
        assert response.status_code == 200
        assert "s3cr3t" not in response.text
        asyncio.run(_connect_with_token(port, "s3cr3t-token-value"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    log_path = tmp_path / "service.log"
    output = log_path.read_text()
    # uvicorn logs the connection with its query string: there, with the token masked.
    assert "/ws/cotizaciones?token=***" in output
    assert "s3cr3t" not in output


async def _connect_with_token(port: int, token: str) -> None:
    url = f"ws://127.0.0.1:{port}/ws/cotizaciones?token={token}"
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "connection"
