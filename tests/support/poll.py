"""One poller, in the two forms tests need: ``eventually`` (async) and ``eventually_sync``.

Both call ``predicate`` until it returns something truthy and return that value; after
``timeout`` seconds they fail with an AssertionError naming ``message``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _timed_out(message: str, timeout: float) -> AssertionError:
    return AssertionError(f"{message} not met within {timeout:g} s")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Await until ``predicate`` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(message, timeout)
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    message: str = "condition",
    interval: float = 0.05,
) -> T:
    """Block until ``predicate`` returns something truthy; return it. For code outside an
    event loop (tests that drive subprocesses)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(message, timeout)
        time.sleep(interval)


def stays(
    predicate: Callable[[], object], duration: float, message: str, interval: float = 0.05
) -> None:
    """Assert that ``predicate`` holds for the whole of ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(interval)
