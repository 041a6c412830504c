"""diagnose and ``monitor status`` work from any directory: they find the service's own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "diag-anywhere-token"
SETTING_VARIABLES = ("DATABASE_URL", "RUN_DIR", "API_TOKEN", "PORT", "HOST", "MARKET_HOURS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bare_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES}
    env.update(extra)
    return env


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("service not ready")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The service's working directory: relative database and RUN_DIR live here."""
    folder = tmp_path / "service-home"
    folder.mkdir()
    return folder


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "somewhere-else"
    folder.mkdir()
    return folder


@pytest.fixture
def monitored(home: Path) -> Iterator[int]:
    """A monitor started in ``home`` supervising a service with relative paths and a token."""
    port = free_port()
    env = bare_env(
        DATABASE_URL="sqlite:///./data/service.db",
        RUN_DIR="var",
        API_TOKEN=TOKEN,
        MARKET_HOURS="always",
        RATIO_SAMPLE_INTERVAL="3600",  # just started: no ratio sample yet
        LOG_LEVEL="WARNING",
    )
    monitor = subprocess.Popen(
        [sys.executable, str(ROOT / "monitor_service.py"), "--port", str(port),
         "--interval", "0.5", "--", sys.executable, str(ROOT / "main.py"),
         "--host", "127.0.0.1"],
        cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(port)
        yield port
    finally:
        monitor.send_signal(signal.SIGTERM)
        try:
            monitor.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(monitor.pid, signal.SIGKILL)
            monitor.wait()


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotiza", *args],
        check=False,
        cwd=cwd,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_diagnose_from_another_directory_sees_the_service_as_it_is(
    monitored: int, home: Path, elsewhere: Path
) -> None:
    result = cli(elsewhere, "diagnose", "--port", str(monitored), "--json")
    report = json.loads(result.stdout)
    findings = {c["check"]: c for c in report["checks"]}
    database = findings["database"]
    assert "does not exist" not in database["summary"], database
    assert database["status"] == "ok", database  # just started: no sample yet is no warning
    assert str(home / "data" / "service.db") in json.dumps(database)
    assert findings["websocket"]["status"] == "ok", findings["websocket"]  # token found
    assert "unmanaged" not in json.dumps(findings["processes"]), findings["processes"]
    assert findings["ledger"]["status"] == "ok", findings["ledger"]
    # Resources and HTTP timings may warn on a loaded test machine; discovery must not.
    for name in ("port", "database", "websocket", "processes", "ledger"):
        assert findings[name]["status"] == "ok", (name, findings[name]["summary"])
    assert result.returncode in {0, 1}, result.stdout


def test_monitor_status_from_another_directory_finds_the_monitor(
    monitored: int, elsewhere: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = cli(elsewhere, "monitor", "status", "--port", str(monitored))
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RUNNING" in result.stdout


def test_without_the_token_the_websocket_hint_names_it(
    monitored: int, home: Path, elsewhere: Path
) -> None:
    """Discovery aside: a service that refuses the canary's missing token says API_TOKEN."""
    result = subprocess.run(
        [sys.executable, "-m", "cotiza", "diagnose", "--port", str(monitored), "--json",
         "--no-discover"],
        check=False, cwd=elsewhere, env=bare_env(), capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    findings = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    websocket = findings["websocket"]
    assert websocket["status"] != "ok"
    assert "API_TOKEN" in (websocket.get("hint") or ""), websocket
    assert "market hours" not in (websocket.get("hint") or "")
