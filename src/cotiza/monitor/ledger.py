"""The monitor's files: a JSON-lines ledger, a state file for adoption, and a lock.

Everything lives under the run directory and is keyed by port, so that monitors of
services on different ports never share a file:

- ``monitor-PORT.jsonl``: one JSON object per event (start, failure, restart, give-up...);
- ``monitor-PORT.json``: the current state, rewritten atomically; a new monitor reads it
  to adopt the running service instead of starting a second copy;
- ``monitor-PORT.lock``: held (``flock``) by the live monitor; the kernel drops it when
  the monitor dies, even by SIGKILL;
- ``service-PORT.log``: the service's stdout and stderr;
- ``incidents/``: evidence captured before each restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TextIO

from typing_extensions import TypedDict  # pydantic validates these (API response models)


@dataclass(frozen=True)
class RunPaths:
    """File names of one supervised port."""

    run_dir: Path
    port: int

    @property
    def state(self) -> Path:
        return self.run_dir / f"monitor-{self.port}.json"

    @property
    def ledger(self) -> Path:
        return self.run_dir / f"monitor-{self.port}.jsonl"

    @property
    def lock(self) -> Path:
        return self.run_dir / f"monitor-{self.port}.lock"

    @property
    def service_log(self) -> Path:
        return self.run_dir / f"service-{self.port}.log"

    @property
    def incidents(self) -> Path:
        return self.run_dir / "incidents"


def utc_iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Entry:
    """One ledger line. ``event`` is start, adopt, ready, failure, handover, restart,
    start_failed, exit, gave_up, resumed, recovered, cpu_high, monitor_start or monitor_stop."""

    event: str
    ts: float = field(default_factory=time.time)
    pid: int | None = None
    reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    state: str | None = None
    incident: str | None = None
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        data["time"] = utc_iso(self.ts)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def rotate(path: Path, max_bytes: int) -> None:
    """Move ``path`` to ``path.1`` once it is larger than ``max_bytes`` (one old copy kept)."""
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


class Ledger:
    """Append-only JSON lines; readers skip a torn last line instead of failing."""

    MAX_BYTES = 8 * 1024 * 1024

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: Entry) -> Entry:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rotate(self.path, self.MAX_BYTES)
        line = json.dumps(entry.as_dict(), ensure_ascii=False, default=str)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return entry

    def read(self, limit: int | None = None) -> list[Entry]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries: list[Entry] = []
        for line in lines[-limit:] if limit else lines:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash in the middle of a write
            if isinstance(data, dict) and "event" in data:
                entries.append(Entry.from_dict(data))
        return entries


class Reason(TypedDict):
    """Why the monitor last restarted or gave up, as kept in the state file."""

    ts: float
    event: str
    reason: str
    exit: NotRequired[str]  # "signal 9 (SIGKILL)", "exit code 3"


@dataclass
class MonitorState:
    """What a monitor publishes about itself and its service (``monitor-PORT.json``)."""

    port: int
    monitor_pid: int
    state: str
    command: list[str] = field(default_factory=list)
    service_pid: int | None = None
    service_pgid: int | None = None
    service_create_time: float | None = None
    service_started_at: float | None = None
    monitor_started_at: float = field(default_factory=time.time)
    restarts: list[float] = field(default_factory=list)
    restart_window: float = 0.0
    max_restarts: int = 0
    last_reasons: list[Reason] = field(default_factory=list)
    gave_up_reason: str | None = None
    updated_at: float = field(default_factory=time.time)

    def restarts_in_window(self, now: float) -> int:
        return sum(1 for ts in self.restarts if now - ts <= self.restart_window)


def write_state(path: Path, state: MonitorState) -> None:
    """Replace the state file atomically: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state.updated_at = time.time()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> MonitorState | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(MonitorState)}
    try:
        return MonitorState(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


class MonitorLock:
    """One monitor per port: an exclusive ``flock`` the kernel releases when we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def holder(self) -> int | None:
        """The pid of the monitor holding the lock, or None when nobody holds it."""
        try:
            with self.path.open("r", encoding="utf-8") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:
                    text = handle.read().strip()
                    return int(text) if text.isdigit() else -1
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
        except FileNotFoundError:
            return None


def tail(path: Path, lines: int, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``lines`` lines of a text file (reading at most ``max_bytes``)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def tail_entries(path: Path, max_bytes: int = 64 * 1024) -> list[Entry]:
    """The entries in the last ``max_bytes`` of a ledger, without reading all of it."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            chunk = handle.read()
    except FileNotFoundError:
        return []
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes:
        lines = lines[1:]  # the first line was cut by the seek
    entries = []
    for line in lines:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "event" in data:
            entries.append(Entry.from_dict(data))
    return entries


class RestartNote(TypedDict):
    time: str
    timestamp: float
    event: str  # restart or gave_up
    reason: str | None


class MonitorSummary(TypedDict):
    """The ``monitor`` member of ``/health/detailed``."""

    state: str | None
    monitor_pid: int | None
    restarts_in_window: int | None
    restarts: list[RestartNote]


def monitor_summary(run_dir: Path, port: int, limit: int = 5) -> MonitorSummary | None:
    """What the service can tell about the monitor watching it (None when there is none)."""
    paths = RunPaths(run_dir, port)
    state = read_state(paths.state)
    restarts = [e for e in tail_entries(paths.ledger) if e.event in ("restart", "gave_up")]
    if state is None and not restarts:
        return None
    return {
        "state": state.state if state else None,
        "monitor_pid": state.monitor_pid if state else None,
        "restarts_in_window": state.restarts_in_window(time.time()) if state else None,
        "restarts": [
            {"time": utc_iso(e.ts), "timestamp": e.ts, "event": e.event, "reason": e.reason}
            for e in restarts[-limit:]
        ],
    }
