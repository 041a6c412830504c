"""One client's conversation (contract section 4): admission, then commands and replies.

Errors at this boundary are sorted: a peer that went away (reset, closed) ends the
conversation quietly, logged at debug; anything else is a bug, logged with its traceback,
and the client is told so with close code 1011 instead of being dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, assert_never

from starlette.websockets import WebSocket

from cotiza.models import symbol_resolver
from cotiza.origins import OriginPolicy
from cotiza.ws import frames
from cotiza.ws.commands import (
    Command,
    CommandError,
    DashboardSubscribe,
    DashboardUnsubscribe,
    GetData,
    GetStatus,
    Ping,
    Subscribe,
    SubscribeAlerts,
    SubscribeRatios,
    Unsubscribe,
    UnsubscribeAlerts,
    UnsubscribeRatios,
    parse_command,
)
from cotiza.ws.connection import Connection
from cotiza.ws.frames import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    encode,
)
from cotiza.ws.hub import DASHBOARD_KEY
from cotiza.ws.transport import DISCONNECTS

if TYPE_CHECKING:
    from cotiza.service import Services

log = logging.getLogger(__name__)


class TokenBucket:
    """Per-connection command rate limit."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def serve(
    websocket: WebSocket, services: Services, path: str, *, token_ok: bool, origins: OriginPolicy
) -> None:
    """Admit ``websocket`` (origin, token, connection limit), then converse until it ends."""
    hub = services.hub
    origin = websocket.headers.get("origin")
    if not origins.allows(origin, websocket.headers.get("host")):
        origins.refused(origin or "", "websocket")
        hub.note_rejected()
        await websocket.close(CLOSE_POLICY, "Origin not allowed")  # rejected in the handshake
        return
    await websocket.accept()
    if not token_ok:
        hub.note_rejected()
        await websocket.close(CLOSE_POLICY, "Invalid or missing token")
        return
    if not hub.can_admit():
        hub.note_rejected()
        reason = "Too many connections" if hub.accepting else "Service restart"
        await websocket.close(CLOSE_TRY_AGAIN_LATER, reason)
        return
    conn = hub.register(websocket, path)
    try:
        await Session(services, conn).run()
    finally:
        if hub.follows_dashboard(conn):
            await services.dashboard.unsubscribe(conn)
        hub.unregister(conn)
        await conn.stop_sender()


class Session:
    """Reads one client's commands and answers them."""

    def __init__(self, services: Services, conn: Connection) -> None:
        self.services = services
        self.conn = conn

    async def run(self) -> None:
        """Greet the client, then serve its commands until it or the server ends it.

        A client that sends no subscription command receives every tick (the prototype's
        broadcast), starting after its first command is answered, or ``WS_BROADCAST_GRACE``
        after the welcome if it stays silent: a script that pings first sees the pong first.
        """
        conn = self.conn
        hub = self.services.hub
        grace = asyncio.get_running_loop().call_later(
            self.services.settings.ws_broadcast_grace, hub.widen, conn
        )
        try:
            conn.send(frames.connection())
            await self._converse(grace)
        except DISCONNECTS as exc:
            # The peer vanished mid-receive or the socket was aborted as a slow consumer.
            log.debug("connection %d ended: %r", conn.id, exc)
        except Exception:
            log.exception("connection %d failed; closing it with 1011", conn.id)
            await conn.close(CLOSE_INTERNAL_ERROR, "Internal error")
        finally:
            grace.cancel()

    async def _converse(self, grace: asyncio.TimerHandle | None) -> None:
        conn = self.conn
        websocket = conn.ws
        settings = self.services.settings
        bucket = TokenBucket(settings.ws_rate_limit, settings.ws_rate_burst)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            conn.touch()
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", errors="replace")
            if len(text) > settings.ws_max_frame_bytes:
                await conn.close(CLOSE_TOO_BIG, "Message too big")
                return
            if not bucket.take():
                log.warning("connection %d exceeded the command rate limit", conn.id)
                await conn.close(CLOSE_POLICY, "Rate limit exceeded")
                return
            try:
                await self.handle(text)
                if grace is not None:  # the first command is answered: broadcast from now on
                    grace.cancel()
                    grace = None
                    self.services.hub.widen(conn)
            except Exception:
                # Handlers only queue frames, so nothing here is the peer going away.
                log.exception("connection %d: a command handler failed; closing it", conn.id)
                await conn.close(CLOSE_INTERNAL_ERROR, "Internal error")
                return

    async def handle(self, text: str) -> None:
        """Answer one client frame; a bad one gets an error frame and changes nothing."""
        try:
            command = parse_command(text)
        except CommandError as exc:
            self.conn.send(frames.error(exc.message, exc.command))
            return
        try:
            await self.dispatch(command)
        except CommandError as exc:
            self.conn.send(frames.error(exc.message, command.command))

    async def dispatch(self, command: Command) -> None:
        match command:
            case Ping():
                await self.ping()
            case Subscribe():
                await self.subscribe(command)
            case Unsubscribe():
                await self.unsubscribe(command)
            case SubscribeRatios():
                await self.subscribe_ratios(command)
            case UnsubscribeRatios():
                await self.unsubscribe_ratios()
            case DashboardSubscribe():
                await self.dashboard_subscribe()
            case DashboardUnsubscribe():
                await self.dashboard_unsubscribe()
            case GetData():
                await self.get_data()
            case GetStatus():
                await self.get_status()
            case SubscribeAlerts():
                self.services.hub.subscribe_alerts(self.conn)
                self.conn.send(frames.alerts_subscribed())
            case UnsubscribeAlerts():
                self.services.hub.unsubscribe_alerts(self.conn)
                self.conn.send(frames.alerts_unsubscribed())
            case _:
                assert_never(command)

    async def ping(self) -> None:
        self.conn.send(frames.pong())

    def _symbols(self, names: tuple[str, ...]) -> tuple[list[str], set[str]]:
        """The full symbols ``names`` mean (``AL30`` -> its 24hs symbol), and the known set.

        A name that matches nothing stays as given (and is reported as unknown).
        """
        known = self.services.feed.known_symbols()
        resolve = symbol_resolver(known)
        return list(dict.fromkeys(resolve(n) or n.strip() for n in names)), known

    async def subscribe(self, command: Subscribe) -> None:
        services = self.services
        symbols, known = self._symbols(command.instruments)
        limit = services.settings.ws_max_subscriptions
        following = set(services.hub.instruments_of(self.conn))
        if len(following) + sum(1 for s in symbols if s not in following) > limit:
            raise CommandError(
                f"subscription limit reached: at most {limit} instruments per connection "
                f"(following {len(following)}); nothing was subscribed"
            )
        services.hub.subscribe_instruments(self.conn, symbols)
        self.conn.send(frames.subscribed(symbols, [s for s in symbols if s not in known]))
        for quote in services.cache.snapshot(symbols):
            self.conn.enqueue(("tick", quote.symbol), encode(frames.tick(quote)))

    async def unsubscribe(self, command: Unsubscribe) -> None:
        symbols, _ = self._symbols(command.instruments)
        self.services.hub.unsubscribe_instruments(self.conn, symbols)
        self.conn.send(frames.unsubscribed(symbols))

    async def subscribe_ratios(self, command: SubscribeRatios) -> None:
        ratios = self.services.ratios
        hub = self.services.hub
        if command.pairs == "all":
            hub.subscribe_ratios(self.conn, None)
            ids = list(ratios.pairs)
        else:
            ids, unknown = ratios.resolve(command.pairs)
            if unknown:
                raise CommandError("unknown pairs: " + ", ".join(unknown))
            hub.subscribe_ratios(self.conn, ids)
        self.conn.send(frames.ratio_subscribed(ids))
        wanted = set(ids)
        for frame in ratios.snapshot():
            if frame["pair_id"] in wanted:
                self.conn.enqueue(("ratio", frame["pair_id"]), encode(frame))

    async def unsubscribe_ratios(self) -> None:
        self.services.hub.unsubscribe_ratios(self.conn)
        self.conn.send(frames.ratio_unsubscribed())

    async def dashboard_subscribe(self) -> None:
        worker = self.services.dashboard
        self.services.hub.narrow(self.conn)  # asked for the dashboard, even if refused
        if not await worker.subscribe(self.conn):
            limit = self.services.settings.dashboard_max_subscribers
            raise CommandError(f"dashboard subscriber limit reached ({limit})")
        self.conn.send(
            frames.dashboard_subscribed(self.services.settings.dashboard_refresh_interval)
        )
        cached = worker.cached
        if cached is not None:
            self.conn.enqueue(DASHBOARD_KEY, cached)

    async def dashboard_unsubscribe(self) -> None:
        await self.services.dashboard.unsubscribe(self.conn)
        self.conn.send(frames.dashboard_unsubscribed())

    async def get_data(self) -> None:
        try:
            table = await self.services.dashboard_query()
        except Exception:
            log.exception("dashboard query for a get_data command failed")
            self.conn.send(frames.dashboard_error())
            return
        self.conn.send(frames.dashboard_data(table))

    async def get_status(self) -> None:
        services = self.services
        self.conn.send(
            frames.status(
                services.hub.status(),
                services.dashboard.running,
                services.feed.state.value,
                services.hub.instruments_of(self.conn),
            )
        )
