"""The monitor's process side: start or adopt the service, probe it, act on decisions.

The decisions come from ``cotiza.monitor.machine.Machine``; this module only observes and
carries them out: evidence, drain, stop the process group, free the port, start again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotiza.monitor import probes, procs
from cotiza.monitor.alerts import Alert, Alerter
from cotiza.monitor.evidence import capture
from cotiza.monitor.handover import hand_over
from cotiza.monitor.ledger import Entry, Ledger, MonitorLock, RunPaths, read_state
from cotiza.monitor.machine import Action, Decision, Machine, Observation, State
from cotiza.monitor.process import Child, StatusFile
from cotiza.monitor.settings import MonitorSettings

EXIT_OK = 0
EXIT_LOCKED = 3
EXIT_GAVE_UP = 4


@dataclass
class Options:
    """What the monitor runs and where, besides its settings."""

    command: list[str]
    paths: RunPaths
    token: str | None = None
    canary: bool = True
    env: dict[str, str] = field(default_factory=dict)


class Supervisor:
    def __init__(
        self,
        settings: MonitorSettings,
        options: Options,
        alerter: Alerter,
        status: Callable[[str], None],
        machine: Machine | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.paths = options.paths
        self.port = options.paths.port
        self.alerter = alerter
        self.say = status
        self.machine = machine or Machine(settings)
        self.ledger = Ledger(self.paths.ledger)
        self.status_file = StatusFile(self.paths, settings, options.command)
        self.sampler = procs.TreeSampler()
        self.child: Child | None = None
        self.groups: set[int] = set()  # process groups we (or a predecessor) started
        self.last_health: object = None
        self.unreachable = False  # the last liveness probe could not get an answer
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._shown: State | None = None
        self._exit = EXIT_OK

    # -- life cycle ----------------------------------------------------------------------

    async def run(self) -> int:
        lock = MonitorLock(self.paths.lock)
        rival = procs.live_monitor(read_state(self.paths.state))
        if rival or not lock.acquire():
            self.say(f"another monitor (pid {rival or lock.holder()}) supervises port {self.port}")
            return EXIT_LOCKED
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._restart.set)
        try:
            self.ledger.append(Entry("monitor_start", pid=os.getpid(), state="STARTING"))
            decision = await self._begin()
            await self._loop(decision)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self._finish()
            lock.release()
        return self._exit

    async def _begin(self) -> Decision | None:
        now, wall = time.monotonic(), time.time()
        previous = read_state(self.paths.state)
        if previous is not None:
            self.machine.restore([wall - ts for ts in previous.restarts], now)
            if previous.service_pgid:
                self.groups.add(previous.service_pgid)
            pid = previous.service_pid
            if pid and procs.alive(pid, previous.service_create_time):
                self._adopt(pid, "from the state file")
                return None
        for holder in procs.holders(self.port, previous, self.options.command):
            if holder.pid and holder.owner in {procs.Owner.OURS, procs.Owner.UNMANAGED}:
                self._adopt(holder.pid, "found on the port")
                return None
        return await self._start()

    def _adopt(self, pid: int, how: str) -> None:
        self.child = Child.adopt(pid)
        if self.child.pgid == pid:
            self.groups.add(pid)
        self.machine.started(time.monotonic(), trial=self.machine.state is State.GAVE_UP)
        self.ledger.append(Entry("adopt", pid=pid, reason=how, state=self.machine.state))
        self.say(f"adopted service pid {pid} ({how})")
        self._announce()

    async def _loop(self, decision: Decision | None) -> None:
        last_probe = time.monotonic()
        while not self._stop.is_set():
            if decision is not None and decision.action is not Action.NONE:
                decision = await self._apply(decision)
                last_probe = time.monotonic()
                continue
            # A fixed cadence: the time a probe round took counts against the interval.
            await self._wait(max(0.0, last_probe + self.machine.next_wait() - time.monotonic()))
            if self._stop.is_set():
                break
            now = time.monotonic()
            if self._restart.is_set():
                self._restart.clear()
                decision = self.machine.request(now, "restart requested (SIGHUP)")
                continue
            last_probe = now
            obs = await self._observe()
            decision = self.machine.observe(time.monotonic(), obs)
            self._report(decision, obs)

    async def _wait(self, timeout: float) -> None:
        waiters = [self._stop.wait(), self._restart.wait()]
        if self.child is not None and self.machine.state is not State.GAVE_UP:
            waiters.append(self.child.exited.wait())
        tasks = [asyncio.ensure_future(w) for w in waiters]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _finish(self) -> None:
        child = self.child
        gave_up = self.machine.state is State.GAVE_UP
        if child is not None and not child.exited.is_set():
            if self.settings.leave_running:
                self.say(f"leaving service pid {child.pid} running")
            else:
                self.say(f"stopping service pid {child.pid}")
                await self._stop_child(child)
                self.child = None
        self.machine.stopped()
        self.ledger.append(Entry("monitor_stop", pid=os.getpid(), state="STOPPED"))
        self._save()
        self._announce()
        await self.alerter.close()
        if gave_up:
            self._exit = EXIT_GAVE_UP

    # -- observing -----------------------------------------------------------------------

    async def _observe(self) -> Observation:
        child = self.child
        if child is None or child.exited.is_set() or not child.running():
            if self.machine.state is State.GAVE_UP:
                return await self._look_for_service()
            return Observation(alive=False, exit=child.exit_text() if child else None)
        stats = self.sampler.sample(child.pid)
        healthy, reason = await self._probe(full=self.machine.state is not State.STARTING)
        return Observation(
            alive=True,
            healthy=healthy,
            reason=reason,
            rss_mb=stats.rss_mb if stats else None,
            cpu_percent=stats.cpu_percent if stats else None,
        )

    async def _probe(self, *, full: bool) -> tuple[bool, str]:
        c = self.settings
        async with probes.client(c.host, self.port, self.options.token) as http:
            jobs: list[Any] = [
                probes.http_get(http, probes.LIVENESS_PATH, c.probe_timeout),
                probes.http_get(http, probes.DETAILED_PATH, c.probe_timeout),
            ]
            if full and self.options.canary:
                url = probes.ws_url(c.host, self.port)
                jobs.append(
                    probes.ws_canary(
                        http, url, c.probe_timeout, c.canary_window, self.options.token
                    )
                )
            results = await asyncio.gather(*jobs)
        live, detailed = results[0], results[1]
        verdicts = [probes.judge_liveness(live), probes.judge_detailed(detailed)]
        self.unreachable = live.error is not None
        self.last_health = detailed.body if detailed.body is not None else detailed.describe()
        reason = probes.first_failure(verdicts)
        if not reason and len(results) > 2 and results[2].outcome is probes.Canary.FAIL:
            reason = f"websocket canary: {results[2].detail}"
        return not reason, reason

    async def _look_for_service(self) -> Observation:
        """While given up: adopt a healthy service someone started, or report who blocks."""
        state = self.status_file.snapshot(self.machine, self.child, self.groups)
        for holder in procs.holders(self.port, state, self.options.command):
            if holder.pid and procs.pgid_of(holder.pid) in self.groups:
                continue  # a leftover of ours: a trial start clears it
            if holder.pid and holder.owner in {procs.Owner.OURS, procs.Owner.UNMANAGED}:
                self.child = Child.adopt(holder.pid)
                healthy, _ = await self._probe(full=False)
                if healthy:
                    self.ledger.append(Entry("adopt", pid=holder.pid, reason="found healthy"))
                    return Observation(alive=True, healthy=True)
                self.child.forget()
                self.child = None
            return Observation(alive=False, blocked_by=holder.describe())
        return Observation(alive=False)

    def _report(self, decision: Decision, obs: Observation) -> None:
        pid = self.child.pid if self.child else None
        for event in decision.events:
            if event == "failure":
                self.ledger.append(Entry("failure", pid=pid, reason=decision.reason))
            elif event == "memory_high":
                rss = f"RSS {obs.rss_mb:.0f} MiB" if obs.rss_mb is not None else "RSS ?"
                limit = self.settings.memory_limit_mb
                self.say(f"warning: service {rss} over the {limit:g} MiB limit")
                self.ledger.append(Entry("memory_high", pid=pid, reason=rss))
            elif event == "cpu_high":
                cpu = f"{obs.cpu_percent:.0f} %" if obs.cpu_percent is not None else "?"
                self.say(f"warning: service CPU at {cpu} (no restart for CPU alone)")
                self.ledger.append(Entry("cpu_high", pid=pid, reason=f"CPU {cpu}"))
            elif event in {"ready", "recovered", "resumed", "stable"}:
                self.ledger.append(Entry(event, pid=pid, state=self.machine.state))
                if event == "recovered":
                    self._alert("recovered", "healthy again", pid)
        acting = decision.action is not Action.NONE or "failure" in decision.events
        self._announce(decision.reason if acting else "")
        self._save()

    # -- acting --------------------------------------------------------------------------

    async def _apply(self, decision: Decision) -> Decision | None:
        if decision.action is Action.RESTART:
            return await self._restart_service(decision)
        if decision.action is Action.GIVE_UP:
            await self._give_up(decision)
            return None
        if decision.action is Action.TRIAL_START:
            self.say("given up: trying one start")
            return await self._start(trial=True)
        return None

    async def _retire(self, reason: str) -> tuple[Child | None, str | None]:
        """Capture evidence, drain and stop the current process; (process, incident)."""
        child, self.child = self.child, None
        if child is None:
            return None, None
        incident = None
        if not child.exited.is_set() and child.running():
            path = await capture(
                self.paths, child.pid, reason, self.last_health, self.settings.log_lines
            )
            incident = str(path)
            if not self.unreachable and not procs.is_stopped(child.pid):
                await self._hand_over()
                await self._drain()
            await self._stop_child(child)
        else:
            await child.settle()
            child.kill_leftovers()
        return child, incident

    async def _restart_service(self, decision: Decision) -> Decision | None:
        self._announce(decision.reason)
        child, incident = await self._retire(decision.reason)
        exit_text = child.exit_text() if child else None
        self.status_file.note("restart", decision.reason, exit_text)
        self.ledger.append(
            Entry(
                "restart",
                pid=child.pid if child else None,
                reason=decision.reason,
                exit_code=child.exit_code if child else None,
                signal=child.exit_signal if child else None,
                incident=incident,
                state=self.machine.state,
                detail={"delay": round(decision.delay, 3), "health": self.last_health},
            )
        )
        where = f" (pid {child.pid}, {exit_text})" if child else ""
        self.say(f"restarting: {decision.reason}{where}")
        self._alert("restart", decision.reason, child.pid if child else None, incident)
        if decision.delay > 0:
            self.machine.backing_off()
            self._announce(f"next start in {decision.delay:.2f} s")
            self._save()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), decision.delay)
        if self._stop.is_set():
            return None
        return await self._start()

    async def _give_up(self, decision: Decision) -> None:
        child, incident = await self._retire(decision.reason)
        pid = child.pid if child else None
        if not decision.silent:
            exit_text = child.exit_text() if child else None
            self.status_file.note("gave_up", decision.reason, exit_text)
            self.ledger.append(
                Entry(
                    "gave_up",
                    pid=pid,
                    reason=decision.reason,
                    exit_code=child.exit_code if child else None,
                    signal=child.exit_signal if child else None,
                    incident=incident,
                    state="GAVE_UP",
                    detail={"restarts_in_window": len(self.machine.restarts)},
                )
            )
            self._alert("gave_up", decision.reason, pid, incident)
        self._announce(decision.reason)
        self._save()
        if self.settings.exit_on_give_up:
            self._stop.set()

    async def _start(self, *, trial: bool = False) -> Decision | None:
        blocked = await self._clear_port()
        if blocked:
            reason = f"port {self.port} held by {blocked}"
            self.ledger.append(Entry("start_failed", reason=reason))
            return None if trial else self.machine.start_failed(time.monotonic(), reason)
        try:
            env = {**os.environ, **self.options.env, "PORT": str(self.port)}
            env["RUN_DIR"] = str(self.paths.run_dir.resolve())
            self.child = await Child.spawn(self.options.command, env, self.paths.service_log)
        except OSError as exc:
            reason = f"cannot start {self.options.command[0]!r}: {exc.strerror or exc}"
            self.ledger.append(Entry("start_failed", reason=reason))
            return None if trial else self.machine.start_failed(time.monotonic(), reason)
        self.groups.add(self.child.pid)
        self.machine.started(time.monotonic(), trial=trial)
        self.ledger.append(
            Entry("start", pid=self.child.pid, state=self.machine.state, detail={"trial": trial})
        )
        self._announce()
        self._save()
        return None

    async def _clear_port(self) -> str | None:
        """Kill what our earlier runs left on the port; name any other holder."""
        deadline = time.monotonic() + max(2.0, self.settings.term_grace)
        killed: set[int] = set()
        while True:
            ours: list[int | None] = []
            others: list[int | None] = []
            for pid in procs.listeners(self.port):
                group = procs.pgid_of(pid) if pid else None
                (ours if group is not None and group in self.groups else others).append(pid)
            if others:
                state = self.status_file.snapshot(self.machine, None, self.groups)
                return procs.classify(others[0], state, self.options.command).describe()
            if not ours:
                return None
            for pid in ours:
                group = procs.pgid_of(pid) if pid else None
                if pid and group is not None and pid not in killed:
                    killed.add(pid)
                    self.ledger.append(Entry("orphan_killed", pid=pid, detail={"pgid": group}))
                    procs.signal_group(group, signal.SIGKILL)
            if time.monotonic() >= deadline:
                return f"pid {ours[0]} of an earlier run, still there after SIGKILL"
            await asyncio.sleep(0.05)  # the kernel releases the socket when the holder dies

    async def _hand_over(self) -> None:
        """A cluster leader hands the lease over before it stops (break before make)."""
        c = self.settings
        done = await hand_over(
            c.host, self.port, self.options.token, c.probe_timeout, c.handover_wait
        )
        if done is not None:
            self.say(done.describe())
            self.ledger.append(Entry("handover", reason=done.error, detail=done.detail()))

    async def _drain(self) -> None:
        c = self.settings
        timeout = min(c.probe_timeout, 2.0)
        status, closed, error = await probes.drain(c.host, self.port, self.options.token, timeout)
        detail = {"status": status, "closed": closed}
        self.ledger.append(Entry("drain", reason=error, detail=detail))

    async def _stop_child(self, child: Child) -> None:
        if not await child.stop(self.settings.term_grace):
            self.say(f"pid {child.pid} ignored SIGTERM for {self.settings.term_grace:g} s: SIGKILL")

    # -- reporting -----------------------------------------------------------------------

    def _alert(self, event: str, reason: str, pid: int | None, incident: str | None = None) -> None:
        alert = Alert(
            event=event,
            port=self.port,
            reason=reason,
            state=self.machine.state,
            pid=pid,
            restarts_in_window=self.machine.restarts_in_window(time.monotonic()),
            incident=incident,
        )
        self.alerter.send(alert)

    def _announce(self, detail: str = "") -> None:
        state = self.machine.state
        if state is self._shown:
            return
        self._shown = state
        pid = f" pid {self.child.pid}" if self.child else ""
        self.say(f"{state.value}{pid}" + (f": {detail}" if detail else ""))

    def _save(self) -> None:
        self.status_file.write(self.machine, self.child, self.groups)
