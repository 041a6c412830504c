"""Showing a diagnose report: rich on a terminal, plain text when piped, or JSON."""

from __future__ import annotations

import json
from typing import TextIO

from cotiza.diagnose.findings import SYMBOLS, Level, Report
from cotiza.diagnose.legacy import prototype_keys
from cotiza.monitor.ledger import utc_iso

_STYLE = {
    Level.OK: "green",
    Level.WARN: "yellow",
    Level.CRIT: "bold red",
    Level.SKIP: "dim",
    Level.UNKNOWN: "magenta",
}


def as_json(report: Report, fail_on: str) -> str:
    """cotiza's report, and beside it the top-level keys the prototype's diagnosis wrote."""
    body = {**report.as_dict(fail_on), **prototype_keys(report)}
    return json.dumps(body, indent=2, ensure_ascii=False, default=str)


def _footer(report: Report, fail_on: str) -> str:
    counts = ", ".join(
        f"{report.count(level)} {level.value}"
        for level in (Level.CRIT, Level.WARN, Level.UNKNOWN, Level.SKIP)
        if report.count(level)
    )
    code = report.exit_code(fail_on)
    return f"{report.verdict(fail_on)}{': ' + counts if counts else ''} (exit {code})"


def plain(report: Report, fail_on: str, out: TextIO) -> None:
    when = utc_iso(report.started_at)
    out.write(f"cotiza diagnose {report.host}:{report.port} at {when} ({report.elapsed:.2f} s)\n")
    for finding in report.findings:
        out.write(f"[{SYMBOLS[finding.level]}] {finding.name:<10} {finding.summary}\n")
        for line in finding.lines:
            out.write(f"      {line}\n")
        if finding.hint:
            out.write(f"      fix: {finding.hint}\n")
    out.write(_footer(report, fail_on) + "\n")


def rich(report: Report, fail_on: str, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False)
    when = utc_iso(report.started_at)
    table = Table(
        title=f"cotiza diagnose {report.host}:{report.port}",
        caption=f"{when}, {report.elapsed:.2f} s",
        show_lines=True,
    )
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    for finding in report.findings:
        style = _STYLE[finding.level]
        body = Text(finding.summary, style=style if finding.level is not Level.OK else "")
        for line in finding.lines:
            body.append("\n" + line, style="dim")
        if finding.hint:
            body.append("\nfix: " + finding.hint, style="cyan")
        table.add_row(Text(f"[{SYMBOLS[finding.level]}]", style=style), finding.name, body)
    console.print(table)
    code = report.exit_code(fail_on)
    style = _STYLE[{0: Level.OK, 1: Level.WARN, 2: Level.CRIT}.get(code, Level.UNKNOWN)]
    console.print(Text(_footer(report, fail_on), style=style))
