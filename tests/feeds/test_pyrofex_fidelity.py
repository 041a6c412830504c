"""Fidelity of the fake Primary server: the official pyRofex client works against it.

pyRofex is blocking (requests, websocket-client on its own non-daemon thread), so its
calls run in worker threads while the fake serves on the test's event loop; its handlers
hand frames back with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyRofex  # installed by scripts/dev from requirements-nodeps.txt (without enum34)
import pytest
from primary_kit import AL30, DIC26
from pyRofex.components import globals as pyrofex_globals

from cotiza.fake_primary import FakePrimary

pytestmark = pytest.mark.live

ENV = pyRofex.Environment.REMARKET


@pytest.fixture
def pyrofex_env() -> Iterator[None]:
    """pyRofex keeps its configuration in module globals: restore them after the test."""
    saved = copy.copy(pyrofex_globals.environment_config[ENV])
    saved_default = pyrofex_globals.default_environment
    try:
        yield
    finally:
        pyrofex_globals.environment_config[ENV] = saved
        pyrofex_globals.default_environment = saved_default


Blocking = Callable[..., Awaitable[Any]]


@pytest.fixture
async def blocking() -> AsyncIterator[Blocking]:
    """Run pyRofex's blocking calls, one at a time, on one worker thread of their own.

    The loop's default executor may start a second thread for a call made right after
    another returned (the worker marks itself idle only after handing back the result),
    and the thread-leak check below would count it.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyrofex-call")
    loop = asyncio.get_running_loop()

    async def call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    try:
        yield call
    finally:
        pool.shutdown(wait=True)


class Inbox:
    """Messages delivered on pyRofex's thread, observed on the event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def handler(self, message: Any) -> None:  # runs on pyRofex's thread
        self.loop.call_soon_threadsafe(self._add, message)

    def _add(self, message: Any) -> None:
        self.items.append(message)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                await self._changed.wait()


@pytest.mark.usefixtures("pyrofex_env")
async def test_pyrofex_authenticates_lists_snapshots_and_streams(
    fake: FakePrimary, blocking: Blocking
) -> None:
    """pyRofex authenticates, lists instruments, gets a snapshot, subscribes and gets Md."""
    pyRofex._set_environment_parameter("url", fake.url, ENV)
    pyRofex._set_environment_parameter("ws", fake.ws_url, ENV)
    await blocking(
        pyRofex.initialize, user="user", password="password", account="ACC", environment=ENV
    )
    assert fake.auth_attempts == [("user", True)]

    listing = await blocking(pyRofex.get_all_instruments)
    assert listing["status"] == "OK"
    symbols = {item["instrumentId"]["symbol"] for item in listing["instruments"]}
    assert {AL30, DIC26} <= symbols
    segments = await blocking(pyRofex.get_segments)
    assert segments["status"] == "OK" and segments["segments"]
    detail = await blocking(pyRofex.get_instrument_details, DIC26)
    assert detail["instrument"]["instrumentId"]["symbol"] == DIC26

    entries = [
        pyRofex.MarketDataEntry.BIDS,
        pyRofex.MarketDataEntry.OFFERS,
        pyRofex.MarketDataEntry.LAST,
    ]
    snapshot = await blocking(pyRofex.get_market_data, AL30, entries)
    assert snapshot["status"] == "OK"
    assert set(snapshot["marketData"]) == {"BI", "OF", "LA"}
    assert snapshot["marketData"]["BI"][0]["price"] > 0
    unknown = await blocking(pyRofex.get_market_data, "NOPE", entries)
    assert unknown["status"] == "ERROR" and "NOPE" in unknown["description"]

    market_data, errors, exceptions = Inbox(), Inbox(), Inbox()
    threads_before = set(threading.enumerate())
    await blocking(
        pyRofex.init_websocket_connection,
        market_data_handler=market_data.handler,
        error_handler=errors.handler,
        exception_handler=exceptions.handler,
    )
    client = pyrofex_globals.environment_config[ENV]["ws_client"]
    try:
        await blocking(pyRofex.market_data_subscription, [AL30, DIC26], entries)
        for symbol in (AL30, DIC26):
            frame = await market_data.wait_for(lambda m, s=symbol: m["instrumentId"]["symbol"] == s)
            assert frame["type"] == "Md" and "BI" in frame["marketData"]
        await blocking(pyRofex.market_data_subscription, ["NOPE"], entries)
        error = await errors.wait_for(lambda m: isinstance(m, dict))
        assert error["status"] == "ERROR" and "NOPE" in error["description"]
        assert fake.subscriptions(fake.connection_ids[0]) == [AL30, DIC26, "NOPE"]
        assert exceptions.items == []
    finally:
        # websocket-client's reader thread only re-checks for a local close every 10 s (its
        # select timeout), so the server closes first: the thread sees it and ends at once.
        fake.close_all(1000, "test over")
        thread = client.ws_thread
        if thread is not None:
            await blocking(thread.join, 15)
        await blocking(pyRofex.close_websocket_connection)
    assert thread is None or not thread.is_alive()
    lingering = [t for t in set(threading.enumerate()) - threads_before if not t.daemon]
    assert lingering == []
