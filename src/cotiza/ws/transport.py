"""The client socket a connection writes to, and every reach into the server's internals.

This is the only module in cotiza that touches uvicorn's or websockets' private parts
(``tests/ws/test_transport_tripwire.py`` pins each one against the installed versions):

- ``send.__self__`` of uvicorn's ASGI ``send``: the server's protocol object;
- its ``.transport``: to bound a client's backlog, size its buffers and abort it;
- its ``.conn`` (``websockets.server.ServerProtocol``) and ``.close_sent``: to write
  pre-framed bytes straight to the transport (the direct path) while that is safe;
- ``TIOCOUTQ`` (the kernel's unsent bytes) and ``SO_LINGER`` (reset on abort);
- ``uvicorn.Server._captured_signals``: see ``forget_exit_signals``;
- ``uvicorn.Server.servers`` (its listening sockets): see ``listening_sockets``;
- ``uvicorn.Config.http_protocol_class`` and its protocols' ``transport``, ``cycle``
  (``response_complete``) and ``client``: see ``guard_server`` (half-open requests);
- uvicorn installing its server's bound ``handle_exit`` as the SIGTERM handler: see
  ``server_handling_signal`` (how ``uvicorn main:app`` finds the server it runs under);
- ``uvicorn.Config.ws_protocol_class`` and ``uvicorn.config.WS_PROTOCOLS``: see
  ``ws_protocol_classes`` (which WebSocket implementation a configuration runs).

A connection gets one ``ClientSocket``, chosen once when it is registered:
``DirectSocket`` under uvicorn's websockets-sansio protocol with no extension negotiated,
``AsgiSocket`` (the server's ``send``) under anything else, wsproto and compression
included. Both bound the client's backlog whenever the transport is reachable, which
``TransportMiddleware`` records for every uvicorn protocol. Where it is not (a server
other than uvicorn), ``backlog`` reads 0, buffers cannot be capped and ``abort`` cannot
drop the socket: a stalled client is then only caught by its send timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import struct
import termios
from enum import StrEnum
from typing import Any, ClassVar, Protocol, cast

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from cotiza.slow_clients import SlowClientLog
from cotiza.ws.frames import Wire

log = logging.getLogger(__name__)

TRANSPORT_SCOPE_KEY = "cotiza.transport"
SEND_SCOPE_KEY = "cotiza.send"

BACKLOG_EVERY = 16  # direct writes between two looks at the kernel's queue
_OPEN = WsState.OPEN

# What receiving or sending raises when the peer is gone: a reset or broken pipe
# (OSError, uvicorn's ClientDisconnected among them) or a disconnect the framework saw.
DISCONNECTS: tuple[type[Exception], ...] = (OSError, WebSocketDisconnect, WebSocketDisconnected)
# What closing may also raise when the connection is already going away: the server or
# the framework refusing a close after its own (RuntimeError).
CLOSE_RACES: tuple[type[Exception], ...] = (*DISCONNECTS, RuntimeError)


class WritePath(StrEnum):
    DIRECT = "direct"
    ASGI = "asgi"


class SocketClosing(ConnectionError):
    """The closing handshake has started: no more data frames may be written."""


class ServerTransport(Protocol):
    """What cotiza needs of a connection's transport (asyncio's and uvloop's both fit;
    uvloop's classes do not derive from ``asyncio.Transport``)."""

    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def write(self, data: bytes) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def get_write_buffer_size(self) -> int: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


class _SansIOProtocol(Protocol):
    close_sent: bool
    conn: ServerProtocol


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


class ClientSocket:
    """Where one connection's frames go: write, backlog in bytes, its limit, abort."""

    path: ClassVar[WritePath]
    __slots__ = ("_fd", "_transport", "limit")

    def __init__(self, transport: ServerTransport | None, limit: int) -> None:
        self._transport = transport
        self.limit = limit  # the backlog a client may have before its frames wait
        sock = transport.get_extra_info("socket") if transport is not None else None
        self._fd: int = sock.fileno() if sock is not None else -1
        if transport is not None:
            # Without a cap Linux grows the send buffer to megabytes per socket, which
            # wastes memory on idle clients and hides a stalled reader for many seconds.
            transport.set_write_buffer_limits(high=limit)
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)

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

    def try_write(self, wire: Wire) -> bool:
        """Write at once if that can neither block nor overtake the kernel's backlog."""
        return False

    def write_nowait(self, wire: Wire) -> bool:
        """Write at once, room having been made by the caller; False if this path cannot."""
        return False

    async def write(self, wire: Wire, timeout: float) -> None:
        """Write one frame, waiting at most ``timeout`` (TimeoutError) for the server."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the TCP connection at once.

        A client that stopped reading keeps the server's send buffer full; a polite close
        frame then waits behind that buffer forever.
        """
        transport = self._transport
        if transport is None:
            log.warning("cannot abort a stalled WebSocket: server transport not reachable")
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: reset now and free the send buffer, instead of leaving an orphan
            # socket retrying a zero window for minutes.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class DirectSocket(ClientSocket):
    """Pre-framed bytes written straight to the transport, bypassing the server's protocol.

    Framing a text message is the same bytes for every client, yet going through the
    server's protocol object costs more than the rest of the fan-out together. Whole
    frames written to the transport interleave safely with the server's own (it writes
    whole frames too), provided no extension such as compression was negotiated (checked
    once, when the socket is chosen) and the closing handshake has not started (checked
    before every write).
    """

    path = WritePath.DIRECT
    __slots__ = ("_out", "_protocol", "_writes")

    def __init__(self, transport: ServerTransport, protocol: _SansIOProtocol, limit: int) -> None:
        super().__init__(transport, limit)
        self._out = transport  # the same transport, known to be there
        self._protocol = protocol
        self._writes = 0

    def try_write(self, wire: Wire) -> bool:
        """The kernel backlog is asked every ``BACKLOG_EVERY`` writes (a system call each
        time), so a stalled peer overshoots the limit by a few frames at most before its
        frames start waiting in its outbox."""
        if self._out.get_write_buffer_size():
            return False
        self._writes += 1
        if self._writes % BACKLOG_EVERY == 0 and self.backlog() > self.limit:
            return False
        return self.write_nowait(wire)

    def write_nowait(self, wire: Wire) -> bool:
        protocol = self._protocol
        transport = self._out
        if protocol.close_sent or protocol.conn.state is not _OPEN or transport.is_closing():
            return False
        transport.write(wire.frame)
        return True

    async def write(self, wire: Wire, timeout: float) -> None:
        if not self.write_nowait(wire):
            raise SocketClosing("the WebSocket is closing")


class AsgiSocket(ClientSocket):
    """The server's own ASGI ``send``, skipping the framework's wrappers.

    Fan-out pays the per-frame cost once per client; the state checks those wrappers make
    are already made by ``Connection`` (and the server refuses a send after close).
    """

    path = WritePath.ASGI
    __slots__ = ("_send",)

    def __init__(self, transport: ServerTransport | None, send: Send, limit: int) -> None:
        super().__init__(transport, limit)
        self._send = send

    async def write(self, wire: Wire, timeout: float) -> None:
        message = {"type": "websocket.send", "text": wire.text}
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() == 0:
            # An empty transport buffer means writing is not paused: the send completes
            # without waiting, so skip arming a timer per frame.
            await self._send(message)
            return
        async with asyncio.timeout(timeout):
            await self._send(message)


def open_socket(ws: WebSocket, limit: int) -> ClientSocket:
    """The socket for an accepted ``ws``: direct when safe, else the ASGI ``send``."""
    transport = _server_transport(ws)
    send = ws.scope.get(SEND_SCOPE_KEY)
    protocol = _direct_protocol(send)
    if transport is not None and protocol is not None:
        return DirectSocket(transport, protocol, limit)
    return AsgiSocket(transport, cast(Send, send) if callable(send) else ws.send, limit)


def _server_transport(ws: WebSocket) -> ServerTransport | None:
    """The TCP transport under ``ws``, as ``TransportMiddleware`` found it."""
    transport = ws.scope.get(TRANSPORT_SCOPE_KEY)
    needed = (
        "abort",
        "is_closing",
        "write",
        "get_extra_info",
        "get_write_buffer_size",
        "set_write_buffer_limits",
    )
    if transport is not None and all(hasattr(transport, name) for name in needed):
        return cast(ServerTransport, transport)
    return None


def _direct_protocol(send: object) -> _SansIOProtocol | None:
    """uvicorn's sans-I/O protocol behind ``send``, when frames may bypass it."""
    protocol = getattr(send, "__self__", None)
    conn = getattr(protocol, "conn", None)
    if (
        isinstance(conn, ServerProtocol)
        and isinstance(getattr(protocol, "close_sent", None), bool)
        and not conn.extensions
    ):
        return cast(_SansIOProtocol, protocol)
    return None


def describe_write_path(ws_impl: str, compression: bool) -> str:
    """Which write path connections take under this uvicorn configuration, for the log."""
    deflate = "compression on" if compression else "no compression"
    if ws_impl != "websockets-sansio":
        return f"asgi ({ws_impl}, {deflate})"
    if compression:
        return (
            f"asgi for clients that negotiate compression, direct otherwise ({ws_impl}, {deflate})"
        )
    return f"direct ({ws_impl}, {deflate})"


def forget_exit_signals(server: uvicorn.Server) -> None:
    """Stop uvicorn from re-raising the exit signal after its graceful shutdown.

    uvicorn records SIGINT/SIGTERM and re-raises them once it has shut down, so the
    process dies "killed by SIGTERM". A requested, completed shutdown is a success: exit 0.
    """
    server._captured_signals.clear()


def listening_sockets(server: uvicorn.Server) -> list[socket.socket]:
    """The sockets a started uvicorn server really listens on (whatever HOST said)."""
    return [sock for s in server.servers for sock in (s.sockets or ())]


def listening_port(server: uvicorn.Server) -> int:
    """The TCP port a started uvicorn server listens on (it was asked for port 0)."""
    port: int = listening_sockets(server)[0].getsockname()[1]
    return port


def server_handling_signal(sig: int) -> uvicorn.Server | None:
    """The uvicorn server whose ``handle_exit`` handles ``sig``, if that is the case.

    uvicorn installs its server's bound ``handle_exit`` as the handler of SIGINT/SIGTERM
    while it serves: that is how an app started by ``uvicorn main:app`` finds its server.
    """
    owner = getattr(signal.getsignal(sig), "__self__", None)
    return owner if isinstance(owner, uvicorn.Server) else None


def ws_protocol_classes(
    config: uvicorn.Config, implementation: str
) -> tuple[type | None, type | None]:
    """The WebSocket protocol class a loaded ``config`` runs, and the one uvicorn's
    ``ws=implementation`` names."""
    from uvicorn.config import WS_PROTOCOLS
    from uvicorn.importer import import_from_string

    name = WS_PROTOCOLS.get(implementation, implementation)
    wanted = import_from_string(name) if name else None
    return getattr(config, "ws_protocol_class", None), wanted


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

        def handle_websocket_upgrade(self, *args: Any) -> None:
            # The WebSocket protocol takes the transport over; a pending timer would keep
            # this whole HTTP protocol object alive (about 7 KB) until it fired.
            self._cotiza_timer.cancel()
            super().handle_websocket_upgrade(*args)

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
