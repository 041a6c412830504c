"""Helpers for the feed tests: fast settings, quote collectors, a loop probe, leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from cotiza.fake_primary import FakePrimary
from cotiza.feeds.primary import PrimaryFeed
from cotiza.models import Quote
from cotiza.settings import Settings

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
GGAL = "MERV - XMEV - GGAL - 24hs"
DIC26 = "DLR/DIC26"
INSTRUMENTS = [AL30, AL30D, GGAL, DIC26]

FAST_PRIMARY: dict[str, Any] = {
    "feed": "primary",
    "primary_user": "user",
    "primary_password": "password",
    "market_hours": "always",
    "primary_ping_interval": 0.2,
    "primary_pong_timeout": 0.3,
    "primary_close_timeout": 0.3,
    "primary_open_timeout": 2.0,
    "primary_silence_timeout": 5.0,
    "primary_backoff_base": 0.05,
    "primary_backoff_cap": 0.5,
    "primary_stable_after": 30.0,
    "primary_http_timeout": 2.0,
}


def primary_settings(fake: FakePrimary, **overrides: Any) -> Settings:
    return Settings(**{**FAST_PRIMARY, "primary_env": fake.url, **overrides})


class Collector:
    """A quote sink recording (monotonic time, quote) and waking waiters on every quote."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Quote]] = []
        self._changed = asyncio.Event()

    def __call__(self, quote: Quote) -> None:
        self.items.append((time.monotonic(), quote))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def quotes(self) -> list[Quote]:
        return [quote for _, quote in self.items]

    def since(self, moment: float) -> list[tuple[float, Quote]]:
        return [(t, q) for t, q in self.items if t >= moment]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_count(self, count: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.items) >= count, timeout)

    async def first_since(self, moment: float, timeout: float = 5.0) -> float:
        """The time of the first quote received at or after ``moment``."""
        await self.wait_until(lambda: bool(self.since(moment)), timeout)
        return self.since(moment)[0][0]


class LoopProbe:
    """A ticker task that records how late its 20 ms wake-ups are.

    ``worst_wall`` is the plain lateness. ``worst`` only counts lateness during which this
    thread was running (its CPU time advanced): that is the loop being blocked by code in
    this process, not the machine being busy with other processes (tests share two cores).
    """

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.worst = 0.0
        self.worst_wall = 0.0
        self.beats = 0
        self._task = asyncio.create_task(self._run(), name="loop-probe")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(self.period)
            late = loop.time() - before - self.period
            busy = time.thread_time() - cpu_before
            self.worst_wall = max(self.worst_wall, late)
            self.worst = max(self.worst, min(late, busy))
            self.beats += 1

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def no_tasks_leak(before: set[asyncio.Task[Any]], timeout: float = 3.0) -> None:
    """Every task started since ``before`` finishes within ``timeout`` (none is left over)."""
    current = asyncio.current_task()
    async with asyncio.timeout(timeout):
        while True:
            left = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
            if not left:
                return
            await asyncio.wait(left, timeout=0.05)


@contextlib.asynccontextmanager
async def running(
    feed: PrimaryFeed, instruments: Sequence[str], sink: Callable[[Quote], None]
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``feed`` as a task; cancel it on exit and check that it stopped."""
    task = asyncio.create_task(feed.run(list(instruments), sink), name="feed-under-test")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
