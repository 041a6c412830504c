"""The process's own vital signs: event-loop lag and resident memory.

Both are read by the health checks and ``/metrics``; neither looks at anything outside
the process, so they can judge liveness.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque

import psutil

from cotiza.tasks import cancel_and_wait


class LoopLagProbe:
    """Sleeps a fixed tick and measures how late it wakes up.

    A blocked event loop shows up here even when the TCP port still accepts, which no
    external ping can tell.
    """

    def __init__(self, interval: float, window: int = 40, stop_timeout: float = 10.0) -> None:
        self.interval = interval
        self.stop_timeout = stop_timeout
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
        await cancel_and_wait(task, timeout=self.stop_timeout)

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
    """Resident memory of this process."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())

    def memory_mb(self) -> float:
        return float(self._process.memory_info().rss) / 1_048_576
