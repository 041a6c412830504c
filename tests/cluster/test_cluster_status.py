"""``cotiza cluster status`` on real Redis and PostgreSQL, with rows the building blocks wrote."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable

import pytest

from cotiza.cluster import NodeInfo, NodeRegistry, PgLease
from cotiza.cluster.backplane import Keys, create_client
from cotiza.cluster.status import ClusterView, Severity, judge
from cotiza.storage.database import Database

pytestmark = [pytest.mark.cluster]


def describe_as(
    node_id: str, *, leader: bool = False, epoch: int | None = None
) -> Callable[[], NodeInfo]:
    def describe() -> NodeInfo:
        return NodeInfo(
            node_id=node_id,
            role="auto",
            url=f"http://127.0.0.1:9{len(node_id)}00",
            leader=leader,
            epoch=epoch,
            clients=2,
            bus_state="connected",
            bus_lag_ms=0.3,
            pid=os.getpid(),
            started_at=1.0,
        )

    return describe


async def register(redis_url: str, prefix: str, *nodes: Callable[[], NodeInfo]) -> None:
    """Write one registry entry per node, as a running node's NodeRegistry does."""
    client = create_client(redis_url, 1.0)
    try:
        for describe in nodes:
            registry = NodeRegistry(client, Keys(prefix), describe, interval=1, ttl=60, timeout=1)
            await registry.report()
    finally:
        await client.aclose()


async def status(redis_url: str, pg_url: str, prefix: str, *extra: str) -> tuple[int, str, str]:
    """Run the real command in a subprocess; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in {"BACKPLANE", "DATABASE_URL"}}
    env.update(BACKPLANE=redis_url, DATABASE_URL=pg_url, BACKPLANE_PREFIX=prefix)
    # The entries are written once, not refreshed: a long report interval keeps them from
    # being judged stale (2 x interval + 1 s) on a slow machine.
    env["NODE_REPORT_INTERVAL"] = "60"
    if not redis_url:
        del env["BACKPLANE"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotiza", "cluster", "status", "--timeout", "3", *extra,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_one_leader_agreed_by_the_lease_exits_zero(
    database: Database, fresh_pg_url: str, shared_redis: str, prefix: str
) -> None:
    """A leader whose epoch matches the lease row and a follower: both listed, exit 0."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    await register(
        shared_redis, prefix, describe_as("node-a", leader=True, epoch=won.epoch), describe_as("b")
    )
    code, out, err = await status(shared_redis, fresh_pg_url, prefix)
    assert code == 0, out + err
    assert f"holder node-a, epoch {won.epoch}" in out
    lines = out.splitlines()
    leader = next(line for line in lines if line.startswith("node-a "))
    assert " yes " in leader and "http://127.0.0.1:9600" in leader and "ago" in leader
    follower = next(line for line in lines if line.startswith("b "))
    assert " yes " not in follower
    assert "OK: one leader" in out

    code, out, _ = await status(shared_redis, fresh_pg_url, prefix, "--json")
    body = json.loads(out)
    assert code == 0 and body["exit_code"] == 0 and body["problems"] == []
    assert body["lease"]["holder"] == "node-a" and body["lease"]["held"] is True
    assert [n["node_id"] for n in body["nodes"]] == ["b", "node-a"]
    assert all(0 <= n["heartbeat_age_s"] < 30 for n in body["nodes"])


async def test_two_claimants_are_a_split_brain(
    database: Database, fresh_pg_url: str, shared_redis: str, prefix: str
) -> None:
    """Two nodes claiming leadership (one under an old epoch) exit 2 and name both."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    await register(
        shared_redis,
        prefix,
        describe_as("node-a", leader=True, epoch=won.epoch),
        describe_as("node-b", leader=True, epoch=won.epoch - 1),
    )
    code, out, _ = await status(shared_redis, fresh_pg_url, prefix)
    assert code == 2, out
    assert "split brain: 2 nodes lead" in out
    assert "node-b claims to lead but the lease is held by node-a" in out


async def test_no_leader_exits_non_zero(
    database: Database, fresh_pg_url: str, shared_redis: str, prefix: str
) -> None:
    """A released lease and no claimant: exit 2, saying there is no leader."""
    lease = PgLease(database.engine, "node-a", "http://a", 30)
    await lease.campaign()
    assert await lease.release()
    await register(shared_redis, prefix, describe_as("node-a"), describe_as("node-b"))
    code, out, _ = await status(shared_redis, fresh_pg_url, prefix)
    assert code == 2, out
    assert "no leader: the lease is free" in out
    assert "no registered node claims leadership" in out


async def test_epoch_mismatch_is_critical(
    database: Database, fresh_pg_url: str, shared_redis: str, prefix: str
) -> None:
    """The lease holder registered under an epoch that is not the row's: exit 2."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    await register(shared_redis, prefix, describe_as("node-a", leader=True, epoch=won.epoch + 3))
    code, out, _ = await status(shared_redis, fresh_pg_url, prefix)
    assert code == 2, out
    assert f"epoch mismatch: node-a leads under epoch {won.epoch + 3}" in out


async def test_unreachable_store_and_standalone_are_clear_errors(
    database: Database, fresh_pg_url: str, prefix: str
) -> None:
    """Redis down exits 3 naming the registry; BACKPLANE unset exits 2 naming it."""
    code, out, err = await status("redis://127.0.0.1:1/0", fresh_pg_url, prefix)
    assert code == 3, out + err
    assert "could not run: cannot read the node registry" in err
    code, out, err = await status("", fresh_pg_url, prefix)
    assert code == 2
    assert "BACKPLANE is not set" in err and err.count("\n") == 1


def test_judge_reports_stale_entries_and_an_unregistered_holder() -> None:
    """A claimant that stopped reporting and a holder missing from the registry are warnings."""
    from cotiza.cluster import LeaseInfo

    lease = LeaseInfo("feed", "gone", None, 7, expires_at=110.0, db_now=100.0)
    stale = describe_as("x")()
    view = ClusterView([NodeInfo(**{**stale.as_dict(), "reported_at": 50.0})], lease, 100.0)
    problems = judge(view, stale_after=5)
    texts = {p.text: p.severity for p in problems}
    assert texts["the lease holder gone is not registered"] is Severity.WARN
    assert texts["x has not reported for 50.0 s"] is Severity.WARN
    assert texts["no registered node claims leadership"] is Severity.CRIT
