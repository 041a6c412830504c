"""Where code runs: monitor, diagnose and the service depend on each other one way, and the
fake servers shipped in the package are reached only through the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "cotiza"
OUTSIDE = (SRC / "monitor", SRC / "diagnose", SRC / "cli")


def imported(path: Path) -> set[str]:
    """Every module (and ``module.name``) that ``path`` imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_monitor_imports_nothing_of_diagnose_the_cli_or_the_service() -> None:
    """``cotiza.monitor`` never imports diagnose, the CLI, the API or the server."""
    forbidden = ("cotiza.diagnose", "cotiza.cli", "cotiza.api", "cotiza.server", "cotiza.service")
    offenders = sorted(
        f"{path.name}: {name}"
        for path in (SRC / "monitor").glob("*.py")
        for name in imported(path)
        if name.startswith(forbidden)
    )
    assert offenders == []


def test_the_service_reads_only_the_monitor_ledger() -> None:
    """Code that runs inside the service imports the monitor's ledger and nothing else of it."""
    inside = [p for p in SRC.rglob("*.py") if not any(p.is_relative_to(d) for d in OUTSIDE)]
    assert SRC / "server.py" in inside and SRC / "sdnotify.py" in inside
    offenders = sorted(
        f"{path.relative_to(SRC)}: {name}"
        for path in inside
        for name in imported(path)
        if name.startswith(("cotiza.monitor", "cotiza.diagnose"))
        and not name.startswith("cotiza.monitor.ledger")
    )
    assert offenders == []


def test_the_fake_servers_are_reached_only_through_the_cli() -> None:
    """``cotiza.fake_primary`` and ``cotiza.fake_telegram`` ship in the package for
    ``cotiza fake-primary`` / ``cotiza fake-telegram``; nothing the service runs imports them."""
    fakes = ("cotiza.fake_primary", "cotiza.fake_telegram")
    allowed = (SRC / "fake_primary", SRC / "fake_telegram", SRC / "cli")
    offenders = sorted(
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        if not any(path.is_relative_to(d) for d in allowed)
        for name in imported(path)
        if name.startswith(fakes)
    )
    assert offenders == []
    cli = {name for path in (SRC / "cli").glob("*.py") for name in imported(path)}
    assert any(name.startswith("cotiza.fake_primary") for name in cli)
    assert any(name.startswith("cotiza.fake_telegram") for name in cli)
