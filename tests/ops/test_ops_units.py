"""The pure parts of operations: the monitor's state machine, ledger, alerts, options, probes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opskit import Recorder
from support.poll import eventually_sync
from support.ports import free_port

from cotiza import sdnotify
from cotiza.monitor import procs
from cotiza.monitor.alerts import Alert, AlertConfig, Alerter
from cotiza.monitor.ledger import Entry, Ledger, MonitorLock, MonitorState, read_state, write_state
from cotiza.monitor.machine import Action, Machine, Observation, State
from cotiza.monitor.probes import HttpResult, judge_detailed, judge_liveness
from cotiza.monitor.process import Child
from cotiza.monitor.settings import load_monitor_settings
from cotiza.settings import Settings

OK = Observation(alive=True, healthy=True)
BAD = Observation(alive=True, healthy=False, reason="GET /cotizaciones/health: timed out")
DEAD = Observation(alive=False, exit="signal 9")


def machine(**overrides: object) -> Machine:
    values: dict[str, object] = {
        "interval": 1.0,
        "failure_threshold": 3,
        "startup_budget": 10.0,
        "max_restarts": 3,
        "restart_window": 100.0,
        "backoff_base": 1.0,
        "backoff_cap": 8.0,
        "backoff_jitter": 0.0,
        "stable_after": 5.0,
        "memory_limit_mb": 100.0,
        "memory_samples": 3,
        "cpu_warn_percent": 90.0,
        "cpu_samples": 2,
    }
    values.update(overrides)
    m = Machine(load_monitor_settings(**values), random.Random(1))
    m.started(0.0)
    return m


def running(**overrides: object) -> Machine:
    m = machine(**overrides)
    m.observe(0.5, OK)
    assert m.state is State.RUNNING
    return m


# -- the state machine ------------------------------------------------------------------


def test_restart_needs_n_consecutive_failures() -> None:
    """Failures below the threshold only mark FAILING; a healthy probe resets the count."""
    m = running()
    assert m.observe(1, BAD).action is Action.NONE and m.state is State.FAILING
    assert m.observe(2, BAD).action is Action.NONE
    assert m.observe(3, OK).action is Action.NONE and m.state is State.RUNNING
    assert m.observe(4, BAD).action is Action.NONE
    assert m.observe(5, BAD).action is Action.NONE
    decision = m.observe(6, BAD)
    assert decision.action is Action.RESTART and "3 consecutive failures" in decision.reason


def test_restart_also_waits_for_the_failure_grace() -> None:
    """With a grace period, N failures are not enough until the failures have lasted it."""
    m = running(failure_grace=5.0)
    for t in (1.0, 1.1, 1.2, 1.3):
        assert m.observe(t, BAD).action is Action.NONE
    assert m.observe(6.1, BAD).action is Action.RESTART


def test_exit_restarts_at_once_then_backs_off_exponentially() -> None:
    """A dead process restarts at once; repeated restarts wait 1, 2, 4 s (capped)."""
    m = running(max_restarts=10)
    delays = []
    for t in range(5):
        decision = m.observe(10.0 + t, DEAD)
        assert decision.action is Action.RESTART and "signal 9" in decision.reason
        delays.append(decision.delay)
        m.started(10.0 + t)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0]


def test_jitter_keeps_delays_within_bounds() -> None:
    """Jitter only shortens a delay, by at most the configured fraction."""
    m = machine(backoff_jitter=0.5)
    for streak in range(1, 6):
        delay = m.backoff(streak)
        nominal = min(8.0, 2.0 ** (streak - 1))
        assert nominal * 0.5 <= delay <= nominal


def test_restart_budget_gives_up_once_and_window_slides() -> None:
    """Past MAX_RESTARTS in the window: GIVE_UP once; old restarts leave the window."""
    m = running()
    for t in (1, 2, 3):
        assert m.observe(t, DEAD).action is Action.RESTART
        m.started(t)
    decision = m.observe(4, DEAD)
    assert decision.action is Action.GIVE_UP and not decision.silent and m.state is State.GAVE_UP
    assert m.restarts_in_window(4) == 3 and m.restarts_in_window(104) == 0


def test_given_up_probes_slowly_and_tries_one_start_when_the_port_is_free() -> None:
    """GAVE_UP waits the slow interval; a free port allows a trial, a held one does not."""
    m = running(max_restarts=0, giveup_interval=60.0)
    assert m.observe(1, DEAD).action is Action.GIVE_UP
    assert m.next_wait() == 60.0
    assert m.observe(61, Observation(alive=False, blocked_by="pid 7")).action is Action.NONE
    assert m.observe(121, Observation(alive=False)).action is Action.TRIAL_START


def test_failed_trial_stays_given_up_silently_and_success_resumes() -> None:
    """A trial that fails returns to GAVE_UP without a new alert; one that works resumes."""
    m = running(max_restarts=0)
    m.observe(1, DEAD)
    m.started(100, trial=True)
    decision = m.observe(101, DEAD)
    assert decision.action is Action.GIVE_UP and decision.silent
    m.started(200, trial=True)
    decision = m.observe(201, OK)
    assert m.state is State.RUNNING and "resumed" in decision.events
    assert "recovered" in m.observe(207, OK).events  # recovered once stable


def test_adopting_a_healthy_service_while_given_up_resumes() -> None:
    """Someone started the service by hand while given up: the machine resumes."""
    m = running(max_restarts=0)
    m.observe(1, DEAD)
    decision = m.observe(400, OK)
    assert m.state is State.RUNNING and "resumed" in decision.events


def test_startup_budget_and_slow_start() -> None:
    """Within the budget a start may fail its probes; past it, one restart."""
    m = machine(startup_budget=10.0)
    assert m.observe(9.9, BAD).action is Action.NONE and m.state is State.STARTING
    decision = m.observe(10.0, BAD)
    assert decision.action is Action.RESTART and "not healthy within 10 s" in decision.reason


def test_memory_needs_k_samples_and_a_spike_is_noticed_only() -> None:
    """RSS over the limit for K samples restarts for memory; a shorter spike does not."""
    m = running()
    high = Observation(alive=True, healthy=True, rss_mb=150.0)
    assert "memory_high" in m.observe(1, high).events
    assert m.observe(2, high).action is Action.NONE
    assert m.observe(3, OK).action is Action.NONE  # the spike is over: the count resets
    m.observe(4, high)
    m.observe(5, high)
    decision = m.observe(6, high)
    assert decision.action is Action.RESTART and decision.reason.startswith("memory:")


def test_high_cpu_only_warns() -> None:
    """High CPU gives one warning per episode and never a restart."""
    m = running()
    hot = Observation(alive=True, healthy=True, cpu_percent=180.0)
    events = [m.observe(t, hot).events for t in range(1, 6)]
    assert events.count(("cpu_high",)) == 1
    assert m.state is State.RUNNING


def test_operator_restart_is_not_counted() -> None:
    """A requested restart happens at once and does not spend the restart budget."""
    m = running(max_restarts=1)
    assert m.request(1, "SIGHUP").action is Action.RESTART
    m.started(1)
    m.observe(2, OK)
    assert m.observe(3, DEAD).action is Action.RESTART


def test_restart_window_carries_over_to_a_new_monitor() -> None:
    """A new monitor restores recent restarts (not old ones) from the state file."""
    m = machine()
    m.restore([5.0, 50.0, 500.0], now=1000.0)
    assert m.restarts_in_window(1000.0) == 2


# -- files ---------------------------------------------------------------------------------


def test_ledger_skips_a_torn_line_and_state_round_trips(tmp_path: Path) -> None:
    """A half-written ledger line is skipped; the state file reads back what was written."""
    book = Ledger(tmp_path / "l.jsonl")
    book.append(Entry("start", pid=1))
    with (tmp_path / "l.jsonl").open("a") as handle:
        handle.write('{"event": "rest')
    assert [e.event for e in book.read()] == ["start"]
    state = MonitorState(port=1, monitor_pid=2, state="RUNNING", restarts=[1.0])
    write_state(tmp_path / "s.json", state)
    assert read_state(tmp_path / "s.json") == state
    (tmp_path / "bad.json").write_text("{")
    assert read_state(tmp_path / "bad.json") is None


@pytest.mark.subprocess
def test_lock_is_exclusive_and_released_when_the_holder_dies(tmp_path: Path) -> None:
    """One monitor per port: the lock refuses a second holder and frees itself on SIGKILL."""
    path = tmp_path / "m.lock"
    code = (
        "import sys, time; sys.path[:0] = sys.argv[2:]\n"
        "from cotiza.monitor.ledger import MonitorLock\n"
        f"lock = MonitorLock(__import__('pathlib').Path({str(path)!r}))\n"
        "assert lock.acquire()\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *sys.path], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        lock = MonitorLock(path)
        assert not lock.acquire() and lock.holder() == proc.pid
        proc.kill()
        proc.wait()
        assert lock.acquire()
        lock.release()
        assert lock.holder() is None
    finally:
        proc.kill()
        proc.wait()


def hold_the_loop_until_gone(child: Child) -> None:
    """Block the event loop (as a busy monitor would) until the process has died."""
    deadline = time.monotonic() + 10
    while procs.alive(child.pid, child.create_time) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)


@pytest.mark.subprocess
def test_exit_status_is_known_even_when_a_probe_sees_the_process_gone_first(
    tmp_path: Path,
) -> None:
    """A child that just died looks gone (zombie, or reaped with the callback queued) before
    its exit status arrives; ``settle`` waits for it, so a restart records the exit code."""

    async def run() -> tuple[bool, int | None, int | None]:
        command = [sys.executable, "-c", "import os; os._exit(3)"]
        child = await Child.spawn(command, dict(os.environ), tmp_path / "svc.log")
        hold_the_loop_until_gone(child)
        gone_before_status = not child.running() and child.exit_code is None
        status_before = child.exit_code
        await child.settle()
        return gone_before_status, status_before, child.exit_code

    gone_before_status, before, after = asyncio.run(run())
    assert gone_before_status and before is None  # the window the monitor used to fall into
    assert after == 3


# -- alerts --------------------------------------------------------------------------------


def test_alerts_post_the_webhook_and_telegram_send_message(recorder: Recorder) -> None:
    """One alert goes to the webhook as JSON and to Telegram's sendMessage with the chat id."""
    config = AlertConfig(
        webhook_url=f"{recorder.url}/hook",
        telegram_token="123:abc",
        telegram_chat_id="-100",
        telegram_api=recorder.url,
        timeout=2,
    )

    async def send() -> Alerter:
        alerter = Alerter(config)
        alerter.send(Alert("gave_up", 8000, "crash loop", "GAVE_UP", pid=7))
        await alerter.close()
        return alerter

    alerter = asyncio.run(send())
    assert alerter.sent == 2 and alerter.failed == 0
    (hook,) = recorder.bodies("/hook")
    assert hook["event"] == "gave_up" and hook["reason"] == "crash loop" and hook["pid"] == 7
    (telegram,) = recorder.bodies("/bot123:abc/sendMessage")
    assert telegram["chat_id"] == "-100" and "GAVE UP" in telegram["text"]


@pytest.mark.parametrize("behaviour", ["fail", "slow", "closed"])
def test_failing_alert_receivers_never_raise_and_respect_the_timeout(behaviour: str) -> None:
    """A receiver that errors, hangs or is down costs at most the timeout and raises nothing."""
    server = Recorder("fail" if behaviour == "fail" else "slow")
    url = f"{server.url}/hook"
    if behaviour == "closed":
        server.close()
    config = AlertConfig(webhook_url=url, timeout=0.5)

    async def send() -> Alerter:
        alerter = Alerter(config)
        alerter.send(Alert("restart", 8000, "x", "RESTARTING"))
        await alerter.close(timeout=5)
        return alerter

    started = time.monotonic()
    alerter = asyncio.run(send())
    assert time.monotonic() - started < 2.0
    assert alerter.failed == 1 and alerter.sent == 0
    if behaviour != "closed":
        server.close()


# -- configuration -------------------------------------------------------------------------


def test_debug_routes_exist_only_when_enabled() -> None:
    """create_app mounts /debug routes only with DEBUG_FAULTS on."""
    from cotiza.api.app import create_app

    def paths(settings: Settings) -> set[str]:
        return set(create_app(settings).openapi()["paths"])

    assert "/debug/block" not in paths(Settings(host="127.0.0.1"))
    enabled = Settings(host="127.0.0.1", cotiza_env="test", debug_faults=True)
    assert "/debug/block" in paths(enabled)


# -- probes and the service side -----------------------------------------------------------


def test_health_judgement_is_by_content() -> None:
    """A 200 carrying unhealthy, a 5xx and garbage fail; degraded is alive."""
    assert not judge_liveness(HttpResult("/h", 200, 0.1, {"status": "unhealthy"})).ok
    assert not judge_liveness(HttpResult("/h", 200, 0.1, None, "<html>")).ok
    assert not judge_detailed(HttpResult("/d", 500, 0.1, {"detail": "x"})).ok
    assert not judge_detailed(HttpResult("/d", None, 1.0, error="timed out after 1 s")).ok
    degraded = {"status": "degraded", "checks": {"feed:staleness": [{"status": "fail"}]}}
    verdict = judge_detailed(HttpResult("/d", 200, 0.1, degraded))
    assert verdict.ok and verdict.problems


def test_sd_notify_sends_ready_to_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With NOTIFY_SOCKET set, READY=1 reaches the socket; WATCHDOG_USEC gives half the period."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert sdnotify.notify("READY=1")
        assert sock.recv(64) == b"READY=1"
        assert sdnotify.watchdog_interval() == 1.0
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sdnotify.notify("READY=1")


@pytest.mark.subprocess
def test_stack_dump_on_sigusr1_names_the_blocking_call(tmp_path: Path) -> None:
    """SIGUSR1 makes a process blocked in a sync call write every thread's stack to a file."""
    code = (
        "import sys, time, pathlib; sys.path[:0] = sys.argv[2:]\n"
        "from cotiza.stackdump import stack_dumps_on_signal\n"
        f"with stack_dumps_on_signal(pathlib.Path({str(tmp_path)!r})):\n"
        "    def stuck_in_sleep():\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "    stuck_in_sleep()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *sys.path], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        proc.send_signal(signal.SIGUSR1)
        dump = tmp_path / f"stack-{proc.pid}.txt"
        eventually_sync(
            lambda: dump.exists() and "stuck_in_sleep" in dump.read_text(), 5, "the dump"
        )
    finally:
        proc.kill()
        proc.wait()


# -- database check ------------------------------------------------------------------------


def test_head_revision_is_read_from_the_migration_files() -> None:
    """diagnose knows the expected schema revision without importing Alembic."""
    from alembic.script import ScriptDirectory

    from cotiza.diagnose.dbcheck import head_revision
    from cotiza.storage.database import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def _migrate(url: str) -> None:
    from cotiza.storage.database import Database

    async def run() -> None:
        async with Database(url):
            pass

    asyncio.run(run())


def test_database_check_on_sqlite(tmp_path: Path) -> None:
    """SQLite: a missing file warns without being created; a migrated one is at the head."""
    from cotiza.diagnose.dbcheck import database
    from cotiza.diagnose.findings import Level

    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    finding = asyncio.run(database(url, 2.0, True, 10.0))
    assert finding.level is Level.WARN and not (tmp_path / "c.db").exists()
    _migrate(url)
    finding = asyncio.run(database(url, 2.0, True, 10.0))
    assert finding.level is Level.WARN and "no ratio samples" in finding.summary
    assert finding.data["revision"] == finding.data["expected_revision"]


@pytest.mark.postgres
def test_database_check_on_postgres(fresh_pg_url: str) -> None:
    """PostgreSQL: an empty database is critical (no schema); a migrated one is reachable."""
    from cotiza.diagnose.dbcheck import database
    from cotiza.diagnose.findings import Level

    finding = asyncio.run(database(fresh_pg_url, 5.0, True, 10.0))
    assert finding.level is Level.CRIT and "expected" in finding.summary
    _migrate(fresh_pg_url)
    finding = asyncio.run(database(fresh_pg_url, 5.0, True, 10.0))
    assert finding.data["revision"] == finding.data["expected_revision"]
    assert "no ratio samples" in finding.summary


def test_database_check_unreachable_is_critical() -> None:
    """A database that refuses connections is a critical finding, never an exception."""
    from cotiza.diagnose.dbcheck import database
    from cotiza.diagnose.findings import Level

    port = free_port()
    url = f"postgresql+asyncpg://u:secret@127.0.0.1:{port}/x"
    finding = asyncio.run(database(url, 2.0, True, 10.0))
    assert finding.level is Level.CRIT and "secret" not in finding.summary


def test_default_command_is_main_py_or_the_installed_console_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor runs ``python3 main.py`` where there is one, else ``cotiza serve``."""
    from cotiza.cli.monitor import default_command

    monkeypatch.chdir(tmp_path)
    assert default_command()[-1] == "serve"
    (tmp_path / "main.py").write_text("")
    assert default_command() == [sys.executable, "main.py"]
