"""The request guard: what every state-changing HTTP request passes before the app sees it.

A pure ASGI middleware, so that nothing of a request's body is read before it is allowed:

1. ``Origin``: a POST/PUT/PATCH/DELETE whose ``Origin`` header is present and not allowed
   (the same rule as for WebSockets and CORS: ``cotiza.origins.OriginPolicy``) gets 403. A
   browser page on another site cannot stop the feed or drain the service.
2. The token: with ``API_TOKEN`` set, such a request without a valid token gets 401 before
   its body is read (every state-changing route needs the token).
3. The body: more than ``MAX_BODY_BYTES`` gets 413, whether announced by
   ``Content-Length`` (refused without reading) or streamed chunked (refused as soon as the
   count passes the limit). A body that does not arrive within ``WEBSOCKET_TIMEOUT`` gets
   408. The accepted body, at most ``MAX_BODY_BYTES``, is handed to the app as read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cotiza.api.deps import token_matches
from cotiza.origins import OriginPolicy
from cotiza.settings import Settings

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TooLarge(Exception):
    """The body passed the limit."""


LINGER = 1.0  # seconds a refused body is read and discarded, so the client sees the reply


async def reply(
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    discard: Receive | None = None,
) -> None:
    """A JSON ``{"detail": ...}`` response, the shape every other error of the API has.

    With ``discard``, the rest of the request body is read and thrown away for up to
    ``LINGER`` seconds between the status line and the body: a server that closes while the
    client is still sending resets the connection, and the client never reads the reply.
    Nothing is kept, and the connection is closed after the reply.
    """
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    if discard is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER):
                while True:
                    message = await discard()
                    if message["type"] != "http.request" or not message.get("more_body"):
                        break
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Origin, token and body size of state-changing requests; see the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings, policy: OriginPolicy) -> None:
        self.app = app
        self.settings = settings
        self.policy = policy
        self.limit = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        has_body = conn.headers.get("content-length", "0") != "0" or (
            "chunked" in conn.headers.get("transfer-encoding", "").lower()
        )
        rest = receive if has_body else None
        if scope["method"] in STATE_CHANGING:
            origin = conn.headers.get("origin")
            if not self.policy.allows(origin, conn.headers.get("host")):
                self.policy.refused(origin or "", "write")
                await reply(send, 403, "Origin not allowed", discard=rest)
                return
            if not token_matches(self.settings, conn):
                await reply(
                    send,
                    401,
                    "a valid API token is required",
                    {"WWW-Authenticate": "Bearer"},
                    discard=rest,
                )
                return
        length = conn.headers.get("content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                await reply(send, 400, "invalid Content-Length")
                return
            if announced > self.limit:
                await reply(send, 413, f"request body over {self.limit} bytes", discard=receive)
                return
        elif "chunked" not in conn.headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body at all
            return
        try:
            async with asyncio.timeout(self.settings.websocket_timeout):
                messages = await self._read_body(receive)
        except TooLarge:
            await reply(send, 413, f"request body over {self.limit} bytes", discard=receive)
            return
        except TimeoutError:
            await reply(send, 408, "request body not received in time")
            return
        if messages is None:  # the client went away
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """Every body message, counting bytes as they arrive; None on a disconnect."""
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            total += len(message.get("body", b""))
            if total > self.limit:
                raise TooLarge
            messages.append(message)
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()  # after the body: the disconnect, when it comes

    return replay
