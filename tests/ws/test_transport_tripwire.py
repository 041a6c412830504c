"""Tripwire: every private part of uvicorn/websockets/wsproto that cotiza/ws/transport.py uses.

When an upgrade renames or drops one of them, these tests fail with a message naming the
module and what stops working, instead of the service silently losing a guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
import websockets
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from cotiza.ws.transport import (
    SEND_SCOPE_KEY,
    TRANSPORT_SCOPE_KEY,
    AsgiSocket,
    ClientSocket,
    DirectSocket,
    TransportMiddleware,
    forget_exit_signals,
    listening_port,
    open_socket,
    server_handling_signal,
    ws_protocol_classes,
)

MODULE = "cotiza/ws/transport.py"
IMPLS = ["websockets-sansio", "wsproto"]


def tripped(what: str, breaks: str) -> str:
    return f"{what} is gone from the installed version: {MODULE} relies on it for {breaks}"


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that is never called: protocol objects only need one to exist."""


def protocol_for(impl: str) -> object:
    """A fresh instance of uvicorn's WebSocket protocol class for ``impl`` (it needs the
    running event loop, so the tests that make one are coroutines)."""
    config = Config(_no_app, ws=impl, ws_per_message_deflate=False)
    config.load()
    assert config.ws_protocol_class is not None
    return config.ws_protocol_class(config=config, server_state=ServerState(), app_state={})


@pytest.mark.parametrize("impl", IMPLS)
async def test_uvicorn_send_is_a_method_of_a_protocol_holding_the_transport(impl: str) -> None:
    """``send.__self__`` is the protocol object and it has a ``transport`` attribute."""
    protocol = protocol_for(impl)
    send = getattr(protocol, "send", None)
    assert getattr(send, "__self__", None) is protocol, tripped(
        f"uvicorn {impl}: ASGI send as a bound method (send.__self__)",
        "reaching the transport: the slow-consumer bound, buffer limits and aborts",
    )
    assert hasattr(protocol, "transport"), tripped(
        f"uvicorn {impl}: the protocol's .transport",
        "the slow-consumer bound (backlog), buffer limits and aborting stalled peers",
    )


async def test_sansio_protocol_exposes_conn_and_close_sent() -> None:
    """websockets-sansio keeps a websockets ServerProtocol in ``.conn`` and ``.close_sent``."""
    protocol = protocol_for("websockets-sansio")
    conn = getattr(protocol, "conn", None)
    assert isinstance(conn, ServerProtocol), tripped(
        "uvicorn websockets-sansio: the protocol's .conn (a websockets ServerProtocol)",
        "the direct write path (every connection would fall back to ASGI send)",
    )
    assert isinstance(getattr(protocol, "close_sent", None), bool), tripped(
        "uvicorn websockets-sansio: the protocol's .close_sent flag",
        "the direct write path's check that the closing handshake has not started",
    )
    assert conn.extensions == [], tripped(
        "websockets ServerProtocol.extensions",
        "refusing direct writes when compression was negotiated",
    )
    assert conn.state is WsState.CONNECTING and hasattr(WsState, "OPEN"), tripped(
        "websockets ServerProtocol.state / protocol.State.OPEN",
        "the direct write path's per-write open-state check",
    )


async def test_wsproto_protocol_keeps_its_connection_elsewhere() -> None:
    """Under wsproto ``.conn`` is no websockets ServerProtocol, so frames take the ASGI path."""
    conn = getattr(protocol_for("wsproto"), "conn", None)
    assert not isinstance(conn, ServerProtocol), (
        f"uvicorn's wsproto protocol now looks like websockets-sansio to {MODULE}: "
        "it would write pre-framed bytes past wsproto's own framing"
    )


def test_kernel_queue_and_linger_options_exist() -> None:
    """TIOCOUTQ (the kernel's unsent bytes) and SO_LINGER are available on this platform."""
    assert hasattr(termios, "TIOCOUTQ"), tripped(
        "termios.TIOCOUTQ", "the slow-consumer bound (counting the kernel's unsent bytes)"
    )
    assert hasattr(socket, "SO_LINGER"), tripped(
        "socket.SO_LINGER", "freeing an evicted client's socket at once (reset on abort)"
    )


def test_uvicorn_records_exit_signals_where_forget_exit_signals_clears_them() -> None:
    """``Server.handle_exit`` appends to ``_captured_signals``; forgetting empties it."""
    server = uvicorn.Server(Config(_no_app))
    captured = getattr(server, "_captured_signals", None)
    assert isinstance(captured, list), tripped(
        "uvicorn.Server._captured_signals", "exiting 0 after a requested graceful shutdown"
    )
    server.handle_exit(signal.SIGTERM, None)
    assert captured == [signal.SIGTERM], tripped(
        "uvicorn.Server.handle_exit recording into _captured_signals",
        "exiting 0 after a requested graceful shutdown",
    )
    forget_exit_signals(server)
    assert server._captured_signals == []


def test_uvicorn_hands_sigterm_to_its_server_while_it_serves() -> None:
    """``capture_signals`` installs the server's bound ``handle_exit``: that is how the app of
    ``uvicorn main:app`` finds its server to close clients with 1001 first."""
    server = uvicorn.Server(Config(_no_app))
    assert server_handling_signal(signal.SIGTERM) is None
    with server.capture_signals():
        assert server_handling_signal(signal.SIGTERM) is server, tripped(
            "uvicorn.Server installing its bound handle_exit for SIGTERM",
            "closing WebSocket clients with 1001 under `uvicorn main:app`",
        )
    assert server_handling_signal(signal.SIGTERM) is None


@pytest.mark.parametrize("impl", IMPLS)
def test_a_loaded_config_names_its_websocket_protocol_class(impl: str) -> None:
    """``Config.load`` sets ``ws_protocol_class`` to the class ``WS_PROTOCOLS`` names."""
    other = next(name for name in IMPLS if name != impl)
    config = Config(_no_app, ws=impl)
    config.load()
    actual, wanted = ws_protocol_classes(config, impl)
    assert actual is not None and actual is wanted, tripped(
        "uvicorn.Config.ws_protocol_class or uvicorn.config.WS_PROTOCOLS",
        "warning when `uvicorn main:app` runs another WebSocket implementation",
    )
    assert ws_protocol_classes(config, other)[1] not in (None, actual)


@dataclass
class Seen:
    """What the app saw of its one WebSocket connection under a real uvicorn."""

    sockets: list[ClientSocket] = field(default_factory=list)
    transports: list[object] = field(default_factory=list)


@contextlib.asynccontextmanager
async def uvicorn_with_transport_middleware(impl: str, seen: Seen) -> AsyncIterator[int]:
    """A real uvicorn on a free port whose app opens a ClientSocket for each WebSocket."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        client_socket = open_socket(ws, 65_536)
        seen.sockets.append(client_socket)
        seen.transports.append(scope[TRANSPORT_SCOPE_KEY])
        assert callable(scope[SEND_SCOPE_KEY])
        await ws.close(1000)

    config = Config(
        TransportMiddleware(app),
        host="127.0.0.1",
        port=0,
        ws=impl,
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):  # poll for up to 10 s
            if server.started or task.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        servers = getattr(server, "servers", None)
        assert isinstance(servers, list) and servers and servers[0].sockets, tripped(
            "uvicorn.Server.servers", "the port a server started on port 0 listens on"
        )
        yield listening_port(server)  # the connections below prove it is the right one
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.mark.live
@pytest.mark.parametrize(
    ("impl", "kind"), [("websockets-sansio", DirectSocket), ("wsproto", AsgiSocket)]
)
async def test_a_live_connection_reaches_its_transport(impl: str, kind: type) -> None:
    """Under a real uvicorn the middleware finds the transport and the right socket is chosen."""
    seen = Seen()
    async with (
        uvicorn_with_transport_middleware(impl, seen) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws,
    ):
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert seen.transports and seen.transports[0] is not None, tripped(
        f"uvicorn {impl}: the transport behind send.__self__",
        "the slow-consumer bound, buffer limits and aborting stalled peers",
    )
    assert isinstance(seen.sockets[0], kind), (
        f"{MODULE} chose {type(seen.sockets[0]).__name__} under {impl}, not {kind.__name__}"
    )
    assert seen.sockets[0]._fd >= 0, tripped(
        f"the socket of uvicorn's {impl} transport (get_extra_info('socket'))",
        "the slow-consumer bound (the kernel's unsent bytes) and SO_LINGER on abort",
    )
    assert seen.sockets[0]._transport is not None, tripped(
        f"a method cotiza needs on uvicorn's {impl} transport (ServerTransport)",
        "the slow-consumer bound, buffer limits and aborting stalled peers",
    )


# Names that only code reaching into uvicorn's or websockets' internals would spell.
SEAM_MARKERS = (
    "http_protocol_class",
    "ws_protocol_class",
    "_captured_signals",
    "close_sent",
    "response_complete",
    "__self__",
    ".servers",
)


def test_only_the_transport_module_reaches_into_the_server() -> None:
    """One seam: every reach into the server's internals lives in ``cotiza.ws.transport``."""
    import cotiza
    import cotiza.ws.transport

    src = Path(cotiza.__file__).parent
    seam = Path(cotiza.ws.transport.__file__)
    patterns = {marker: re.compile(rf"{re.escape(marker)}(?!\w)") for marker in SEAM_MARKERS}
    offenders = [
        f"{path.relative_to(src)}: {marker}"
        for path in sorted(src.rglob("*.py"))
        if path != seam
        for marker, pattern in patterns.items()
        if pattern.search(path.read_text())
    ]
    assert offenders == []
    assert all(pattern.search(seam.read_text()) for pattern in patterns.values())
