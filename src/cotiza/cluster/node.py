"""ClusterNode: one cotiza process of a cluster, leading or following.

Every node serves its own WebSocket clients from its own quote cache. The lease holder
(role ``auto`` or ``feeder``) also runs the upstream feed, the ratio sampler and the
history writer (fenced by the lease row's epoch in every write transaction), the
dashboard query, the alert engine and the Telegram poller, and publishes ticks, samples
and dashboard frames through the bus's outbox. Every other node (and every ``edge``)
applies the bus into its cache through ``BackplaneSink``. Losing the lease stops the
leader's parts (upstream closed first) and leaves the clients connected; winning it
starts them. Feed control sent to any node goes through the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cotiza.cluster.bus import BusState
from cotiza.cluster.control import ControlListener, ControlStore, FeedAction, FeedCommand
from cotiza.cluster.envelope import Publication
from cotiza.cluster.health import ClusterHealth
from cotiza.cluster.keeper import KeeperState, LeaseKeeper
from cotiza.cluster.pglease import PgLease
from cotiza.cluster.redis_bus import RedisBus
from cotiza.cluster.registry import NodeInfo, NodeRegistry
from cotiza.cluster.sink import (
    BackplaneSink,
    alert_publication,
    dashboard_publication,
    sample_publication,
    tick_publication,
)
from cotiza.errors import ClusterError, StorageError
from cotiza.models import Quote, RatioSample
from cotiza.settings import Role, Settings
from cotiza.ws.frames import Wire

if TYPE_CHECKING:
    from cotiza.alerts.engine import AlertEngine
    from cotiza.cache import QuoteCache
    from cotiza.dashboard_worker import DashboardWorker
    from cotiza.feed_runner import FeedRunner
    from cotiza.ratio_engine import RatioEngine
    from cotiza.storage.writer import Writer
    from cotiza.telegram.bot import TelegramBot
    from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)

LeaderPart = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


class ClusterNode:
    """Wires the lease, the bus, the registry and the control plane to the components."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: QuoteCache,
        hub: Hub,
        ratios: RatioEngine,
        writer: Writer,
        dashboard: DashboardWorker,
        feed: FeedRunner,
    ) -> None:
        assert settings.backplane is not None and settings.node_id is not None
        self.settings = settings
        self.node_id = settings.node_id
        self.role = settings.role
        self.cache = cache
        self.hub = hub
        self.ratios = ratios
        self.writer = writer
        self.dashboard = dashboard
        self.feed = feed
        self.alerts: AlertEngine | None = None
        self.bot: TelegramBot | None = None
        self.started_at = time.time()
        self.leader_changes = 0  # terms this node began or ended
        self.applied_feed_version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        # A small engine of its own: renewals never queue behind history writes.
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url, pool_size=2, max_overflow=2, pool_pre_ping=True
        )
        self.lease = PgLease(self.engine, self.node_id, settings.node_url, settings.lease_ttl)
        self.keeper = LeaseKeeper(
            self.lease,
            retry=settings.lease_retry,
            renew_deadline=settings.lease_renew_deadline,
            on_elected=self._elected,
            on_deposed=self._deposed,
            emergency_fence=self._emergency_fence,
            grace=settings.primary_session_grace,
            hold_off=max(settings.lease_ttl, 3 * settings.lease_retry),
            campaign=settings.role is not Role.EDGE,
        )
        self.sink = BackplaneSink(cache, ratios, dashboard.relay_frame, hub.publish_alert_wire)
        self.bus = RedisBus(
            settings,
            self.sink,
            keyframe=self._keyframe,
            on_fenced=lambda epoch: self.keeper.report_fenced(f"epoch {epoch} published"),
        )
        self.registry = NodeRegistry(
            self.bus.client,
            self.bus.keys,
            self.describe,
            interval=settings.node_report_interval,
            ttl=settings.node_ttl,
            timeout=settings.bus_timeout,
        )
        self.control = ControlStore(self.engine, self.node_id)
        self.listener = ControlListener(
            self.control,
            settings.database_url,
            poll_interval=settings.control_poll_interval,
            timeout=settings.bus_timeout,
            on_feed=self._on_feed_command,
            on_pairs=self._on_pairs_changed,
            on_released=lambda _node: self.keeper.nudge(),
        )
        writer.fence = self.lease.fence
        writer.on_fenced = self.keeper.report_fenced
        ratios.sampling = False
        ratios.add_sample_listener(self.publish_sample)
        dashboard.relay = True
        dashboard.on_frame = self.publish_dashboard
        hub.on_alert = self.publish_alert
        self._alerts_published = 0

    # -- observation --------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.keeper.is_leader

    @property
    def epoch(self) -> int | None:
        status = self.keeper.status()
        epoch = status["epoch"]
        return epoch if isinstance(epoch, int) else None

    @property
    def leader_node(self) -> str | None:
        return self.keeper.leader_node

    def following(self) -> bool:
        """True while this node does not lead: its feed is the bus, not upstream."""
        return not self.is_leader

    def status(self) -> ClusterHealth:
        """The ``cluster`` object of ``/health/detailed``."""
        return {
            "role": str(self.role),
            "node_id": self.node_id,
            "leader": self.is_leader,
            "leader_node": self.leader_node,
            "epoch": self.epoch,
            "backplane": {
                "connected": self.bus.state is BusState.CONNECTED,
                "lag_ms": self.bus.lag_ms,
            },
        }

    def describe(self) -> NodeInfo:
        """This node's registry entry."""
        return NodeInfo(
            node_id=self.node_id,
            role=str(self.role),
            url=self.settings.node_url or "",
            leader=self.is_leader,
            epoch=self.epoch,
            clients=len(self.hub.connections),
            bus_state=str(self.bus.state),
            bus_lag_ms=self.bus.lag_ms,
            pid=os.getpid(),
            started_at=self.started_at,
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: subscribe, register, listen for control, then campaign."""
        self._loop = asyncio.get_running_loop()
        await self.dashboard.follow()
        await self.bus.start()
        await self.registry.start()
        await self.listener.start()
        await self.keeper.start()
        log.info("cluster node %s started (role %s)", self.node_id, self.role)

    async def stop(self) -> None:
        """Leave: a leader closes upstream and frees the lease first; clients stay to the end."""
        leading = self.keeper.epoch is not None
        await self.keeper.stop()
        if leading:
            await self._announce_release()
        await self.listener.stop()
        await self.registry.stop()
        await self.bus.stop()
        await self.engine.dispose()

    async def handover(self) -> bool:
        """Planned handover: close upstream, then free the lease; False when not leading.

        The others hear of the free lease at once (a control notification) rather than at
        their next ``LEASE_RETRY``, which is most of a handover's gap otherwise.
        """
        released = await self.keeper.release()
        if released:
            await self._announce_release()
        return released

    async def _announce_release(self) -> None:
        try:
            await self.control.announce_release()
        except ClusterError as exc:
            log.warning("%s; the others campaign at their next retry", exc)

    # -- the leader's publications (synchronous, never awaiting Redis) -------------------

    def publish_tick(self, quote: Quote) -> None:
        """A quote-cache listener: only the leader's own ticks go out."""
        if self.bus.leading:
            item = tick_publication(quote)
            self.bus.publish(item.kind, item.key, item.frame, item.asof)

    def store_tick(self, quote: Quote) -> None:
        """A quote-cache listener: only the leader stores ticks (the writer is fenced too)."""
        if self.bus.leading:
            self.writer.submit_tick(quote)

    def publish_sample(self, sample: RatioSample) -> None:
        item = sample_publication(sample)
        self.bus.publish(item.kind, item.key, item.frame, item.asof)

    def publish_dashboard(self, wire: Wire) -> None:
        item = dashboard_publication(wire)
        self.bus.publish(item.kind, item.key, item.frame, item.asof)

    def publish_alert(self, wire: Wire) -> None:
        self._alerts_published += 1
        item = alert_publication(wire, self._alerts_published)
        self.bus.publish(item.kind, item.key, item.frame, item.asof)

    def _keyframe(self) -> list[Publication]:
        """Everything this node knows, republished when its term begins or Redis returns."""
        items = [tick_publication(quote) for quote in self.cache.all()]
        items += [sample_publication(s) for s in self.ratios.last_samples.values()]
        if self.dashboard.cached is not None:
            items.append(dashboard_publication(self.dashboard.cached))
        return items

    # -- terms --------------------------------------------------------------------------

    async def _elected(self, epoch: int) -> None:
        self.leader_changes += 1
        log.info("leading the cluster (epoch %d): starting upstream and leader tasks", epoch)
        self.bus.lead(epoch)
        self.ratios.resume_sampling()
        await self.dashboard.lead()
        try:
            await self._apply_desired_feed()
        except Exception:
            # The term stays ours (clients still get what the bus had); the operator can
            # start the feed again through the control endpoints.
            log.exception("could not start the feed as the control plane wants it")
        for start, _stop in self._leader_parts():
            try:
                await start()
            except Exception:
                log.exception("a leader task failed to start")

    async def _deposed(self, reason: str) -> None:
        self.leader_changes += 1
        log.warning("no longer leading (%s): closing upstream, following the bus", reason)
        self.bus.follow()
        self.ratios.sampling = False
        await self.feed.close()
        await self._flush_history(reason)
        await self.dashboard.follow()
        for _start, stop in reversed(self._leader_parts()):
            try:
                await stop()
            except Exception:
                log.exception("a leader task failed to stop")

    async def _flush_history(self, reason: str) -> None:
        """Store what this term took before the lease goes (still fenced: a lost term
        writes nothing). Bounded, so a slow database cannot hold the handover."""
        if self.lease.epoch is None:
            return
        try:
            async with asyncio.timeout(self.settings.lease_renew_deadline / 2):
                await self.writer.flush()
        except (TimeoutError, StorageError) as exc:
            log.warning("history not flushed before leaving (%s): %s", reason, exc or "timeout")

    def _leader_parts(self) -> list[LeaderPart]:
        parts: list[LeaderPart] = []
        if self.alerts is not None:
            parts.append((self.alerts.start, self.alerts.stop))
        if self.bot is not None:
            parts.append((self.bot.start, self.bot.stop))
        return parts

    def _emergency_fence(self) -> None:
        """On the watchdog thread, the loop possibly blocked: shut the upstream socket."""
        feed = self.feed.feed
        if feed is not None and feed.shut_upstream():
            log.error("upstream socket shut by the fence watchdog")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.keeper.report_fenced, "renew deadline passed")

    # -- control plane ------------------------------------------------------------------

    async def submit_feed(self, action: FeedAction, instruments: Sequence[str]) -> FeedCommand:
        """Record a feed command for the cluster; the leader applies it at once."""
        command = await self.control.submit_feed(action, instruments)
        if self.is_leader:
            await self._apply_feed(command)
        else:
            self.listener.check_now()
        return command

    async def pairs_changed(self) -> None:
        """Tell every other node to reload the pairs and alert rules (this one already did)."""
        version = await self.control.pairs_changed()
        self.listener.pairs_version = max(self.listener.pairs_version, version)

    async def _apply_desired_feed(self) -> None:
        command = await self.control.feed()
        if command is None:
            if self.settings.feed_autostart:
                await self.feed.start()
            return
        await self._apply_feed(command, force=True)

    async def _apply_feed(self, command: FeedCommand, *, force: bool = False) -> None:
        if not force and command.version <= self.applied_feed_version:
            return
        self.applied_feed_version = max(self.applied_feed_version, command.version)
        log.info("applying feed command %s (version %d)", command.action, command.version)
        if command.action is FeedAction.STOP:
            await self.feed.stop()
        elif command.action is FeedAction.RESTART and not force:
            await self.feed.restart(command.instruments)
        else:
            await self.feed.start(command.instruments)

    async def _on_feed_command(self, command: FeedCommand) -> None:
        if self.keeper.state is KeeperState.LEADER:
            await self._apply_feed(command)

    async def _on_pairs_changed(self, _version: int) -> None:
        await self.ratios.reload_pairs()
        if self.alerts is not None:
            await self.alerts.reload()
