"""``diagnose --output`` also writes the prototype's top-level keys, read as its scripts did."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from opskit import DIAGNOSE, Harness, healthy
from support.poll import eventually_sync
from support.ports import free_port
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

PROTOTYPE_KEYS = {"timestamp", "port", "port_check", "endpoints", "websocket", "system", "database"}
ENDPOINTS = ["/cotizaciones/health", "/health/detailed", "/cotizaciones/status", "/"]

pytestmark = pytest.mark.subprocess


def _samples(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM ratio_samples").fetchone()[0])
    except sqlite3.Error:
        return 0


def _diagnose(ops: Harness, port: int, out: Path) -> dict:
    argv = (DIAGNOSE, "--port", str(port), "--run-dir", str(ops.run_dir), "--output", str(out))
    result = ops.cli(*argv, "--fail-on", "crit")
    assert out.exists(), result.stderr
    saved: dict = json.loads(out.read_text())
    return saved


def test_output_has_the_prototype_keys_for_a_healthy_service(ops: Harness) -> None:
    """A healthy service reads as the prototype's scripts expect: port in use, all ok."""
    port = free_port()
    proc = ops.service(port)
    eventually_sync(lambda: healthy(port), 60, "the service")
    eventually_sync(lambda: _samples(ops.tmp / "cotiza.db"), 30, "a stored ratio sample")
    saved = _diagnose(ops, port, ops.tmp / "report.json")
    assert saved.keys() >= PROTOTYPE_KEYS and "checks" in saved  # cotiza's own keys stay
    assert saved["port"] == port and saved["timestamp"][:4].isdigit()
    check = saved["port_check"]
    assert check["in_use"] is True and check["pid"] == proc.pid
    assert check["process_name"] and str(port) in check["cmdline"]
    assert list(saved["endpoints"]) == ENDPOINTS
    for path, entry in saved["endpoints"].items():
        assert entry["status"] == "ok", (path, entry)
        assert entry["status_code"] == 200 and entry["response_time_ms"] >= 0
    assert saved["websocket"]["status"] == "ok"
    system = saved["system"]
    assert 0 <= system["cpu_percent"] <= 100 and 0 < system["memory"]["used_percent"] <= 100
    assert [p["pid"] for p in system["python_processes"]] == [proc.pid]
    assert saved["database"]["status"] == "ok" and saved["database"]["has_data"] is True
    origins = {c["check"]: c for c in saved["checks"]}["origins"]
    assert origins["status"] == "ok" and "same host" in origins["summary"]


def test_diagnose_names_refused_origins_and_the_setting(ops: Harness) -> None:
    """After a page from another origin was refused, diagnose warns and names ALLOWED_ORIGINS."""
    port = free_port()
    ops.service(port)
    eventually_sync(lambda: healthy(port), 60, "the service")
    page = "http://desk.example:8123"
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{port}/ws/cotizaciones", origin=page, open_timeout=5)
    saved = _diagnose(ops, port, ops.tmp / "refused.json")
    origins = {c["check"]: c for c in saved["checks"]}["origins"]
    assert origins["status"] == "warn" and page in origins["summary"]
    assert f"ALLOWED_ORIGINS={page}" in origins["hint"]


def test_output_for_an_absent_service(ops: Harness) -> None:
    """Nothing listening: not in use, endpoints connection_error, websocket skipped."""
    port = free_port()
    saved = _diagnose(ops, port, ops.tmp / "absent.json")
    assert saved["port_check"] == {"port": port, "in_use": False}
    assert {e["status"] for e in saved["endpoints"].values()} == {"connection_error"}
    assert saved["websocket"]["status"] == "skipped"
    assert saved["database"]["status"] == "error"
