"""The deploy directory never tells anyone to run a bare ``python3`` (it cannot import cotiza)."""

from __future__ import annotations

import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# A ``python``/``python3`` command word that is not the tail of a path (``.venv/bin/python``).
BARE = re.compile(r"(?<![\w/.-])python3?(?![\w.-])")


def bare_python_lines(path: Path) -> list[str]:
    """Lines of ``path`` that would run an interpreter found on PATH rather than the venv's."""
    return [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BARE.search(line)
    ]


def test_the_detector_catches_bare_python_and_accepts_the_venv() -> None:
    """The pattern itself: bare interpreters match, the venv's interpreter does not."""
    assert BARE.search("python3 diagnose_service.py --port 8000")
    assert BARE.search("`python3 diagnose_service.py` shows")
    assert BARE.search("  python monitor_service.py status")
    assert not BARE.search("/opt/cotiza/.venv/bin/python diagnose_service.py")
    assert not BARE.search("ExecStart=/opt/cotiza/.venv/bin/python3 main.py")


def test_no_deploy_file_runs_a_bare_python() -> None:
    """Every command in deploy/ (docs, units, supervisord) uses the virtualenv's interpreter."""
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert DEPLOY / "README.md" in files
    offenders = [line for path in files for line in bare_python_lines(path)]
    assert offenders == []
