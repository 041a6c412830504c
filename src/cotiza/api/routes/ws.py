"""The WebSocket protocol of contract section 4, on /ws/cotizaciones and /ws/dashboard."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket

from cotiza.api.deps import get_services, token_valid
from cotiza.hub import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    Connection,
    dumps,
)
from cotiza.service import Services

log = logging.getLogger(__name__)

router = APIRouter()

MAX_SYMBOLS_PER_COMMAND = 500


class ProtocolError(Exception):
    """A client frame that cannot be honoured; answered with an error frame."""


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


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """Browsers send ``Origin``; accept same-host pages and the configured origins."""
    origin = ws.headers.get("origin")
    if origin is None or "*" in allowed:
        return True
    if origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return True
    host = ws.headers.get("host", "")
    return urlsplit(origin).netloc == host


def _symbols(message: dict[str, Any]) -> list[str]:
    value = message.get("instruments", message.get("symbols"))
    if not isinstance(value, list) or not value:
        raise ProtocolError("'instruments' must be a non-empty list of symbols")
    if len(value) > MAX_SYMBOLS_PER_COMMAND:
        raise ProtocolError(f"at most {MAX_SYMBOLS_PER_COMMAND} instruments per command")
    if not all(isinstance(s, str) and 0 < len(s.strip()) <= 128 for s in value):
        raise ProtocolError("every instrument must be a non-empty string")
    return list(dict.fromkeys(s.strip() for s in value))


class Session:
    """One client's conversation: parses commands and answers them."""

    def __init__(self, services: Services, conn: Connection) -> None:
        self.services = services
        self.conn = conn
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "ping": self.ping,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "subscribe_ratios": self.subscribe_ratios,
            "unsubscribe_ratios": self.unsubscribe_ratios,
            "dashboard_subscribe": self.dashboard_subscribe,
            "subscribe_dashboard": self.dashboard_subscribe,
            "dashboard_unsubscribe": self.dashboard_unsubscribe,
            "unsubscribe_dashboard": self.dashboard_unsubscribe,
            "get_data": self.get_data,
            "dashboard_get_data": self.get_data,
            "get_status": self.get_status,
            "dashboard_status": self.get_status,
            "subscribe_alerts": self.subscribe_alerts,
            "unsubscribe_alerts": self.unsubscribe_alerts,
        }

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send_message(message)

    def error(self, text: str, **extra: Any) -> None:
        self.send({"type": "error", "message": text, **extra, "timestamp": time.time()})

    async def handle(self, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error("invalid JSON")
            return
        if not isinstance(message, dict):
            self.error("a command must be a JSON object")
            return
        command = message.get("type", message.get("action"))
        if not isinstance(command, str):
            self.error("missing command: give 'type' or 'action'")
            return
        handler = self.handlers.get(command)
        if handler is None:
            self.error(f"unknown command {command[:64]!r}", command=command[:64])
            return
        try:
            await handler(message)
        except ProtocolError as exc:
            self.error(str(exc), command=command)

    async def ping(self, _: dict[str, Any]) -> None:
        self.send({"type": "pong", "timestamp": time.time()})

    async def subscribe(self, message: dict[str, Any]) -> None:
        symbols = _symbols(message)
        services = self.services
        hub = services.hub
        hub.subscribe_instruments(self.conn, symbols)
        known = set(services.feed.instruments) | set(services.cache.symbols())
        reply: dict[str, Any] = {"type": "subscribed", "instruments": symbols}
        unknown = [s for s in symbols if s not in known]
        if unknown:
            reply["unknown"] = unknown
        self.send(reply)
        for quote in services.cache.snapshot(symbols):
            self.conn.enqueue(
                ("tick", quote.symbol), dumps({"type": "tick", **quote.tick_payload()})
            )

    async def unsubscribe(self, message: dict[str, Any]) -> None:
        symbols = _symbols(message)
        self.services.hub.unsubscribe_instruments(self.conn, symbols)
        self.send({"type": "unsubscribed", "instruments": symbols})

    async def subscribe_ratios(self, message: dict[str, Any]) -> None:
        spec = message.get("pairs", "all")
        ratios = self.services.ratios
        if spec == "all":
            self.services.hub.subscribe_ratios(self.conn, None)
            ids = list(ratios.pairs)
        else:
            if not isinstance(spec, list) or not spec:
                raise ProtocolError("'pairs' must be \"all\" or a non-empty list")
            ids, unknown = ratios.resolve(spec)
            if unknown:
                raise ProtocolError("unknown pairs: " + ", ".join(unknown))
            self.services.hub.subscribe_ratios(self.conn, ids)
        self.send({"type": "ratio_subscribed", "pairs": ids})
        for item in ratios.snapshot():
            if item["pair_id"] in ids:
                self.conn.enqueue(("ratio", item["pair_id"]), dumps(item))

    async def unsubscribe_ratios(self, _: dict[str, Any]) -> None:
        self.services.hub.unsubscribe_ratios(self.conn)
        self.send({"type": "ratio_unsubscribed"})

    async def subscribe_alerts(self, _: dict[str, Any]) -> None:
        """Market alerts: ``alert`` frames for every firing from now on."""
        self.services.hub.alerts.add(self.conn)
        self.send({"type": "alerts_subscribed", "timestamp": time.time()})

    async def unsubscribe_alerts(self, _: dict[str, Any]) -> None:
        self.services.hub.alerts.discard(self.conn)
        self.send({"type": "alerts_unsubscribed", "timestamp": time.time()})

    async def dashboard_subscribe(self, _: dict[str, Any]) -> None:
        worker = self.services.dashboard
        if not await worker.subscribe(self.conn):
            limit = self.services.settings.dashboard_max_subscribers
            raise ProtocolError(f"dashboard subscriber limit reached ({limit})")
        self.send(
            {
                "type": "dashboard_subscribed",
                "refresh_interval": self.services.settings.dashboard_refresh_interval,
                "timestamp": time.time(),
            }
        )
        if worker.cached is not None:
            self.conn.enqueue("dashboard", worker.cached)

    async def dashboard_unsubscribe(self, _: dict[str, Any]) -> None:
        await self.services.dashboard.unsubscribe(self.conn)
        self.send({"type": "dashboard_unsubscribed", "timestamp": time.time()})

    async def get_data(self, _: dict[str, Any]) -> None:
        try:
            result = await self.services.dashboard_query()
        except Exception:
            log.exception("dashboard query for a get_data command failed")
            self.send(
                {
                    "type": "dashboard_error",
                    "message": "dashboard query failed",
                    "timestamp": time.time(),
                }
            )
            return
        self.send({"type": "dashboard_data", **result, "timestamp": time.time()})

    async def get_status(self, _: dict[str, Any]) -> None:
        services = self.services
        self.send(
            {
                "type": "status",
                **services.hub.status(),
                "dashboard_worker_running": services.dashboard.running,
                "feed_state": services.feed.state.value,
                "subscriptions": sorted(self.conn.instruments),
                "timestamp": time.time(),
            }
        )


async def serve_connection(websocket: WebSocket, path: str) -> None:
    services = get_services(websocket)
    settings = services.settings
    hub = services.hub
    if not origin_allowed(websocket, settings.allowed_origins):
        hub.stats.rejected += 1
        await websocket.close(CLOSE_POLICY, "Origin not allowed")  # rejected in the handshake
        return
    await websocket.accept()
    if not token_valid(services, websocket):
        hub.stats.rejected += 1
        await websocket.close(CLOSE_POLICY, "Invalid or missing token")
        return
    if not hub.can_admit():
        hub.stats.rejected += 1
        reason = "Too many connections" if hub.accepting else "Service restart"
        await websocket.close(CLOSE_TRY_AGAIN_LATER, reason)
        return
    conn = hub.register(websocket, path)
    session = Session(services, conn)
    bucket = TokenBucket(settings.ws_rate_limit, settings.ws_rate_burst)
    session.send({"type": "connection", "status": "connected", "timestamp": time.time()})
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            conn.last_recv = time.monotonic()
            conn.received += 1
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", errors="replace")
            if len(text) > settings.ws_max_frame_bytes:
                await conn.close(CLOSE_TOO_BIG, "Message too big")
                break
            if not bucket.take():
                log.warning("connection %d exceeded the command rate limit", conn.id)
                await conn.close(CLOSE_POLICY, "Rate limit exceeded")
                break
            await session.handle(text)
    except Exception as exc:
        # The peer vanished mid-receive or the socket was aborted as a slow consumer.
        log.debug("connection %d ended: %r", conn.id, exc)
    finally:
        if conn.dashboard:
            await services.dashboard.unsubscribe(conn)
        hub.unregister(conn)
        await conn.stop_sender()


@router.websocket("/ws/cotizaciones")
async def ws_cotizaciones(websocket: WebSocket) -> None:
    await serve_connection(websocket, "/ws/cotizaciones")


@router.websocket("/ws/dashboard")
async def ws_dashboard(websocket: WebSocket) -> None:
    await serve_connection(websocket, "/ws/dashboard")
