"""Secrets never reach the log, at DEBUG, whichever entry point started the service.

The service runs as a real process against a real fake-Primary process, with
``LOG_LEVEL=DEBUG``: request headers (uvicorn), Primary's session token (httpcore) and a
password inside ``PRIMARY_ENV``'s URL are all logged by someone; every line is masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from support.ports import free_port
from support.process import service_env, wait_healthy

from cotiza.logs import redact

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-redaction-987654"
USERS = ("--users", "user:password")
ENV_PASSWORD = "envpass-S3CRET-42"
STRAY = ("STRAY-SECRET-1", "STRAY-SECRET-2", "STRAY-SECRET-3", "STRAY-SECRET-4")
HOST_PORT = ("--host", "127.0.0.1", "--port", "{port}")
ENTRY_POINTS = {
    "main.py": [sys.executable, "main.py", *HOST_PORT],
    "uvicorn": [sys.executable, "-m", "uvicorn", "main:app", *HOST_PORT],
    "cotiza-serve": [sys.executable, "-m", "cotiza", "serve", *HOST_PORT],
}
# A credential header and its value, as uvicorn and httpcore log them.
HEADER = re.compile(
    r"(authorization|x-api-token|x-auth-token)['\"]?\s*[:=,]\s*(?:b?['\"])?"
    r"(?:(?:bearer|basic)\s+)?([^\s'\",)]+)",
    re.IGNORECASE,
)


def unmasked(text: str) -> list[str]:
    """Every credential header in ``text`` whose value is not the mask."""
    return [m.group(0) for m in HEADER.finditer(text) if m.group(2) != "***"]


@pytest.mark.parametrize(
    "text",
    [
        "< authorization: Bearer abc.def-123",
        "< Authorization: Basic dXNlcjpwYXNz",
        "< x-api-token: abc123",
        "> X-Auth-Token: abc123",
        "[(b'Content-Length', b'0'), (b'X-Auth-Token', b'9Z9yGHnV9e5c_-x')]",
        "{'x-auth-token': 'abc123'}",
        "GET /ws?token=abc123 HTTP/1.1",
    ],
)
def test_redact_masks_header_values(text: str) -> None:
    masked = redact(text)
    assert "***" in masked
    assert not unmasked(masked), masked
    assert "abc" not in masked and "9Z9y" not in masked and "dXNl" not in masked


def test_redact_masks_url_passwords() -> None:
    masked = redact("connected to ws://envuser:p4ss@w0rd@host:1/ and https://a:b@c/")
    assert "p4ss" not in masked and "w0rd" not in masked and ":b@" not in masked
    assert "envuser" in masked and "host:1" in masked


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_debug_log_shows_no_secret(entry: str, tmp_path: Path) -> None:
    fake_port, port = free_port(), free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "cotiza", "fake-primary", "--port", str(fake_port), *USERS],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = service_env(
        tmp_path,
        LOG_LEVEL="DEBUG",
        API_TOKEN=TOKEN,
        FEED="primary",
        PRIMARY_USER="user",
        PRIMARY_PASSWORD="password",
        PRIMARY_ENV=f"http://envuser:{ENV_PASSWORD}@127.0.0.1:{fake_port}/",
        FEED_INSTRUMENTS="MERV - XMEV - AL30 - 24hs",
    )
    argv = [part.format(port=port) for part in ENTRY_POINTS[entry]]
    log_path = tmp_path / "service.log"
    try:
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
            try:
                wait_healthy(port, proc)
                base = f"http://127.0.0.1:{port}"
                _wait_for_log(log_path, "primary feed connected")
                httpx.get(
                    f"{base}/cotizaciones/websocket_status",
                    params={"token": STRAY[0]},
                    headers={"Authorization": f"Bearer {STRAY[1]}", "X-API-Token": STRAY[2]},
                    timeout=5,
                )
                asyncio.run(_connect(port, STRAY[3]))
                httpx.get(f"{base}/api/auth/check", params={"token": TOKEN}, timeout=5)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    output = log_path.read_text()
    assert "primary feed connected" in output and "< authorization: bearer ***" in output.lower()
    assert "X-Auth-Token" in output  # httpcore logged Primary's answer, value masked
    for secret in (*STRAY, TOKEN, ENV_PASSWORD, "password"):
        assert secret not in output, secret
    assert HEADER.search(output)
    assert not unmasked(output)


def _wait_for_log(path: Path, text: str, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} not logged"
        time.sleep(0.1)


async def _connect(port: int, stray: str) -> None:
    headers = {"Authorization": f"Bearer {stray}", "X-API-Token": stray}
    url = f"ws://127.0.0.1:{port}/ws/cotizaciones"
    async with websockets.connect(url, additional_headers=headers) as ws:
        # 1008: the stray token is wrong; its headers were logged on the way in.
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
