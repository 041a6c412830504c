"""The monitor's options: flags over environment over ``.env`` over one default per knob,
and a bad value named in one line (in-process and through ``monitor_service.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from opskit import MAIN, MONITOR, PY, Harness
from support.ports import free_port

from cotiza.cli.monitor import monitor_settings
from cotiza.errors import ConfigurationError
from cotiza.monitor.settings import KNOBS, load_monitor_settings
from cotiza.settings import Settings


def _args(**values: object) -> argparse.Namespace:
    base: dict[str, object] = dict.fromkeys(KNOBS)
    base.update(port=None, host=None, no_canary=False)
    base.update(values)
    return argparse.Namespace(**base)


@pytest.fixture
def monitor_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without ``.env`` and an environment without monitor variables."""
    from cotiza.monitor.settings import MonitorSettings

    monkeypatch.chdir(tmp_path)
    for name in MonitorSettings.model_fields:
        monkeypatch.delenv(MonitorSettings.variable(name), raising=False)
    return tmp_path


def test_monitor_options_flag_beats_environment_beats_default(
    monitor_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags override the environment, which overrides ``.env``, which overrides defaults."""
    (monitor_env / ".env").write_text("MONITORING_INTERVAL=2\nMAX_RESTARTS=7\n")
    config = monitor_settings(_args())
    assert (config.interval, config.max_restarts, config.probe_timeout) == (2.0, 7, 2.0)
    monkeypatch.setenv("MONITOR_FAILURE_THRESHOLD", "5")
    monkeypatch.setenv("MONITORING_INTERVAL", "9")
    config = monitor_settings(_args(failure_threshold=4))
    assert config.failure_threshold == 4 and config.interval == 9.0 and config.probe_timeout == 5.0


def test_monitor_options_name_the_bad_variable(
    monitor_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid value stops with one message naming the variable or flag."""
    monkeypatch.setenv("MONITOR_TERM_GRACE", "soon")
    with pytest.raises(ConfigurationError, match="MONITOR_TERM_GRACE"):
        monitor_settings(_args())
    monkeypatch.delenv("MONITOR_TERM_GRACE")
    with pytest.raises(ConfigurationError, match="--failure-threshold"):
        monitor_settings(_args(failure_threshold=0))


def test_monitor_settings_hold_the_one_default_of_each_knob(monitor_env: Path) -> None:
    """MONITORING_INTERVAL and MAX_RESTARTS default only in MonitorSettings; timeouts follow."""
    settings = load_monitor_settings()
    assert (settings.interval, settings.max_restarts) == (30.0, 3)
    assert (settings.probe_timeout, settings.canary_window) == (5.0, 5.0)
    fast = load_monitor_settings(interval=0.5)
    assert (fast.probe_timeout, fast.canary_window) == (0.5, 1.0)
    assert not {"monitoring_interval", "max_restarts"} & set(Settings.model_fields)
    (monitor_env / ".env").write_text("MONITOR_TERM_GRACE=3\n")
    assert load_monitor_settings().term_grace == 3.0


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        ((), {"MONITORING_INTERVAL": "soon"}, "MONITORING_INTERVAL: expected a number"),
        ((), {"MAX_RESTARTS": "-1"}, "MAX_RESTARTS: must be at least 0"),
        ((), {"MONITOR_BACKOFF_JITTER": "2"}, "MONITOR_BACKOFF_JITTER: must be at most 1"),
        (("--interval", "0"), {}, "--interval: must be at least 0.01"),
    ],
)
def test_invalid_monitor_configuration_stops_it_with_exit_2_naming_it(
    ops: Harness, flags: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    """A bad monitor variable or flag stops ``monitor_service.py``: exit 2, one line, no files."""
    port = str(free_port())
    argv = (MONITOR, "--port", port, "--run-dir", str(ops.run_dir), *flags, "--", PY, MAIN)
    result = ops.cli(*argv, **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not ops.run_dir.exists()  # neither a state file nor a started service
