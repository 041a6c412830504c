"""Every node's side of the Redis backplane: one subscription, applied in order, never trusted.

The loop owns its reconnection (redis-py would resubscribe silently and lose what was
published meanwhile): subscribe first, *then* read the snapshot, then apply the stream by
``(epoch, seq)`` -- duplicates from the overlap dropped, a lower epoch dropped, a gap or a
new epoch answered with a counted resync. Silence is checked on the command connection
every ``probe_after`` (two missed heartbeats): Redis up with the leader's position past
ours, and nothing waiting on the subscription, means this subscription is ``wedged`` and is
replaced; Redis not answering for ``stale_after`` means ``reconnecting`` (backoff with
jitter); a quiet leader (none elected, or it is down) is not this node's fault.
Clients are never disconnected for any of this: the sink gets a resync and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from cotiza.cluster.backplane import Keys, read_meta, read_snapshot, subscription_connection
from cotiza.cluster.bus import BusSink, BusState, BusStats
from cotiza.cluster.envelope import EnvelopeError, Kind, Sequencer, Verdict, decode
from cotiza.cluster.tasks import stop_task
from cotiza.errors import ClusterError
from cotiza.feeds.reconnect import backoff_delays

log = logging.getLogger(__name__)

LagObserver = Callable[[float], None]
OnSuperseded = Callable[[int], None]


class Wedged(ClusterError):
    """Redis answers, but this node's subscription does not deliver."""


class Subscriber:
    """Reads ``{prefix}:bus`` into a ``BusSink``; states ``connected|reconnecting|wedged``."""

    def __init__(
        self,
        url: str,
        client: aioredis.Redis,
        keys: Keys,
        sink: BusSink,
        stats: BusStats,
        *,
        stale_after: float,
        probe_after: float | None = None,
        timeout: float,
        retry_base: float,
        retry_max: float,
        on_superseded: OnSuperseded | None = None,
        lag_observer: LagObserver | None = None,
    ) -> None:
        self._url = url
        self._client = client
        self._keys = keys
        self._sink = sink
        self.stats = stats
        self.stale_after = stale_after
        self.probe_after = min(stale_after, probe_after or stale_after)
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._on_superseded = on_superseded
        self._lag_observer = lag_observer
        self.sequencer = Sequencer()
        self.own_epoch: int | None = None  # leading: our own stream is not applied again
        self.state = BusState.STOPPED
        self.synced_at: float | None = None  # monotonic time of the last snapshot applied
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle and observation ------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._set_state(BusState.RECONNECTING)
            self._task = asyncio.create_task(self._run(), name="bus-subscriber")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await stop_task(task)
        self._set_state(BusState.STOPPED)

    def _set_state(self, state: BusState) -> None:
        if state is not self.state:
            log.info("backplane subscription %s -> %s", self.state, state)
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[Subscriber], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every state change and resync."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                changed = self._changed
                await changed.wait()

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        first = True
        while not self._stopping:
            conn: Connection | None = None
            try:
                conn = await self._subscribe()
                await self._resync(initial=first)
                first = False
                delays = None
                self._set_state(BusState.CONNECTED)
                await self._pump(conn)
            except Wedged as exc:
                if self.state is not BusState.WEDGED:
                    self.stats.wedges += 1
                log.warning("backplane subscription wedged: %s", exc)
                self._set_state(BusState.WEDGED)
            except (RedisError, OSError, ClusterError) as exc:
                log.warning("backplane subscription lost: %s", exc or type(exc).__name__)
                if self.state is not BusState.WEDGED or not await self._redis_answers():
                    self._set_state(BusState.RECONNECTING)
            finally:
                if conn is not None:
                    await conn.disconnect(nowait=True)
            self.sequencer.unsync()
            self.stats.reconnects += 1
            if self.state is BusState.WEDGED and delays is None:
                delays = backoff_delays(self.retry_base, self.retry_max)
                continue  # Redis answers: replace the subscription at once
            delays = delays or backoff_delays(self.retry_base, self.retry_max)
            await asyncio.sleep(next(delays))

    async def _subscribe(self) -> Connection:
        conn = subscription_connection(self._url, self.timeout)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            await conn.send_command("SUBSCRIBE", self._keys.channel)
            reply = await conn.read_response(timeout=self.timeout)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if reply is None:
            await conn.disconnect(nowait=True)
            if await self._redis_answers():
                raise Wedged("no SUBSCRIBE confirmation while Redis answers")
            raise ClusterError("no SUBSCRIBE confirmation")
        if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
            await conn.disconnect(nowait=True)
            raise ClusterError(f"unexpected reply to SUBSCRIBE: {reply!r:.80}")
        return conn

    async def _redis_answers(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.ping()
        except (RedisError, OSError):
            return False
        return True

    async def _resync(self, *, initial: bool = False) -> None:
        snapshot = await read_snapshot(self._client, self._keys, self.timeout)
        snapshot, stale = snapshot.since_epoch(self.sequencer.epoch)
        self.stats.stale_dropped += stale
        self.sequencer.baseline(snapshot.meta)
        if not initial:
            self.stats.resyncs += 1
        self.stats.invalid += snapshot.invalid
        self.synced_at = time.monotonic()
        if self.own_epoch is None:
            self._sink.resync(snapshot)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _pump(self, conn: Connection) -> None:
        last_rx = time.monotonic()
        next_check = last_rx + self.probe_after
        while not self._stopping:
            now = time.monotonic()
            if now >= next_check:
                await self._check_silence(conn, now - last_rx)
                now = time.monotonic()
                next_check = now + self.probe_after
                if now - last_rx < self.stale_after:  # Redis answering slowly: retry in time
                    next_check = min(next_check, last_rx + self.stale_after)
                continue
            reply = await conn.read_response(timeout=next_check - now)
            if reply is None:
                continue
            last_rx = time.monotonic()
            next_check = last_rx + self.probe_after
            await self._handle(reply)

    async def _check_silence(self, conn: Connection, silent: float) -> None:
        """Nothing arrived for ``silent`` seconds: is it the leader, Redis, or us?"""
        try:
            meta = await read_meta(self._client, self._keys, self.timeout)
        except (RedisError, OSError) as exc:
            if silent + self.timeout < self.stale_after:
                return  # not yet: Redis may only be slow, and the subscription may be fine
            raise ClusterError(f"silent for {silent:.1f} s and Redis does not answer") from exc
        if not self.sequencer.behind(meta):
            return  # the leader is quiet (none elected, or it is down): not this node's fault
        if await conn.can_read():
            return  # our own loop was late, not the subscription: the pump reads it next
        assert meta is not None
        applied = (self.sequencer.epoch, self.sequencer.seq)
        raise Wedged(
            f"silent for {silent:.1f} s while the leader published up to "
            f"({meta.epoch}, {meta.seq}); applied {applied}"
        )

    async def _handle(self, reply: Any) -> None:
        if not (isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message"):
            return  # subscription confirmations and the like
        received = time.time_ns()
        try:
            message = decode(reply[2], received)
        except EnvelopeError as exc:
            self.stats.invalid += 1
            log.warning("dropping a malformed envelope: %s", exc)
            return
        self.stats.received += 1
        own = self.own_epoch
        if own is not None and message.epoch > own and self._on_superseded is not None:
            self._on_superseded(message.epoch)
        verdict = self.sequencer.classify(message.epoch, message.seq)
        if verdict is Verdict.APPLY:
            self.sequencer.applied(message.seq)
            lag = message.lag_ms
            if lag is not None:
                self.stats.observe_lag(lag)
                if self._lag_observer is not None:
                    self._lag_observer(lag)
            if own is None and message.kind is not Kind.HEARTBEAT:
                self.stats.applied += 1
                self._sink.apply(message)
        elif verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
        elif verdict is Verdict.STALE:
            self.stats.stale_dropped += 1
        else:
            if verdict is Verdict.GAP:
                self.stats.gaps += 1
                log.info(
                    "backplane gap: got (%d, %d) after %d; resyncing",
                    message.epoch,
                    message.seq,
                    self.sequencer.seq,
                )
            await self._resync()
