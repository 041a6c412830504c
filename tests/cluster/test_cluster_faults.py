"""Fault tests of cluster mode with real processes: Redis killed and restarted, a frozen
leader woken after takeover, one node's bus subscription blackholed, and the monitor
handing a real leader over before restarting it.

Every test runs its own redis-server on a free port (never the shared 6379), its own
PostgreSQL database and prefix, and real ``main.py`` nodes with WebSocket clients.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from cluster_kit import RedisServer, TcpProxy
from node_procs import Cluster, Watcher, symbols_of
from support.poll import eventually

from cotiza.monitor import probes

pytestmark = [pytest.mark.cluster]


@pytest.fixture
async def cluster(
    tmp_path: Path, fresh_pg_url: str, redis_server: RedisServer, prefix: str
) -> AsyncIterator[Cluster]:
    """Nodes on the test's own redis-server and database; all killed afterwards."""
    nodes = Cluster(tmp_path / "nodes", fresh_pg_url, redis_server.url, prefix)
    try:
        yield nodes
    finally:
        await nodes.close()


async def judged_healthy(node_port: int) -> str:
    """What the monitor would conclude from this node's health right now ('' = healthy)."""
    async with probes.client("127.0.0.1", node_port, None) as http:
        live = await probes.http_get(http, probes.LIVENESS_PATH, 2.0)
        detailed = await probes.http_get(http, probes.DETAILED_PATH, 2.0)
    return probes.first_failure([probes.judge_liveness(live), probes.judge_detailed(detailed)])


async def duplicate_samples(pg_url: str) -> int:
    dsn = "postgresql://" + pg_url.split("://", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pair_id, asof FROM ratio_samples "
            "GROUP BY pair_id, asof HAVING count(*) > 1) AS d"
        )
    finally:
        await conn.close()
    return int(rows)


async def test_redis_killed_for_5s_disconnects_nobody_and_every_node_resyncs(
    cluster: Cluster, redis_server: RedisServer, fresh_pg_url: str
) -> None:
    """Redis down 5 s: no node exits or turns unhealthy, no client is dropped, fresh ticks after."""
    a, b = cluster.start("node-a"), cluster.start("node-b", ROLE="edge")
    await cluster.wait_ready(a, b)
    await cluster.leader(30)
    symbols = await symbols_of(cluster, b)
    watchers = [Watcher(a), Watcher(b)]
    for watcher in watchers:
        await watcher.start(symbols)
    await eventually(lambda: all(w.fresh_since(time.monotonic() - 0.5) for w in watchers), 15)

    redis_server.kill()
    down_until = time.monotonic() + 5
    while time.monotonic() < down_until:
        for node in (a, b):
            assert node.alive(), node.output()[-2000:]
            verdict = await judged_healthy(node.port)
            assert verdict == "", f"{node.node_id} would be restarted: {verdict}"
        await asyncio.sleep(0.5)
    redis_server.start()
    back = time.monotonic()

    await eventually(lambda: all(w.fresh_since(back) for w in watchers), 15, interval=0.05)
    took = time.monotonic() - back
    assert took <= 10, took  # target 2 s (bench); generous on a loaded machine
    assert all(w.closed is None and w.error is None and w.connected for w in watchers)
    assert a.alive() and b.alive()
    for watcher in watchers:
        await watcher.stop()
    assert await duplicate_samples(fresh_pg_url) == 0


async def test_a_frozen_leader_woken_after_takeover_is_fenced(
    cluster: Cluster, redis_server: RedisServer, fresh_pg_url: str, prefix: str
) -> None:
    """SIGSTOP the leader past its lease, SIGCONT after takeover: nothing of its term lands."""
    a = cluster.start("node-a")
    await cluster.wait_ready(a)
    await cluster.leader(30)
    b = cluster.start("node-b")
    await cluster.wait_ready(b)
    old = await cluster.leader(30)
    survivor = b if old is a else a
    old_block = await cluster.block(old)
    assert old_block is not None
    old_epoch = int(old_block["epoch"])

    # Every envelope on the bus, in order, from before the freeze until well after the wake.
    client = aioredis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"{prefix}:bus")
    seen: list[int] = []

    async def listen() -> None:
        import orjson

        async for message in pubsub.listen():
            if message.get("type") == "message":
                seen.append(int(orjson.loads(message["data"])["e"]))

    listener = asyncio.create_task(listen())
    watcher = Watcher(survivor)
    await watcher.start(await symbols_of(cluster, survivor))
    try:
        old.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        new = await cluster.leader(30, among=[survivor])
        block = await cluster.block(new)
        assert block is not None and int(block["epoch"]) > old_epoch
        new_epoch = int(block["epoch"])
        assert time.monotonic() - frozen < 20
        await eventually(lambda: watcher.fresh_since(time.monotonic() - 0.5), 15)

        old.signal(signal.SIGCONT)
        woken = time.monotonic()

        async def stepped_down() -> bool:
            blk = await cluster.block(old)
            return blk is not None and blk.get("leader") is False

        await eventually(stepped_down, 15, interval=0.05)
        assert time.monotonic() - woken < 10
        await asyncio.sleep(2)  # let anything the woken node still had queued try to land
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener
        await pubsub.aclose()
        await client.aclose()
        await watcher.stop()
    first_new = seen.index(new_epoch)
    stale = [e for e in seen[first_new:] if e < new_epoch]
    assert stale == [], f"{len(stale)} envelopes of epoch {old_epoch} after epoch {new_epoch}"
    assert watcher.closed is None and watcher.error is None
    assert await duplicate_samples(fresh_pg_url) == 0
    assert old.alive() and survivor.alive()


async def test_a_blackholed_subscription_unreadies_that_node_alone(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """One edge's bus behind a proxy that swallows it: wedged within ~stale-after, alone unready."""
    proxy = TcpProxy(redis_server.port)
    await proxy.start()
    try:
        a = cluster.start("node-a")
        b = cluster.start("node-b", ROLE="edge", BACKPLANE=proxy.url)
        await cluster.wait_ready(a, b)
        await cluster.leader(30)
        await eventually(lambda: proxy.subscriptions >= 1, 10)
        watcher = Watcher(b)
        await watcher.start(await symbols_of(cluster, b))

        assert proxy.blackhole_subscriptions(persistent=True) >= 1
        cut = time.monotonic()

        async def unready() -> bool:
            return not await cluster.ready(b)

        await eventually(unready, 15, interval=0.05)
        detected = time.monotonic() - cut
        assert detected <= 1.5 + 4, detected  # BUS_STALE_AFTER 1.5 s, plus load margin
        body = await cluster.detailed(b)
        assert body is not None
        states = body["checks"]["backplane:state"]
        assert states[0]["status"] == "fail" and states[0]["observedValue"] == "wedged"
        for _ in range(10):  # the leader, on a healthy subscription, stays ready
            assert await cluster.ready(a)
            await asyncio.sleep(0.1)
        assert b.alive() and watcher.closed is None  # clients are never cut for a bus fault

        proxy.heal()
        healed = time.monotonic()
        await eventually(lambda: cluster.ready(b), 20, interval=0.1)
        await eventually(lambda: watcher.fresh_since(healed), 15)
        await watcher.stop()
    finally:
        await proxy.stop()


async def test_the_monitor_hands_a_real_leader_over_before_restarting_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """SIGHUP to a leader's monitor: /admin/handover, the other node leads, then the restart."""
    import json
    import os

    a = cluster.start_monitored("node-a", "--no-canary", "--interval", "0.5", "--term-grace", "5")
    await cluster.wait_ready(a)
    assert await cluster.leader(30) is a
    b = cluster.start("node-b")
    await cluster.wait_ready(b)
    watcher = Watcher(b)
    await watcher.start(await symbols_of(cluster, b))
    ledger = tmp_path / "nodes" / "run-node-a" / f"monitor-{a.port}.jsonl"

    def entries(event: str) -> list[dict[str, object]]:
        lines = ledger.read_text().splitlines() if ledger.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == event]

    os.kill(a.pid, signal.SIGHUP)
    await eventually(lambda: bool(entries("handover")), 30, interval=0.1)
    (handover,) = entries("handover")
    detail = handover["detail"]
    assert isinstance(detail, dict)
    assert detail["node_id"] == "node-a" and detail["new_leader"] == "node-b", handover
    assert "reason" not in handover
    assert await cluster.leader(10, among=[b]) is b
    await eventually(lambda: len(entries("start")) >= 2, 30, interval=0.1)
    await cluster.wait_ready(a)
    block = await cluster.block(a)
    assert block is not None and block["leader"] is False and block["leader_node"] == "node-b"
    assert watcher.closed is None and watcher.fresh_since(time.monotonic() - 1)
    await watcher.stop()


async def test_status_and_diagnose_agree_with_a_real_cluster(
    cluster: Cluster, redis_server: RedisServer, fresh_pg_url: str, prefix: str
) -> None:
    """Two real nodes: `cluster status` exits 0 naming the leader; diagnose's checks pass."""
    import json
    import sys

    a, b = cluster.start("node-a"), cluster.start("node-b", ROLE="edge")
    await cluster.wait_ready(a, b)
    leader = await cluster.leader(30)
    env = cluster.env("cli", 1)

    async def run(*argv: str) -> tuple[int, dict[str, object]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cotiza", *argv, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert out, err.decode()
        assert proc.returncode is not None
        return proc.returncode, json.loads(out)

    async def agreed() -> bool:
        code, _ = await run("cluster", "status", "--json")
        return code == 0

    await eventually(agreed, 30, interval=0.5)  # both registered, one leader, same epoch
    code, body = await run("cluster", "status", "--json")
    assert code == 0, body
    nodes = body["nodes"]
    assert isinstance(nodes, list)
    assert {n["node_id"]: n["leader"] for n in nodes} == {"node-a": True, "node-b": False}
    assert leader is a and body["lease"]["holder"] == "node-a"  # type: ignore[index]

    _, report = await run("diagnose", "--json", "--port", str(a.port), "--timeout", "5")
    checks = {c["check"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    assert checks["cluster"]["status"] == "ok", checks["cluster"]
    assert checks["backplane"]["status"] == "ok", checks["backplane"]
    assert checks["backplane"]["data"]["subscribers"] == 2
