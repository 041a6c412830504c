"""``diagnose`` against a healthy, degraded, blocked, hung (SIGSTOP), absent and foreign service."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opskit import DIAGNOSE, PY, Harness, get, healthy, post
from support.poll import eventually_sync
from support.ports import free_port

from cotiza.diagnose import render
from cotiza.diagnose.findings import Finding, Level, Report
from cotiza.diagnose.run import DiagnoseConfig, diagnose
from cotiza.monitor.ledger import Entry, Ledger, RunPaths

pytestmark = pytest.mark.subprocess


@dataclass
class Running:
    ops: Harness
    port: int
    pid: int

    def run(self, *flags: str, port: int | None = None) -> tuple[int, dict]:
        argv = (DIAGNOSE, "--port", str(port or self.port), "--run-dir", str(self.ops.run_dir))
        result = self.ops.cli(*argv, "--json", *flags)
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)

    def config(self) -> DiagnoseConfig:
        return DiagnoseConfig(
            port=self.port,
            run_dir=self.ops.run_dir,
            database_url=self.ops.env()["DATABASE_URL"],
        )


def checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One real service, without a monitor, shared by the tests of this module."""
    ops = Harness(tmp_path_factory.mktemp("diag"))
    port = free_port()
    try:
        # A busy CI machine delays the loop by a few hundred ms: warn only past 0.5 s here.
        env = {"FEED_WARN_AFTER": "0.3", "FEED_FAIL_AFTER": "0.6", "LOOP_LAG_WARN": "0.5"}
        proc = ops.service(port, **env)
        eventually_sync(lambda: healthy(port), 60, "the service")
        eventually_sync(lambda: _stored_samples(ops.tmp / "cotiza.db"), 30, "a stored ratio sample")
        yield Running(ops, port, proc.pid)
    finally:
        ops.cleanup()


def _stored_samples(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM ratio_samples").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_healthy_service_passes_every_service_check(service: Running) -> None:
    """A healthy service: port, HTTP, WebSocket (fresh tick), database and ledger all pass."""
    code, report = service.run()
    found = checks(report)
    for name in ("port", "http", "websocket", "origins", "database", "processes", "ledger"):
        assert found[name]["status"] == "ok", found[name]
    assert found["port"]["data"]["pid"] == service.pid
    assert found["websocket"]["data"]["first_tick_ms"] is not None
    assert found["database"]["data"]["revision"] == found["database"]["data"]["expected_revision"]
    assert found["resources"]["status"] in {"ok", "warn"}  # a busy CI machine may warn on CPU
    assert code == (1 if found["resources"]["status"] == "warn" else 0)
    assert report["elapsed_s"] < 6


def test_plain_output_when_piped_and_json_file_with_output(
    service: Running, tmp_path: Path
) -> None:
    """Piped output is plain [✓]/[!]/[✗] lines; --output writes the same results as JSON."""
    out = tmp_path / "report.json"
    argv = (DIAGNOSE, "--port", str(service.port), "--run-dir", str(service.ops.run_dir))
    result = service.ops.cli(*argv, "--output", str(out), "--fail-on", "crit")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("[✓] port") and "[✓] websocket" in result.stdout
    saved = json.loads(out.read_text())
    assert [c["check"] for c in saved["checks"]] == [
        "port", "http", "websocket", "origins", "resources", "database", "processes", "ledger",
    ]  # fmt: skip


def test_degraded_service_warns_with_a_hint_and_fail_on_crit_passes(service: Running) -> None:
    """A paused feed: HTTP and WebSocket warn (staleness, no fresh tick); exit 1, or 0 on crit."""
    post(service.port, "/debug/feed/pause")
    try:
        eventually_sync(
            lambda: (r := get(service.port, "/readyz")) and r.status_code == 503, 10, "stale"
        )
        code, report = service.run("--ws-timeout", "1.5")
        found = checks(report)
        assert found["http"]["status"] == "warn" and "feed:staleness" in found["http"]["summary"]
        assert "feed delivers no data" in found["http"]["hint"]
        assert found["websocket"]["status"] == "warn"
        assert code == 1
        code, _ = service.run("--fail-on", "crit", "--ws-timeout", "1.5")
        assert code == 0
    finally:
        post(service.port, "/debug/feed/resume")


def test_blocked_loop_shows_a_failing_lag_check(service: Running) -> None:
    """Right after the event loop was blocked, event_loop:lag fails: HTTP is critical, exit 2."""
    post(service.port, "/debug/block?seconds=3")
    report = asyncio.run(diagnose(service.config()))
    http = next(f for f in report.findings if f.name == "http")
    assert http.level is Level.CRIT and "event_loop:lag fail" in http.summary
    assert http.hint and "blocked" in http.hint
    assert report.exit_code() == 2
    eventually_sync(lambda: healthy(service.port), 10, "the loop free again")


def test_hung_service_port_open_http_timing_out(service: Running) -> None:
    """SIGSTOP: the port accepts but HTTP times out; WebSocket is skipped; exit 2 within bounds."""
    os.kill(service.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        code, report = service.run("--timeout", "2")
        elapsed = time.monotonic() - started
    finally:
        os.kill(service.pid, signal.SIGCONT)
    found = checks(report)
    assert code == 2 and elapsed < 12
    assert found["port"]["status"] == "ok"
    assert found["http"]["status"] == "crit" and "timed out" in found["http"]["summary"]
    assert found["websocket"]["status"] == "skip"
    assert found["resources"]["status"] == "crit" and "stopped" in found["resources"]["summary"]
    eventually_sync(lambda: healthy(service.port), 10, "resumed")


def test_nothing_listening_is_critical_and_skips_dependants(service: Running) -> None:
    """Nothing on the port: port is critical, HTTP and WebSocket are skipped, exit 2."""
    code, report = service.run(port=free_port())
    found = checks(report)
    assert code == 2 and found["port"]["status"] == "crit"
    assert found["http"]["status"] == "skip" and found["websocket"]["status"] == "skip"
    assert "start it" in found["port"]["hint"]


def test_foreign_process_on_the_port_is_named(service: Running) -> None:
    """A foreign listener: diagnose names its pid and command, calls it foreign, exits 2."""
    port = free_port()
    holder = service.ops.spawn([PY, "-c", LISTEN % port], "foreign")
    eventually_sync(lambda: _accepts(port), 10, "the listener")
    code, report = service.run(port=port)
    found = checks(report)
    assert code == 2 and found["port"]["status"] == "crit"
    assert (
        found["port"]["data"]["pid"] == holder.pid and found["port"]["data"]["owner"] == "foreign"
    )
    assert found["http"]["status"] == "skip"


LISTEN = (
    "import socket, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', %d))\n"
    "s.listen()\n"
    "time.sleep(60)\n"
)


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_invalid_configuration_exits_3(service: Running) -> None:
    """A configuration diagnose cannot read is "could not run": exit 3 with one line."""
    result = service.ops.cli(DIAGNOSE, "--port", str(service.port), DATABASE_URL="mysql://x")
    assert result.returncode == 3
    assert "DATABASE_URL" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_ledger_check_reports_restarts_and_rich_renders(tmp_path: Path) -> None:
    """The ledger check lists recent restarts; the rich renderer draws the same findings."""
    from cotiza.diagnose.hostchecks import ledger

    paths = RunPaths(tmp_path, 9999)
    book = Ledger(paths.ledger)
    book.append(Entry("restart", pid=42, reason="exited (signal 9)", signal=9))
    finding = asyncio.run(ledger(paths, None))
    assert finding.level is Level.WARN and "signal 9" in finding.lines[0]
    report = Report(
        "127.0.0.1", 9999, time.time(), 0.1, [finding, Finding("port", Level.OK, "fine")]
    )
    out = io.StringIO()
    render.rich(report, "warn", out)
    assert "[!]" in out.getvalue() and "WARNING" in out.getvalue()
