"""Batched, retrying writes of ticks and ratio samples on a single asyncio task."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.errors import Fenced, StorageError
from cotiza.models import Quote, RatioSample, TickPayload
from cotiza.settings import Settings
from cotiza.storage.aggregates import write_aggregates
from cotiza.storage.database import Database, describe_error
from cotiza.storage.tables import ratio_pairs, ratio_samples, ticks
from cotiza.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

Item = Quote | RatioSample
# Inside every write transaction: raise ``Fenced`` unless this node may still write.
Fence = Callable[[AsyncConnection], Awaitable[None]]


# --- helpers ---------------------------------------------------------------------------


class TickRow(TickPayload):
    """A row of the ``ticks`` table: the tick's fields plus the local receive time."""

    recv_ts: float


def tick_row(quote: Quote) -> TickRow:
    return TickRow(**quote.tick_payload(), recv_ts=quote.recv_ts)


def backoff_delay(attempt: int, base: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff for the ``attempt``-th consecutive failure (from 1), with jitter."""
    ceiling = min(maximum, base * 2.0 ** min(attempt - 1, 32))
    return ceiling * rng.uniform(0.5, 1.0)


# --- the writer -------------------------------------------------------------------------


@dataclass(slots=True)
class WriterStats:
    """Counters of the writer; ``pending`` counts items accepted but not yet written."""

    pending: int = 0
    written_ticks: int = 0
    written_samples: int = 0
    dropped_ticks: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    retries: int = 0
    fenced: int = 0  # items discarded because the cluster lease was no longer ours
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


class Writer:
    """Queues ticks and samples and writes them in batches, one transaction per batch.

    Ticks are best effort: when the queue is nearly full they are dropped and counted, so
    that the last tenth of the queue stays free for samples. Samples are never dropped:
    ``submit_sample`` waits for space. A failed batch is kept and retried with backoff.
    """

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._field = settings.ratio_field.value
        self._store_ticks = settings.store_ticks
        self._batch_size = settings.write_batch_size
        self._flush_interval = settings.write_flush_interval
        self._retry_base = settings.write_retry_base
        self._retry_max = settings.write_retry_max
        self._drop_log_interval = settings.write_drop_log_interval
        size = settings.write_queue_size
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=size)
        self._tick_limit = size - max(1, size // 10)
        self._batch: list[Item] = []
        self._stats = WriterStats()
        self._accepted = 0
        self._completed = 0
        self._flush_waiters = 0
        self._stopping = False
        self._crashed = False
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._interrupt = asyncio.Event()
        self._progress = asyncio.Condition()
        self._rng = random.Random()
        self._drops_unreported = 0
        self._last_drop_log = -math.inf
        # Cluster mode: ``fence`` runs first in every write transaction (the lease row,
        # epoch-checked); a refused batch is discarded and ``on_fenced`` told.
        self.fence: Fence | None = None
        self.on_fenced: Callable[[str], None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._crashed

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats, pending=self._queue.qsize() + len(self._batch))

    # --- producers ---

    def submit_tick(self, quote: Quote) -> bool:
        """Queue a tick without waiting; ``False`` when it was dropped."""
        if not self._store_ticks:
            return True
        if self._stopping:
            return False  # shutting down: late ticks are expected and not an overflow
        if self._queue.qsize() >= self._tick_limit:
            self._count_drop()
            return False
        self._queue.put_nowait(quote)
        self._accepted += 1
        self._wakeup.set()
        return True

    async def submit_sample(self, sample: RatioSample) -> None:
        """Queue a sample, waiting for space when the queue is full."""
        if self._stopping:
            raise StorageError("the writer is stopping; sample not accepted")
        await self._queue.put(sample)
        self._accepted += 1
        self._wakeup.set()

    def _count_drop(self) -> None:
        self._stats.dropped_ticks += 1
        self._drops_unreported += 1
        now = time.monotonic()
        if now - self._last_drop_log >= self._drop_log_interval:
            logger.warning(
                "write queue full: %d tick(s) dropped (%d in total, %d pending)",
                self._drops_unreported,
                self._stats.dropped_ticks,
                self._queue.qsize(),
            )
            self._drops_unreported = 0
            self._last_drop_log = now

    # --- lifecycle ---

    async def start(self) -> None:
        """Start the writing task; a no-op when it is running."""
        if self.running:
            return
        self._stopping = False
        self._crashed = False
        self._interrupt.clear()
        self._task = asyncio.create_task(self._run(), name="storage-writer")

    async def stop(self, timeout: float) -> None:
        """Write everything queued within ``timeout`` seconds, then cancel; idempotent."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._interrupt.set()  # retry a failing batch at once instead of after its backoff
        self._wakeup.set()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            await cancel_and_wait(task, timeout=timeout)
        self._task = None
        left = self._queue.qsize() + len(self._batch)
        if left:
            logger.error(
                "writer stopped with %d item(s) not written (last error: %s)",
                left,
                self._stats.last_error,
            )
        else:
            logger.info("writer stopped; everything was written")
        async with self._progress:
            self._progress.notify_all()

    async def flush(self) -> None:
        """Wait until everything submitted before this call has been written."""
        target = self._accepted
        self._flush_waiters += 1
        self._wakeup.set()
        try:
            async with self._progress:
                while self._completed < target:
                    if not self.running:
                        raise StorageError("the writer is not running; cannot flush")
                    await self._progress.wait()
        finally:
            self._flush_waiters -= 1

    async def wait_stats(self, predicate: Callable[[WriterStats], bool]) -> WriterStats:
        """Wait until the stats satisfy ``predicate`` (checked after every write attempt)."""
        async with self._progress:
            while not predicate(stats := self.stats):
                await self._progress.wait()
        return stats

    # --- the task ---

    async def _run(self) -> None:
        try:
            while True:
                if not self._batch:
                    if self._stopping and self._queue.empty():
                        return
                    await self._collect()
                    if not self._batch:
                        continue
                if await self._attempt():
                    continue
                delay = backoff_delay(
                    self._stats.consecutive_failures, self._retry_base, self._retry_max, self._rng
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._interrupt.wait()
                self._interrupt.clear()
                self._stats.retries += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # task boundary: log, report not running, release waiters
            logger.exception("the storage writer crashed")
            self._crashed = True
            async with self._progress:
                self._progress.notify_all()

    async def _collect(self) -> None:
        """Fill the batch: up to the batch size, waiting at most the flush interval."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while len(self._batch) < self._batch_size:
            while len(self._batch) < self._batch_size and not self._queue.empty():
                self._batch.append(self._queue.get_nowait())
            if len(self._batch) >= self._batch_size or self._stopping:
                return
            if self._batch and self._flush_waiters:
                return
            self._wakeup.clear()
            if not self._batch:
                await self._wakeup.wait()
                continue
            if deadline is None:
                deadline = loop.time() + self._flush_interval
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()

    async def _attempt(self) -> bool:
        """Write the current batch once; on failure keep it and record the error."""
        batch = self._batch
        tick_rows = [tick_row(item) for item in batch if isinstance(item, Quote)]
        samples = [item for item in batch if isinstance(item, RatioSample)]
        try:
            written = await self._write(tick_rows, samples)
        except Fenced as exc:
            # Rolled back: a deposed leader's rows must never land, now or on a retry.
            self._batch = []
            self._completed += len(batch)
            self._stats.fenced += len(batch)
            logger.warning("discarding %d item(s): %s", len(batch), exc)
            if self.on_fenced is not None:
                self.on_fenced(str(exc))
            async with self._progress:
                self._progress.notify_all()
            return True
        except Exception as exc:  # task boundary: logged in _record_failure, batch retried
            self._record_failure(exc, len(batch))
            async with self._progress:
                self._progress.notify_all()
            return False
        if self._stats.consecutive_failures:
            logger.info(
                "database writes recovered after %d failure(s)", self._stats.consecutive_failures
            )
        self._batch = []
        self._completed += len(batch)
        self._stats.written_ticks += len(tick_rows)
        self._stats.written_samples += written
        self._stats.consecutive_failures = 0
        self._stats.last_success_at = time.time()
        async with self._progress:
            self._progress.notify_all()
        return True

    def _record_failure(self, exc: Exception, size: int) -> None:
        stats = self._stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = self._describe(exc)
        stats.last_error_at = time.time()
        if stats.consecutive_failures == 1:
            logger.error(
                "database write of %d item(s) failed; keeping them and retrying",
                size,
                exc_info=exc,
            )
        else:
            logger.warning(
                "database write of %d item(s) failed again (%d in a row): %s",
                size,
                stats.consecutive_failures,
                stats.last_error,
            )

    def _describe(self, exc: BaseException) -> str:
        text = describe_error(exc)
        for secret in self._database.secrets:
            text = text.replace(secret, "***")
        return text

    async def _write(self, tick_rows: list[TickRow], samples: list[RatioSample]) -> int:
        async with self._database.engine.begin() as conn:
            if self.fence is not None:
                await self.fence(conn)
            if tick_rows:
                await conn.execute(insert(ticks), tick_rows)
            if not samples:
                return 0
            samples = await self._known_pairs_only(conn, samples)
            if samples:
                await conn.execute(insert(ratio_samples), [s.flat() for s in samples])
                await write_aggregates(conn, samples, self._field)
            return len(samples)

    async def _known_pairs_only(
        self, conn: AsyncConnection, samples: list[RatioSample]
    ) -> list[RatioSample]:
        """Leave out samples of pairs deleted meanwhile, which would fail the batch forever."""
        wanted = {s.pair_id for s in samples}
        result = await conn.execute(select(ratio_pairs.c.id).where(ratio_pairs.c.id.in_(wanted)))
        known = set(result.scalars())
        if known == wanted:
            return samples
        kept = [s for s in samples if s.pair_id in known]
        logger.warning(
            "discarding %d sample(s) of deleted pair(s) %s",
            len(samples) - len(kept),
            sorted(wanted - known),
        )
        return kept
