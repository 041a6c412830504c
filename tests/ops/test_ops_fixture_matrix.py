"""Fault matrix rows 4, 6, 7, 8, 9 and 10: the monitor against a fixture service that
misbehaves on demand (the real service cannot start slowly or leak memory when asked)."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import pytest
from opskit import DIAGNOSE, MONITOR, PY, Harness, Recorder, get, healthy, pid_gone, post
from support.poll import eventually_sync, stays
from support.ports import free_port

pytestmark = pytest.mark.subprocess

# Fixture processes start in a fraction of a second: tight budgets, no WebSocket canary.
QUICK = (
    "--no-canary",
    *("--interval", "0.2", "--probe-timeout", "0.4", "--startup-budget", "6"),
    *("--backoff-jitter", "0", "--stable-after", "1"),
)


def start(
    ops: Harness, port: int, *fixture_flags: str, monitor_flags: tuple[str, ...] = (), **env: str
):
    command = ops.fixture_command("--port", str(port), *fixture_flags)
    return ops.monitor(port, *QUICK, *monitor_flags, command=command, **env)


def test_row4_foreign_port_holder_backs_off_and_gives_up(ops: Harness) -> None:
    """Row 4: a foreign listener on the port: growing delays, then GAVE_UP with that reason."""
    port = free_port()
    holder = ops.spawn([PY, "-c", _LISTEN.format(port=port)], "holder")
    eventually_sync(lambda: _listening(port), 10, "the foreign listener")
    start(ops, port, monitor_flags=("--max-restarts", "3", "--backoff-base", "0.2"))
    gave_up = eventually_sync(lambda: ops.events(port, "gave_up"), 15, "give-up")[0]
    assert f"held by pid {holder.pid}" in gave_up["reason"] and "foreign" in gave_up["reason"]
    attempts = [e["ts"] for e in ops.events(port, "start_failed")]
    assert len(attempts) == 4 and not ops.events(port, "start")
    delays = [e["detail"]["delay"] for e in ops.events(port, "restart")]
    assert delays == [0.0, 0.2, 0.4]  # growing backoff (jitter off here): never a busy loop
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True))
    stays(
        lambda: len(ops.events(port, "start_failed", "start")) == 4, 2, "no attempt after giving up"
    )
    result = ops.cli(DIAGNOSE, "--port", str(port), "--run-dir", str(ops.run_dir))
    assert result.returncode == 2, result.stdout
    assert f"pid {holder.pid}" in result.stdout and "foreign" in result.stdout


_LISTEN = (
    "import socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)\n"
)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_row6_slow_start_within_budget_is_not_restarted(ops: Harness) -> None:
    """Row 6: a start slower than the probes but within the budget is left alone."""
    port = free_port()
    start(ops, port, "--start-delay", "1.5", monitor_flags=("--startup-budget", "5"))
    ready = eventually_sync(lambda: ops.events(port, "ready"), 15, "ready")[0]
    first = ops.events(port, "start")[0]
    assert ready["ts"] - first["ts"] >= 1.5
    assert not ops.events(port, "restart")


def test_row6_never_ready_gets_exactly_one_restart_per_budget(ops: Harness) -> None:
    """Row 6 pair: a process that never becomes ready is restarted once per startup budget."""
    port = free_port()
    start(
        ops, port, "--never-ready", monitor_flags=("--startup-budget", "1", "--max-restarts", "5")
    )
    eventually_sync(lambda: len(ops.events(port, "restart")) >= 3, 20, "three restarts")
    starts = [e["ts"] for e in ops.events(port, "start")]
    restarts = ops.events(port, "restart")[:3]
    for begun, restart in zip(starts, restarts, strict=False):
        waited = restart["ts"] - begun
        assert 1.0 <= waited < 2.5, waited  # the budget, plus at most a few probe periods
        assert "startup: not healthy within 1 s" in restart["reason"]


def test_row7_memory_growth_over_the_limit_restarts_for_memory(ops: Harness) -> None:
    """Row 7: RSS over the limit for K consecutive samples restarts with reason "memory"."""
    port = free_port()
    start(
        ops,
        port,
        "--grow-mb",
        "150",
        monitor_flags=("--memory-limit-mb", "120", "--memory-samples", "3"),
    )
    entry = eventually_sync(lambda: ops.events(port, "restart"), 20, "a restart")[0]
    assert entry["reason"].startswith("memory: RSS") and "3 samples" in entry["reason"]
    assert ops.events(port, "memory_high")


def test_row7_single_spike_is_not_restarted(ops: Harness) -> None:
    """Row 7 pair: one short spike over the limit is noticed but never restarts the service."""
    port = free_port()
    flags = ("--spike-mb", "200", "--spike-at", "1", "--spike-for", "0.8")
    start(ops, port, *flags, monitor_flags=("--memory-limit-mb", "120", "--memory-samples", "8"))
    eventually_sync(lambda: ops.events(port, "memory_high"), 15, "the spike seen by the monitor")
    eventually_sync(
        lambda: (r := get(port, "/fixture/state")) and r.json()["spike_done"], 10, "spike over"
    )
    stays(lambda: not ops.events(port, "restart"), 1.5, "no restart for a spike")


def test_row8_fast_crash_loop_backs_off_gives_up_and_recovers(
    ops: Harness, recorder: Recorder, tmp_path: Path
) -> None:
    """Row 8: a fast crash loop backs off, gives up once, stays quiet, then recovers when fixed."""
    port = free_port()
    fixed = tmp_path / "fixed"
    start(
        ops,
        port,
        *("--exit-at-start", "--fixed-file", str(fixed)),
        monitor_flags=(
            *("--max-restarts", "3", "--backoff-base", "0.3", "--backoff-cap", "5"),
            *("--webhook-url", f"{recorder.url}/hook", "--telegram-api", recorder.url),
        ),
        TELEGRAM_BOT_TOKEN="123:abc",
        TELEGRAM_CHAT_ID="42",
    )
    gave_up = eventually_sync(lambda: ops.events(port, "gave_up"), 20, "give-up")[0]
    delays = [e["detail"]["delay"] for e in ops.events(port, "restart")]
    assert delays == [0.0, 0.3, 0.6]  # growing delays; jitter is off in this test
    assert "exited during start-up" in gave_up["reason"] and gave_up["exit_code"] == 3
    starts = len(ops.events(port, "start"))
    stays(lambda: len(ops.events(port, "start")) == starts, 2, "no start right after giving up")
    assert ops.state(port)["state"] == "GAVE_UP"
    fixed.touch()
    eventually_sync(lambda: ops.events(port, "resumed"), 15, "resumed")
    eventually_sync(lambda: healthy(port), 5, "healthy")
    eventually_sync(
        lambda: recorder.bodies("/hook") and recorder.bodies("/hook")[-1]["event"] == "recovered",
        10,
        "recovery alert",
    )
    events = [body["event"] for body in recorder.bodies("/hook")]
    assert events == ["restart", "restart", "restart", "gave_up", "recovered"]
    telegram = recorder.bodies("/bot123:abc/sendMessage")
    assert (
        len(telegram) == 5 and telegram[3]["chat_id"] == "42" and "GAVE UP" in telegram[3]["text"]
    )


def test_row8_slow_crash_loop_counts_every_restart_and_gives_up(ops: Harness) -> None:
    """Row 8: a service that crashes after running healthily still exhausts the restart budget."""
    port = free_port()
    start(
        ops,
        port,
        *("--crash-after", "1.0"),
        monitor_flags=("--max-restarts", "3", "--backoff-base", "0.2", "--stable-after", "5"),
    )
    eventually_sync(lambda: ops.events(port, "gave_up"), 30, "give-up")
    restarts = ops.events(port, "restart")
    assert len(restarts) == 3 and all(e["exit_code"] == 3 for e in restarts)
    assert len(ops.events(port, "ready")) == 4  # each run was healthy before it crashed
    delays = [e["detail"]["delay"] for e in restarts]
    assert delays == sorted(delays) and delays[-1] > delays[0]
    stays(lambda: len(ops.events(port, "start")) == 4, 2, "no start right after giving up")


def test_monitor_exits_with_4_on_give_up_when_asked(ops: Harness) -> None:
    """GAVE_UP has its own exit code (4) with --exit-on-give-up."""
    port = free_port()
    flags = ("--max-restarts", "1", "--exit-on-give-up")
    proc = start(ops, port, "--exit-at-start", monitor_flags=flags)
    assert proc.wait(30) == 4


def test_row9_process_ignoring_sigterm_is_sigkilled_after_grace(ops: Harness) -> None:
    """Row 9: a process that ignores SIGTERM is SIGKILLed after the grace period; no zombie."""
    port = free_port()
    start(ops, port, "--ignore-sigterm", monitor_flags=("--term-grace", "0.5"))
    old = ops.wait_running(port, 15)
    post(port, "/fixture/mode?m=500")
    entry = eventually_sync(lambda: ops.events(port, "restart"), 15, "a restart")[0]
    assert entry["pid"] == old and entry["signal"] == 9
    assert pid_gone(old)  # reaped by the monitor, not left a zombie
    assert "ignored SIGTERM" in ops.output(f"monitor-{port}")
    ops.new_start(port, old)


def test_row9_pair_process_honouring_sigterm_is_not_sigkilled(ops: Harness) -> None:
    """Row 9 pair: a process that exits on SIGTERM is never SIGKILLed."""
    port = free_port()
    start(ops, port, monitor_flags=("--term-grace", "5"))
    old = ops.wait_running(port, 15)
    post(port, "/fixture/mode?m=500")
    entry = eventually_sync(lambda: ops.events(port, "restart"), 15, "a restart")[0]
    assert entry["pid"] == old and entry["signal"] == signal.SIGTERM
    assert "ignored SIGTERM" not in ops.output(f"monitor-{port}")


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("unhealthy200", "200 but status 'unhealthy'"),
        ("500", "HTTP 500"),
        ("503", "HTTP 503"),
        ("garbage", "without a JSON object"),
        ("timeout", "timed out"),
    ],
)
def test_row10_bad_health_answer_counts_as_failure(ops: Harness, mode: str, expected: str) -> None:
    """Row 10: 200-unhealthy, 500, 503, garbage and a timeout each lead to a restart."""
    port = free_port()
    start(ops, port, monitor_flags=("--max-restarts", "5"))
    old = ops.wait_running(port, 15)
    post(port, f"/fixture/mode?m={mode}")
    entry = eventually_sync(lambda: ops.events(port, "restart"), 15, "a restart")[0]
    assert entry["pid"] == old and expected in entry["reason"]
    new = ops.wait_running(port, 15)  # and it keeps probing the new process
    post(port, f"/fixture/mode?m={mode}")
    second = eventually_sync(
        lambda: len(ops.events(port, "restart")) >= 2 and ops.events(port, "restart")[1],
        15,
        "again",
    )
    assert second["pid"] == new


def test_row10_pair_degraded_health_is_not_a_failure(ops: Harness) -> None:
    """Row 10 pair: a 200 "degraded" answer (readiness trouble) is never counted as a failure."""
    port = free_port()
    start(ops, port)
    pid = ops.wait_running(port, 15)
    post(port, "/fixture/mode?m=degraded")
    stays(lambda: not ops.events(port, "failure", "restart"), 2, "no failure for degraded")
    assert ops.service_pid(port) == pid


def test_monitor_sigterm_stops_the_service_unless_told_to_leave_it(ops: Harness) -> None:
    """Its own SIGTERM stops the service; with --leave-running the service survives."""
    port = free_port()
    proc = start(ops, port)
    pid = ops.wait_running(port, 15)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0 and pid_gone(pid)
    port = free_port()
    proc = start(ops, port, monitor_flags=("--leave-running",))
    pid = ops.wait_running(port, 15)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    assert not pid_gone(pid) and healthy(port)
    os.kill(pid, signal.SIGKILL)


def test_a_second_monitor_for_the_same_port_refuses_to_start(ops: Harness) -> None:
    """Only one monitor per port: a second one exits with 3 and starts nothing."""
    port = free_port()
    start(ops, port)
    ops.wait_running(port, 15)
    second = start(ops, port)
    assert second.wait(15) == 3
    assert len(ops.events(port, "start")) == 1
    assert "another monitor" in ops.output(f"monitor-{port}")


def test_monitor_status_shows_state_pid_uptime_restarts_and_reasons(ops: Harness) -> None:
    """`monitor status` prints state, pid, uptime, restarts in the window and the last reasons."""
    port = free_port()
    start(ops, port)
    old = ops.wait_running(port, 15)
    post(port, "/fixture/mode?m=500")
    ops.new_start(port, old)
    pid = eventually_sync(
        lambda: ops.service_pid(port) not in (None, old) and ops.service_pid(port), 15, "up"
    )
    result = ops.cli(MONITOR, "status", "--port", str(port), "--run-dir", str(ops.run_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines()[:3] if line.strip())
    assert rows["state"].strip() == "RUNNING" and rows["port"].strip() == str(port)
    assert f"service pid  {pid}" in result.stdout and "uptime" in result.stdout
    assert "1 of 3 in the last 0:02:00" in result.stdout
    assert "restart: 3 consecutive failures: GET /cotizaciones/health: HTTP 500" in result.stdout
    data = json.loads(
        ops.cli(
            MONITOR, "status", "--json", "--port", str(port), "--run-dir", str(ops.run_dir)
        ).stdout
    )
    assert data["running"] and data["service_pid"] == pid
