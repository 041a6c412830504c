"""A fake Telegram Bot API for tests and demos: ``getMe``, ``getUpdates`` (long polling with
offsets), ``sendMessage``, ``setMyCommands`` and ``deleteWebhook`` under ``/bot<token>/``.

It records every call and every message a bot sent, and lets a test inject messages from
any chat id (``inject`` in-process, ``POST /_fake/messages`` over HTTP) and queue faults
for a method (an HTTP error, or a malformed answer that breaks the client's parser).
``cotiza fake-telegram --port P`` runs it standalone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cotiza.ws.transport import listening_port

log = logging.getLogger(__name__)

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "cotiza", "username": "cotiza_test_bot"}


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the bot sent: to which chat, what, and when (epoch seconds)."""

    chat_id: int
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Call:
    """One Bot API call: the method and its parameters (the token is in the path only)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass(slots=True)
class Fault:
    """What the next ``count`` calls of a method get instead of an answer."""

    kind: str  # "error" (HTTP status + Bot API error body) or "garbage" (ok, bad result)
    status: int = 500
    count: int = 1


@dataclass
class FakeState:
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: whoever runs the fake decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _decode(value: str) -> Any:
    """Bot API clients send form fields JSON-encoded when they are not plain strings."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


class FakeTelegram:
    """The fake server; ``async with FakeTelegram(token) as fake`` in tests."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.state = FakeState()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = False
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/_fake/messages", self._inject_http, methods=["POST"]),
                Route("/_fake/sent", self._sent_http, methods=["GET"]),
                Route("/_fake/calls", self._calls_http, methods=["GET"]),
                Route("/_fake/faults", self._fault_http, methods=["POST"]),
            ]
        )
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda _: BOT_USER,
            "deleteWebhook": lambda _: True,
            "setMyCommands": self._set_commands,
            "sendMessage": self._send_message,
        }

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            return
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = _QuietServer(config)
        self._server = server
        self._closing = False
        self._task = asyncio.create_task(server.serve(), name="fake-telegram")
        while not server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("fake Telegram did not start")
            await asyncio.sleep(0.01)
        self.port = listening_port(server)
        log.info("fake Telegram Bot API on %s", self.url)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        self._closing = True
        await self._notify()  # long polls answer at once instead of holding the shutdown
        server.should_exit = True
        await task

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- test controls ----------------------------------------------------------------

    async def inject(self, chat_id: int, text: str, *, age: float = 0.0) -> int:
        """Queue a text message from ``chat_id`` (sent ``age`` seconds ago); its update id."""
        update_id = next(self._update_ids)
        now = int(time.time() - age)
        chat_type = "private" if chat_id > 0 else "group"
        entities = []
        if text.startswith("/"):
            entities.append(
                {"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}
            )
        message = {
            "message_id": next(self._message_ids),
            "date": now,
            "chat": {"id": chat_id, "type": chat_type, "first_name": "Test"},
            "from": {"id": abs(chat_id), "is_bot": False, "first_name": "Test"},
            "text": text,
            "entities": entities,
        }
        self.state.updates.append({"update_id": update_id, "message": message})
        await self._notify()
        return update_id

    def add_fault(self, method: str, fault: Fault) -> None:
        self.state.faults.setdefault(method, []).append(fault)

    def sent_to(self, chat_id: int) -> list[str]:
        return [m.text for m in self.state.sent if m.chat_id == chat_id]

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.state.calls if c.method == method]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked on every call the fake serves."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # -- the Bot API ------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await _params(request)
        self.state.calls.append(Call(method, params, time.time()))
        await self._notify()  # a test may wait for the call itself (a long poll pending)
        try:
            fault = self._take_fault(method)
            if fault is not None:
                if fault.kind == "garbage":
                    return JSONResponse({"ok": True, "result": "garbage"})
                return _error(fault.status, "Internal Server Error: injected fault")
            if method == "getUpdates":
                return JSONResponse({"ok": True, "result": await self._get_updates(params)})
            handler = self._methods.get(method)
            if handler is None:
                return _error(404, "Not Found")
            return JSONResponse({"ok": True, "result": handler(params)})
        finally:
            await self._notify()

    def _take_fault(self, method: str) -> Fault | None:
        queue = self.state.faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.pop(0)
        return fault

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset")
        if isinstance(offset, int):
            # Confirms every update below the offset, as the real API does.
            self.state.updates = [u for u in self.state.updates if u["update_id"] >= offset]
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        timeout = params.get("timeout")
        wait = float(timeout) if isinstance(timeout, (int, float)) else 0.0

        def ready() -> bool:
            return bool(self.state.updates) or self._closing

        if wait > 0 and not ready():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait), self._changed:
                    await self._changed.wait_for(ready)
        return list(self.state.updates[:limit])

    def _set_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        self.state.commands = commands if isinstance(commands, list) else []
        return True

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = str(params.get("text", ""))
        now = time.time()
        self.state.sent.append(SentMessage(chat_id, text, now))
        return {
            "message_id": next(self._message_ids),
            "date": int(now),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": BOT_USER,
            "text": text,
        }

    # -- test endpoints (for the standalone process) ----------------------------------

    async def _inject_http(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("chat_id"), int):
            return JSONResponse({"detail": "expected {chat_id: int, text: str}"}, 422)
        update_id = await self.inject(
            body["chat_id"], str(body.get("text", "")), age=float(body.get("age", 0.0))
        )
        return JSONResponse({"update_id": update_id})

    async def _sent_http(self, request: Request) -> Response:
        chat = request.query_params.get("chat_id")
        sent = [asdict(m) for m in self.state.sent if chat is None or str(m.chat_id) == chat]
        return JSONResponse({"count": len(sent), "messages": sent})

    async def _calls_http(self, _: Request) -> Response:
        calls = [asdict(c) for c in self.state.calls]
        return JSONResponse({"count": len(calls), "calls": calls})

    async def _fault_http(self, request: Request) -> Response:
        body = await request.json()
        try:
            fault = Fault(str(body["kind"]), int(body.get("status", 500)), int(body["count"]))
            method = str(body["method"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"detail": "expected {method, kind, count[, status]}"}, 422)
        self.add_fault(method, fault)
        return JSONResponse({"queued": asdict(fault), "method": method})


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {k: _decode(v) for k, v in request.query_params.items()}
    body = await request.body()
    if not body:
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        data = orjson.loads(body)
        if isinstance(data, dict):
            params.update(data)
        return params
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        params[key] = value if key == "text" else _decode(value)
    return params


def _error(status: int, description: str) -> JSONResponse:
    body = {"ok": False, "error_code": status, "description": description}
    return JSONResponse(body, status_code=status)
