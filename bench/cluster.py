"""Cluster mode against the targets of issue 8, with real processes, max over N trials.

One cluster for the whole run: a dedicated redis-server on a free port, a PostgreSQL
database of its own, a fake Primary that allows one market-data session per user
(``--on-excess refuse``, like a broker), three ``auto`` nodes and one ``edge`` whose
backplane goes through a TCP proxy, all with the production lease and bus timings
(``LEASE_TTL`` 6, ``LEASE_RETRY`` 1, ``BUS_HEARTBEAT`` 1, ``BUS_STALE_AFTER`` 3). One
WebSocket client per node, subscribed to every symbol. Each trial runs, in order:

- latency: for the same tick (symbol, quote time), receipt on a non-leader's client minus
  receipt on the leader's client, over a window of steady state (same run, same clock);
  the target counts the auto nodes, the edge (behind the proxy) is shown apart;
- kill: SIGKILL the leader; seconds until every surviving node's client has a fresh tick;
  survivors' disconnects; then the killed node is started again (it rejoins as standby);
- handover: ``POST /admin/handover`` to the leader; seconds until every client (the old
  leader's too) has a fresh tick;
- redis: SIGKILL redis-server, 5 s, start it again; seconds until every node's client has
  a fresh tick; disconnects;
- wedge: blackhole the edge's bus subscription at the proxy; seconds until its ``/readyz``
  answers 503 (then healed, and ready again before the next trial).

At the end: upstream ``peak_sessions`` (fake Primary), duplicate history samples, and the
most samples missing for one pair around one takeover.

    .venv/bin/python bench/cluster.py --trials 10

Needs PostgreSQL on 127.0.0.1:5432 and ``redis-server`` on the PATH (scripts/dev test
installs both); the database and every process are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # support/, as pytest's pythonpath has it
sys.path.insert(0, str(ROOT / "tests" / "cluster"))  # the fault tests' process harness

from cluster_kit import RedisServer, TcpProxy  # noqa: E402
from cluster_measures import (  # noqa: E402
    PG,
    FakePrimaryProc,
    admin,
    bucket_median,
    bus_latency,
    history_faults,
    lag_buckets,
    pct,
    wait_gap,
)
from node_procs import Cluster, Node, Watcher, symbols_of  # noqa: E402

PRODUCTION_TIMINGS = {
    "LEASE_TTL": "6",
    "LEASE_RETRY": "1",
    "LEASE_RENEW_DEADLINE": "4",
    "BUS_HEARTBEAT": "1",
    "BUS_STALE_AFTER": "3",
    "BUS_TIMEOUT": "2",
    "BUS_RETRY_BASE": "0.05",
    "BUS_RETRY_MAX": "1",
    "NODE_REPORT_INTERVAL": "2",
    "NODE_TTL": "10",
    "RATIO_SAMPLE_INTERVAL": "10",
    "LOG_LEVEL": "WARNING",
}
FAST_PRIMARY = {
    "FEED": "primary",
    "PRIMARY_USER": "user",
    "PRIMARY_PASSWORD": "password",
    "PRIMARY_PING_INTERVAL": "1",
    "PRIMARY_PONG_TIMEOUT": "2",
    "PRIMARY_CLOSE_TIMEOUT": "0.5",
    "PRIMARY_OPEN_TIMEOUT": "3",
    "PRIMARY_BACKOFF_BASE": "0.1",
    "PRIMARY_BACKOFF_CAP": "1",
    "PRIMARY_HTTP_TIMEOUT": "3",
}


EDGE = "edge-w"  # the node whose bus subscription goes through the proxy
SCENARIOS = ("latency", "kill", "handover", "redis", "wedge", "freeze")


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.database = f"cotiza_bench_{uuid.uuid4().hex[:10]}"
        self.dsn = f"{PG}/{self.database}"
        self.redis_server = RedisServer(workdir / "redis")
        self.fake = FakePrimaryProc(args.on_excess, args.max_sessions)
        self.proxy = TcpProxy(0)
        self.cluster: Cluster
        self.watchers: dict[str, Watcher] = {}
        self.symbols: list[str] = []
        self.results: dict[str, list[float]] = {
            k: []
            for k in (
                *("kill", "handover", "redis", "wedge", "freeze"),
                *("lat_p50", "lat_p99", "edge_p50", "edge_p99"),
            )
        }
        self.disconnects = {"kill": 0, "handover": 0, "redis": 0, "freeze": 0}
        self.sessions = {"refused_sessions": 0, "kicked_sessions": 0}
        self.failures: list[str] = []
        self.takeovers: list[float] = []  # wall times, for the history check
        self.latencies: list[float] = []

    async def setup(self) -> None:
        await admin(f'CREATE DATABASE "{self.database}"')
        self.redis_server.start()
        self.proxy.target_port = self.redis_server.port
        await self.proxy.start()
        url = "postgresql+asyncpg://" + self.dsn.split("://", 1)[1]
        from cotiza.fake_primary.engine import sim_instruments

        symbols = ",".join(i.symbol for i in sim_instruments()[: self.args.instruments])
        env = {**PRODUCTION_TIMINGS, **FAST_PRIMARY, "PRIMARY_ENV": self.fake.url}
        env["FEED_INSTRUMENTS"] = symbols
        env["PRIMARY_SESSION_GRACE"] = str(self.args.session_grace)
        self.cluster = Cluster(
            self.workdir / "nodes",
            url,
            self.redis_server.url,
            f"bench-{uuid.uuid4().hex[:8]}",
            **env,
        )
        first = self.cluster.start("node-a")
        await self.cluster.wait_ready(first, timeout=90)
        await self.cluster.leader(60)
        others = [self.cluster.start(n) for n in ("node-b", "node-c")]
        edge = self.cluster.start(EDGE, ROLE="edge", BACKPLANE=self.proxy.url)
        await self.cluster.wait_ready(*others, edge, timeout=90)
        self.symbols = await symbols_of(self.cluster, edge, timeout=60)
        for node in self.cluster.nodes:
            await self.attach(node)

    async def attach(self, node: Node) -> None:
        watcher = Watcher(node)
        await watcher.start(self.symbols)
        self.watchers[node.node_id] = watcher

    def live(self) -> list[Node]:
        latest: dict[str, Node] = {}
        for node in self.cluster.nodes:
            if node.alive():
                latest[node.node_id] = node
        return list(latest.values())

    def node(self, node_id: str) -> Node:
        return next(n for n in reversed(self.cluster.nodes) if n.node_id == node_id)

    async def trial(self, n: int) -> None:
        for name in self.args.scenarios:
            await asyncio.sleep(self.args.settle)
            await getattr(self, name)(n)

    async def latency(self, n: int) -> None:
        """Steady state: a non-leader's client against the leader's, for the same ticks.

        The target counts the nodes on the bus as deployed. The edge's subscription goes
        through this script's TCP proxy (a Python process hop that exists only to
        blackhole it), so its figure is printed apart, for information.
        """
        leader = await self.cluster.leader(30)
        followers = [node for node in self.live() if node is not leader]
        before = {node.node_id: await self.lag_histogram(node) for node in followers}
        since = time.monotonic()
        await asyncio.sleep(self.args.latency_window)
        direct: list[float] = []
        shown = []
        for node in followers:
            mine = bus_latency(self.watchers[leader.node_id], self.watchers[node.node_id], since)
            if not mine:
                continue
            p50, p99 = statistics.median(mine), pct(mine, 0.99)
            hop = bucket_median(before[node.node_id], await self.lag_histogram(node))
            hop_text = "" if hop is None else f", bus hop ~{hop:.2f}"
            shown.append(f"{node.node_id} p50 {p50:.2f}{hop_text} p99 {p99:.2f} ms")
            if node.node_id == EDGE:
                self.results["edge_p50"].append(p50)
                self.results["edge_p99"].append(p99)
            else:
                direct += mine
        print(f"  trial {n} latency: {'; '.join(shown)}", flush=True)
        self.latencies += direct
        if direct:
            self.results["lat_p50"].append(statistics.median(direct))
            self.results["lat_p99"].append(pct(direct, 0.99))

    async def lag_histogram(self, node: Node) -> dict[float, float]:
        """The node's bus lag histogram (leader publish to its receipt), from /metrics."""
        response = await self.cluster.get(node, "/metrics")
        return lag_buckets(response.text) if response is not None else {}

    async def kill(self, n: int) -> None:
        """Leader SIGKILL; the killed node is started again and rejoins as a standby."""
        c = self.cluster
        leader = await c.leader(30)
        survivors = [self.watchers[x.node_id] for x in self.live() if x is not leader]
        leader.signal(signal.SIGKILL)
        killed = time.monotonic()
        self.takeovers.append(time.time())
        gap = await wait_gap(survivors, killed, 30)
        self.record("kill", gap, n)
        self.disconnects["kill"] += sum(1 for w in survivors if not w.connected)
        await self.watchers[leader.node_id].stop()
        restarted = c.start(leader.node_id)
        await c.wait_ready(restarted, timeout=90)
        await self.attach(restarted)

    async def handover(self, n: int) -> None:
        """``POST /admin/handover`` to the leader; every client, the old leader's included."""
        c = self.cluster
        leader = await c.leader(30)
        everyone = [self.watchers[x.node_id] for x in self.live()]
        asked = time.monotonic()
        self.takeovers.append(time.time())
        response = await c.post(leader, "/admin/handover")
        if response.status_code != 200:
            self.failures.append(f"trial {n}: handover answered {response.status_code}")
        gap = await wait_gap(everyone, asked, 30)
        self.record("handover", gap, n)
        self.disconnects["handover"] += sum(1 for w in everyone if not w.connected)

    async def redis(self, n: int) -> None:
        """redis-server SIGKILLed for --redis-outage s, then started again (empty)."""
        everyone = [self.watchers[x.node_id] for x in self.live()]
        self.redis_server.kill()
        await asyncio.sleep(self.args.redis_outage)
        self.redis_server.start()
        back = time.monotonic()
        gap = await wait_gap(everyone, back, 30, skip=0.0)  # nothing was in flight
        self.record("redis", gap, n)
        self.disconnects["redis"] += sum(1 for w in everyone if not w.connected)

    async def wedge(self, n: int) -> None:
        """The edge's subscription blackholed at the proxy until its /readyz says 503."""
        c = self.cluster
        edge = self.node(EDGE)
        await c.wait_ready(edge, timeout=30)
        self.proxy.blackhole_subscriptions(persistent=True)
        cut = time.monotonic()
        detected: float | None = None
        while detected is None and time.monotonic() - cut < 30:
            if not await c.ready(edge):
                detected = time.monotonic() - cut
            await asyncio.sleep(0.02)
        self.record("wedge", detected, n)
        self.proxy.heal()
        await c.wait_ready(edge, timeout=60)

    async def freeze(self, n: int) -> None:
        """SIGSTOP the leader for --freeze s: what the broker's session limit makes of it."""
        c = self.cluster
        await asyncio.sleep(self.args.settle)
        leader = await c.leader(30)
        survivors = [self.watchers[x.node_id] for x in self.live() if x is not leader]
        before = await self.fake_state()
        leader.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        self.takeovers.append(time.time())
        gap = await wait_gap(survivors, frozen, self.args.freeze)
        await asyncio.sleep(max(0.0, frozen + self.args.freeze - time.monotonic()))
        leader.signal(signal.SIGCONT)
        if gap is None:  # nothing during the freeze: count until ticks come back after it
            gap = await wait_gap(survivors, frozen, self.args.freeze + 30)
        self.record("freeze", gap, n)
        self.disconnects["freeze"] += sum(1 for w in survivors if not w.connected)
        after = await self.fake_state()
        for key in ("refused_sessions", "kicked_sessions"):
            self.sessions[key] += int(after[key]) - int(before[key])
        while (block := await c.block(leader)) is None or block.get("leader") is True:
            if time.monotonic() - frozen > self.args.freeze + 60:
                self.failures.append(f"trial {n}: the woken leader never stepped down")
                break
            await asyncio.sleep(0.1)

    def record(self, name: str, value: float | None, n: int) -> None:
        if value is None:
            self.failures.append(f"trial {n}: {name} never recovered within 30 s")
        else:
            self.results[name].append(value)
        shown = "FAILED" if value is None else f"{value:.3f} s"
        print(f"  trial {n} {name}: {shown}", flush=True)

    async def close(self) -> None:
        for watcher in self.watchers.values():
            await watcher.stop()
        await self.cluster.close()
        await self.proxy.stop()
        self.redis_server.stop()
        self.fake.stop()
        await admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()"
        )
        await admin(f'DROP DATABASE IF EXISTS "{self.database}"')

    async def fake_state(self) -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(timeout=5) as http:
            body: dict[str, Any] = (await http.get(self.fake.url + "_fake/state")).json()
        return body


def line(name: str, values: list[float], target: str, ok: bool, unit: str = "s") -> None:
    if not values:
        print(f"{name:<44} no measurement              target {target:<10} FAIL")
        return
    worst, median = max(values), statistics.median(values)
    verdict = "ok" if ok else "MISSED"
    shown = f"max {worst:8.3f} {unit}  median {median:8.3f} {unit}"
    print(f"{name:<44} {shown}  target {target:<10} {verdict}")


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="cotiza-bench-cluster-") as tmp:
        bench = Bench(args, Path(args.workdir or tmp))
        try:
            await bench.setup()
            print(f"cluster up: 3 auto nodes + 1 edge, {len(bench.symbols)} symbols; "
                  f"{args.trials} trials", flush=True)  # fmt: skip
            for n in range(1, args.trials + 1):
                await bench.trial(n)
            state = await bench.fake_state()
            await asyncio.sleep(2)  # the writer's last batch
            duplicates, missing = await history_faults(
                bench.dsn, bench.takeovers, float(PRODUCTION_TIMINGS["RATIO_SAMPLE_INTERVAL"])
            )
        finally:
            await bench.close()
    r = bench.results
    print(
        f"\ncluster bench, {args.trials} trials, max {args.max_sessions} session(s) per user, "
        f"on-excess {args.on_excess}, PRIMARY_SESSION_GRACE {args.session_grace:g}; "
        "max over trials:"
    )
    targets = [
        ("kill", "kill", "ticks again after leader SIGKILL", 8.0, "s"),
        ("handover", "handover", "gap over a planned handover", 2.0, "s"),
        ("redis", "redis", "fresh ticks after a 5 s Redis outage", 2.0, "s"),
        ("wedge", "wedge", "wedged subscription detected", 3.0, "s"),
        ("latency", "lat_p50", "bus-added latency p50 (per trial)", 2.0, "ms"),
        ("latency", "lat_p99", "bus-added latency p99 (per trial)", 10.0, "ms"),
    ]
    for scenario, key, name, target, unit in targets:
        if scenario in args.scenarios:
            values = r[key]
            line(name, values, f"<= {target:g} {unit}", max(values or [1e9]) <= target, unit)
    if "latency" in args.scenarios and r["edge_p50"]:
        edge = f"p50 max {max(r['edge_p50']):.3f} ms  p99 max {max(r['edge_p99']):.3f} ms"
        print(f"{'  the edge, via the TCP proxy (information)':<44} {edge}")
    lat = bench.latencies
    if lat:
        pooled = f"p50 {statistics.median(lat):.3f} ms"
        pooled += f"  p99 {pct(lat, 0.99):.3f} ms ({len(lat)} ticks)"
        print(f"{'bus-added latency, all ticks pooled':<44} {pooled}")
    d = bench.disconnects
    counts = f"{d['kill']} / {d['handover']} / {d['redis']}"
    print(f"{'client disconnects (kill / handover / redis)':<44} {counts}  target 0")
    peak = state.get("peak_sessions")
    print(f"{'upstream peak_sessions (fake Primary)':<44} {peak}  target 1  "
          f"(refused handshakes: {state.get('refused_sessions', '-')})")  # fmt: skip
    print(f"{'duplicate history samples':<44} {duplicates}  target 0")
    print(f"{'most samples missing, one pair, one takeover':<44} {missing}  target <= 1")
    if "freeze" in args.scenarios:
        line(f"ticks again after a {args.freeze:g} s leader freeze", r["freeze"], "-", True)
        print(
            f"{'sessions over the freezes: refused / kicked':<44} "
            f"{bench.sessions['refused_sessions']} / {bench.sessions['kicked_sessions']}"
            f"  (survivor disconnects: {d['freeze']})"
        )
    for failure in bench.failures:
        print(f"FAILURE: {failure}")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--on-excess", choices=("refuse", "kick-oldest"), default="refuse")
    parser.add_argument("--instruments", type=int, default=20, help="symbols subscribed")
    parser.add_argument("--max-sessions", type=int, default=1, help="fake Primary, per user")
    parser.add_argument("--session-grace", type=float, default=0.0, help="PRIMARY_SESSION_GRACE")
    parser.add_argument("--freeze", type=float, default=15.0, help="SIGSTOP of 'freeze' (s)")
    parser.add_argument(
        "--scenarios",
        type=lambda text: [w.strip() for w in text.split(",") if w.strip()],
        default=["latency", "kill", "handover", "redis", "wedge"],
        help="comma-separated, in order, from latency,kill,handover,redis,wedge,freeze",
    )
    parser.add_argument("--workdir", default=None, help="keep the nodes' logs here")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between scenarios")
    parser.add_argument("--latency-window", type=float, default=5.0)
    parser.add_argument("--redis-outage", type=float, default=5.0)
    options = parser.parse_args()
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    sys.exit(asyncio.run(main(options)))
