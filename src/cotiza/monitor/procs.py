"""Processes and ports: who holds a port, whether it is ours, and what a tree consumes."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import psutil

from cotiza.monitor.ledger import MonitorState


class Owner(StrEnum):
    """Whose a process holding the service's port is."""

    OURS = "ours"  # the service the monitor supervises, or one of its children
    ORPHAN = "orphan"  # left over from an earlier run: its process group leader is gone
    UNMANAGED = "unmanaged"  # a cotiza service started by hand, without a monitor
    FOREIGN = "foreign"  # some other program
    UNKNOWN = "unknown"  # the kernel would not say (another user's process)


@dataclass(frozen=True)
class Holder:
    pid: int | None
    command: str
    owner: Owner
    note: str = ""

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid else "an unknown process"
        text = f"{who} ({self.command})" if self.command else who
        return f"{text}, {self.owner.value}" + (f": {self.note}" if self.note else "")


_SERVICE_SCRIPTS = {"main.py"}


def command_line(pid: int, limit: int = 160) -> str:
    try:
        words = psutil.Process(pid).cmdline()
    except psutil.Error:
        return ""
    text = shlex.join(words)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cotiza_args(cmdline: Sequence[str]) -> list[str] | None:
    """The arguments of a ``cotiza`` command line (the console script, run directly or by
    an interpreter, or ``python -m cotiza``); None for any other command."""
    names = [os.path.basename(word) for word in cmdline]
    if names[:1] == ["cotiza"]:
        return list(cmdline[1:])
    if names[1:2] == ["cotiza"]:
        return list(cmdline[2:])
    if names[1:3] == ["-m", "cotiza"]:
        return list(cmdline[3:])
    return None


def looks_like_service(cmdline: Sequence[str], command: Sequence[str] | None = None) -> bool:
    """True for ``python main.py``, ``cotiza serve`` (``python -m cotiza serve`` too),
    ``uvicorn main:app`` or ``command``."""
    if command and list(cmdline) == list(command):
        return True
    names = [os.path.basename(word) for word in cmdline]
    if any(name in _SERVICE_SCRIPTS for name in names[1:3]):
        return True
    args = _cotiza_args(cmdline)
    if args is not None:
        return "serve" in args[:1]
    return "main:app" in cmdline and any(name.startswith("uvicorn") for name in names[:3])


def looks_like_monitor(cmdline: Sequence[str]) -> bool:
    names = [os.path.basename(word) for word in cmdline]
    if "monitor_service.py" in names[1:3]:
        return True
    args = _cotiza_args(cmdline)
    if args is None or args[:1] != ["monitor"]:
        return False
    return not ({"status", "restart"} & set(args))


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def alive(pid: int | None, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if given, was created at ``create_time``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.5
    except psutil.Error:
        return False


def is_stopped(pid: int) -> bool:
    """Stopped by SIGSTOP (or a debugger): it cannot run any signal handler."""
    try:
        return psutil.Process(pid).status() in {psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP}
    except psutil.Error:
        return False


def listeners(port: int) -> list[int | None]:
    """Pids with a TCP socket listening on ``port`` (None when the kernel hides the pid)."""
    found: list[int | None] = []
    for conn in psutil.net_connections(kind="inet"):
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if listening and conn.pid not in found:
            found.append(conn.pid)
    return found


def port_accepts(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    members = []
    for pid in psutil.pids():
        if pgid_of(pid) == pgid and alive(pid):
            members.append(pid)
    return members


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def classify(
    pid: int | None, state: MonitorState | None, command: Sequence[str] | None = None
) -> Holder:
    """Say whose the process ``pid`` is, from the monitor's state and the process table."""
    if pid is None:
        return Holder(None, "", Owner.UNKNOWN, "the kernel did not name the process")
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except psutil.Error:
        return Holder(pid, "", Owner.UNKNOWN, "the process is gone")
    text = command_line(pid)
    pgid = pgid_of(pid)
    if state is not None and state.service_pid:
        leader_alive = alive(state.service_pid, state.service_create_time)
        monitor = f"monitor pid {state.monitor_pid}"
        if pid == state.service_pid and leader_alive:
            return Holder(pid, text, Owner.OURS, f"supervised by {monitor}")
        if pgid is not None and pgid == state.service_pgid:
            if leader_alive:
                return Holder(pid, text, Owner.OURS, f"child of service pid {state.service_pid}")
            return Holder(
                pid, text, Owner.ORPHAN, f"left by service pid {state.service_pid} (group {pgid})"
            )
    if pgid is not None and pgid != pid and not alive(pgid):
        return Holder(pid, text, Owner.ORPHAN, f"its process group leader {pgid} is gone")
    if looks_like_service(cmdline, command):
        return Holder(pid, text, Owner.UNMANAGED, "a cotiza service without a monitor")
    return Holder(pid, text, Owner.FOREIGN, "not a cotiza service")


def holders(
    port: int, state: MonitorState | None, command: Sequence[str] | None = None
) -> list[Holder]:
    return [classify(pid, state, command) for pid in listeners(port)]


@dataclass(frozen=True)
class TreeStats:
    """Resources of a process and its descendants."""

    processes: int
    rss_mb: float
    cpu_percent: float
    threads: int
    open_files: int
    status: str


class TreeSampler:
    """Samples a process tree; keeps ``Process`` objects so CPU percent has a baseline."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, pid: int) -> TreeStats | None:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
            status = root.status()
        except psutil.Error:
            return None
        rss = cpu = 0.0
        threads = files = 0
        seen: dict[int, psutil.Process] = {}
        for proc in members:
            cached = self._procs.get(proc.pid, proc)
            seen[proc.pid] = cached
            with contextlib.suppress(psutil.Error), cached.oneshot():
                rss += cached.memory_info().rss
                cpu += cached.cpu_percent(None)
                threads += cached.num_threads()
                files += cached.num_fds()
        self._procs = seen
        return TreeStats(len(members), rss / 1_048_576, cpu, threads, files, status)


def live_monitor(state: MonitorState | None) -> int | None:
    """The pid of another live monitor named by the state file (a lock file can be deleted)."""
    if state is None or state.monitor_pid == os.getpid() or not alive(state.monitor_pid):
        return None
    try:
        cmdline = psutil.Process(state.monitor_pid).cmdline()
    except psutil.Error:
        return None
    return state.monitor_pid if looks_like_monitor(cmdline) else None
