"""Results of ``diagnose``: one finding per check, a report, and Nagios exit codes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRIT = "crit"
    SKIP = "skip"
    UNKNOWN = "unknown"


SYMBOLS = {Level.OK: "✓", Level.WARN: "!", Level.CRIT: "✗", Level.SKIP: "-", Level.UNKNOWN: "?"}

# Nagios plugin exit codes.
EXIT_OK, EXIT_WARN, EXIT_CRIT, EXIT_UNKNOWN = 0, 1, 2, 3


@dataclass
class Finding:
    """One check: a level, a one-line summary with the measured values, and a fix hint."""

    name: str
    level: Level
    summary: str
    lines: list[str] = field(default_factory=list)
    hint: str | None = None
    data: Mapping[str, object] = field(default_factory=dict)  # the check's own TypedDict
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.level.value,
            "summary": self.summary,
            "details": self.lines,
            "hint": self.hint,
            "data": self.data,
            "elapsed_s": round(self.elapsed, 3),
        }


def skipped(name: str, why: str) -> Finding:
    return Finding(name, Level.SKIP, f"skipped: {why}")


@dataclass
class Report:
    host: str
    port: int
    started_at: float
    elapsed: float
    findings: list[Finding]

    def count(self, level: Level) -> int:
        return sum(1 for f in self.findings if f.level is level)

    def exit_code(self, fail_on: str = "warn") -> int:
        """0 all ok, 1 warnings, 2 a critical problem, 3 a check could not run.

        ``fail_on="crit"`` lets warnings pass with 0.
        """
        if self.count(Level.CRIT):
            return EXIT_CRIT
        if self.count(Level.UNKNOWN):
            return EXIT_UNKNOWN
        if self.count(Level.WARN) and fail_on == "warn":
            return EXIT_WARN
        return EXIT_OK

    def verdict(self, fail_on: str = "warn") -> str:
        names = {EXIT_OK: "OK", EXIT_WARN: "WARNING", EXIT_CRIT: "CRITICAL", 3: "UNKNOWN"}
        return names[self.exit_code(fail_on)]

    def as_dict(self, fail_on: str = "warn") -> dict[str, Any]:
        return {
            "target": f"{self.host}:{self.port}",
            "started_at": self.started_at,
            "elapsed_s": round(self.elapsed, 3),
            "status": self.verdict(fail_on),
            "exit_code": self.exit_code(fail_on),
            "checks": [f.as_dict() for f in self.findings],
        }


async def guarded(name: str, check: Awaitable[Finding], timeout: float) -> Finding:
    """Run one check with its own deadline; an error is UNKNOWN, never a crash of diagnose."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            finding = await check
    except TimeoutError:
        finding = Finding(name, Level.UNKNOWN, f"the check did not finish within {timeout:g} s")
    except Exception as exc:
        log.debug("check %s failed", name, exc_info=True)
        finding = Finding(name, Level.UNKNOWN, f"the check failed: {type(exc).__name__}: {exc}")
    finding.elapsed = time.perf_counter() - started
    return finding
