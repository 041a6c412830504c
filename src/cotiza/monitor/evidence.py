"""Evidence captured before a restart: stack dump, last health answer, last log lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

import psutil

from cotiza.monitor.ledger import RunPaths, tail, utc_iso
from cotiza.monitor.procs import is_stopped
from cotiza.stackdump import DUMP_SIGNAL, stack_file


class ProcessInfo(TypedDict, total=False):
    """The process as it was before the restart (only ``error`` when it could not be read)."""

    status: str
    rss_mb: float
    threads: int
    cmdline: list[str]
    started: str
    error: str


@dataclass
class Incident:
    """One incident file: why we restarted and what the process looked like."""

    reason: str
    pid: int
    time: str
    process: ProcessInfo = field(default_factory=ProcessInfo)
    stack_dump: str | None = None
    stack_note: str = ""
    last_health: object = None  # the last /health/detailed body, or why there was none
    log_tail: list[str] = field(default_factory=list)


def catches_signal(pid: int, signum: int) -> bool:
    """Whether ``pid`` installed a handler for ``signum`` (``SigCgt`` in /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return False
    match = re.search(r"^SigCgt:\s*([0-9a-fA-F]+)$", text, re.MULTILINE)
    return match is not None and bool(int(match.group(1), 16) & (1 << (signum - 1)))


def _process_info(pid: int) -> ProcessInfo:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return {
                "status": proc.status(),
                "rss_mb": round(proc.memory_info().rss / 1_048_576, 1),
                "threads": proc.num_threads(),
                "cmdline": proc.cmdline(),
                "started": utc_iso(proc.create_time()),
            }
    except psutil.Error as exc:
        return {"error": type(exc).__name__}


async def _stack_dump(run_dir: Path, pid: int, wait: float) -> tuple[str | None, str]:
    if is_stopped(pid):
        return None, "the process is stopped (SIGSTOP): it cannot dump its stack"
    if not catches_signal(pid, DUMP_SIGNAL):
        return None, "the process has no SIGUSR1 handler (faulthandler not registered)"
    path = stack_file(run_dir, pid)
    before = _size(path)
    os.kill(pid, DUMP_SIGNAL)
    deadline = time.monotonic() + wait
    size = before
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        size = _size(path)
        # faulthandler writes in several calls: wait until the file stops growing.
        if size > before and await _settled(path, size):
            break
    if size <= before:
        return None, f"no stack dump in {path} within {wait:g} s"
    with path.open("rb") as handle:
        handle.seek(before)
        return handle.read().decode("utf-8", errors="replace"), str(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _settled(path: Path, size: int) -> bool:
    await asyncio.sleep(0.05)
    return _size(path) == size


async def capture(
    paths: RunPaths, pid: int, reason: str, last_health: object, log_lines: int, wait: float = 1.0
) -> Path:
    """Write an incident file for ``pid`` and return its path."""
    now = time.time()
    stack, note = await _stack_dump(paths.run_dir, pid, wait)
    incident = Incident(
        reason=reason,
        pid=pid,
        time=utc_iso(now),
        process=_process_info(pid),
        stack_dump=stack,
        stack_note=note,
        last_health=last_health,
        log_tail=tail(paths.service_log, log_lines),
    )
    paths.incidents.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    path = paths.incidents / f"{stamp}-{int(now * 1000) % 1000:03d}-pid{pid}.json"
    path.write_text(json.dumps(asdict(incident), indent=1, default=str), encoding="utf-8")
    return path
