"""How the running service sees its configuration, for tools run from any directory.

``diagnose`` and ``monitor status`` used to read ``.env``, ``DATABASE_URL`` and ``RUN_DIR``
relative to *their* working directory, so from anywhere else a healthy service's database
was "missing" and its monitor absent. The process listening on the port (or, when none
does, the monitor supervising it) tells its working directory and environment; settings
are loaded as that process loaded them, and relative paths resolved against its
directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from cotiza.settings import Settings, load_settings


@dataclass(frozen=True)
class Discovered:
    """The process whose view is used: the service (or its monitor)."""

    pid: int
    cwd: Path
    environ: dict[str, str]
    started_at: float
    is_service: bool


def _port_of(cmdline: list[str]) -> int | None:
    for index, word in enumerate(cmdline[:-1]):
        if word == "--port" and cmdline[index + 1].isdigit():
            return int(cmdline[index + 1])
    return None


def _monitors(port: int) -> list[int]:
    from cotiza.monitor.procs import looks_like_monitor

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and looks_like_monitor(cmdline) and _port_of(cmdline) == port:
            found.append(int(proc.info["pid"]))
    return found


def discover(port: int) -> Discovered | None:
    """The service listening on ``port``, else a monitor of it; None when neither is seen."""
    from cotiza.monitor.procs import listeners

    try:
        services = [pid for pid in listeners(port) if pid is not None and pid != os.getpid()]
        candidates = [(pid, True) for pid in services] + [(pid, False) for pid in _monitors(port)]
    except psutil.Error:
        return None
    for pid, is_service in candidates:
        try:
            proc = psutil.Process(pid)
            return Discovered(pid, Path(proc.cwd()), proc.environ(), proc.create_time(), is_service)
        except psutil.Error:
            continue
    return None


@contextlib.contextmanager
def _as(process: Discovered) -> Iterator[None]:
    """Run inside ``process``'s working directory and environment, then restore ours."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(process.environ)
    try:
        os.chdir(process.cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _absolute(settings: Settings, base: Path) -> Settings:
    update: dict[str, object] = {}
    if not settings.run_dir.is_absolute():
        update["run_dir"] = base / settings.run_dir
    url = settings.database_url
    if url.startswith("sqlite") and ":///" in url:
        head, path = url.split(":///", 1)
        if path and path != ":memory:" and not path.startswith(("/", "file:")):
            update["database_url"] = f"{head}:///{(base / path).resolve()}"
    return settings.model_copy(update=update) if update else settings


def service_settings(port: int | None) -> tuple[Settings, Discovered | None]:
    """Settings as the service on ``port`` (default PORT) loaded them, when it can be found;
    otherwise this directory's settings, as before."""
    own = load_settings(port=port)
    process = discover(own.port)
    if process is None:
        return own, None
    try:
        with _as(process):
            theirs = load_settings(port=own.port)
    except Exception:  # their configuration as seen from here; ours still works
        return own, None
    return _absolute(theirs, process.cwd), process
