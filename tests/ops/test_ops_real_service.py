"""Fault matrix rows 1, 2, 3, 5, 11, 12, 13 and 14 against the real service under the monitor.

Starting the real service costs seconds, so two monitored services are shared by the
tests of this module: ``calm`` (a tolerant monitor) for the "should not restart" halves
of the pairs, and ``busy`` (the fast test timings) for the "should restart" halves. Each
test judges only the ledger entries written after it began.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import websockets
from opskit import MONITOR, Harness, get, healthy, pid_gone, post
from support.poll import eventually_sync, stays
from support.ports import free_port

pytestmark = pytest.mark.subprocess


@dataclass
class Monitored:
    ops: Harness
    port: int

    def restarts(self, since: float) -> list[dict]:
        return self.ops.events(self.port, "restart", since=since)

    def running(self) -> int:
        return self.ops.wait_running(self.port)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    ops = Harness(tmp_path_factory.mktemp("real"))
    try:
        yield ops
    finally:
        ops.cleanup()


@pytest.fixture(scope="module")
def calm(harness: Harness) -> Monitored:
    """A tolerant monitor: slow probes are fine, six failures in a row are needed."""
    port = free_port()
    harness.monitor(
        port,
        *("--interval", "0.5", "--probe-timeout", "1.5", "--failure-threshold", "6"),
        FEED_WARN_AFTER="0.3",
        FEED_FAIL_AFTER="0.6",
    )
    return Monitored(harness, port)


@pytest.fixture(scope="module")
def busy(harness: Harness) -> Monitored:
    """The fast test timings, with a restart budget large enough for the whole module."""
    port = free_port()
    harness.monitor(port, "--max-restarts", "50", "--stable-after", "0.5")
    return Monitored(harness, port)


def test_row1_sigkill_restarts_with_new_pid_and_signal_9(busy: Monitored) -> None:
    """Row 1: a SIGKILLed service is restarted at once with a new pid; the ledger says signal 9."""
    old, mark = busy.running(), time.time()
    os.kill(old, signal.SIGKILL)
    entry = eventually_sync(lambda: busy.restarts(mark), 10, "a restart")[0]
    assert entry["pid"] == old and entry["signal"] == 9
    assert entry["detail"]["delay"] < 0.5  # within one interval plus a short backoff
    new = busy.running()
    assert new != old and healthy(busy.port) and pid_gone(old)


def test_health_detailed_shows_the_monitors_last_restarts(busy: Monitored) -> None:
    """The service reports the monitor's recent restarts (read from its ledger) in its health."""
    old, mark = busy.running(), time.time()
    os.kill(old, signal.SIGKILL)
    eventually_sync(lambda: busy.restarts(mark), 10, "a restart")
    busy.running()

    def monitor_info() -> dict | None:
        response = get(busy.port, "/health/detailed", timeout=3)
        return response.json().get("monitor") if response is not None else None

    monitor = eventually_sync(monitor_info, 10, "monitor info")
    assert monitor["state"] is not None
    last = monitor["restarts"][-1]
    assert last["event"] == "restart" and last["timestamp"] >= mark
    assert "SIGKILL" in last["reason"]


def test_row1_pair_healthy_service_is_left_alone(calm: Monitored) -> None:
    """Row 1 pair: a healthy service probed for many intervals is never restarted."""
    pid, mark = calm.running(), time.time()
    stays(lambda: not calm.ops.events(calm.port, "failure", "restart", since=mark), 3, "calm")
    assert calm.ops.service_pid(calm.port) == pid


def test_row2_sigstop_escalates_to_sigkill_after_n_failures(busy: Monitored) -> None:
    """Row 2: a SIGSTOPped service times out, is restarted after N failures, and SIGKILLed."""
    old, mark = busy.running(), time.time()
    os.kill(old, signal.SIGSTOP)
    entry = eventually_sync(lambda: busy.restarts(mark), 15, "a restart")[0]
    failures = busy.ops.events(busy.port, "failure", since=mark)
    assert len(failures) >= 2  # threshold 3: two rounds FAILING, the third restarts
    assert "3 consecutive failures" in entry["reason"] and "timed out" in entry["reason"]
    assert entry["signal"] == 9  # a stopped process never runs its SIGTERM handler
    incident = json.loads(Path(entry["incident"]).read_text())
    assert "stopped" in incident["stack_note"]
    eventually_sync(lambda: pid_gone(old), 5, "old pid gone")
    busy.ops.new_start(busy.port, old, since=mark)


def test_row2_pair_short_stop_below_threshold_does_not_restart(calm: Monitored) -> None:
    """Row 2 pair: a stop shorter than N failed probes recovers without a restart."""
    pid, mark = calm.running(), time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        eventually_sync(
            lambda: calm.ops.events(calm.port, "failure", since=mark), 10, "a failed probe"
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually_sync(lambda: calm.ops.state(calm.port)["state"] == "RUNNING", 10, "RUNNING again")
    stays(lambda: not calm.restarts(mark), 1.5, "no restart")
    assert calm.ops.service_pid(calm.port) == pid


def test_row3_blocked_loop_captures_stack_dump_and_restarts(busy: Monitored) -> None:
    """Row 3: a blocked event loop makes health time out; a stack dump is captured; restart."""
    old, mark = busy.running(), time.time()
    assert post(busy.port, "/debug/block?seconds=60").status_code == 200
    entry = eventually_sync(lambda: busy.restarts(mark), 20, "a restart")[0]
    assert entry["pid"] == old and "timed out" in entry["reason"]
    incident = json.loads(Path(entry["incident"]).read_text())
    stack = incident["stack_dump"] or ""
    assert "most recent call first" in stack, incident["stack_note"]
    assert "asyncio" in stack  # the loop's own frames: it is stuck inside a callback
    assert incident["log_tail"] and incident["last_health"]
    busy.ops.new_start(busy.port, old, since=mark)


def test_row3_pair_slow_but_responsive_loop_is_not_restarted(calm: Monitored) -> None:
    """Row 3 pair: short stalls that still let health answer in time never restart."""
    pid, mark = calm.running(), time.time()
    post(calm.port, "/debug/block?seconds=0.3&repeat=8&every=0.5")
    lag = eventually_sync(lambda: _lag(calm.port), 5, "lag visible in /health/detailed")
    assert lag["status"] == "warn"  # slow, not dead: never a liveness failure
    stays(lambda: not calm.restarts(mark), 4, "no restart")
    assert calm.ops.service_pid(calm.port) == pid


def _status(port: int, path: str) -> int | None:
    response = get(port, path)
    return response.status_code if response is not None else None


def _lag(port: int) -> dict | None:
    response = get(port, "/health/detailed", 2)
    if response is None or response.status_code != 200:
        return None
    item = response.json()["checks"]["event_loop:lag"][0]
    return item if item["observedValue"] >= 100 else None


def test_row5_orphan_holding_the_port_is_killed_with_the_group(busy: Monitored) -> None:
    """Row 5: an orphan child holding the port dies with the group; restart works first time."""
    old, mark = busy.running(), time.time()
    holder = post(busy.port, "/debug/orphan").json()["pid"]
    os.kill(old, signal.SIGKILL)
    new = busy.ops.new_start(busy.port, old, since=mark)
    assert pid_gone(holder)
    assert len(busy.ops.events(busy.port, "start", since=mark)) == 1
    assert not busy.ops.events(busy.port, "start_failed", since=mark)
    assert busy.running() == new
    listening = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == busy.port and c.status == psutil.CONN_LISTEN
    }
    assert listening == {new}


def test_row11_paused_feed_fails_readiness_but_never_restarts(calm: Monitored) -> None:
    """Row 11: a paused upstream feed fails readiness, reports staleness, and restarts nothing."""
    pid, mark = calm.running(), time.time()
    post(calm.port, "/debug/feed/pause")
    try:
        eventually_sync(lambda: _status(calm.port, "/readyz") == 503, 10, "not ready")
        detailed = get(calm.port, "/health/detailed").json()
        assert detailed["status"] == "degraded"
        assert detailed["checks"]["feed:staleness"][0]["status"] == "fail"
        stays(lambda: not calm.ops.events(calm.port, "failure", "restart", since=mark), 3, "calm")
        assert calm.ops.service_pid(calm.port) == pid
    finally:
        post(calm.port, "/debug/feed/resume")


def test_row12_websocket_ticks_stop_canary_fails_and_restarts(busy: Monitored) -> None:
    """Row 12: HTTP stays fine but ticks stop; the canary fails and the monitor restarts."""
    old, mark = busy.running(), time.time()
    post(busy.port, "/debug/ws-ticks/stop")
    assert healthy(busy.port)
    entry = eventually_sync(lambda: busy.restarts(mark), 30, "a restart")[0]
    assert entry["pid"] == old and "websocket canary" in entry["reason"]
    busy.ops.new_start(busy.port, old, since=mark)


def test_row14_planned_restart_sends_1012_to_connected_clients(busy: Monitored) -> None:
    """Row 14: on a planned restart every WebSocket client gets 1012 before the process stops."""
    old, mark = busy.running(), time.time()
    codes = asyncio.run(_clients_through_restart(busy, 3))
    assert codes == [1012, 1012, 1012]
    drain = eventually_sync(lambda: busy.ops.events(busy.port, "drain", since=mark), 10, "drain")[0]
    restart = eventually_sync(lambda: busy.restarts(mark), 10, "restart")[0]
    assert drain["detail"]["closed"] >= 3 and drain["ts"] <= restart["ts"]  # +1 if the canary
    assert restart["pid"] == old and restart.get("exit_code") == 0  # stopped gracefully
    busy.ops.new_start(busy.port, old, since=mark)


async def _clients_through_restart(busy: Monitored, count: int) -> list[int]:
    url = f"ws://127.0.0.1:{busy.port}/ws/cotizaciones"
    clients = [await websockets.connect(url) for _ in range(count)]
    for ws in clients:
        await ws.recv()  # the greeting
    argv = (MONITOR, "restart", "--port", str(busy.port), "--run-dir", str(busy.ops.run_dir))
    result = await asyncio.to_thread(busy.ops.cli, *argv)
    assert result.returncode == 0, result.stderr
    codes = []
    for ws in clients:
        async with asyncio.timeout(20):
            await ws.wait_closed()
        codes.append(ws.close_code)
    return codes


def test_row13_monitor_killed_and_restarted_adopts_the_service(busy: Monitored) -> None:
    """Row 13: a new monitor adopts the running service from the state file; no second copy."""
    ops, port = busy.ops, busy.port
    pid, mark = busy.running(), time.time()
    first = next(p for p in ops.procs if str(port) in p.args)
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    assert healthy(port)
    ops.monitor(port, "--max-restarts", "50")
    adopted = eventually_sync(lambda: ops.events(port, "adopt", since=mark), 20, "adoption")[0]
    assert adopted["pid"] == pid

    def fresh() -> int | None:
        return ops.service_pid(port) if ops.state(port)["monitor_pid"] != first.pid else None

    eventually_sync(fresh, 20, "RUNNING under the new monitor")
    stays(lambda: not ops.events(port, "start", since=mark), 1.5, "no second start")
    assert ops.service_processes(port) == [pid]
    os.kill(pid, signal.SIGKILL)  # the adopted process is supervised like our own
    ops.new_start(port, pid, since=mark)
