"""diagnose's backplane and cluster checks on real Redis and PostgreSQL (building-block rows)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cluster_kit import RecordingSink
from support.poll import eventually
from test_cluster_status import describe_as, register

from cotiza.cluster import BusState, PgLease, RedisBus
from cotiza.diagnose.clustercheck import ClusterConfig, backplane, cluster
from cotiza.diagnose.findings import Level
from cotiza.settings import Settings
from cotiza.storage.database import Database

pytestmark = [pytest.mark.cluster]


@asynccontextmanager
async def running(*buses: RedisBus) -> AsyncIterator[None]:
    for bus in buses:
        await bus.start()
    try:
        for bus in buses:
            await bus.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)
        yield
    finally:
        for bus in buses:
            await bus.stop()


def config(redis_url: str, pg_url: str, prefix: str) -> ClusterConfig:
    return ClusterConfig(
        redis_url, prefix, pg_url, timeout=2.0, stale_after=1.0, node_stale_after=60.0
    )


async def test_a_healthy_cluster_passes_both_checks(
    database: Database,
    fresh_pg_url: str,
    shared_redis: str,
    prefix: str,
    node_settings: Callable[..., Settings],
) -> None:
    """One leader publishing under the lease's epoch, one follower: backplane and cluster ok."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    a = RedisBus(node_settings(node_id="node-a"), RecordingSink())
    b = RedisBus(node_settings(node_id="node-b"), RecordingSink())
    async with running(a, b):
        a.lead(won.epoch)
        await eventually(lambda: b.subscriber.sequencer.synced, 5)
        await register(
            shared_redis,
            prefix,
            describe_as("node-a", leader=True, epoch=won.epoch),
            describe_as("node-b"),
        )
        cfg = config(shared_redis, fresh_pg_url, prefix)
        bp, cl = await backplane(cfg), await cluster(cfg)
    assert bp.level is Level.OK, bp.as_dict()
    assert bp.data["subscribers"] == 2 and bp.data["nodes"] == 2
    assert bp.data["stream_epoch"] == won.epoch and bp.data["leader_node"] == "node-a"
    assert isinstance(bp.data["round_trip_ms"], float) and bp.data["round_trip_ms"] < 2000
    assert cl.level is Level.OK, cl.as_dict()
    assert cl.summary.startswith(f"leader node-a, epoch {won.epoch}")
    assert cl.data["leaders"] == ["node-a"]


async def test_split_brain_and_a_missing_subscription_are_reported(
    database: Database,
    fresh_pg_url: str,
    shared_redis: str,
    prefix: str,
    node_settings: Callable[..., Settings],
) -> None:
    """Two claimants are critical; a registered node without a bus subscription warns."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    a = RedisBus(node_settings(node_id="node-a"), RecordingSink())
    async with running(a):
        a.lead(won.epoch)
        await register(
            shared_redis,
            prefix,
            describe_as("node-a", leader=True, epoch=won.epoch),
            describe_as("node-b", leader=True, epoch=won.epoch - 1),
        )
        cfg = config(shared_redis, fresh_pg_url, prefix)
        bp, cl = await backplane(cfg), await cluster(cfg)
    assert bp.level is Level.WARN, bp.as_dict()
    assert "1 registered node(s) have no bus subscription" in bp.summary
    assert cl.level is Level.CRIT, cl.as_dict()
    assert cl.summary.startswith("split brain: 2 nodes lead")
    assert cl.hint is not None and "split brain" in cl.hint


async def test_a_silent_leader_and_a_free_lease_are_reported(
    database: Database,
    fresh_pg_url: str,
    shared_redis: str,
    prefix: str,
    node_settings: Callable[..., Settings],
) -> None:
    """A stream older than BUS_STALE_AFTER warns; a released lease is 'no leader'."""
    lease = PgLease(database.engine, "node-a", "http://a", 30)
    won = await lease.campaign()
    a = RedisBus(node_settings(node_id="node-a"), RecordingSink())
    async with running(a):
        a.lead(won.epoch)
        await eventually(lambda: a.stats.published > 0, 5)
    await lease.release()
    await register(shared_redis, prefix, describe_as("node-a"))
    cfg = config(shared_redis, fresh_pg_url, prefix)

    async def stale() -> bool:
        return "stream is" in (await backplane(cfg)).summary

    await eventually(stale, 10, interval=0.2)
    cl = await cluster(cfg)
    assert cl.level is Level.CRIT
    assert cl.summary.startswith("no leader: the lease is free")


async def test_unreachable_redis_is_critical_in_both_checks(
    database: Database, fresh_pg_url: str, prefix: str
) -> None:
    """Nothing on the BACKPLANE port: each check says so, critically, without hanging."""
    cfg = config("redis://127.0.0.1:1/0", fresh_pg_url, prefix)
    bp, cl = await asyncio.wait_for(asyncio.gather(backplane(cfg), cluster(cfg)), 20)
    assert bp.level is Level.CRIT and "redis://127.0.0.1:1/0" in bp.summary
    assert bp.hint is not None and "redis-server" in bp.hint
    assert cl.level is Level.CRIT and "cannot read the cluster" in cl.summary


async def diagnose_json(tmp_path: Path, **env: str) -> dict[str, object]:
    """Run the real ``cotiza diagnose --json`` against a port where nothing listens."""
    full = {k: v for k, v in os.environ.items() if k not in {"BACKPLANE", "DATABASE_URL"}}
    full.update(env)
    full["NODE_REPORT_INTERVAL"] = "60"  # entries written once must not be judged stale
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotiza", "diagnose", "--json", "--port", "1",
        "--run-dir", str(tmp_path), "--timeout", "2", "--ws-timeout", "1",
        env=full, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert out, err.decode()
    body: dict[str, object] = json.loads(out)
    return body


async def test_diagnose_runs_the_cluster_checks_only_with_a_backplane(
    database: Database, fresh_pg_url: str, shared_redis: str, prefix: str, tmp_path: Path
) -> None:
    """With BACKPLANE the report ends with backplane and cluster; without it, neither."""
    won = await PgLease(database.engine, "node-a", "http://a", 30).campaign()
    await register(shared_redis, prefix, describe_as("node-a", leader=True, epoch=won.epoch))
    body = await diagnose_json(
        tmp_path, BACKPLANE=shared_redis, BACKPLANE_PREFIX=prefix, DATABASE_URL=fresh_pg_url
    )
    checks = {c["check"]: c for c in body["checks"]}  # type: ignore[attr-defined]
    assert checks["cluster"]["status"] == "ok", checks["cluster"]
    assert checks["backplane"]["data"]["nodes"] == 1
    assert "no leader has published" in checks["backplane"]["summary"]
    standalone = await diagnose_json(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    names = [c["check"] for c in standalone["checks"]]  # type: ignore[attr-defined]
    assert "backplane" not in names and "cluster" not in names and "database" in names
