"""The monitor's decisions as a pure state machine: observations in, decisions out.

No clocks, processes or sockets here: the caller passes monotonic ``now`` values and
what it observed, and carries out the decision. That keeps every rule (thresholds,
grace, start-up budget, backoff, the restart window, give-up and resume) testable
without waiting for anything.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cotiza.monitor.settings import MonitorSettings


class State(StrEnum):
    STARTING = "STARTING"  # started or adopted; waiting for the first healthy probe
    RUNNING = "RUNNING"
    FAILING = "FAILING"  # some consecutive failures, below the restart threshold
    RESTARTING = "RESTARTING"  # capturing evidence, draining, stopping
    BACKOFF = "BACKOFF"  # waiting before starting again
    GAVE_UP = "GAVE_UP"  # restart budget spent: probing slowly, never restarting
    STOPPED = "STOPPED"


class Action(StrEnum):
    NONE = "none"
    RESTART = "restart"
    GIVE_UP = "give_up"
    TRIAL_START = "trial_start"  # while given up, nothing holds the port: try once


@dataclass(frozen=True)
class Observation:
    """One probe round. ``healthy`` covers liveness only; readiness never restarts."""

    alive: bool
    healthy: bool = False
    reason: str = ""
    exit: str | None = None  # "exit code 3", "signal 9" when the process has ended
    rss_mb: float | None = None
    cpu_percent: float | None = None
    blocked_by: str | None = None  # a process that is not ours holds the port


@dataclass(frozen=True)
class Decision:
    action: Action = Action.NONE
    reason: str = ""
    delay: float = 0.0
    events: tuple[str, ...] = ()  # ready, stable, resumed, recovered, failure, *_high
    silent: bool = False  # a give-up that repeats an earlier one: no new alert


NOTHING = Decision()


class Machine:
    """Decides when to restart, back off, give up and resume."""

    def __init__(self, settings: MonitorSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.state = State.STARTING
        self.failures = 0
        self.first_failure_at: float | None = None
        self.memory_over = 0
        self.cpu_over = 0
        self.restarts: deque[float] = deque()
        self.streak = 0  # restarts since the service was last stable; drives the backoff
        self.started_at = 0.0
        self.healthy_since: float | None = None
        self.trial = False  # a start attempted while given up
        self.probation = False  # resumed after a give-up, not yet stable
        self.gave_up_reason: str | None = None
        self.restarted = False  # a restart happened and recovery is not yet reported

    # -- inputs ------------------------------------------------------------------------

    def started(self, now: float, *, trial: bool = False) -> None:
        """A process was started (or adopted): give it the start-up budget."""
        self.state = State.STARTING
        self.started_at = now
        self.failures = 0
        self.first_failure_at = None
        self.memory_over = self.cpu_over = 0
        self.healthy_since = None
        self.trial = trial

    def backing_off(self) -> None:
        self.state = State.BACKOFF

    def stopped(self) -> None:
        self.state = State.STOPPED

    def observe(self, now: float, obs: Observation) -> Decision:
        if self.state is State.GAVE_UP:
            return self._while_given_up(now, obs)
        if not obs.alive:
            reason = f"exited ({obs.exit})" if obs.exit else "the process is gone"
            if self.state is State.STARTING:
                reason = f"exited during start-up ({obs.exit or 'unknown status'})"
            return self._restart(now, reason)
        memory = self._memory(obs)
        if memory:
            return self._restart(now, memory)
        noted = ("memory_high",) if self.memory_over == 1 else ()
        if self.state is State.STARTING:
            return self._starting(now, obs, noted)  # start-up burns CPU by nature: not judged
        events = (*noted, *self._cpu(obs))
        if obs.healthy:
            return self._healthy(now, events)
        return self._failure(now, obs.reason or "probe failed", events)

    def request(self, now: float, reason: str) -> Decision:
        """An operator asked for a restart: no threshold, no backoff, not counted."""
        del now
        self.state = State.RESTARTING
        self.restarted = True
        return Decision(Action.RESTART, reason)

    def start_failed(self, now: float, reason: str) -> Decision:
        """Starting was impossible (the port is taken, the command is missing)."""
        return self._restart(now, reason)

    def restore(self, restart_ages: list[float], now: float) -> None:
        """Carry the restart window over from a previous monitor (ages in seconds)."""
        for age in sorted(restart_ages, reverse=True):
            if 0 <= age <= self.settings.restart_window:
                self.restarts.append(now - age)
        self.streak = len(self.restarts)

    # -- queries -----------------------------------------------------------------------

    def next_wait(self) -> float:
        if self.state is State.STARTING:
            return min(self.settings.startup_poll, self.settings.interval)
        if self.state is State.GAVE_UP:
            return self.settings.giveup_interval
        return self.settings.interval

    def restarts_in_window(self, now: float) -> int:
        self._prune(now)
        return len(self.restarts)

    def backoff(self, streak: int) -> float:
        """Exponential, capped, with jitter; the first restart after a stable run is at once."""
        if streak <= 0:
            return 0.0
        c = self.settings
        delay: float = min(c.backoff_cap, c.backoff_base * 2.0 ** (streak - 1))
        return delay * (1.0 - c.backoff_jitter * self.rng.random())

    # -- rules -------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        while self.restarts and now - self.restarts[0] > self.settings.restart_window:
            self.restarts.popleft()

    def _restart(self, now: float, reason: str) -> Decision:
        if self.trial or self.probation:
            # Still broken after a give-up: back to probing, without a second alert.
            self.trial = self.probation = False
            self.state = State.GAVE_UP
            return Decision(Action.GIVE_UP, reason, silent=True)
        self._prune(now)
        if len(self.restarts) >= self.settings.max_restarts:
            self.state = State.GAVE_UP
            self.gave_up_reason = reason
            return Decision(Action.GIVE_UP, reason)
        delay = self.backoff(self.streak)
        self.streak += 1
        self.restarts.append(now)
        self.state = State.RESTARTING
        self.restarted = True
        return Decision(Action.RESTART, reason, delay)

    def _memory(self, obs: Observation) -> str | None:
        limit = self.settings.memory_limit_mb
        if limit <= 0 or obs.rss_mb is None or obs.rss_mb <= limit:
            self.memory_over = 0
            return None
        self.memory_over += 1
        if self.memory_over < self.settings.memory_samples:
            return None  # one spike is not a leak: wait for K samples in a row
        return (
            f"memory: RSS {obs.rss_mb:.0f} MiB over the {limit:g} MiB limit "
            f"for {self.memory_over} samples"
        )

    def _cpu(self, obs: Observation) -> tuple[str, ...]:
        if obs.cpu_percent is None or obs.cpu_percent < self.settings.cpu_warn_percent:
            self.cpu_over = 0
            return ()
        self.cpu_over += 1
        # High CPU alone never restarts; it is reported once per episode.
        return ("cpu_high",) if self.cpu_over == self.settings.cpu_samples else ()

    def _starting(self, now: float, obs: Observation, events: tuple[str, ...]) -> Decision:
        if obs.healthy:
            self.state = State.RUNNING
            self.healthy_since = now
            resumed = self.trial
            self.trial = False
            if resumed:
                self.probation = True
                self.gave_up_reason = None
                self.restarts.clear()
                return Decision(events=(*events, "ready", "resumed"))
            if self.restarted:
                self.restarted = False
                return Decision(events=(*events, "ready", "recovered"))
            return Decision(events=(*events, "ready"))
        if now - self.started_at >= self.settings.startup_budget:
            budget = self.settings.startup_budget
            return self._restart(now, f"startup: not healthy within {budget:g} s")
        return Decision(events=events)

    def _healthy(self, now: float, events: tuple[str, ...]) -> Decision:
        self.failures = 0
        self.first_failure_at = None
        self.state = State.RUNNING
        if self.healthy_since is None:
            self.healthy_since = now
        stable = now - self.healthy_since >= self.settings.stable_after
        if stable and (self.streak or self.probation):
            self.streak = 0
            if self.probation:
                self.probation = False
                return Decision(events=(*events, "stable", "recovered"))
            return Decision(events=(*events, "stable"))
        return Decision(events=events)

    def _failure(self, now: float, reason: str, events: tuple[str, ...]) -> Decision:
        self.healthy_since = None
        self.failures += 1
        if self.first_failure_at is None:
            self.first_failure_at = now
        lasting = now - self.first_failure_at >= self.settings.failure_grace
        if self.failures >= self.settings.failure_threshold and lasting:
            return self._restart(now, f"{self.failures} consecutive failures: {reason}")
        self.state = State.FAILING
        return Decision(reason=reason, events=(*events, "failure"))

    def _while_given_up(self, now: float, obs: Observation) -> Decision:
        if obs.alive and obs.healthy:
            # Someone fixed and started the service; it was adopted. Resume supervision.
            self.started(now, trial=True)
            return self._starting(now, obs, ())
        if obs.alive or obs.blocked_by:
            return NOTHING
        return Decision(Action.TRIAL_START, self.gave_up_reason or "given up")
