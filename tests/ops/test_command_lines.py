"""Which command lines are a cotiza service or monitor (diagnose, the monitor, discovery)."""

from __future__ import annotations

import pytest

from cotiza.monitor.procs import looks_like_monitor, looks_like_service

PY = "/work/.venv/bin/python3"


@pytest.mark.parametrize(
    ("cmdline", "service", "monitor"),
    [
        ([PY, "main.py", "--port", "8000"], True, False),
        ([PY, "/srv/cotiza/main.py"], True, False),
        (["/usr/local/bin/cotiza", "serve", "--port", "8000"], True, False),
        ([PY, "/usr/local/bin/cotiza", "serve"], True, False),
        ([PY, "-m", "cotiza", "serve", "--port", "8000"], True, False),
        ([PY, "-m", "uvicorn", "main:app", "--port", "8000"], True, False),
        (["uvicorn", "main:app"], True, False),
        ([PY, "monitor_service.py", "--port", "8000"], False, True),
        (["cotiza", "monitor", "--port", "8000"], False, True),
        ([PY, "-m", "cotiza", "monitor", "--", "cotiza", "serve"], False, True),
        (["cotiza", "monitor", "status"], False, False),
        ([PY, "-m", "cotiza", "monitor", "restart"], False, False),
        (["cotiza", "diagnose", "--port", "8000"], False, False),
        ([PY, "-m", "cotiza", "fake-primary", "--port", "9000"], False, False),
        ([PY, "-m", "http.server", "8000"], False, False),
        (["nginx", "-g", "daemon off;"], False, False),
    ],
)
def test_cotiza_processes_are_told_from_others(
    cmdline: list[str], service: bool, monitor: bool
) -> None:
    assert (looks_like_service(cmdline), looks_like_monitor(cmdline)) == (service, monitor)


def test_the_monitors_own_command_is_its_service() -> None:
    command = ["/opt/run-cotiza.sh", "--port", "8000"]
    assert looks_like_service(command, command)
    assert not looks_like_service(command)
