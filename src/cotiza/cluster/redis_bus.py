"""RedisBus: the cluster's bus, a publisher and a subscriber on one Redis backplane.

Every node runs both halves. While leading (``lead(epoch)``) it publishes through the
outbox and ignores its own stream coming back (but notices a higher epoch: someone else
leads, so this node is fenced); otherwise it applies the leader's stream into its sink.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from cotiza.cluster.backplane import Keys, create_client, describe, read_snapshot
from cotiza.cluster.bus import Bus, BusSink, BusState, LocalSink
from cotiza.cluster.envelope import BusMessage, Publication, Snapshot
from cotiza.cluster.publisher import Keyframe, Publisher
from cotiza.cluster.subscriber import LagObserver, Subscriber
from cotiza.errors import ConfigurationError
from cotiza.settings import Settings

log = logging.getLogger(__name__)

OnFenced = Callable[[int], None]


class RedisBus(Bus):
    """The backplane of ``settings.backplane`` under ``settings.backplane_prefix``.

    ``on_fenced(epoch)`` is called (on the loop) when Redis refuses a publish because a
    higher epoch has published, or when this node's subscription sees a higher epoch while
    it leads: phase B deposes the node (``LeaseKeeper.report_fenced``). The bus has already
    stopped publishing by then.
    """

    def __init__(
        self,
        settings: Settings,
        sink: BusSink,
        *,
        local_sink: LocalSink | None = None,
        keyframe: Keyframe | None = None,
        on_fenced: OnFenced | None = None,
        lag_observer: LagObserver | None = None,
    ) -> None:
        if settings.backplane is None:
            raise ConfigurationError("invalid configuration: BACKPLANE: not set")
        super().__init__(local_sink)
        self.url = settings.backplane
        self.node_id = settings.node_id or "node"
        self.keys = Keys(settings.backplane_prefix)
        self.timeout = settings.bus_timeout
        self._on_fenced = on_fenced
        self.client: aioredis.Redis = create_client(self.url, settings.bus_timeout)
        self.publisher = Publisher(
            self.url,
            self.keys,
            self.node_id,
            self.stats,
            outbox_size=settings.bus_outbox_size,
            batch_size=settings.bus_batch_size,
            heartbeat=settings.bus_heartbeat,
            timeout=settings.bus_timeout,
            retry_base=settings.bus_retry_base,
            retry_max=settings.bus_retry_max,
            keyframe=keyframe,
            on_fenced=self._fenced,
        )
        self.subscriber = Subscriber(
            self.url,
            self.client,
            self.keys,
            sink,
            self.stats,
            stale_after=settings.bus_stale_after,
            probe_after=2 * settings.bus_heartbeat,  # two heartbeats missed
            timeout=settings.bus_timeout,
            retry_base=settings.bus_retry_base,
            retry_max=settings.bus_retry_max,
            on_superseded=self._superseded,
            lag_observer=lag_observer,
        )
        self._started = False

    @property
    def state(self) -> BusState:
        return self.subscriber.state if self._started else BusState.STOPPED

    @property
    def publisher_connected(self) -> bool:
        return self.publisher.connected

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        log.info(
            "backplane %s, prefix %r, node %s", describe(self.url), self.keys.prefix, self.node_id
        )
        await self.subscriber.start()
        await self.publisher.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.follow()
        await self.publisher.stop()
        await self.subscriber.stop()
        await self.client.aclose()

    def lead(self, epoch: int) -> None:
        super().lead(epoch)
        self.subscriber.own_epoch = epoch
        self.publisher.lead(epoch)

    def follow(self) -> None:
        super().follow()
        self.subscriber.own_epoch = None
        self.publisher.follow()

    def _send(self, message: BusMessage) -> None:
        self.publisher.put(Publication(message.kind, message.key, message.frame, message.asof))

    async def snapshot(self) -> Snapshot:
        return await read_snapshot(self.client, self.keys, self.timeout)

    def _fenced(self, highest: int) -> None:
        log.error("backplane: epoch %s is superseded by %d", self.epoch, highest)
        self.follow()
        if self._on_fenced is not None:
            self._on_fenced(highest)

    def _superseded(self, epoch: int) -> None:
        if self.epoch is not None and epoch > self.epoch:
            self._fenced(epoch)
