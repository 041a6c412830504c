"""The fake server's wire: minimal HTTP/1.1 over asyncio streams, and WebSocket via sans-I/O.

A test double must be able to misbehave in ways a real server library prevents: stop
reading so that pings go unanswered while the socket stays open (a freeze), drop the TCP
connection without a close frame, or refuse a handshake with 401. Owning the socket and
driving ``websockets``' sans-I/O protocol gives that control.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    head: bytes  # the raw request head, replayed into the WebSocket protocol

    @property
    def is_websocket(self) -> bool:
        return (
            self.method == "GET"
            and self.headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in self.headers.get("connection", "").lower()
        )


class BadRequest(Exception):
    """The bytes on the socket are not an HTTP/1.1 request we understand."""


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on the stream, or ``None`` when the client went away first."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest("invalid request line") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0") or "0")
    except ValueError:
        raise BadRequest("invalid Content-Length") from None
    if length > MAX_BODY:
        raise BadRequest("request body too large")
    body = await reader.readexactly(length) if length else b""
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return HttpRequest(method.upper(), unquote(parts.path), query, headers, body, head)


async def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    """Send one response and close the connection (``Connection: close``)."""
    reason = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


class WsPeer:
    """One server-side WebSocket connection on a socket the fake owns."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = ServerProtocol(max_size=2**22)
        self.frozen = False
        self.closed = asyncio.Event()

    def handshake(self, request: HttpRequest, accept: bool, status: int = 401) -> Request | None:
        """Parse the handshake from the raw head and answer it; the request if accepted."""
        self.protocol.receive_data(request.head)
        events = self.protocol.events_received()
        ws_request = events[0] if events and isinstance(events[0], Request) else None
        if ws_request is None or not accept:
            response = self.protocol.reject(status, http.HTTPStatus(status).phrase + "\n")
            self.protocol.send_response(response)
            self._flush()
            return None
        response = self.protocol.accept(ws_request)
        self.protocol.send_response(response)
        self._flush()
        return ws_request if response.status_code == 101 else None

    def _flush(self) -> None:
        if self.writer.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
            elif self.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self.writer.write_eof()

    def send_text(self, text: bytes | str) -> None:
        """Queue one text frame (no await: callers drain when they choose)."""
        if self.frozen or self.closed.is_set() or self.protocol.state is not State.OPEN:
            return
        self.protocol.send_text(text.encode() if isinstance(text, str) else text)
        self._flush()

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def close(self, code: int, reason: str = "") -> None:
        """Start a clean close with ``code``; the client answers and the socket closes."""
        if self.closed.is_set():
            return
        with contextlib.suppress(Exception):  # a protocol already closing refuses a second close
            self.protocol.send_close(code, reason)
        self._flush()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed.set()
        self.writer.transport.abort()

    def freeze(self) -> None:
        """Stop reading and writing: no frames, no pongs, the socket stays open."""
        self.frozen = True

    async def messages(self) -> AsyncGenerator[str, None]:
        """Text messages from the client until it closes; pings are answered on the way."""
        parts: list[bytes] = []
        try:
            while not self.closed.is_set():
                if self.frozen:
                    await self.closed.wait()  # a frozen peer reads nothing, not even pings
                    return
                data = await self.reader.read(65536)
                if self.frozen:
                    await self.closed.wait()
                    return
                if not data:
                    self.protocol.receive_eof()
                    return
                self.protocol.receive_data(data)
                self._flush()
                for event in self.protocol.events_received():
                    if not isinstance(event, Frame):
                        continue
                    if event.opcode in (Opcode.TEXT, Opcode.CONT):
                        parts.append(bytes(event.data))
                        if event.fin:
                            message = b"".join(parts).decode("utf-8", "replace")
                            parts.clear()
                            yield message
                    elif event.opcode is Opcode.CLOSE:
                        return
        except ConnectionError:
            return
        finally:
            self.closed.set()
            if not self.writer.is_closing():
                self.writer.close()
