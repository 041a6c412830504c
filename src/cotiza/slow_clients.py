"""Closing connections whose request or WebSocket handshake never completes.

uvicorn's keep-alive timeout only starts once a response is complete: a client that opens
a connection and sends half a request line (or half the headers of a WebSocket upgrade)
holds a descriptor forever. ``guarded_protocol`` wraps uvicorn's HTTP protocol class with
a timer: a connection that neither completes a new request nor is busy serving one for a
whole ``WEBSOCKET_TIMEOUT`` is closed, and the closures are logged at most once a minute.

Besides ``cotiza.ws.transport``, this is the one place that reads uvicorn's protocol
internals: ``transport`` and ``cycle`` (with its ``response_complete``), both present in
``H11Protocol`` and ``HttpToolsProtocol`` (pinned by ``tests/api/test_slow_clients.py``).
A protocol handed over to a WebSocket after an upgrade is no longer watched here: the
handshake's request is complete by then, and the app answers it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

LOG_EVERY = 60.0  # seconds between two log lines about closed connections


class SlowClientLog:
    """Counts closures and logs them, rate-limited: the first at once, then once a period."""

    def __init__(self, timeout: float, every: float = LOG_EVERY) -> None:
        self.timeout = timeout
        self.every = every
        self.closed = 0  # since start
        self._unlogged = 0
        self._last_log = -float("inf")

    def note(self, client: object) -> None:
        self.closed += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= self.every:
            peer = f"{client[0]}:{client[1]}" if isinstance(client, tuple) else "?"
            log.warning(
                "closed %d connection(s) with no complete request or handshake within "
                "%g s (WEBSOCKET_TIMEOUT), the last from %s; %d since start",
                self._unlogged,
                self.timeout,
                peer,
                self.closed,
            )
            self._unlogged = 0
            self._last_log = now


def guarded_protocol(base: type[Any], timeout: float, record: SlowClientLog) -> type[Any]:
    """``base`` (a uvicorn HTTP protocol class) closing connections idle or incomplete for
    ``timeout`` seconds; idempotent on an already guarded class."""
    if getattr(base, "cotiza_guarded", False):
        return base

    class Guarded(base):  # type: ignore[misc]
        cotiza_guarded = True

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._cotiza_seen: object = None
            self._cotiza_timer = asyncio.get_running_loop().call_later(timeout, self._cotiza_check)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cotiza_timer.cancel()
            super().connection_lost(exc)

        def _cotiza_check(self) -> None:
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            if transport.get_protocol() is not self:  # upgraded: a WebSocket now
                return
            cycle = self.cycle
            if (
                cycle is not None and not cycle.response_complete
            ) or cycle is not self._cotiza_seen:
                # Serving a request, or a new one began since the last look: still alive.
                self._cotiza_seen = cycle
                loop = asyncio.get_running_loop()
                self._cotiza_timer = loop.call_later(timeout, self._cotiza_check)
                return
            record.note(self.client)
            transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def guard_server(config: Any, timeout: float) -> None:
    """Make a loaded ``uvicorn.Config`` build guarded protocols for every new connection.

    uvicorn reads ``http_protocol_class`` for each connection, so this works as long as it
    runs before the server accepts one: in ``cotiza serve``'s start-up, or from the app's
    lifespan under ``uvicorn main:app``.
    """
    config.http_protocol_class = guarded_protocol(
        config.http_protocol_class, timeout, SlowClientLog(timeout)
    )
