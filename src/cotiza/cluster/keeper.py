"""LeaseKeeper: campaigns for the lease, renews it, and self-fences when it cannot.

One task does everything in order: campaign every ``retry`` while standby; once won,
wait ``grace`` (PRIMARY_SESSION_GRACE) and call ``on_elected(epoch)``; renew every
``retry`` against a **monotonic** deadline (``renew_deadline`` after the last successful
renewal was sent). When the deadline passes, the store says the term is gone, or a
resource reports ``Fenced``, it calls ``on_deposed(reason)`` and then frees the row.
A ``FenceWatchdog`` thread is armed on the same deadline so that a blocked event loop
still gets ``emergency_fence()`` (which shuts the upstream socket) in time.

``release()`` is the planned handover: break before make, so ``on_deposed`` (which closes
the upstream session) completes before the row is freed, and this node then stays out of
the campaign for ``hold_off`` seconds so that another node takes over -- unless the row is
still free two retries after it was freed: every live standby has campaigned by then (on
the release notice, or at its own retry), so nobody else is there and this node leads again.

Callbacks run on the keeper's task, one at a time. ``on_elected`` must only start things
(it delays renewals while it runs); ``on_deposed`` may wait for them to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from cotiza.cluster.lease import Lease, LeaseInfo
from cotiza.cluster.tasks import stop_task
from cotiza.cluster.watchdog import EmergencyFence, FenceWatchdog
from cotiza.errors import ClusterError

log = logging.getLogger(__name__)

T = TypeVar("T")
OnElected = Callable[[int], Awaitable[None]]
OnDeposed = Callable[[str], Awaitable[None]]


class KeeperState(StrEnum):
    STOPPED = "stopped"
    STANDBY = "standby"  # not holding the lease (campaigning, or an edge observing)
    ELECTED = "elected"  # holding the lease, within PRIMARY_SESSION_GRACE: upstream closed
    LEADER = "leader"  # holding the lease, on_elected done: upstream may be open


@dataclass(slots=True)
class KeeperStats:
    elections: int = 0
    depositions: int = 0
    renewals: int = 0
    renew_failures: int = 0
    campaign_failures: int = 0
    last_renew_seconds: float | None = None  # how long the last successful renewal took
    last_deposed_reason: str | None = None


class LeaseKeeper:
    """Holds (or watches) one lease for this node; idempotent ``start``/``stop``."""

    def __init__(
        self,
        lease: Lease,
        *,
        retry: float,
        renew_deadline: float,
        on_elected: OnElected,
        on_deposed: OnDeposed,
        emergency_fence: EmergencyFence | None = None,
        grace: float = 0.0,
        hold_off: float = 0.0,
        campaign: bool = True,
    ) -> None:
        self.lease = lease
        self.retry = retry
        self.renew_deadline = renew_deadline
        self.grace = grace
        self.hold_off = hold_off
        self.campaigns = campaign
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._emergency = emergency_fence
        self.watchdog = FenceWatchdog(self._fire_emergency, name=f"lease-watchdog-{lease.name}")
        self.state = KeeperState.STOPPED
        self.stats = KeeperStats()
        self.leader: LeaseInfo | None = None  # the last reading of the row
        self._deadline = 0.0  # monotonic; valid while holding
        self._grace_until = 0.0
        self._hold_until = 0.0
        self._released_at: float | None = None  # monotonic; when we last freed the row
        self._fenced_reason: str | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- observation ------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        """The epoch of our term, while we hold the lease."""
        return self.lease.epoch if self.state in (KeeperState.ELECTED, KeeperState.LEADER) else None

    @property
    def is_leader(self) -> bool:
        return self.state is KeeperState.LEADER

    @property
    def leader_node(self) -> str | None:
        if self.epoch is not None:
            return self.lease.node_id
        info = self.leader
        return info.holder if info is not None and info.held else None

    def status(self) -> dict[str, object]:
        """For ``/health/detailed`` and metrics."""
        info = self.leader
        return {
            "state": str(self.state),
            "leader": self.is_leader,
            "epoch": self.epoch if self.epoch is not None else (info.epoch if info else None),
            "leader_node": self.leader_node,
            "elections": self.stats.elections,
            "depositions": self.stats.depositions,
            "renew_failures": self.stats.renew_failures,
            "last_renew_s": self.stats.last_renew_seconds,
            "last_deposed_reason": self.stats.last_deposed_reason,
            "emergency_fences": self.watchdog.fired,
        }

    async def wait_for(self, predicate: Callable[[LeaseKeeper], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every change of state."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                changed = self._changed
                await changed.wait()

    def _set_state(self, state: KeeperState) -> None:
        self.state = state
        self._notify()

    def _observed(self, info: LeaseInfo | None) -> None:
        self.leader = info
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self.watchdog.start()
        self._set_state(KeeperState.STANDBY)
        self._task = asyncio.create_task(self._run(), name=f"lease-keeper-{self.lease.name}")

    async def stop(self) -> None:
        """Stop campaigning; a leader deposes itself (upstream closed) and frees the row."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        async with self._lock:
            await stop_task(task)
            if self.epoch is not None:
                await self._depose("stopping", release=True)
        for abandoned in list(self._abandoned):
            abandoned.cancel()
        if self._abandoned:
            await asyncio.wait(list(self._abandoned), timeout=self.retry)
        self.watchdog.stop()
        self._set_state(KeeperState.STOPPED)

    async def release(self) -> bool:
        """Planned handover: close upstream (``on_deposed``), then free the row; True if held."""
        async with self._lock:
            if self.epoch is None:
                return False
            await self._depose("handover", release=True)
            return True

    def report_fenced(self, reason: str) -> None:
        """A resource refused our epoch (history write, backplane): depose as soon as possible."""
        self._fenced_reason = reason
        self._wake.set()

    def nudge(self) -> None:
        """Campaign (or renew) now instead of at the next retry, e.g. after a handover notice."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with self._lock:
                    await self._step()
            except Exception:
                # The task's boundary: a callback or the store failed unexpectedly. A leader
                # must not keep acting on a term it cannot vouch for: depose, then go on.
                log.exception("lease keeper step failed")
                async with self._lock:
                    if self.epoch is not None:
                        await self._depose("keeper error", release=True)
            await self._sleep()

    async def _step(self) -> None:
        if self.epoch is not None:
            if self._fenced_reason is not None:
                await self._depose(f"fenced: {self._fenced_reason}", release=True)
                return
            await self._renew()
            if self.state is KeeperState.ELECTED and time.monotonic() >= self._grace_until:
                await self._open()
            return
        self._fenced_reason = None  # a report about a term we no longer hold
        if not self.campaigns:
            await self._observe()
        elif time.monotonic() >= self._hold_until:
            await self._campaign()
        else:
            await self._observe()
            if self._nobody_took_over():
                log.info("nobody took the lease we freed; campaigning again")
                self._hold_until = 0.0
                self._wake.set()

    def _nobody_took_over(self) -> bool:
        """The row we freed is still free two retries later: no standby is there."""
        released, leader = self._released_at, self.leader
        return (
            released is not None
            and time.monotonic() - released >= 2 * self.retry
            and leader is not None
            and not leader.held
        )

    async def _sleep(self) -> None:
        now = time.monotonic()
        delay = self.retry
        if self.epoch is not None:
            delay = min(delay, max(0.0, self._deadline - now))
            if self.state is KeeperState.ELECTED:
                delay = min(delay, max(0.0, self._grace_until - now))
        elif self.campaigns and self._hold_until > now:
            delay = min(delay, self._hold_until - now)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        self._wake.clear()

    async def _bounded(self, call: Coroutine[Any, Any, T], timeout: float) -> T:
        """Await a call to the store for at most ``timeout``, then walk away from it.

        ``asyncio.timeout`` alone is not enough: cancelling a database call runs its
        clean-up (a rollback, a connection close) over the same dead network, which can
        hang well past the deadline. The call runs as its own task instead; on timeout it
        is cancelled and left to finish in the background (tracked, reaped at ``stop``).
        """
        task = asyncio.create_task(call, name=f"lease-call-{self.lease.name}")
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
        if not done:
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._reap)
            raise TimeoutError
        return task.result()

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("abandoned lease call ended with %r", task.exception())

    async def _campaign(self) -> None:
        sent = time.monotonic()
        try:
            info = await self._bounded(self.lease.campaign(), self.renew_deadline)
        except (ClusterError, TimeoutError) as exc:
            self.stats.campaign_failures += 1
            log.warning("lease campaign failed: %s", exc or "timed out")
            return
        self._observed(info)
        if info.holder != self.lease.node_id or self.lease.epoch != info.epoch:
            return
        self._deadline = sent + self.renew_deadline
        self.watchdog.arm(self._deadline)
        self._grace_until = time.monotonic() + self.grace
        self.stats.elections += 1
        self._set_state(KeeperState.ELECTED)
        log.info("elected leader, epoch %d (grace %.1f s)", info.epoch, self.grace)
        if self.grace <= 0:
            await self._open()

    async def _observe(self) -> None:
        try:
            self._observed(await self._bounded(self.lease.current(), self.renew_deadline))
        except (ClusterError, TimeoutError) as exc:
            log.debug("cannot read the lease: %s", exc)

    async def _renew(self) -> None:
        sent = time.monotonic()
        remaining = self._deadline - sent
        if remaining <= 0:
            await self._depose("renew deadline passed", release=True)
            return
        try:
            renewed = await self._bounded(self.lease.renew(), remaining)
        except TimeoutError:
            await self._depose("renew deadline passed (no answer)", release=True)
            return
        except ClusterError as exc:
            self.stats.renew_failures += 1
            log.warning("lease renewal failed (%.1f s left): %s", remaining, exc)
            return
        if not renewed:
            await self._depose("lease lost", release=False)
            return
        done = time.monotonic()
        if done >= self._deadline:  # the loop was blocked past the deadline: already fenced
            await self._depose("renew deadline passed (event loop blocked)", release=True)
            return
        self.stats.renewals += 1
        self.stats.last_renew_seconds = done - sent
        self._deadline = sent + self.renew_deadline
        self.watchdog.arm(self._deadline)

    async def _open(self) -> None:
        epoch = self.lease.epoch
        if epoch is None:
            return
        self._set_state(KeeperState.LEADER)
        log.info("leading with epoch %d", epoch)
        await self._on_elected(epoch)

    async def _depose(self, reason: str, *, release: bool) -> None:
        was_open = self.state is KeeperState.LEADER
        self.watchdog.disarm()
        self._set_state(KeeperState.STANDBY)
        self.stats.depositions += 1
        self.stats.last_deposed_reason = reason
        self._fenced_reason = None
        self._hold_until = time.monotonic() + self.hold_off
        self._released_at = None
        log.warning("deposed (%s)", reason)
        if was_open:
            try:
                await self._on_deposed(reason)
            except Exception:
                # Closing upstream must not be skipped because the orderly path failed.
                log.exception("on_deposed failed; fencing the hard way")
                self._fire_emergency()
        if release:
            try:
                await self._bounded(self.lease.release(), self.retry)
                self._released_at = time.monotonic()
            except (ClusterError, TimeoutError) as exc:
                # The row expires by itself; meanwhile nobody leads.
                log.warning("could not free the lease (it expires by itself): %s", exc or "timeout")
        self.lease.forget()
        self._notify()

    def _fire_emergency(self) -> None:
        if self._emergency is not None:
            self._emergency()
