"""The supervised process (started by us or adopted) and the state file describing it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cotiza.monitor import procs
from cotiza.monitor.ledger import MonitorState, Reason, RunPaths, rotate, utc_iso, write_state
from cotiza.monitor.machine import Machine
from cotiza.monitor.settings import MonitorSettings

ADOPTED_POLL = 0.1  # seconds between liveness checks of a process that is not our child
REAP_WAIT = 2.0  # seconds to wait for the exit status of a process already gone
LOG_MAX_BYTES = 64 * 1024 * 1024  # the service log is rotated at a (re)start past this


@dataclass
class Child:
    """One service process. Our own children are reaped; adopted ones are polled."""

    pid: int
    pgid: int | None
    create_time: float | None
    started_at: float
    proc: asyncio.subprocess.Process | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None
    watcher: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(cls, command: Sequence[str], env: dict[str, str], log_path: Path) -> Child:
        """Start ``command`` in a new session (its own process group) logging to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        rotate(log_path, LOG_MAX_BYTES)
        with log_path.open("ab") as log:
            log.write(f"--- {utc_iso(time.time())} started by monitor pid {os.getpid()}\n".encode())
            log.flush()
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        child = cls(proc.pid, proc.pid, _create_time(proc.pid), time.time(), proc)
        child.watcher = asyncio.create_task(child._reap(), name=f"reap-{proc.pid}")
        return child

    @classmethod
    def adopt(cls, pid: int) -> Child:
        create_time = _create_time(pid)
        child = cls(pid, procs.pgid_of(pid), create_time, create_time or time.time())
        child.watcher = asyncio.create_task(child._poll(), name=f"watch-{pid}")
        return child

    async def _reap(self) -> None:
        assert self.proc is not None
        self.returncode = await self.proc.wait()
        self.exited.set()

    async def _poll(self) -> None:
        # Not our child: no SIGCHLD and no wait(); only polling can see it end.
        while procs.alive(self.pid, self.create_time):  # noqa: ASYNC110
            await asyncio.sleep(ADOPTED_POLL)
        self.exited.set()

    def forget(self) -> None:
        """Stop watching a process we decided not to supervise after all."""
        if self.watcher is not None:
            self.watcher.cancel()

    def running(self) -> bool:
        return not self.exited.is_set() and procs.alive(self.pid, self.create_time)

    async def settle(self) -> None:
        """Wait (briefly) for the exit status of a process that is no longer running.

        A process that just died is a zombie, or already reaped with the reaper's callback
        still queued, for a moment: a probe can see it gone before ``returncode`` is known.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), REAP_WAIT)

    @property
    def exit_code(self) -> int | None:
        return self.returncode if self.returncode is not None and self.returncode >= 0 else None

    @property
    def exit_signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    def exit_text(self) -> str | None:
        if self.exit_signal is not None:
            return f"signal {self.exit_signal} ({signal.Signals(self.exit_signal).name})"
        if self.exit_code is not None:
            return f"exit code {self.exit_code}"
        return "exit status unknown (adopted process)" if self.exited.is_set() else None

    async def stop(self, grace: float) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` (at once when SIGSTOPped); False if killed.

        A stopped process never runs its SIGTERM handler, so waiting for it is pointless.
        Whatever is left of the group afterwards (children holding the port) is killed too.
        """
        honoured = True
        if procs.is_stopped(self.pid):
            self.signal(signal.SIGKILL)
        else:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), grace)
            if not self.exited.is_set():
                honoured = False
                self.signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), 10.0)
        self.kill_leftovers()
        return honoured

    def kill_leftovers(self) -> None:
        if self.pgid == self.pid and procs.group_members(self.pid):
            procs.signal_group(self.pid, signal.SIGKILL)

    def signal(self, sig: signal.Signals) -> None:
        """Signal the whole process group when the service leads one, else the tree."""
        if self.pgid == self.pid:
            procs.signal_group(self.pid, sig)
            return
        try:
            targets = [psutil.Process(self.pid)]
            targets += targets[0].children(recursive=True)
        except psutil.Error:
            return
        for proc in targets:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class StatusFile:
    """Publishes ``monitor-PORT.json`` for ``monitor status``, diagnose and adoption."""

    def __init__(self, paths: RunPaths, settings: MonitorSettings, command: Sequence[str]) -> None:
        self.paths = paths
        self.settings = settings
        self.command = list(command)
        self.started_at = time.time()
        self.reasons: list[Reason] = []
        self.last_pgid: int | None = None

    def note(self, event: str, reason: str, exit_text: str | None) -> None:
        item: Reason = {"ts": time.time(), "event": event, "reason": reason}
        if exit_text:
            item["exit"] = exit_text
        self.reasons = [*self.reasons, item][-10:]

    def snapshot(self, machine: Machine, child: Child | None, groups: set[int]) -> MonitorState:
        now_mono, now_wall = time.monotonic(), time.time()
        if child is not None:
            self.last_pgid = child.pgid
        return MonitorState(
            port=self.paths.port,
            monitor_pid=os.getpid(),
            state=machine.state.value,
            command=self.command,
            service_pid=child.pid if child and not child.exited.is_set() else None,
            service_pgid=self.last_pgid if self.last_pgid in groups else None,
            service_create_time=child.create_time if child else None,
            service_started_at=child.started_at if child else None,
            monitor_started_at=self.started_at,
            restarts=[now_wall - (now_mono - t) for t in machine.restarts],
            restart_window=self.settings.restart_window,
            max_restarts=self.settings.max_restarts,
            last_reasons=self.reasons,
            gave_up_reason=machine.gave_up_reason,
        )

    def write(self, machine: Machine, child: Child | None, groups: set[int]) -> None:
        write_state(self.paths.state, self.snapshot(machine, child, groups))
