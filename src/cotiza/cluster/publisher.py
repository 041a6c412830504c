"""The leader's side of the Redis backplane: outbox, one sender task, heartbeat, keyframes.

``put()`` is synchronous and never waits for Redis. When nothing is in flight it writes the
publication to its own Redis connection at once (``RespConnection``: the bytes leave before
the leader's own fan-out to its clients); while a send awaits its reply, publications wait
in the outbox, coalescing per key, and the sender task sends them as one batch when the
reply is in. Each batch is one Lua call. The script refuses an epoch lower than the
highest it has seen (fencing), writes the snapshot hashes and the stream position, and
PUBLISHes each envelope -- all atomically, so a snapshot read never misses or half-sees a
publish. After every reconnection, and when a term begins, the sender republishes a
keyframe (the whole local state), which is how the snapshot is rebuilt after Redis
restarts without persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cotiza.cluster.backplane import Keys
from cotiza.cluster.bus import BusStats
from cotiza.cluster.envelope import STORED_KINDS, Kind, Publication, encode
from cotiza.cluster.outbox import Outbox
from cotiza.cluster.resp import RespConnection, RespError, checked
from cotiza.cluster.tasks import stop_task
from cotiza.feeds.reconnect import backoff_delays

log = logging.getLogger(__name__)

Keyframe = Callable[[], Iterable[Publication]]
OnFenced = Callable[[int], None]
InFlight = tuple["asyncio.Future[Any]", int, int]  # the reply awaited, envelopes, epoch

# KEYS: meta, tick hash, sample hash, dash hash.
# ARGV: epoch, node, channel, then (seq, t, kind, key, envelope) per envelope.
# Sequence numbers and times stay strings: nanoseconds do not fit a Lua number exactly.
PUBLISH_SCRIPT = """
local epoch = tonumber(ARGV[1])
local highest = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch < highest then
  return {0, highest}
end
local stores = {tick = KEYS[2], sample = KEYS[3], dash = KEYS[4]}
local channel = ARGV[3]
local seq, t
for i = 4, #ARGV, 5 do
  seq, t = ARGV[i], ARGV[i + 1]
  local store = stores[ARGV[i + 2]]
  if store then
    redis.call('HSET', store, ARGV[i + 3], ARGV[i + 4])
  end
  redis.call('PUBLISH', channel, ARGV[i + 4])
end
if seq then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', seq, 't', t, 'node', ARGV[2])
end
return {1, epoch}
"""


class Publisher:
    """Sends what the leader publishes; idle (and empty) while this node is not leading."""

    def __init__(
        self,
        url: str,
        keys: Keys,
        node_id: str,
        stats: BusStats,
        *,
        outbox_size: int,
        batch_size: int,
        heartbeat: float,
        timeout: float,
        retry_base: float,
        retry_max: float,
        keyframe: Keyframe | None = None,
        on_fenced: OnFenced | None = None,
    ) -> None:
        self._url = url
        self._keys = keys
        stores = (Kind.TICK, Kind.SAMPLE, Kind.DASH)  # the order the script expects
        self._script_keys = [keys.meta, *(keys.snapshot(kind) for kind in stores)]
        self._conn: RespConnection | None = None
        self._sha = ""
        self._in_flight: InFlight | None = None
        self.node_id = node_id
        self.stats = stats
        self.outbox = Outbox(outbox_size)
        self.batch_size = batch_size
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._keyframe = keyframe
        self._on_fenced = on_fenced
        self._latest: dict[tuple[Kind, str], Publication] = {}
        self.epoch: int | None = None
        self.seq = 0
        self.connected = False
        self._needs_keyframe = False
        self._last_heartbeat = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- leader side, synchronous ------------------------------------------------------

    def lead(self, epoch: int) -> None:
        self.epoch = epoch
        self.seq = 0
        self._latest.clear()
        self._last_heartbeat = 0.0  # announce the new term at once
        # Republish the state this node holds: Redis may have restarted (and lost the
        # snapshot) before the previous leader could rebuild it.
        self._needs_keyframe = True
        self._wake.set()

    @property
    def _can_send_now(self) -> bool:
        """Connected, no reply awaited, no keyframe owed: a batch may be written now."""
        return self.connected and self._in_flight is None and not self._needs_keyframe

    @property
    def idle(self) -> bool:
        """Nothing waiting for a reply, nothing queued: the next ``put`` leaves at once."""
        return self._can_send_now and not self.outbox

    def follow(self) -> None:
        self.epoch = None
        self.outbox.clear()
        self._latest.clear()

    def put(self, item: Publication) -> None:
        """Queue one publication for the other nodes; never blocks, never raises."""
        if self.epoch is None:
            return
        stamped = item._replace(at_ns=time.time_ns())
        self._enqueue(stamped)
        if item.kind in STORED_KINDS:
            self._latest[(item.kind, item.key)] = stamped
        if self._can_send_now:
            self._dispatch(heartbeat=False)  # nothing ahead of it: it leaves now
        self._wake.set()

    def _enqueue(self, item: Publication) -> None:
        outbox = self.outbox
        outbox.put(item)
        self.stats.outbox_coalesced = outbox.stats.coalesced
        self.stats.outbox_dropped = outbox.stats.dropped

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="bus-publisher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await stop_task(task)
        self._in_flight = None
        self._disconnect()

    # -- the sender task --------------------------------------------------------------

    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        while not self._stopping:
            if self._in_flight is not None:
                await self._settle(self._in_flight)
                continue
            if not self.connected:
                if await self._connect():
                    delays = None
                else:
                    delays = delays or backoff_delays(self.retry_base, self.retry_max)
                    await asyncio.sleep(next(delays))
                    continue
            if self.epoch is None:
                await self._wait(None)
                continue
            if self._needs_keyframe:
                self._needs_keyframe = False
                self._send_keyframe()
            due = self._last_heartbeat + self.heartbeat
            now = time.monotonic()
            if not self.outbox and now < due:
                await self._wait(due - now)
                continue
            self._dispatch(heartbeat=now >= due)

    async def _wait(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _connect(self) -> bool:
        try:
            conn = await RespConnection.open(self._url, self.timeout)
        except (RespError, OSError) as exc:
            log.debug("backplane not answering: %s", exc)
            return False
        try:
            async with asyncio.timeout(self.timeout):
                self._sha = (await conn.call("SCRIPT", "LOAD", PUBLISH_SCRIPT)).decode()
        except (TimeoutError, RespError) as exc:
            conn.close()
            log.debug("backplane refused the publish script: %s", exc or "timeout")
            return False
        self._conn = conn
        self.connected = True
        log.info("backplane publisher connected")
        return True

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.connected = False

    def _send_keyframe(self) -> None:
        items = list(self._keyframe() if self._keyframe is not None else self._latest.values())
        for item in items:
            self._enqueue(item._replace(at_ns=time.time_ns()))
        self.stats.keyframes += 1
        log.info("backplane keyframe: %d publication(s)", len(items))

    def _dispatch(self, *, heartbeat: bool) -> None:
        """Write the next batch (and a heartbeat when due) now; the sender awaits the reply."""
        epoch, conn = self.epoch, self._conn
        if epoch is None or conn is None:
            return
        batch = self.outbox.take(self.batch_size)
        if heartbeat:
            batch.append(Publication(Kind.HEARTBEAT, "", ""))
            self._last_heartbeat = time.monotonic()
            self.stats.heartbeats += 1
        if not batch:
            return
        args: list[str | int | bytes] = [epoch, self.node_id, self._keys.channel]
        for item in batch:
            self.seq += 1
            stamp = item.at_ns or time.time_ns()
            args += [
                self.seq,
                stamp,
                str(item.kind),
                item.key,
                encode(epoch, self.seq, stamp, item),
            ]
        try:
            reply = conn.send(
                "EVALSHA", self._sha, len(self._script_keys), *self._script_keys, *args
            )
        except RespError as exc:
            reply = asyncio.get_running_loop().create_future()
            reply.set_exception(exc)
        self._in_flight = (reply, len(batch), epoch)

    async def _settle(self, in_flight: InFlight) -> None:
        """Wait for the reply to the batch in flight and account for it."""
        reply, count, epoch = in_flight
        try:
            async with asyncio.timeout(self.timeout):
                result = checked(await reply)
        except (TimeoutError, RespError, OSError) as exc:
            # The batch is lost (or not: the edges will tell by (e, s)); a keyframe after
            # reconnecting restores the whole state either way.
            self._in_flight = None
            self._disconnect()
            self._needs_keyframe = True
            self.stats.send_failures += 1
            log.warning("backplane publish of %d envelope(s) failed: %s", count, exc or "timeout")
            return
        self._in_flight = None
        accepted, highest = int(result[0]), int(result[1])
        if not accepted:
            self.stats.fenced_publishes += count
            log.error(
                "backplane refused epoch %d: epoch %d has published; stopping", epoch, highest
            )
            self.follow()
            if self._on_fenced is not None:
                self._on_fenced(highest)
            return
        self.stats.published += count
        self.stats.send_batches += 1
