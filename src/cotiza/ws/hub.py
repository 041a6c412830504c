"""The hub: every live WebSocket connection of this process and what each one follows.

A publish serialises and frames a message once and hands the same ``Wire`` to every
interested connection without awaiting anything, so a slow client only ever delays itself.
The hub alone keeps the subscriptions (indexed by symbol, ratio pair and dashboard) and
polices the clients: keep-alive pings for silent ones, eviction for slow consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from starlette.websockets import WebSocket
from typing_extensions import TypedDict  # validated by pydantic as a response model

from cotiza.models import Quote
from cotiza.settings import Settings
from cotiza.ws import frames
from cotiza.ws.connection import Connection, ConnectionState, WsStats
from cotiza.ws.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    AlertFrame,
    HubStatus,
    RatioFrame,
    Wire,
    encode,
)
from cotiza.ws.transport import open_socket

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class Subscriptions:
    """What one connection follows; written by the hub only."""

    instruments: set[str] = field(default_factory=set)
    ratio_pairs: set[int] = field(default_factory=set)
    ratio_all: bool = False
    dashboard: bool = False
    narrowed: bool = False  # sent a subscription command: no more broadcast of every tick


class ConnectionInfo(TypedDict):
    """One connection as ``/cotizaciones/websocket_status`` lists it."""

    id: int
    path: str
    remote: str
    host: str | None
    port: int | None
    state: str
    connected_at: float
    write_path: str
    instruments: list[str]  # the first SAMPLE, sorted
    instrument_count: int
    ratio_pairs: list[int] | Literal["all"]
    dashboard: bool
    everything: bool  # no subscription command yet: receives every tick
    pending: int
    pending_bytes: int
    backlog_bytes: int
    sent: int
    received: int
    coalesced: int


class Hub:
    """Every live WebSocket connection of this process and what each one subscribed to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections: dict[int, Connection] = {}
        self.stats = WsStats()
        self._subscriptions: dict[Connection, Subscriptions] = {}
        self._by_symbol: dict[str, set[Connection]] = {}
        self._by_pair: dict[int, set[Connection]] = {}
        self._ratio_all: set[Connection] = set()
        self._dashboard: set[Connection] = set()
        self._alerts: set[Connection] = set()  # clients that sent subscribe_alerts
        # Clients that sent no subscription command yet receive every tick, as the
        # prototype broadcast to all (from ``widen``); their first one narrows them.
        self._everything: set[Connection] = set()
        self._ids = itertools.count(1)
        self._closing_tasks: set[asyncio.Task[None]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._backlogs: asyncio.Task[None] | None = None
        self._accepting = True
        # Cluster mode: every alert published here also goes to the other nodes' clients.
        self.on_alert: Callable[[Wire], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keepalive_loop(), name="ws-keepalive")
        if self._backlogs is None:
            self._backlogs = asyncio.create_task(self._backlog_loop(), name="ws-backlogs")
        self._accepting = True

    async def stop(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "Server shutting down"
    ) -> None:
        """Close every client with ``code`` and stop the keep-alive task (idempotent)."""
        self._accepting = False
        await self.close_all(code, reason)
        for task in (self._keepalive, self._backlogs):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._keepalive = self._backlogs = None
        if self._closing_tasks:
            await asyncio.gather(*self._closing_tasks, return_exceptions=True)

    async def close_all(self, code: int, reason: str) -> int:
        connections = list(self.connections.values())
        await asyncio.gather(*(c.close(code, reason) for c in connections), return_exceptions=True)
        return len(connections)

    # -- admission and registration -----------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    def stop_accepting(self) -> None:
        """Turn new clients away (shutdown, or a drain before a planned restart)."""
        self._accepting = False

    def resume_accepting(self) -> None:
        """Take new clients again (a drain undone)."""
        self._accepting = True

    def can_admit(self) -> bool:
        return self._accepting and len(self.connections) < self.settings.max_websocket_connections

    def note_rejected(self) -> None:
        self.stats.rejected += 1

    def register(self, ws: WebSocket, path: str) -> Connection:
        """Adopt an accepted ``ws``; its write path is chosen here, once."""
        settings = self.settings
        conn = Connection(
            next(self._ids),
            ws,
            path,
            open_socket(ws, settings.ws_send_buffer),
            queue_size=settings.ws_queue_size,
            max_pending_bytes=settings.ws_max_pending_bytes,
            send_timeout=settings.websocket_timeout,
            stats=self.stats,
            on_slow=self.slow_consumer,
        )
        self.connections[conn.id] = conn
        self._subscriptions[conn] = Subscriptions()
        self.stats.accepted += 1
        return conn

    def unregister(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        subs = self._subscriptions.pop(conn, None)
        if subs is not None:
            for symbol in subs.instruments:
                _discard(self._by_symbol, symbol, conn)
            for pair_id in subs.ratio_pairs:
                _discard(self._by_pair, pair_id, conn)
        self._ratio_all.discard(conn)
        self._dashboard.discard(conn)
        self._alerts.discard(conn)
        self._everything.discard(conn)
        conn.mark_closed()

    # -- subscriptions ------------------------------------------------------------------

    def widen(self, conn: Connection) -> None:
        """Send ``conn`` every tick, unless it already sent a subscription command."""
        subs = self._subscriptions.get(conn)
        if subs is not None and not subs.narrowed:
            self._everything.add(conn)

    def narrow(self, conn: Connection) -> None:
        """``conn`` sent a subscription command: from now on it gets only what it follows."""
        subs = self._subscriptions.get(conn)
        if subs is not None:
            subs.narrowed = True
        self._everything.discard(conn)

    def receives_everything(self, conn: Connection) -> bool:
        return conn in self._everything

    def subscribe_instruments(self, conn: Connection, symbols: Iterable[str]) -> None:
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None:
            return
        for symbol in symbols:
            subs.instruments.add(symbol)
            self._by_symbol.setdefault(symbol, set()).add(conn)

    def unsubscribe_instruments(self, conn: Connection, symbols: Iterable[str]) -> None:
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None:
            return
        for symbol in symbols:
            subs.instruments.discard(symbol)
            _discard(self._by_symbol, symbol, conn)

    def subscription_count(self, conn: Connection) -> int:
        subs = self._subscriptions.get(conn)
        return len(subs.instruments) if subs is not None else 0

    def instruments_of(self, conn: Connection) -> list[str]:
        subs = self._subscriptions.get(conn)
        return sorted(subs.instruments) if subs is not None else []

    def subscribe_ratios(self, conn: Connection, pair_ids: Iterable[int] | None) -> None:
        """Follow ``pair_ids``, or every pair (present and future) when None."""
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None:
            return
        if pair_ids is None:
            subs.ratio_all = True
            self._ratio_all.add(conn)
            return
        for pair_id in pair_ids:
            subs.ratio_pairs.add(pair_id)
            self._by_pair.setdefault(pair_id, set()).add(conn)

    def unsubscribe_ratios(self, conn: Connection) -> None:
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None:
            return
        for pair_id in subs.ratio_pairs:
            _discard(self._by_pair, pair_id, conn)
        subs.ratio_pairs.clear()
        subs.ratio_all = False
        self._ratio_all.discard(conn)

    def subscribe_dashboard(self, conn: Connection) -> bool:
        """Add ``conn`` to the dashboard's subscribers; False if it was one already."""
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None or subs.dashboard:
            return False
        subs.dashboard = True
        self._dashboard.add(conn)
        return True

    def unsubscribe_dashboard(self, conn: Connection) -> bool:
        """Remove ``conn`` from the dashboard's subscribers; False if it was not one."""
        self.narrow(conn)
        subs = self._subscriptions.get(conn)
        if subs is None or not subs.dashboard:
            return False
        subs.dashboard = False
        self._dashboard.discard(conn)
        return True

    def follows_dashboard(self, conn: Connection) -> bool:
        return conn in self._dashboard

    @property
    def dashboard_subscribers(self) -> int:
        return len(self._dashboard)

    # -- publishing ---------------------------------------------------------------------

    def publish_tick(self, quote: Quote) -> None:
        members = self._by_symbol.get(quote.symbol)
        everything = self._everything
        if not members and not everything:
            return
        wire = encode(frames.tick(quote))
        key = ("tick", quote.symbol)
        for conn in everything:
            conn.enqueue(key, wire)
        if members:
            for conn in members:
                conn.enqueue(key, wire)

    def publish_ratio(self, frame: RatioFrame) -> None:
        pair_id = frame["pair_id"]
        members = self._by_pair.get(pair_id)
        ratio_all = self._ratio_all
        if not members and not ratio_all:
            return
        wire = encode(frame)
        key = ("ratio", pair_id)
        for conn in ratio_all:
            conn.enqueue(key, wire)
        if members:
            for conn in members:
                if conn not in ratio_all:
                    conn.enqueue(key, wire)

    def subscribe_alerts(self, conn: Connection) -> None:
        self.narrow(conn)
        if conn in self._subscriptions:
            self._alerts.add(conn)

    def unsubscribe_alerts(self, conn: Connection) -> None:
        self.narrow(conn)
        self._alerts.discard(conn)

    def publish_alert(self, frame: AlertFrame) -> int:
        """Send an ``alert`` frame to every alert subscriber; returns how many got it queued.

        Alerts are events, not states: each gets its own key, so none is ever coalesced.
        """
        wire = encode(frame)
        if self.on_alert is not None:
            self.on_alert(wire)
        return self.publish_alert_wire(wire)

    def publish_alert_wire(self, wire: Wire) -> int:
        """``publish_alert`` for a frame already serialised (one relayed by the cluster)."""
        if not self._alerts:
            return 0
        for conn in self._alerts:
            conn.enqueue(wire, wire)
        return sum(1 for conn in self._alerts if conn.state is ConnectionState.OPEN)

    def publish_dashboard(self, wire: Wire) -> None:
        for conn in self._dashboard:
            conn.enqueue(DASHBOARD_KEY, wire)

    # -- policing -----------------------------------------------------------------------

    def slow_consumer(self, conn: Connection, why: str) -> None:
        """Disconnect a client that cannot keep up, releasing its socket for real."""
        if not conn.mark_closing():
            return
        self.stats.slow_consumers += 1
        log.warning("closing slow consumer %d (%s): %s", conn.id, conn.remote, why)
        task = asyncio.create_task(
            conn.evict(CLOSE_POLICY, "slow consumer"), name=f"ws-evict-{conn.id}"
        )
        self._closing_tasks.add(task)
        task.add_done_callback(self._evicted)

    def _evicted(self, task: asyncio.Task[None]) -> None:
        self._closing_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("evicting a slow consumer failed", exc_info=exc)

    async def _keepalive_loop(self) -> None:
        # Only after a long silence (WS_IDLE_PING_AFTER, 300 s): protocol-level pings,
        # not this frame, detect dead peers.
        interval = self.settings.ws_idle_ping_after
        while True:
            await asyncio.sleep(min(interval / 2, 10.0))
            now = time.monotonic()
            wire = encode(frames.ping())
            for conn in list(self.connections.values()):
                if now - conn.last_recv >= interval:
                    conn.enqueue(KEEPALIVE_KEY, wire)

    async def _backlog_loop(self) -> None:
        """Evict clients with more than WS_MAX_PENDING_BYTES waiting for them.

        The outbox bounds what cotiza queues; this bounds what the server writes on its own,
        such as pongs to a flood of protocol pings from a client that never reads them.
        """
        limit = self.settings.ws_max_pending_bytes
        while True:
            await asyncio.sleep(BACKLOG_SCAN)
            for conn in list(self.connections.values()):
                if conn.state is ConnectionState.OPEN:
                    waiting = conn.backlog() + conn.pending_bytes
                    if waiting > limit:
                        self.slow_consumer(conn, f"{waiting} bytes waiting (limit {limit})")

    # -- status -------------------------------------------------------------------------

    def status(self) -> HubStatus:
        return {
            "active_connections": len(self.connections),
            "max_connections": self.settings.max_websocket_connections,
            "dashboard_subscribers": len(self._dashboard),
            "subscribed_symbols": len(self._by_symbol),
        }

    def describe_connections(self) -> list[ConnectionInfo]:
        return [self._describe(conn) for conn in self.connections.values()]

    def _describe(self, conn: Connection) -> ConnectionInfo:
        subs = self._subscriptions.get(conn) or Subscriptions()
        client = conn.ws.client
        return {
            "id": conn.id,
            "path": conn.path,
            "remote": conn.remote,
            "host": client.host if client else None,
            "port": client.port if client else None,
            "state": conn.state.value,
            "connected_at": conn.connected_at,
            "write_path": conn.write_path.value,
            "instruments": sorted(subs.instruments)[:SAMPLE],
            "instrument_count": len(subs.instruments),
            "ratio_pairs": "all" if subs.ratio_all else sorted(subs.ratio_pairs),
            "dashboard": subs.dashboard,
            "everything": conn in self._everything,
            "pending": conn.pending,
            "pending_bytes": conn.pending_bytes,
            "backlog_bytes": conn.backlog(),
            "sent": conn.sent,
            "received": conn.received,
            "coalesced": conn.coalesced,
        }


DASHBOARD_KEY = "dashboard"
KEEPALIVE_KEY = "keepalive"
BACKLOG_SCAN = 0.25  # seconds between two looks at every client's waiting bytes
SAMPLE = 100  # symbols a status reply lists at most (with the full count beside them)


def _discard(index: dict[K, set[Connection]], key: K, conn: Connection) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(conn)
        if not members:
            del index[key]
