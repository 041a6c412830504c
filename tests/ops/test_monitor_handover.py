"""The monitor hands a cluster leader's lease over before restarting it (real processes).

The node is the fixture service with ``--cluster-role``: it shows a cluster block in
``/health/detailed``, answers ``POST /admin/handover`` (checking ``API_TOKEN``) and writes
what happened, with times, to an events file.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from opskit import Harness
from support.poll import eventually_sync
from support.ports import free_port

pytestmark = pytest.mark.subprocess

QUICK = (
    "--no-canary",
    *("--interval", "0.2", "--probe-timeout", "1", "--startup-budget", "10"),
    *("--backoff-jitter", "0", "--backoff-base", "0.1", "--stable-after", "1"),
)
TOKEN = "handover-test-token"


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_node(ops: Harness, port: int, role: str, *flags: str, wait: str = "3") -> Path:
    """A monitor on ``port`` running a fixture node in ``role``; the node's events file."""
    log = ops.tmp / f"events-{port}.jsonl"
    command = ops.fixture_command(
        "--port", str(port), "--cluster-role", role, "--events-file", str(log), *flags
    )
    ops.monitor(port, *QUICK, "--handover-wait", wait, command=command, API_TOKEN=TOKEN)
    ops.wait_running(port, timeout=30)
    return log


def planned_restart(ops: Harness, port: int) -> tuple[int, int]:
    """SIGHUP the monitor (what ``monitor restart`` and systemctl reload do); (old, new pid)."""
    old = ops.wait_running(port)
    state = ops.state(port)
    assert state is not None
    os.kill(state["monitor_pid"], signal.SIGHUP)
    new = ops.new_start(port, old, timeout=30)
    return old, new


def test_restarting_a_leader_hands_over_first_and_waits_for_the_lease(ops: Harness) -> None:
    """Handover (with the token) → lease moved → drain → SIGTERM, in that order."""
    port = free_port()
    log = start_node(ops, port, "leader", "--handover-delay", "0.5")
    old, _ = planned_restart(ops, port)
    seen = eventually_sync(
        lambda: [e for e in events(log) if e["pid"] == old and e["event"] == "sigterm"],
        20,
        "sigterm",
    )
    mine = [e for e in events(log) if e["pid"] == old]
    names = [e["event"] for e in mine]
    assert names == ["handover", "drain", "sigterm"], names
    handover, drain = mine[0], mine[1]
    assert handover["leader"] is True
    # The monitor waited until the node reported the new leader (0.5 s later), not longer.
    assert 0.4 <= drain["t"] - handover["t"] < 10, drain["t"] - handover["t"]
    assert seen
    (entry,) = ops.events(port, "handover")
    assert entry["detail"]["new_leader"] == "fixture-standby"
    assert entry["detail"]["node_id"] == f"fixture:{port}" and entry["detail"]["epoch"] == 7
    assert entry["detail"]["status"] == 202 and "reason" not in entry
    restart = ops.events(port, "restart")[0]
    assert entry["ts"] <= restart["ts"]
    assert "handed over: fixture:" in ops.output(f"monitor-{port}")


def test_a_follower_is_restarted_without_a_handover(ops: Harness) -> None:
    """A node that does not lead is drained and restarted; nobody calls /admin/handover."""
    port = free_port()
    log = start_node(ops, port, "follower")
    old, _ = planned_restart(ops, port)
    eventually_sync(lambda: any(e["event"] == "sigterm" for e in events(log)), 20, "sigterm")
    names = [e["event"] for e in events(log) if e["pid"] == old]
    assert names == ["drain", "sigterm"], names
    assert ops.events(port, "handover") == []


def test_a_refused_handover_is_logged_and_the_restart_goes_on(ops: Harness) -> None:
    """/admin/handover answering 503: the ledger says so and the node is restarted anyway."""
    port = free_port()
    log = start_node(ops, port, "leader", "--handover-status", "503")
    old, new = planned_restart(ops, port)
    assert new != old
    (entry,) = eventually_sync(lambda: ops.events(port, "handover"), 10, "a handover entry")
    assert entry["reason"] == "/admin/handover answered HTTP 503"
    assert entry["detail"]["new_leader"] is None
    names = [e["event"] for e in events(log) if e["pid"] == old]
    assert names[:2] == ["handover", "drain"], names


def test_a_lease_that_does_not_move_bounds_the_wait(ops: Harness) -> None:
    """No standby takes the lease: the monitor waits --handover-wait, then restarts."""
    port = free_port()
    log = start_node(ops, port, "leader", "--handover-delay", "60", wait="1")
    old, _ = planned_restart(ops, port)
    eventually_sync(lambda: any(e["event"] == "sigterm" for e in events(log)), 20, "sigterm")
    mine = {e["event"]: e for e in events(log) if e["pid"] == old}
    assert 0.9 <= mine["drain"]["t"] - mine["handover"]["t"] < 8
    (entry,) = ops.events(port, "handover")
    assert entry["detail"]["new_leader"] is None and entry["detail"]["waited"] >= 0.9
