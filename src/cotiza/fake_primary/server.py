"""The fake Primary server: REST and WebSocket of the Primary API, with fault knobs.

Tests run it in-process (``async with FakePrimary(...) as fake``) and steer it through
``fake.faults`` and the action methods; ``cotiza fake-primary`` runs it standalone, steered
through ``/_fake/*`` endpoints. It records what every client sent, so tests can assert
that a client resubscribed everything after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cotiza.fake_primary.engine import Instrument, MarketEngine, SimEngine, no_data, sim_instruments
from cotiza.fake_primary.faults import EMPTY_BOOK, MALFORMED_FRAMES, Faults
from cotiza.fake_primary.sessions import OnExcess, SessionLimits, kick
from cotiza.fake_primary.wire import BadRequest, HttpRequest, WsPeer, read_request, write_response
from cotiza.feeds.primary_frames import Frame, error_frame, unknown_product
from cotiza.feeds.primary_parse import JsonObject
from cotiza.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """One message a client sent: which connection, when (monotonic), and what."""

    connection: int
    at: float
    text: str
    message: Any


@dataclass
class Session:
    """One accepted WebSocket connection."""

    id: int
    peer: WsPeer
    user: str
    opened_at: float
    symbols: set[str] = field(default_factory=set)
    sent: int = 0
    queue: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


# Users accepted unless others are given: README's demo logs in as demo/demo; the tests'
# harness as user/password.
DEFAULT_USERS: dict[str, str] = {"demo": "demo", "user": "password"}


class FakePrimary:
    """A local stand-in for a Primary host, on ``host:port`` (0 picks a free port)."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        instruments: Sequence[Instrument] | None = None,
        engine: MarketEngine | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float = 20.0,
        seed: int = 42,
        stop_timeout: float = 2.0,
        session_queue: int = 200_000,
        max_sessions_per_user: int | None = None,
        on_excess: OnExcess | str = OnExcess.REFUSE,
    ) -> None:
        """``stop_timeout``: how long ``stop`` lets connection handlers end by themselves;
        ``session_queue``: frames buffered per connection before the oldest are dropped."""
        self.users = dict(users or DEFAULT_USERS)
        self.instruments = {i.symbol: i for i in (instruments or sim_instruments())}
        self._listed = instruments is not None
        self.engine: MarketEngine = engine or SimEngine(list(self.instruments), seed, rate)
        self.host = host
        self.port = port
        self.stop_timeout = stop_timeout
        self.session_queue = session_queue
        self.faults = Faults()
        self.limits = SessionLimits(max_sessions_per_user, OnExcess(on_excess))
        self.tokens: dict[str, tuple[str, float]] = {}
        self.sessions: dict[int, Session] = {}
        self.client_frames: list[ClientFrame] = []
        self.handshakes: list[tuple[float, int]] = []  # (monotonic time, HTTP status)
        self.auth_attempts: list[tuple[str, bool]] = []
        self.frames_sent = 0
        self.opened: dict[int, float] = {}  # connection id -> monotonic open time
        self.fault_log: list[tuple[float, str, int]] = []  # (monotonic, fault, connection)
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._changed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    async def start(self) -> None:
        if self._server is not None:
            return
        load = getattr(self.engine, "load", None)
        if load is not None:
            symbols = await load()
            if not self._listed:  # a replayed recording lists what it quotes
                self.instruments = {s: Instrument(s) for s in symbols}
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self.engine.run(self._publish), "fake-primary-engine")
        log.info("fake Primary listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, drop every connection and stop the engine; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self.sessions.values()):
            session.peer.abort()
        # Aborting the sockets ends every connection handler by itself; cancelling them
        # instead would make asyncio's stream machinery log their cancellation as an error.
        for writer in self._handlers.values():
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=self.stop_timeout)
        # A handler may end with the reset it was just given: that is how it should end.
        with contextlib.suppress(Exception):
            await cancel_and_wait(*self._tasks, *self._handlers, timeout=self.stop_timeout)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FakePrimary:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- observation ------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked on every change; TimeoutError after."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def subscriptions(self, connection: int) -> list[str]:
        """Every product a connection asked for, in order, from its ``smd`` messages."""
        symbols: list[str] = []
        for frame in self.client_frames:
            message = frame.message
            if frame.connection != connection or not isinstance(message, dict):
                continue
            if str(message.get("type", "")).lower() == "smd":
                products = message.get("products") or []
                symbols.extend(str(p.get("symbol")) for p in products if isinstance(p, dict))
        return symbols

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """The fake's own tasks (engine, senders, connection handlers), for leak checks."""
        return {*self._tasks, *self._handlers}

    @property
    def connection_ids(self) -> list[int]:
        """Ids of every accepted connection so far, open or closed, in order."""
        return sorted(self.opened)

    # -- actions ----------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far (open connections stay open)."""
        self.tokens.clear()

    def drop_all(self) -> None:
        for session in list(self.sessions.values()):
            session.peer.abort()

    def close_all(self, code: int = 1001, reason: str = "going away") -> None:
        for session in list(self.sessions.values()):
            session.peer.close(code, reason)

    def inject(self, texts: Sequence[bytes]) -> None:
        """Send raw frames (malformed, unknown types, ...) to every open connection."""
        for session in self.sessions.values():
            session.queue.extend(texts)
            session.wake.set()

    def inject_malformed(self) -> None:
        self.inject(MALFORMED_FRAMES)

    def inject_unknown_types(self, count: int = 3) -> None:
        frames = [orjson.dumps({"type": f"Zz{i}", "timestamp": 0}) for i in range(count)]
        self.inject(frames)

    async def burst(self, count: int) -> None:
        """Queue ``count`` Md frames for each open connection, as fast as it can read."""
        for session in list(self.sessions.values()):
            frames = self.engine.burst(sorted(session.symbols), count)
            while chunk := list(itertools.islice(frames, 500)):
                session.queue.extend(orjson.dumps(self._shape(f)) for f in chunk)
                session.wake.set()
                await asyncio.sleep(0)

    # -- market data ------------------------------------------------------------------

    def _shape(self, frame: Frame) -> Frame:
        if self.faults.empty_books:
            return {**frame, "marketData": dict(EMPTY_BOOK)}
        return frame

    def _publish(self, symbol: str, frame: Frame) -> None:
        if self.faults.pause:
            return
        text: bytes | None = None
        for session in self.sessions.values():
            if symbol in session.symbols:
                text = text or orjson.dumps(self._shape(frame))
                session.queue.append(text)
                session.wake.set()

    async def _send_loop(self, session: Session) -> None:
        peer = session.peer
        while not peer.closed.is_set():
            await session.wake.wait()
            session.wake.clear()
            while session.queue and not peer.frozen and not peer.closed.is_set():
                peer.send_text(session.queue.popleft())
                session.sent += 1
                self.frames_sent += 1
                if self._fire_faults(session):
                    break
                if session.sent % 64 == 0:
                    await peer.drain()
            await peer.drain()

    def _fire_faults(self, session: Session) -> bool:
        f, sent, peer = self.faults, session.sent, session.peer
        if f.close_after is not None and sent >= f.close_after:
            f.close_after = None
            self._log_fault("close", session)
            peer.close(f.close_code, f.close_reason)
            return True
        if f.drop_after is not None and sent >= f.drop_after:
            f.drop_after = None
            self._log_fault("drop", session)
            peer.abort()
            return True
        if f.freeze_after is not None and sent >= f.freeze_after:
            f.freeze_after = None
            self._log_fault("freeze", session)
            peer.freeze()
            return True
        return False

    def _log_fault(self, fault: str, session: Session) -> None:
        log.info("fault: %s on connection %d after %d frames", fault, session.id, session.sent)
        self.fault_log.append((time.monotonic(), fault, session.id))
        self._notify()

    # -- connections ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers[task] = writer
        try:
            request = await read_request(reader)
            if request is None:
                writer.close()
            elif request.is_websocket:
                await self._websocket(request, reader, writer)
            else:
                from cotiza.fake_primary.rest import handle_rest

                status, body, headers = handle_rest(self, request)
                await write_response(writer, status, body, headers)
        except BadRequest as exc:
            await write_response(writer, 400, orjson.dumps(error_frame(str(exc))))
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:
            # The task boundary of one connection: log, drop it, keep serving the others.
            log.exception("fake Primary: connection failed")
            writer.transport.abort()
        finally:
            if task is not None:
                self._handlers.pop(task, None)

    def token_user(self, token: str | None) -> str | None:
        """The user a token belongs to, if it is valid and not expired."""
        entry = self.tokens.get(token or "")
        if entry is None:
            return None
        user, issued = entry
        ttl = self.faults.token_ttl
        if ttl is not None and time.monotonic() - issued > ttl:
            return None
        return user

    def issue_token(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (user, time.monotonic())
        self._notify()
        return token

    async def _websocket(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = WsPeer(reader, writer)
        user = self.token_user(request.headers.get("x-auth-token"))
        status, admission = 101, None
        if self.faults.unavailable:
            status = 503
        elif user is None:
            status = 401
        elif self.faults.reject_handshakes > 0:
            self.faults.reject_handshakes -= 1
            status = 401
        else:
            admission = self.limits.admit(user)
            status = admission.status
        accepted = peer.handshake(request, status == 101, status) is not None
        self.handshakes.append((time.monotonic(), status if not accepted else 101))
        self._notify()
        if not accepted or user is None or admission is None:
            await peer.drain()
            writer.close()
            return
        session = Session(
            next(self._ids), peer, user, time.monotonic(), queue=deque(maxlen=self.session_queue)
        )
        for kicked in map(self.sessions.get, admission.kick):
            if kicked is not None:
                kick(kicked.peer)
        self.limits.opened(user, session.id, admission.kick)
        self.sessions[session.id] = session
        self.opened[session.id] = session.opened_at
        sender = self._spawn(self._send_loop(session), f"fake-primary-send-{session.id}")
        self._notify()
        try:
            async with contextlib.aclosing(peer.messages()) as messages:
                async for text in messages:
                    self._on_message(session, text)
        finally:
            sender.cancel()
            self.sessions.pop(session.id, None)
            self.limits.closed(user, session.id)
            self._notify()

    def _on_message(self, session: Session, text: str) -> None:
        try:
            message: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        self.client_frames.append(ClientFrame(session.id, time.monotonic(), text, message))
        kind = str(message.get("type", "")).lower() if isinstance(message, dict) else ""
        if kind == "smd":
            self._subscribe(session, message)
        elif kind != "os":
            session.queue.append(orjson.dumps(error_frame("Invalid message")))
            session.wake.set()
        self._notify()

    def _subscribe(self, session: Session, message: JsonObject) -> None:
        products = message.get("products")
        for item in products if isinstance(products, list) else []:
            symbol = item.get("symbol") if isinstance(item, dict) else None
            market = item.get("marketId", "ROFX") if isinstance(item, dict) else "ROFX"
            if not isinstance(symbol, str) or symbol not in self.instruments:
                described = unknown_product(str(symbol), str(market))
                session.queue.append(orjson.dumps(error_frame(described)))
                continue
            session.symbols.add(symbol)
            # Primary answers a subscription with the current state of the instrument.
            latest = self.engine.latest(symbol) or no_data(symbol, str(market))
            session.queue.append(orjson.dumps(self._shape(latest)))
        session.wake.set()
