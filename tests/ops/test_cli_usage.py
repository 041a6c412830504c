"""Usage errors are errors: typos never start anything, every entry point shows its own usage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
KEEP_STACK_DUMPS = 5


def run(
    args: list[str], tmp_path: Path, timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    environment.update(RUN_DIR=str(tmp_path / "run"), **env)
    return subprocess.run(
        args,
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("typo", ["stauts", "restrat", "statu"])
def test_an_unknown_monitor_sub_command_is_a_usage_error(typo: str, tmp_path: Path) -> None:
    """``cotiza monitor stauts`` exits 2 with usage and starts no monitor."""
    result = run([sys.executable, "-m", "cotiza", "monitor", "--port", "1", typo], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "usage:" in result.stderr and typo in result.stderr
    assert "status" in result.stderr and "restart" in result.stderr  # names what is valid
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_a_monitor_command_after_the_separator_is_still_accepted(tmp_path: Path) -> None:
    """``monitor -- CMD`` is not mistaken for a sub-command: the usage check lets it through."""
    result = run(
        [sys.executable, "-m", "cotiza", "monitor", "--interval", "-1", "--", "stauts"], tmp_path
    )
    assert result.returncode == 2  # the bad interval, not the command, is what stops it
    assert "stauts" not in result.stderr


def test_main_py_shows_its_own_usage(tmp_path: Path) -> None:
    """``python main.py --bogus`` names main.py in the usage line, not ``cotiza serve``."""
    result = run([sys.executable, "main.py", "--bogus"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: main.py"), result.stderr
    assert "--bogus" in result.stderr
    helped = run([sys.executable, "main.py", "--help"], tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: main.py")


def test_scripts_dev_help_prints_usage_cleanly(tmp_path: Path) -> None:
    """``scripts/dev --help`` exits 0 with plain usage on stdout; an unknown command fails."""
    for flag in ("--help", "-h", "help"):
        result = run(["bash", "scripts/dev", flag], tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("usage: scripts/dev"), result.stdout
        assert any("scripts/dev test" in line for line in lines)
        assert not any(line.startswith("#") for line in lines)
        assert result.stderr == ""
    wrong = run(["bash", "scripts/dev", "tset"], tmp_path)
    assert wrong.returncode == 2
    assert "tset" in wrong.stderr and "usage: scripts/dev" in wrong.stderr


def dead_pid() -> int:
    """A pid that belongs to no process (a finished child's)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stack_dump_files_do_not_pile_up(tmp_path: Path) -> None:
    """Old dumps of dead processes are pruned to the last few; empty ones never stay."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = []
    for index in range(12):
        path = run_dir / f"stack-{dead_pid()}.txt"
        path.write_text("" if index % 2 else f"Thread 0x1 (most recent call first): {index}\n")
        os.utime(path, (time.time() - 1000 + index, time.time() - 1000 + index))
        stale.append(path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    environment.update(
        RUN_DIR=str(run_dir),
        DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db",
        MARKET_HOURS="always",
    )
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("service did not become ready")
        own = run_dir / f"stack-{proc.pid}.txt"
        dumps = sorted(p for p in run_dir.glob("stack-*.txt") if p != own)
        assert dumps, "every old dump was removed: the last few must be kept"
        assert all(p.stat().st_size > 0 for p in dumps)  # empty leftovers are gone
        assert len(dumps) <= KEEP_STACK_DUMPS - 1  # the running process's own file counts
        assert stale[-2] in dumps  # the newest non-empty dump is kept
        assert stale[0] not in dumps  # the oldest is not
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not (run_dir / f"stack-{proc.pid}.txt").exists()  # a clean exit leaves nothing
