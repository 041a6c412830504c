"""WebSocket fan-out: connections, their subscriptions and their outgoing queues.

A publish serialises a message once and hands the same string to every interested
connection's pending map without awaiting anything. Each connection drains its own map
in a sender task, so a slow client only ever delays itself. Ticks and ratios are keyed
by symbol or pair, so while a client is backed up a newer value replaces the older one
(latest wins) instead of growing the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import socket
import struct
import termios
import time
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, cast

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from cotiza.models import Quote
from cotiza.settings import Settings

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

_BACKLOG_POLL = 0.05  # seconds between checks while a peer is backed up
_BACKLOG_EVERY = 16  # direct writes between two looks at the kernel's queue


def dumps(message: dict[str, Any]) -> str:
    """Serialise one outgoing frame."""
    return orjson.dumps(message).decode()


class ConnectionState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class HubStats:
    accepted: int = 0
    rejected: int = 0
    messages_sent: int = 0
    messages_coalesced: int = 0
    messages_dropped: int = 0
    slow_consumers: int = 0
    send_errors: int = 0


class Connection:
    """One WebSocket client: its subscriptions, pending frames and sender task."""

    __slots__ = (
        "_busy",
        "_direct",
        "_fd",
        "_protocol",
        "_sender",
        "_transport",
        "_wakeup",
        "closed",
        "coalesced",
        "connected_at",
        "dashboard",
        "hub",
        "id",
        "instruments",
        "last_recv",
        "path",
        "pending",
        "ratio_all",
        "ratio_pairs",
        "received",
        "remote",
        "sent",
        "state",
        "ws",
    )

    def __init__(self, hub: Hub, conn_id: int, ws: WebSocket, path: str) -> None:
        self.hub = hub
        self.id = conn_id
        self.ws = ws
        self.path = path
        client = ws.client
        self.remote = f"{client.host}:{client.port}" if client else "?"
        self.connected_at = time.time()
        self.last_recv = time.monotonic()
        self.instruments: set[str] = set()
        self.ratio_pairs: set[int] = set()
        self.ratio_all = False
        self.dashboard = False
        self.pending: dict[Hashable, str] = {}
        self.state = ConnectionState.OPEN
        self.sent = 0
        self.received = 0
        self.coalesced = 0
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self._transport = server_transport(ws)
        sock = self._transport.get_extra_info("socket") if self._transport else None
        self._fd: int = sock.fileno() if sock is not None else -1
        self._protocol = direct_write_protocol(ws)
        self._busy = False  # the sender holds a frame it has taken from ``pending``
        self._direct = 0

    def backlog(self) -> int:
        """Bytes written but not yet taken by the peer: transport buffer plus kernel queue.

        The kernel grows a socket's buffer far beyond ``SO_SNDBUF`` on loopback and fast
        links, so a stalled reader would otherwise absorb minutes of data before a send
        ever blocked; asking the kernel keeps the whole queue bounded.
        """
        transport = self._transport
        if transport is None:
            return 0
        unsent = 0
        if self._fd >= 0:
            try:
                raw = fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0\0\0\0")
                unsent = struct.unpack("i", raw)[0]
            except OSError:
                unsent = 0
        return transport.get_write_buffer_size() + unsent

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop(), name=f"ws-sender-{self.id}")

    def enqueue(self, key: Hashable, payload: str, frame: bytes | None = None) -> None:
        """Send ``payload`` now if nothing is queued, else queue it under ``key``.

        A pending frame with the same key is replaced (latest wins). ``frame`` is the
        payload already framed by the publisher, shared by every client of a fan-out.
        """
        if self.state is not ConnectionState.OPEN:
            return
        pending = self.pending
        if not pending and not self._busy and self._write_now(payload, frame):
            return
        if key in pending:
            pending[key] = payload
            self.coalesced += 1
            self.hub.stats.messages_coalesced += 1
            return
        if len(pending) >= self.hub.settings.ws_queue_size:
            self.hub.stats.messages_dropped += 1
            self.hub.slow_consumer(self, "queue overflow")
            return
        pending[key] = payload
        self._wakeup.set()

    def _write_now(self, payload: str, frame: bytes | None) -> bool:
        """Write the frame straight to the socket when that cannot block or reorder.

        The kernel backlog is asked every ``_BACKLOG_EVERY`` direct writes (a system call
        each time), so a stalled peer overshoots the limit by a few frames at most before
        its frames start waiting in ``pending``.
        """
        transport = self._transport
        if transport is None or transport.get_write_buffer_size():
            return False
        self._direct += 1
        if self._direct % _BACKLOG_EVERY == 0 and self.backlog() > self.hub.settings.ws_send_buffer:
            return False
        return self._write_direct(payload, frame)

    def _write_direct(self, payload: str, frame: bytes | None = None) -> bool:
        """Write one whole text frame to the transport, bypassing the server's protocol."""
        transport = self._transport
        if transport is None or not self._can_write_directly():
            return False
        transport.write(frame or text_frame(payload.encode()))
        self.sent += 1
        self.hub.stats.messages_sent += 1
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        """Queue a one-off frame (a reply or an error) that is never coalesced."""
        self.enqueue(next(self.hub.counter), dumps(message))

    async def _send_loop(self) -> None:
        settings = self.hub.settings
        timeout = settings.websocket_timeout
        send = raw_send(self.ws)
        pending = self.pending
        stats = self.hub.stats
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if not await self._wait_for_room(settings.ws_send_buffer, timeout):
                    return
                while pending:
                    key = next(iter(pending))
                    payload = pending.pop(key)
                    if self._write_direct(payload):
                        continue
                    message = {"type": "websocket.send", "text": payload}
                    self._busy = True
                    transport = self._transport
                    if transport is not None and transport.get_write_buffer_size() == 0:
                        # An empty transport buffer means writing is not paused: the send
                        # completes without waiting, so skip arming a timer per frame.
                        await send(message)
                    else:
                        try:
                            async with asyncio.timeout(timeout):
                                await send(message)
                        except TimeoutError:
                            self.hub.slow_consumer(self, f"send blocked over {timeout:g} s")
                            return
                    self._busy = False
                    self.sent += 1
                    stats.messages_sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The peer went away mid-send; the receive side will notice and clean up.
            log.debug("connection %d send failed: %r", self.id, exc)
            self.hub.stats.send_errors += 1
            self.state = ConnectionState.CLOSED
            self.closed.set()

    def _can_write_directly(self) -> bool:
        protocol = self._protocol
        return (
            protocol is not None
            and not protocol.close_sent
            and not protocol.conn.extensions
            and protocol.conn.state is WsState.OPEN
        )

    async def _wait_for_room(self, limit: int, timeout: float) -> bool:
        """Wait while the peer's backlog is over ``limit``; False once it is a slow consumer.

        Frames wait in ``pending`` meanwhile, where ticks of a symbol coalesce, instead of
        piling up in kernel buffers. Checked once per wake-up, so a burst can overshoot
        the limit by at most one drain of ``pending``.
        """
        if self.backlog() <= limit:
            return True
        loop = asyncio.get_running_loop()
        since = loop.time()
        while self.backlog() > limit:
            if loop.time() - since > timeout:
                self.hub.slow_consumer(self, f"not reading for {timeout:g} s")
                return False
            await asyncio.sleep(_BACKLOG_POLL)
        return True

    async def close(self, code: int, reason: str = "", *, timeout: float = 2.0) -> None:
        """Close politely within ``timeout``; abort the transport when that is not possible.

        Idempotent: later calls only wait for the first one to finish.
        """
        if self.state is not ConnectionState.OPEN:
            await self.wait_closed(timeout)
            return
        self.state = ConnectionState.CLOSING
        self.pending.clear()
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close(code, reason)
        except TimeoutError:
            abort_transport(self.ws)
        except Exception as exc:
            log.debug("connection %d close failed: %r", self.id, exc)
        self.state = ConnectionState.CLOSED
        self.closed.set()

    async def wait_closed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.closed.wait()

    async def stop_sender(self) -> None:
        sender = self._sender
        if sender is not None and not sender.done() and sender is not asyncio.current_task():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "remote": self.remote,
            "state": self.state.value,
            "connected_at": self.connected_at,
            "instruments": sorted(self.instruments),
            "ratio_pairs": "all" if self.ratio_all else sorted(self.ratio_pairs),
            "dashboard": self.dashboard,
            "pending": len(self.pending),
            "backlog_bytes": self.backlog(),
            "sent": self.sent,
            "received": self.received,
            "coalesced": self.coalesced,
        }


TRANSPORT_SCOPE_KEY = "cotiza.transport"
SEND_SCOPE_KEY = "cotiza.send"


class ServerTransport(Protocol):
    """What cotiza needs of a connection's transport (asyncio's and uvloop's both fit;
    uvloop's classes do not derive from ``asyncio.Transport``)."""

    def abort(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def get_write_buffer_size(self) -> int: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


def server_transport(ws: WebSocket) -> ServerTransport | None:
    """The TCP transport under ``ws``, as ``TransportMiddleware`` found it."""
    transport = ws.scope.get(TRANSPORT_SCOPE_KEY)
    needed = (
        "abort",
        "write",
        "get_extra_info",
        "get_write_buffer_size",
        "set_write_buffer_limits",
    )
    if transport is not None and all(hasattr(transport, name) for name in needed):
        return cast(ServerTransport, transport)
    return None


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked server-to-client text frame (RFC 6455, section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


class _SansIOProtocol(Protocol):
    close_sent: bool
    conn: ServerProtocol


def direct_write_protocol(ws: WebSocket) -> _SansIOProtocol | None:
    """uvicorn's sans-I/O WebSocket protocol under ``ws``, when frames may bypass it.

    Framing a text message is the same bytes for every client, yet going through the
    server's protocol object costs more than the rest of the fan-out together. Whole
    frames written to the transport interleave safely with the server's own (it writes
    whole frames too), provided no extension such as compression was negotiated and the
    closing handshake has not started; both are checked before every direct write.
    Any other server implementation simply takes the ASGI path.
    """
    send = ws.scope.get(SEND_SCOPE_KEY)
    protocol = getattr(send, "__self__", None)
    conn = getattr(protocol, "conn", None)
    if isinstance(conn, ServerProtocol) and isinstance(getattr(protocol, "close_sent", None), bool):
        return cast(_SansIOProtocol, protocol)
    return None


def raw_send(ws: WebSocket) -> Send:
    """The server's own ASGI ``send`` for data frames, skipping the framework's wrappers.

    Fan-out pays the per-frame cost once per client; the connection state checks those
    wrappers make are already made by ``Connection`` (and the server refuses a send after
    close by itself).
    """
    send = ws.scope.get(SEND_SCOPE_KEY)
    return cast(Send, send) if callable(send) else ws.send


class TransportMiddleware:
    """Records each WebSocket's server transport and raw ``send`` in its scope.

    ASGI offers no way to abort a connection or size its socket buffers; uvicorn's
    ``send`` is a method of its protocol object, which holds the transport. Only the
    outermost layer sees that raw ``send``, so this must wrap the whole app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            scope[TRANSPORT_SCOPE_KEY] = getattr(protocol, "transport", None)
            scope[SEND_SCOPE_KEY] = send
        await self.app(scope, receive, send)


def limit_send_buffer(ws: WebSocket, size: int) -> None:
    """Cap the kernel and transport send buffers of one connection.

    Without a cap Linux grows it to megabytes per socket, which both wastes memory on
    idle clients and hides a stalled reader for many seconds before a send blocks.
    """
    transport = server_transport(ws)
    if transport is None:
        return
    transport.set_write_buffer_limits(high=size)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def abort_transport(ws: WebSocket) -> None:
    """Drop the TCP connection under ``ws`` at once.

    A client that stopped reading keeps the server's send buffer full; a polite close
    frame then waits behind that buffer forever.
    """
    transport = server_transport(ws)
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: reset now and free the send buffer, instead of leaving an orphan
            # socket retrying a zero window for minutes.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        log.warning("cannot abort a stalled WebSocket: server transport not reachable")


class Hub:
    """Every live WebSocket connection of this process and what each subscribed to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections: dict[int, Connection] = {}
        self.by_symbol: dict[str, set[Connection]] = {}
        self.by_pair: dict[int, set[Connection]] = {}
        self.ratio_all: set[Connection] = set()
        self.dashboard: set[Connection] = set()
        self.alerts: set[Connection] = set()  # clients that sent subscribe_alerts
        self.stats = HubStats()
        self.counter = itertools.count()
        self._ids = itertools.count(1)
        self._closing_tasks: set[asyncio.Task[None]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self.accepting = True

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keepalive_loop(), name="ws-keepalive")
        self.accepting = True

    async def stop(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "Server shutting down"
    ) -> None:
        """Close every client with ``code`` and stop the keep-alive task (idempotent)."""
        self.accepting = False
        await self.close_all(code, reason)
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        if self._closing_tasks:
            await asyncio.gather(*self._closing_tasks, return_exceptions=True)

    async def close_all(self, code: int, reason: str) -> int:
        connections = list(self.connections.values())
        await asyncio.gather(
            *(c.close(code, reason) for c in connections),
            return_exceptions=True,
        )
        return len(connections)

    # -- registration --------------------------------------------------------------

    def can_admit(self) -> bool:
        return self.accepting and len(self.connections) < self.settings.max_websocket_connections

    def register(self, ws: WebSocket, path: str) -> Connection:
        conn = Connection(self, next(self._ids), ws, path)
        limit_send_buffer(ws, self.settings.ws_send_buffer)
        self.connections[conn.id] = conn
        self.stats.accepted += 1
        conn.start()
        return conn

    def unregister(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for symbol in conn.instruments:
            self._discard(self.by_symbol, symbol, conn)
        for pair_id in conn.ratio_pairs:
            self._discard(self.by_pair, pair_id, conn)
        self.ratio_all.discard(conn)
        self.dashboard.discard(conn)
        self.alerts.discard(conn)
        conn.pending.clear()
        if conn.state is ConnectionState.OPEN:
            conn.state = ConnectionState.CLOSED
        conn.closed.set()

    @staticmethod
    def _discard(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(conn)
            if not members:
                del index[key]

    def subscribe_instruments(self, conn: Connection, symbols: list[str]) -> None:
        for symbol in symbols:
            conn.instruments.add(symbol)
            self.by_symbol.setdefault(symbol, set()).add(conn)

    def unsubscribe_instruments(self, conn: Connection, symbols: list[str]) -> None:
        for symbol in symbols:
            conn.instruments.discard(symbol)
            self._discard(self.by_symbol, symbol, conn)

    def subscribe_ratios(self, conn: Connection, pair_ids: list[int] | None) -> None:
        if pair_ids is None:
            conn.ratio_all = True
            self.ratio_all.add(conn)
            return
        for pair_id in pair_ids:
            conn.ratio_pairs.add(pair_id)
            self.by_pair.setdefault(pair_id, set()).add(conn)

    def unsubscribe_ratios(self, conn: Connection) -> None:
        for pair_id in conn.ratio_pairs:
            self._discard(self.by_pair, pair_id, conn)
        conn.ratio_pairs.clear()
        conn.ratio_all = False
        self.ratio_all.discard(conn)

    # -- publishing ----------------------------------------------------------------

    def publish_tick(self, quote: Quote) -> None:
        members = self.by_symbol.get(quote.symbol)
        if not members:
            return
        payload = dumps({"type": "tick", **quote.tick_payload()})
        frame = text_frame(payload.encode())
        key = ("tick", quote.symbol)
        for conn in members:
            conn.enqueue(key, payload, frame)

    def publish_ratio(self, pair_id: int, message: dict[str, Any]) -> None:
        members = self.by_pair.get(pair_id)
        if not members and not self.ratio_all:
            return
        payload = dumps(message)
        frame = text_frame(payload.encode())
        key = ("ratio", pair_id)
        for conn in self.ratio_all:
            conn.enqueue(key, payload, frame)
        if members:
            for conn in members:
                if not conn.ratio_all:
                    conn.enqueue(key, payload, frame)

    def publish_alert(self, message: dict[str, Any]) -> int:
        """Send an ``alert`` frame to every alert subscriber; returns how many got it queued.

        Alerts are events, not states: each gets its own key, so none is ever coalesced.
        """
        if not self.alerts:
            return 0
        payload = dumps(message)
        frame = text_frame(payload.encode())
        for conn in self.alerts:
            conn.enqueue(next(self.counter), payload, frame)
        return sum(1 for conn in self.alerts if conn.state is ConnectionState.OPEN)

    def publish_dashboard(self, payload: str) -> None:
        frame = text_frame(payload.encode())
        for conn in self.dashboard:
            conn.enqueue("dashboard", payload, frame)

    # -- policing ------------------------------------------------------------------

    def slow_consumer(self, conn: Connection, why: str) -> None:
        """Disconnect a client that cannot keep up, releasing its socket for real."""
        if conn.state is not ConnectionState.OPEN:
            return
        self.stats.slow_consumers += 1
        log.warning("closing slow consumer %d (%s): %s", conn.id, conn.remote, why)
        conn.state = ConnectionState.CLOSING
        conn.pending.clear()
        task = asyncio.create_task(self._evict(conn), name=f"ws-evict-{conn.id}")
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    async def _evict(self, conn: Connection) -> None:
        await conn.stop_sender()
        # Try to tell the client why; its buffers are usually full, so don't wait long.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.5):
                await conn.ws.close(CLOSE_POLICY, "slow consumer")
        # Whatever happened, the socket must go: a polite close waits behind a full buffer.
        abort_transport(conn.ws)
        conn.state = ConnectionState.CLOSED
        conn.closed.set()

    async def _keepalive_loop(self) -> None:
        interval = self.settings.ws_keepalive_interval
        while True:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            message = dumps({"type": "ping", "timestamp": time.time()})
            for conn in list(self.connections.values()):
                if now - conn.last_recv >= interval:
                    conn.enqueue("keepalive", message)

    def status(self) -> dict[str, Any]:
        return {
            "active_connections": len(self.connections),
            "max_connections": self.settings.max_websocket_connections,
            "dashboard_subscribers": len(self.dashboard),
            "subscribed_symbols": len(self.by_symbol),
        }
