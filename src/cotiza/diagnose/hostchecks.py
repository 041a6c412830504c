"""``diagnose`` checks that look at the machine: resources, processes, the monitor's ledger."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import psutil

from cotiza.diagnose.findings import Finding, Level
from cotiza.monitor import procs
from cotiza.monitor.ledger import Ledger, MonitorLock, MonitorState, RunPaths, utc_iso

CPU_WARN, MEMORY_WARN, DISK_WARN = 80.0, 90.0, 90.0


class ServiceTree(TypedDict):
    pid: int
    status: str
    processes: int
    rss_mb: float
    cpu_percent: float
    threads: int
    open_files: int


class ResourcesData(TypedDict):
    cpu_percent: float
    memory_percent: float
    disk_percent: dict[str, float]
    service: NotRequired[ServiceTree]


class ProcessesData(TypedDict):
    services: list[str]
    monitors: list[str]
    other_ports: list[str]
    lock: int | None  # the pid holding the monitor's lock (-1: held, pid unreadable)


class LedgerData(TypedDict):
    monitor_running: bool
    state: str | None
    restarts_last_hour: int
    restarts_in_window: int | None
    last: list[dict[str, Any]]  # ledger entries as written


async def resources(pid: int | None, disk_paths: tuple[Path, ...]) -> Finding:
    return await asyncio.to_thread(_resources, pid, disk_paths)


def _resources(pid: int | None, disk_paths: tuple[Path, ...]) -> Finding:
    cpu = psutil.cpu_percent(interval=0.3)
    memory = psutil.virtual_memory().percent
    disks = {str(p): psutil.disk_usage(str(p)).percent for p in disk_paths or (Path.cwd(),)}
    data: ResourcesData = {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": disks}
    warnings = []
    if cpu > CPU_WARN:
        warnings.append(f"CPU {cpu:.0f} % (> {CPU_WARN:.0f})")
    if memory > MEMORY_WARN:
        warnings.append(f"memory {memory:.0f} % (> {MEMORY_WARN:.0f})")
    warnings += [f"disk {p} {u:.0f} % full" for p, u in disks.items() if u > DISK_WARN]
    disk_text = ", ".join(f"{p} {u:.0f} %" for p, u in disks.items())
    summary = f"CPU {cpu:.0f} %, memory {memory:.0f} %, disk {disk_text}"
    lines = []
    if pid:
        sampler = procs.TreeSampler()
        sampler.sample(pid)
        time.sleep(0.2)  # a second sample gives the tree's CPU percent
        stats = sampler.sample(pid)
        if stats is not None:
            data["service"] = {
                "pid": pid,
                "status": stats.status,
                "processes": stats.processes,
                "rss_mb": round(stats.rss_mb, 1),
                "cpu_percent": round(stats.cpu_percent, 1),
                "threads": stats.threads,
                "open_files": stats.open_files,
            }
            lines.append(
                f"service pid {pid}: {stats.status}, {stats.processes} process(es), "
                f"RSS {stats.rss_mb:.0f} MiB, CPU {stats.cpu_percent:.0f} %, "
                f"{stats.threads} threads, {stats.open_files} open files"
            )
            if procs.is_stopped(pid):
                summary = f"service pid {pid} is stopped (SIGSTOP); {summary}"
                hint = f"resume it with kill -CONT {pid}, or let the monitor restart it"
                return Finding("resources", Level.CRIT, summary, lines, hint, data)
    if warnings:
        hint = "find the top consumer (ps aux --sort=-%mem) and free disk or memory"
        return Finding("resources", Level.WARN, "; ".join(warnings), lines, hint, data)
    return Finding("resources", Level.OK, summary, lines, None, data)


def _claimed_port(proc: psutil.Process, cmdline: list[str]) -> int | None:
    for i, word in enumerate(cmdline):
        if word == "--port" and i + 1 < len(cmdline) and cmdline[i + 1].isdigit():
            return int(cmdline[i + 1])
        if word.startswith("--port="):
            given = word.split("=", 1)[1]
            return int(given) if given.isdigit() else None
    try:
        value = proc.environ().get("PORT")
    except psutil.Error:
        value = None
    return int(value) if value and value.isdigit() else 8000


async def processes(port: int, paths: RunPaths) -> Finding:
    return await asyncio.to_thread(_processes, port, paths)


def _processes(port: int, paths: RunPaths) -> Finding:
    me = os.getpid()
    services: list[str] = []
    monitors: list[str] = []
    others: list[str] = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = proc.info["cmdline"] or []
        if proc.pid == me or not cmdline:
            continue
        service, monitor = procs.looks_like_service(cmdline), procs.looks_like_monitor(cmdline)
        if not (service or monitor):
            continue
        claimed = _claimed_port(proc, cmdline)
        line = f"{'service' if service else 'monitor'} pid {proc.pid} port {claimed}: "
        line += procs.command_line(proc.pid, 100)
        if claimed != port:
            others.append(line)
        elif service:
            services.append(line)
        else:
            monitors.append(line)
    holder = MonitorLock(paths.lock).holder()
    data: ProcessesData = {
        "services": services,
        "monitors": monitors,
        "other_ports": others,
        "lock": holder,
    }
    lines = services + monitors + others
    problems = []
    if len(services) > 1:
        problems.append(f"{len(services)} service processes for port {port}")
    if len(monitors) > 1:
        problems.append(f"{len(monitors)} monitors for port {port}")
    if problems:
        hint = "stop the extra copies: only one service and one monitor per port"
        return Finding(
            "processes", Level.WARN, "duplicates: " + "; ".join(problems), lines, hint, data
        )
    summary = f"{len(services)} service and {len(monitors)} monitor process(es) for port {port}"
    if others:
        summary += f"; {len(others)} for other ports"
    return Finding("processes", Level.OK, summary, lines, None, data)


async def ledger(paths: RunPaths, state: MonitorState | None) -> Finding:
    entries = await asyncio.to_thread(Ledger(paths.ledger).read, 500)
    if state is None and not entries:
        return Finding(
            "ledger", Level.OK, f"no monitor ledger for port {paths.port} in {paths.run_dir}"
        )
    now = time.time()
    restarts = [e for e in entries if e.event in {"restart", "gave_up"}]
    lines = []
    for entry in restarts[-5:]:
        exit_text = (
            f"signal {entry.signal}"
            if entry.signal
            else f"exit {entry.exit_code}"
            if entry.exit_code is not None
            else "running"
        )
        lines.append(f"{utc_iso(entry.ts)} {entry.event}: {entry.reason} ({exit_text})")
    monitor_alive = MonitorLock(paths.lock).holder() is not None
    recent = [e for e in restarts if now - e.ts < 3600]
    data: LedgerData = {
        "monitor_running": monitor_alive,
        "state": state.state if state else None,
        "restarts_last_hour": len(recent),
        "restarts_in_window": state.restarts_in_window(now) if state else None,
        "last": [e.as_dict() for e in restarts[-5:]],
    }
    who = f"monitor pid {state.monitor_pid} {state.state}" if state else "monitor"
    summary = f"{who}, {len(recent)} restart(s) in the last hour"
    if state is not None and monitor_alive and state.state == "GAVE_UP":
        hint = "the monitor gave up: fix the cause (see RUN_DIR/incidents); it resumes by itself"
        return Finding(
            "ledger", Level.CRIT, f"{summary}; gave up: {state.gave_up_reason}", lines, hint, data
        )
    if not monitor_alive:
        summary = (
            f"no monitor running for port {paths.port}; {len(recent)} restart(s) in the last hour"
        )
        hint = f"supervise it: python3 monitor_service.py --port {paths.port}"
        return Finding("ledger", Level.WARN, summary, lines, hint, data)
    if recent:
        hint = "see the incident files in RUN_DIR/incidents for each restart's evidence"
        return Finding("ledger", Level.WARN, summary, lines, hint, data)
    return Finding("ledger", Level.OK, summary, lines, None, data)
