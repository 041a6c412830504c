"""``diagnose``: eight checks of a cotiza service (ten in cluster mode), each with a timeout.

port → HTTP → WebSocket depend on each other (a later one is skipped, with the reason,
when an earlier one failed); resources, database, processes and the monitor's ledger
run alongside; with ``BACKPLANE`` set, the backplane and cluster checks follow
(``cotiza.diagnose.clustercheck``). The result is a ``Report`` with Nagios exit codes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

from cotiza.diagnose import clustercheck, dbcheck, hostchecks
from cotiza.diagnose.findings import Finding, Level, Report, guarded, skipped
from cotiza.diagnose.origins import check_origins
from cotiza.monitor import probes, procs
from cotiza.monitor.ledger import RunPaths, read_state

SLOW_ANSWER = 5.0  # seconds: an answer slower than this is a warning

# One fix hint per kind of problem in /health/detailed, by check name prefix.
CHECK_HINTS = {
    "event_loop": "the event loop is blocked: dump the stacks (kill -USR1 PID, see "
    "RUN_DIR/stack-PID.txt) and look for a blocking call",
    "feed:staleness": "the feed delivers no data: check the upstream connection and "
    "credentials, market hours (MARKET_HOURS), or POST /cotizaciones/reiniciar",
    "feed:state": "the feed is not connected: POST /cotizaciones/iniciar_auto and check its "
    "last_error in /cotizaciones/status",
    "database": "the database is slow or unreachable: check DATABASE_URL and the server",
    "workers": "a background worker died: see the service log for its traceback and restart",
    "process:memory": "memory is high: compare with earlier runs; the monitor restarts "
    "the service past --memory-limit-mb",
    "websocket": "WebSocket connections are at MAX_WEBSOCKET_CONNECTIONS",
}


class PortData(TypedDict):
    listening: bool
    pid: NotRequired[int | None]  # the holder shown first, when the kernel names one
    command: NotRequired[str]
    owner: NotRequired[str]
    note: NotRequired[str]


class EndpointData(TypedDict):
    status: int | None
    latency_ms: float
    error: str | None


class HttpData(TypedDict):
    endpoints: dict[str, EndpointData]
    liveness_ok: bool
    status: str | None  # of /health/detailed
    problems: list[str]


class WebSocketData(TypedDict):
    outcome: str
    connect_ms: float | None
    pong_ms: float | None
    first_tick_ms: float | None


@dataclass(frozen=True)
class DiagnoseConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    http_timeout: float = 6.0
    ws_timeout: float = 5.0
    token: str | None = None
    run_dir: Path = Path("var")
    database_url: str = ""
    db_timeout: float = 5.0
    market_open: bool = True
    sample_interval: float = 10.0
    disk_paths: tuple[Path, ...] = field(default_factory=tuple)
    cluster: clustercheck.ClusterConfig | None = None  # BACKPLANE set: cluster mode


async def diagnose(config: DiagnoseConfig) -> Report:
    started_wall, started = time.time(), time.perf_counter()
    paths = RunPaths(config.run_dir, config.port)
    state = read_state(paths.state)
    port = await guarded("port", check_port(config), 5.0)
    pid = port.data.get("pid")
    holder_pid = pid if isinstance(pid, int) else None
    others = asyncio.gather(
        guarded("resources", hostchecks.resources(holder_pid, config.disk_paths), 5.0),
        guarded(
            "database",
            dbcheck.database(
                config.database_url, config.db_timeout, config.market_open, config.sample_interval
            ),
            config.db_timeout + 1,
        ),
        guarded("processes", hostchecks.processes(config.port, paths), 5.0),
        guarded("ledger", hostchecks.ledger(paths, state), 5.0),
    )
    if port.level is Level.CRIT and port.data.get("listening"):
        http = skipped("http", "the port is held by another program")
    elif port.data.get("listening"):
        http = await guarded("http", check_http(config), config.http_timeout + 2)
    else:
        http = skipped("http", f"nothing listens on port {config.port}")
    if http.data.get("liveness_ok"):
        ws = await guarded("websocket", check_websocket(config), 2 * config.ws_timeout + 2)
    else:
        why = "HTTP was skipped" if http.level is Level.SKIP else "the HTTP health check failed"
        ws = skipped("websocket", why)
    if http.data.get("liveness_ok"):
        check = check_origins(config.host, config.port, config.token, config.http_timeout)
        origins = await guarded("origins", check, config.http_timeout + 2)
    else:
        origins = skipped("origins", "HTTP was skipped or failed")
    resources, database, processes, ledger = await others
    findings = [port, http, ws, origins, resources, database, processes, ledger]
    if config.cluster is not None:
        budget = 3 * config.cluster.timeout + 2
        findings += await asyncio.gather(
            guarded("backplane", clustercheck.backplane(config.cluster), budget),
            guarded("cluster", clustercheck.cluster(config.cluster), budget),
        )
    return Report(config.host, config.port, started_wall, time.perf_counter() - started, findings)


async def check_port(config: DiagnoseConfig) -> Finding:
    state = read_state(RunPaths(config.run_dir, config.port).state)
    accepts = await asyncio.to_thread(procs.port_accepts, config.host, config.port, 1.0)
    found = await asyncio.to_thread(procs.holders, config.port, state)
    data: PortData = {"listening": accepts or bool(found)}
    if not found:
        if accepts:
            return Finding(
                "port",
                Level.WARN,
                f"{config.port} accepts connections but its holder is hidden",
                hint="run diagnose as the service's user (or root) to see the holder",
                data=data,
            )
        return Finding(
            "port",
            Level.CRIT,
            f"nothing listens on {config.host}:{config.port}",
            hint=f"start it: python3 main.py --port {config.port} "
            f"(or supervised: python3 monitor_service.py --port {config.port})",
            data=data,
        )
    rank = [procs.Owner.OURS, procs.Owner.UNMANAGED, procs.Owner.ORPHAN, procs.Owner.FOREIGN]
    found.sort(key=lambda h: rank.index(h.owner) if h.owner in rank else len(rank))
    main = found[0]
    data["pid"], data["command"] = main.pid, main.command
    data["owner"], data["note"] = main.owner.value, main.note
    lines = [h.describe() for h in found[1:]]
    summary = f"{config.port} listening: {main.describe()}"
    if any(h.owner is procs.Owner.FOREIGN for h in found):
        foreign = next(h for h in found if h.owner is procs.Owner.FOREIGN)
        hint = f"stop pid {foreign.pid} or run cotiza on another port (--port / PORT)"
        return Finding("port", Level.CRIT, summary, lines, hint, data)
    if any(h.owner is procs.Owner.ORPHAN for h in found):
        orphan = next(h for h in found if h.owner is procs.Owner.ORPHAN)
        group = procs.pgid_of(orphan.pid) if orphan.pid else None
        leftover = f"a leftover of an earlier run: kill -TERM -- -{group}" if group else None
        return Finding("port", Level.WARN, summary, lines, leftover, data)
    if any(h.owner is procs.Owner.UNKNOWN for h in found):
        return Finding("port", Level.WARN, summary, lines, None, data)
    return Finding("port", Level.OK, summary, lines, None, data)


async def check_http(config: DiagnoseConfig) -> Finding:
    timeout = config.http_timeout
    async with probes.client(config.host, config.port, config.token) as http:
        results = await asyncio.gather(
            probes.http_get(http, probes.LIVENESS_PATH, timeout),
            probes.http_get(http, probes.DETAILED_PATH, timeout),
            probes.http_get(http, "/cotizaciones/status", timeout),
            probes.http_get(http, "/", timeout, follow=True),
        )
    live, detailed = probes.judge_liveness(results[0]), probes.judge_detailed(results[1])
    lines = []
    endpoints: dict[str, EndpointData] = {}
    bad: list[str] = []
    slow: list[str] = []
    for result in results:
        shown = result.error or f"HTTP {result.status}"
        lines.append(f"{result.path:<22} {shown:<24} {result.latency * 1000:8.0f} ms")
        endpoints[result.path] = {
            "status": result.status,
            "latency_ms": round(result.latency * 1000, 1),
            "error": result.error,
        }
        if result.error or (result.status is not None and result.status >= 400):
            bad.append(result.describe())
        elif result.latency > SLOW_ANSWER:
            slow.append(f"{result.path} took {result.latency:.1f} s")
    lines.extend(f"  {problem}" for problem in detailed.problems)
    data: HttpData = {
        "endpoints": endpoints,
        "liveness_ok": live.ok,
        "status": detailed.status,
        "problems": list(detailed.problems),
    }
    failures = [v.reason for v in (live, detailed) if not v.ok] + bad
    if failures:
        hint = _hint(detailed.problems) or _unreachable_hint(results[0])
        return Finding("http", Level.CRIT, failures[0], lines, hint, data)
    if slow or detailed.status == "degraded":
        summary = "; ".join(slow) or f"degraded: {', '.join(detailed.problems) or 'no detail'}"
        return Finding("http", Level.WARN, summary, lines, _hint(detailed.problems), data)
    fastest = max(r.latency for r in results) * 1000
    summary = f"{len(results)} endpoints answered (slowest {fastest:.0f} ms); status healthy"
    return Finding("http", Level.OK, summary, lines, None, data)


def _hint(problems: tuple[str, ...]) -> str | None:
    for problem in problems:
        for prefix, hint in CHECK_HINTS.items():
            if problem.startswith(prefix):
                return hint
    return None


def _unreachable_hint(result: probes.HttpResult) -> str:
    if result.error and "timed out" in result.error:
        return (
            "the port accepts connections but HTTP does not answer: the process is hung "
            "(stopped, or its event loop blocked); see resources, kill -USR1 PID for stacks, "
            "then restart it"
        )
    return "the service answers with errors: read its log (RUN_DIR/service-PORT.log)"


async def check_websocket(config: DiagnoseConfig) -> Finding:
    url = probes.ws_url(config.host, config.port)
    async with probes.client(config.host, config.port, config.token) as http:
        result = await probes.ws_canary(
            http, url, config.ws_timeout, config.ws_timeout, config.token
        )
    parts = []
    if result.connect_s is not None:
        parts.append(f"connect {result.connect_s * 1000:.0f} ms")
    if result.pong_s is not None:
        parts.append(f"pong {result.pong_s * 1000:.0f} ms")
    if result.tick_s is not None:
        parts.append(f"fresh tick after {result.tick_s * 1000:.0f} ms ({result.symbols} symbols)")
    data: WebSocketData = {
        "outcome": result.outcome.value,
        "connect_ms": None if result.connect_s is None else round(result.connect_s * 1000, 1),
        "pong_ms": None if result.pong_s is None else round(result.pong_s * 1000, 1),
        "first_tick_ms": None if result.tick_s is None else round(result.tick_s * 1000, 1),
    }
    summary = ", ".join(parts) or result.detail
    if result.outcome is probes.Canary.PASS:
        return Finding("websocket", Level.OK, summary, data=data)
    if result.outcome is probes.Canary.QUIET:
        hint = "no fresh data upstream: check the feed in /cotizaciones/status (market hours?)"
        return Finding("websocket", Level.WARN, f"{summary}; {result.detail}", [], hint, data)
    hint = "WebSocket delivery is broken while HTTP answers: restart the service"
    return Finding("websocket", Level.CRIT, f"{result.detail}", parts, hint, data)
