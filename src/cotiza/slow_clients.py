"""Closing connections whose request or WebSocket handshake never completes.

uvicorn's keep-alive timeout only starts once a response is complete: a client that opens
a connection and sends half a request line (or half the headers of a WebSocket upgrade)
holds a descriptor forever. ``cotiza.ws.transport.guard_server`` (the one module that
reaches into uvicorn) wraps its HTTP protocol class with a timer: a connection that
neither completes a new request nor is busy serving one for a whole ``WEBSOCKET_TIMEOUT``
is closed. This module keeps the record of those closures, logged at most once a minute.
"""

from __future__ import annotations

import logging
import time

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
