"""One WebSocket client: its socket, its outbox of pending frames and its sender task.

A frame for an idle, healthy client is written at once by whoever publishes it, without
a task switch. Only a backed-up client's frames wait in its outbox, where a newer frame of
the same key replaces the older one; a sender task, started the first time that happens,
drains the outbox once the client has room. A client that stays backed up, whose send
blocks, or whose outbox overflows is reported as a slow consumer to the hub, which evicts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum

from starlette.websockets import WebSocket

from cotiza.ws.frames import CLOSE_INTERNAL_ERROR, OutboundFrame, Wire, encode
from cotiza.ws.outbox import Outbox, Put
from cotiza.ws.transport import CLOSE_RACES, DISCONNECTS, ClientSocket, WritePath

log = logging.getLogger(__name__)

BACKLOG_POLL = 0.05  # seconds between checks while a peer is backed up
CLOSE_TIMEOUT = 2.0  # seconds a polite close may take before the socket is aborted
EVICT_CLOSE_TIMEOUT = 0.5  # a slow consumer's buffers are full: don't wait long

_POLITE_CLOSE_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *CLOSE_RACES)


class ConnectionState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class WsStats:
    """Counters of every connection of a hub, shared by the hub and its connections."""

    accepted: int = 0
    rejected: int = 0
    writes_direct: int = 0
    writes_asgi: int = 0
    messages_coalesced: int = 0
    messages_dropped: int = 0
    slow_consumers: int = 0
    send_errors: int = 0

    @property
    def messages_sent(self) -> int:
        return self.writes_direct + self.writes_asgi


SlowConsumerReport = Callable[["Connection", str], None]


def _wire_size(wire: Wire) -> int:
    return len(wire.frame)


class Connection:
    """One WebSocket client and the frames on their way to it."""

    __slots__ = (
        "_on_slow",
        "_outbox",
        "_sender",
        "_socket",
        "_stats",
        "_timeout",
        "_wakeup",
        "closed",
        "connected_at",
        "id",
        "last_recv",
        "path",
        "received",
        "remote",
        "sent",
        "state",
        "ws",
    )

    def __init__(
        self,
        conn_id: int,
        ws: WebSocket,
        path: str,
        socket: ClientSocket,
        *,
        queue_size: int,
        max_pending_bytes: int | None = None,
        send_timeout: float,
        stats: WsStats,
        on_slow: SlowConsumerReport,
    ) -> None:
        self.id = conn_id
        self.ws = ws
        self.path = path
        client = ws.client
        self.remote = f"{client.host}:{client.port}" if client else "?"
        self.connected_at = time.time()
        self.last_recv = time.monotonic()
        self.state = ConnectionState.OPEN
        self.sent = 0
        self.received = 0
        self.closed = asyncio.Event()
        self._socket = socket
        self._outbox: Outbox[Wire] = Outbox(queue_size, max_pending_bytes, _wire_size)
        self._timeout = send_timeout
        self._stats = stats
        self._on_slow = on_slow
        # Created the first time a frame has to wait: most clients never need them.
        self._sender: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    # -- what the hub and the status pages read ---------------------------------------

    @property
    def write_path(self) -> WritePath:
        return self._socket.path

    @property
    def pending(self) -> int:
        return len(self._outbox)

    @property
    def pending_bytes(self) -> int:
        return self._outbox.bytes

    @property
    def coalesced(self) -> int:
        return self._outbox.coalesced

    def backlog(self) -> int:
        return self._socket.backlog()

    # -- sending ----------------------------------------------------------------------

    def enqueue(self, key: Hashable, wire: Wire) -> None:
        """Write ``wire`` now if nothing is waiting, else queue it under ``key``.

        A waiting frame with the same key is replaced (latest wins). ``wire`` is shared by
        every client of a fan-out: serialised and framed once by the publisher.
        """
        if self.state is not ConnectionState.OPEN:
            return
        outbox = self._outbox
        if outbox.idle and self._socket.try_write(wire):
            self.sent += 1
            self._stats.writes_direct += 1
            return
        verdict = outbox.put(key, wire)
        if verdict is Put.QUEUED:
            self._wake_sender()
        elif verdict is Put.COALESCED:
            self._stats.messages_coalesced += 1
        else:
            self._stats.messages_dropped += 1
            self._on_slow(self, "queue overflow")

    def send(self, frame: OutboundFrame) -> None:
        """Queue a one-off frame (a reply or an error) that is never coalesced."""
        wire = encode(frame)
        self.enqueue(wire, wire)  # its own key: nothing else can replace it

    def touch(self) -> None:
        """The client sent a frame: it is alive, no keep-alive ping is due."""
        self.last_recv = time.monotonic()
        self.received += 1

    def _wake_sender(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            wakeup = self._wakeup = asyncio.Event()
            self._sender = asyncio.create_task(self._send_loop(wakeup), name=f"ws-sender-{self.id}")
        wakeup.set()

    async def _send_loop(self, wakeup: asyncio.Event) -> None:
        timeout = self._timeout
        socket = self._socket
        outbox = self._outbox
        stats = self._stats
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                if not await self._wait_for_room(timeout):
                    return
                while (wire := outbox.take()) is not None:
                    if socket.write_nowait(wire):
                        stats.writes_direct += 1
                    else:
                        try:
                            await socket.write(wire, timeout)
                        except TimeoutError:
                            self._on_slow(self, f"send blocked over {timeout:g} s")
                            return
                        stats.writes_asgi += 1
                    outbox.done()
                    self.sent += 1
        except asyncio.CancelledError:
            raise
        except DISCONNECTS as exc:
            # The peer went away mid-send; the receive side notices and cleans up.
            log.debug("connection %d send failed: %r", self.id, exc)
            stats.send_errors += 1
            self.mark_closed()
        except Exception:
            log.exception("connection %d: sending failed; closing it with 1011", self.id)
            stats.send_errors += 1
            await self.close(CLOSE_INTERNAL_ERROR, "Internal error")

    async def _wait_for_room(self, timeout: float) -> bool:
        """Wait while the peer's backlog is over the limit; False once it is a slow consumer.

        Frames wait in the outbox meanwhile, where frames of a key coalesce, instead of
        piling up in kernel buffers. Checked once per wake-up, so a burst can overshoot
        the limit by at most one drain of the outbox.
        """
        socket = self._socket
        if socket.backlog() <= socket.limit:
            return True
        loop = asyncio.get_running_loop()
        since = loop.time()
        while socket.backlog() > socket.limit:
            if loop.time() - since > timeout:
                self._on_slow(self, f"not reading for {timeout:g} s")
                return False
            await asyncio.sleep(BACKLOG_POLL)
        return True

    # -- closing ----------------------------------------------------------------------

    def mark_closing(self) -> bool:
        """Stop taking frames and drop the waiting ones; False if already closing."""
        if self.state is not ConnectionState.OPEN:
            return False
        self.state = ConnectionState.CLOSING
        self._outbox.clear()
        return True

    def mark_closed(self) -> None:
        self.state = ConnectionState.CLOSED
        self._outbox.clear()
        self.closed.set()

    async def close(self, code: int, reason: str = "", *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close politely within ``timeout``; abort the transport when that is not possible.

        Idempotent: later calls only wait for the first one to finish.
        """
        if not self.mark_closing():
            await self.wait_closed(timeout)
            return
        await self.stop_sender()
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close(code, reason)
        except TimeoutError:
            self._socket.abort()
        except CLOSE_RACES as exc:
            log.debug("connection %d close failed: %r", self.id, exc)
        finally:
            self.mark_closed()

    async def evict(self, code: int, reason: str) -> None:
        """Tell a slow consumer why if it can still hear it, then drop its socket for real.

        The caller has already marked the connection closing.
        """
        await self.stop_sender()
        try:
            async with asyncio.timeout(EVICT_CLOSE_TIMEOUT):
                await self.ws.close(code, reason)
        except _POLITE_CLOSE_FAILURES as exc:
            log.debug("connection %d: no polite close for a slow consumer: %r", self.id, exc)
        finally:
            # Whatever happened, the socket must go: a polite close waits behind a full buffer.
            self._socket.abort()
            self.mark_closed()

    async def wait_closed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.closed.wait()

    async def stop_sender(self) -> None:
        sender = self._sender
        if sender is not None and not sender.done() and sender is not asyncio.current_task():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
