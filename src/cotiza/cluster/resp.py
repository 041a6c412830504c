"""One Redis connection whose writes are synchronous: the leader's publishing connection.

redis-py sends a command from a coroutine, so a publication would leave the leader one
event-loop pass after the tick that made it, behind the leader's own fan-out to its
clients. Here ``send()`` writes the command to the socket at once (it never waits: the
kernel takes the bytes, or the transport buffers them) and returns a future for the reply;
hiredis parses the replies, which Redis sends in order, so each one resolves the oldest
waiting future. Only what the publisher needs: RESP2, TCP, AUTH and SELECT from the
``redis://`` URL the settings validated.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

Arg = str | bytes | int


class RespError(ConnectionError):
    """The connection failed, closed, or Redis answered a command with an error."""


def pack(args: tuple[Arg, ...]) -> bytes:
    """A RESP2 array of bulk strings: how a client sends a command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection(asyncio.Protocol):
    """Commands written synchronously, replies matched to futures in order."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self._lost: RespError | None = None

    @classmethod
    async def open(cls, url: str, timeout: float) -> RespConnection:
        """Connect to ``redis://[user:password@]host:port/db``, authenticate, select."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        loop = asyncio.get_running_loop()
        conn = cls()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, host, port)
                if parts.password is not None:
                    user = unquote(parts.username) if parts.username else "default"
                    await conn.call("AUTH", user, unquote(parts.password))
                database = int(parts.path.lstrip("/") or 0)
                if database:
                    await conn.call("SELECT", database)
        except TimeoutError as exc:
            conn.close()
            raise RespError(f"no answer from {host}:{port} within {timeout:g} s") from exc
        except (OSError, RespError):
            conn.close()
            raise
        return conn

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, but behaves as one).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            while (reply := self._reader.gets()) is not False:
                if self._waiting:
                    waiter = self._waiting.popleft()
                    if not waiter.done():
                        waiter.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._fail(RespError(f"unreadable reply from Redis: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(RespError(f"connection to Redis lost: {exc or 'closed'}"))

    # -- commands ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return (
            self._lost is None and self._transport is not None and not self._transport.is_closing()
        )

    def send(self, *args: Arg) -> asyncio.Future[Any]:
        """Write one command now; the future gets its reply (an error reply as ``RespError``)."""
        if not self.is_open:
            raise self._lost or RespError("not connected to Redis")
        assert self._transport is not None
        waiter: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append(waiter)
        self._transport.write(pack(args))
        return waiter

    async def call(self, *args: Arg) -> Any:
        """Send one command and wait for its reply."""
        return checked(await self.send(*args))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # the publisher never needs what is still unsent
        self._fail(RespError("connection closed"))

    def _fail(self, error: RespError) -> None:
        self._lost = self._lost or error
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # whoever awaits it still gets it; nobody else logs it


def checked(reply: Any) -> Any:
    """``reply``, or ``RespError`` when Redis answered with an error."""
    if isinstance(reply, hiredis.ReplyError):
        raise RespError(f"Redis refused the command: {reply}")
    return reply
