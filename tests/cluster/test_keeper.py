"""LeaseKeeper against the real PostgreSQL: election, takeover, handover, self-fencing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cluster_kit import TcpProxy
from sqlalchemy.ext.asyncio import create_async_engine
from support.poll import eventually

from cotiza.cluster import KeeperState, LeaseKeeper, PgLease
from cotiza.errors import Fenced
from cotiza.storage.database import Database

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

HERE = Path(__file__).resolve().parent
TTL, RETRY, DEADLINE = 1.5, 0.1, 1.0


@dataclass
class Recorder:
    """What a keeper told its owner, with monotonic times."""

    events: list[tuple[str, object, float]] = field(default_factory=list)
    emergencies: list[float] = field(default_factory=list)
    emergency_fired: threading.Event = field(default_factory=threading.Event)
    lease_during_deposed: list[object] = field(default_factory=list)
    probe: PgLease | None = None  # when set, on_deposed records who holds the row then

    async def on_elected(self, epoch: int) -> None:
        self.events.append(("elected", epoch, time.monotonic()))

    async def on_deposed(self, reason: str) -> None:
        self.events.append(("deposed", reason, time.monotonic()))
        if self.probe is not None:
            current = await self.probe.current()
            self.lease_during_deposed.append(current.holder if current else None)

    def emergency(self) -> None:  # called on the watchdog thread
        self.emergencies.append(time.monotonic())
        self.emergency_fired.set()

    def times(self, kind: str) -> list[float]:
        return [t for k, _, t in self.events if k == kind]


def make_keeper(
    engine: object, node: str, recorder: Recorder, **options: float | bool
) -> LeaseKeeper:
    lease = PgLease(engine, node, f"http://{node}", float(options.pop("ttl", TTL)))  # type: ignore[arg-type]
    return LeaseKeeper(
        lease,
        retry=float(options.pop("retry", RETRY)),
        renew_deadline=float(options.pop("renew_deadline", DEADLINE)),
        on_elected=recorder.on_elected,
        on_deposed=recorder.on_deposed,
        emergency_fence=recorder.emergency,
        **options,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def running(*keepers: LeaseKeeper) -> AsyncIterator[None]:
    for keeper in keepers:
        await keeper.start()
    try:
        yield
    finally:
        for keeper in keepers:
            await keeper.stop()


def leader_of(*keepers: LeaseKeeper) -> Callable[[], bool]:
    return lambda: sum(k.is_leader for k in keepers) == 1


async def test_one_of_two_keepers_leads_and_keeps_renewing(database: Database) -> None:
    """Exactly one keeper leads, renews past several TTLs; the other knows who leads."""
    ra, rb = Recorder(), Recorder()
    a, b = make_keeper(database.engine, "a", ra), make_keeper(database.engine, "b", rb)
    async with running(a, b):
        await eventually(leader_of(a, b), timeout=5)
        leader, standby = (a, b) if a.is_leader else (b, a)
        await eventually(lambda: leader.stats.renewals >= int(2 * TTL / RETRY), timeout=10)
        assert leader.is_leader and leader.epoch == 1 and leader.stats.depositions == 0
        assert standby.state is KeeperState.STANDBY and standby.epoch is None
        await eventually(lambda: standby.leader_node == leader.lease.node_id, timeout=5)
        assert ra.events[:1] + rb.events[:1] and len(ra.events) + len(rb.events) == 1
        assert not ra.emergencies and not rb.emergencies
        status = leader.status()
        assert status["leader"] is True and status["epoch"] == 1


async def test_stop_deposes_the_leader_and_frees_the_row(database: Database) -> None:
    """Stopping a leader calls on_deposed, frees the row, and the standby takes over at once."""
    ra, rb = Recorder(), Recorder()
    a = make_keeper(database.engine, "a", ra, ttl=30.0, renew_deadline=20.0)
    b = make_keeper(database.engine, "b", rb, ttl=30.0, renew_deadline=20.0)
    await a.start()
    await a.wait_for(lambda k: k.is_leader, 5)
    async with running(b):
        await a.stop()
        await a.stop()  # idempotent
        assert [k for k, _, _ in ra.events] == ["elected", "deposed"]
        assert a.state is KeeperState.STOPPED
        await b.wait_for(lambda k: k.is_leader, 5)  # well before the 30 s TTL
        assert b.epoch == 2


@asynccontextmanager
async def lease_node(database: Database, node: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A separate process running only a LeaseKeeper (tests/cluster/lease_node.py)."""
    url = database.engine.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "lease_node.py"), url, node, str(TTL), str(RETRY),
        str(DEADLINE), stdout=asyncio.subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


async def next_event(process: asyncio.subprocess.Process, timeout: float = 30) -> dict[str, object]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    assert line, "the lease node exited"
    event: dict[str, object] = json.loads(line)
    return event


async def test_sigkilled_leader_is_replaced_within_the_ttl(database: Database) -> None:
    """A leader process killed with SIGKILL is replaced once its term expires."""
    rb = Recorder()
    async with lease_node(database, "p") as node:
        assert [(await next_event(node))["event"] for _ in range(2)] == ["started", "elected"]
        b = make_keeper(database.engine, "b", rb)
        async with running(b):
            await b.wait_for(lambda k: k.leader_node == "p", 5)
            node.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await b.wait_for(lambda k: k.is_leader, TTL + 5)
            assert time.monotonic() - killed <= TTL + 4 * RETRY + 1.0
            assert b.epoch == 2


async def test_sigstopped_leader_woken_after_takeover_is_fenced(database: Database) -> None:
    """A frozen leader woken after a takeover fences itself at once and cannot win back."""
    rb = Recorder()
    async with lease_node(database, "p") as node:
        assert [(await next_event(node))["event"] for _ in range(2)] == ["started", "elected"]
        b = make_keeper(database.engine, "b", rb)
        async with running(b):
            node.send_signal(signal.SIGSTOP)
            await b.wait_for(lambda k: k.is_leader, TTL + 5)
            woken = time.time()
            node.send_signal(signal.SIGCONT)
            after = [await next_event(node)]
            while after[-1]["event"] == "emergency":
                after.append(await next_event(node))
            # Whichever of the watchdog thread and the loop runs first after SIGCONT fences;
            # the loop always deposes (an emergency fence first is optional).
            assert [e["event"] for e in after] in (["deposed"], ["emergency", "deposed"]), after
            deposed = after[-1]
            assert float(deposed["t"]) - woken <= RETRY + 0.5  # type: ignore[arg-type]
            assert b.is_leader and b.epoch == 2
            current = await b.lease.current()
            assert current is not None and (current.holder, current.epoch) == ("b", 2)


async def test_planned_release_closes_upstream_before_freeing_the_row(database: Database) -> None:
    """Break before make: on_deposed runs while the row is still ours; then another node leads."""
    ra, rb = Recorder(), Recorder()
    ra.probe = PgLease(database.engine, "observer", None, TTL)
    a = make_keeper(database.engine, "a", ra, hold_off=5.0)
    b = make_keeper(database.engine, "b", rb)
    await a.start()
    await a.wait_for(lambda k: k.is_leader, 5)
    async with running(a, b):
        released = time.monotonic()
        assert await a.release()
        assert not await a.release()  # nothing left to hand over
        assert ra.lease_during_deposed == ["a"]  # upstream closed while the row was still ours
        b.nudge()
        await b.wait_for(lambda k: k.is_leader, 2)
        assert time.monotonic() - released <= 2 * RETRY + 0.5
        assert (b.epoch, a.state, a.stats.last_deposed_reason) == (
            2,
            KeeperState.STANDBY,
            "handover",
        )
        assert not ra.emergencies


async def test_a_lone_node_leads_again_when_nobody_takes_the_handover(
    database: Database,
) -> None:
    """With no standby, a handed-over lease is taken back two retries later, not after the
    whole hold-off; with a standby there, the standby keeps it."""
    ra, rb = Recorder(), Recorder()
    a = make_keeper(database.engine, "a", ra, hold_off=5.0)
    async with running(a):
        await a.wait_for(lambda k: k.is_leader, 5)
        released = time.monotonic()
        assert await a.release()
        await a.wait_for(lambda k: k.is_leader, 5.0)
        back = time.monotonic() - released
        assert 2 * RETRY <= back <= 2 * RETRY + 1.0 < 5.0, back
        assert (a.epoch, ra.times("elected")[1] > released) == (2, True)

        b = make_keeper(database.engine, "b", rb)
        async with running(b):
            assert await a.release()
            b.nudge()
            await b.wait_for(lambda k: k.is_leader, 2)
            await asyncio.sleep(10 * RETRY)  # well past a's two retries
            assert b.is_leader and not a.is_leader and b.epoch == 3


async def test_grace_delays_on_elected_while_the_term_is_renewed(database: Database) -> None:
    """PRIMARY_SESSION_GRACE: upstream opens only after the grace, the term renewed meanwhile."""
    ra = Recorder()
    a = make_keeper(database.engine, "a", ra, grace=1.5)  # longer than the renew deadline
    async with running(a):
        await a.wait_for(lambda k: k.state is KeeperState.ELECTED, 5)
        won = time.monotonic()
        assert a.epoch == 1 and not a.is_leader and not ra.events
        await a.wait_for(lambda k: k.is_leader, 5)
        assert ra.events[0][:2] == ("elected", 1)
        assert ra.events[0][2] - won >= 1.5 - RETRY
        assert a.stats.renewals >= 5 and a.stats.depositions == 0


async def test_blocked_loop_gets_the_emergency_fence_from_the_watchdog(database: Database) -> None:
    """With the event loop blocked past the deadline the thread fences; the loop deposes after."""
    ra, rb = Recorder(), Recorder()
    a = make_keeper(database.engine, "a", ra, hold_off=5.0)
    b = make_keeper(database.engine, "b", rb)
    await a.start()
    await a.wait_for(lambda k: k.is_leader, 5)
    async with running(a, b):
        deadline = a._deadline
        blocked_at = time.monotonic()
        time.sleep(DEADLINE + 1.0)  # noqa: ASYNC251 - blocking the loop is the fault under test
        unblocked_at = time.monotonic()
        assert ra.emergency_fired.is_set()
        fired = ra.emergencies[0]
        assert blocked_at < fired < unblocked_at  # while the loop could do nothing
        assert fired - deadline < 0.25
        await a.wait_for(lambda k: k.stats.depositions == 1, 5)
        assert "deadline" in str(a.stats.last_deposed_reason)
        assert ra.times("deposed")
        await b.wait_for(lambda k: k.is_leader, 5)
        assert b.epoch == 2
        with pytest.raises(Fenced):
            async with database.engine.begin() as conn:
                await a.lease.fence(conn)


async def test_unreachable_database_self_fences_before_a_takeover(database: Database) -> None:
    """Cut off from PostgreSQL, the leader deposes itself before anyone else can be elected."""
    proxy = TcpProxy(5432)
    await proxy.start()
    url = database.engine.url
    engine = create_async_engine(proxy.pg_url(str(url.database)), pool_pre_ping=False)
    ra, rb = Recorder(), Recorder()
    a = make_keeper(engine, "a", ra, hold_off=5.0)
    b = make_keeper(database.engine, "b", rb)
    try:
        await a.start()
        await a.wait_for(lambda k: k.is_leader, 5)
        async with running(b):
            proxy.blackhole_all()
            await a.wait_for(lambda k: k.stats.depositions == 1, DEADLINE + 2)
            await b.wait_for(lambda k: k.is_leader, TTL + 3)
            deposed_at, elected_at = ra.times("deposed")[0], rb.times("elected")[0]
            assert deposed_at < elected_at  # never two leaders
            assert elected_at - deposed_at >= (TTL - DEADLINE) * 0.5
            assert "deadline" in str(a.stats.last_deposed_reason)
            await a.stop()
    finally:
        await proxy.stop()
        await engine.dispose()


async def test_reported_fence_deposes_and_frees_the_row(database: Database) -> None:
    """report_fenced (a refused write or publish) deposes the leader at once."""
    ra = Recorder()
    a = make_keeper(database.engine, "a", ra, hold_off=0.0)
    async with running(a):
        await a.wait_for(lambda k: k.is_leader, 5)
        a.report_fenced("history write refused")
        await a.wait_for(lambda k: k.stats.depositions == 1, 5)
        assert a.stats.last_deposed_reason == "fenced: history write refused"
        await a.wait_for(lambda k: k.is_leader, 5)  # no one else: it wins a new term
        assert a.epoch == 2 and [k for k, _, _ in ra.events] == ["elected", "deposed", "elected"]


async def test_failing_on_elected_deposes_instead_of_leading_half_started(
    database: Database,
) -> None:
    """If starting the leader's components fails, the node deposes and frees the row."""
    ra = Recorder()
    calls: list[int] = []

    async def broken(epoch: int) -> None:
        calls.append(epoch)
        raise RuntimeError("upstream would not start")

    a = LeaseKeeper(
        PgLease(database.engine, "a", None, TTL),
        retry=RETRY,
        renew_deadline=DEADLINE,
        on_elected=broken,
        on_deposed=ra.on_deposed,
        hold_off=5.0,
    )
    async with running(a):
        await a.wait_for(lambda k: k.stats.depositions == 1 and k.lease.epoch is None, 5)
        assert calls == [1] and a.stats.last_deposed_reason == "keeper error"
        assert [k for k, _, _ in ra.events] == ["deposed"]
        current = await a.lease.current()
        assert current is not None and current.holder is None


async def test_edge_keeper_observes_the_leader_and_never_campaigns(database: Database) -> None:
    """campaign=False (ROLE=edge): it reports the leader but never takes the lease."""
    ra, re = Recorder(), Recorder()
    a = make_keeper(database.engine, "a", ra)
    edge = make_keeper(database.engine, "e", re, campaign=False)
    async with running(edge):
        await eventually(lambda: edge.stats.campaign_failures == 0 and edge.leader is None, 1)
        async with running(a):
            await edge.wait_for(lambda k: k.leader_node == "a", 5)
        assert await a.lease.current() is not None
        await eventually(lambda: edge.leader_node is None, 5)  # a stopped and freed the row
        assert not re.events and edge.stats.elections == 0
