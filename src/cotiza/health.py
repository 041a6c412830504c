"""Health checks in the shape of the IETF health-check draft, and the loop-lag probe."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psutil

log = logging.getLogger(__name__)


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Scope(StrEnum):
    """What a failing check says about the service.

    A LIVENESS failure means the process itself is broken (restart it); a READINESS
    failure means something outside it is missing (database, upstream feed), which a
    restart cannot fix.
    """

    LIVENESS = "liveness"
    READINESS = "readiness"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None
    scope: Scope = Scope.LIVENESS

    def as_dict(self, now: float) -> dict[str, Any]:
        item: dict[str, Any] = {
            "status": self.status.value,
            "observedValue": self.observed_value,
            "time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
        }
        if self.observed_unit:
            item["observedUnit"] = self.observed_unit
        if self.output:
            item["output"] = self.output
        item["affects"] = self.scope.value
        return item


def grade(value: float, warn: float, fail: float) -> Status:
    if value >= fail:
        return Status.FAIL
    if value >= warn:
        return Status.WARN
    return Status.PASS


def overall(checks: list[Check]) -> str:
    """``unhealthy`` on a liveness failure, ``degraded`` on any other problem."""
    if any(c.status is Status.FAIL and c.scope is Scope.LIVENESS for c in checks):
        return "unhealthy"
    if any(c.status is not Status.PASS for c in checks):
        return "degraded"
    return "healthy"


def ready(checks: list[Check]) -> bool:
    return not any(c.status is Status.FAIL for c in checks)


def render(checks: list[Check], now: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        out.setdefault(check.name, []).append(check.as_dict(now))
    return out


async def timed_check(
    name: str, timeout: float, probe: Callable[[], Awaitable[Check]], scope: Scope
) -> Check:
    """Run ``probe`` with a deadline; a timeout or an error is a failed check."""
    try:
        async with asyncio.timeout(timeout):
            return await probe()
    except TimeoutError:
        return Check(name, Status.FAIL, None, None, f"timed out after {timeout:g} s", scope)
    except Exception as exc:
        log.warning("health check %s failed: %r", name, exc)
        return Check(name, Status.FAIL, None, None, f"{type(exc).__name__}", scope)


class LoopLagProbe:
    """Sleeps a fixed tick and measures how late it wakes up.

    A blocked event loop shows up here even when the TCP port still accepts, which no
    external ping can tell.
    """

    def __init__(self, interval: float, window: int = 40) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=window)
        self.last = 0.0
        self.last_beat: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - expected)
            self.last = lag
            self.samples.append(lag)
            self.last_beat = loop.time()
            self.beats += 1

    def current(self) -> float:
        """Worst lag over the recent window, counting a beat that is overdue right now."""
        worst = max(self.samples, default=0.0)
        if self.last_beat is not None:
            overdue = asyncio.get_running_loop().time() - self.last_beat - self.interval
            worst = max(worst, overdue)
        return max(0.0, worst)


class ProcessStats:
    """Resident memory, threads and open files of this process."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())

    def memory_mb(self) -> float:
        return float(self._process.memory_info().rss) / 1_048_576

    def snapshot(self) -> dict[str, Any]:
        with self._process.oneshot():
            info: dict[str, Any] = {
                "pid": self._process.pid,
                "rss_mb": round(self.memory_mb(), 1),
                "threads": self._process.num_threads(),
                "cpu_percent": self._process.cpu_percent(None),
            }
            with contextlib.suppress(psutil.Error):
                info["open_files"] = self._process.num_fds()
        return info


def now_epoch() -> float:
    return time.time()
