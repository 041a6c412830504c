"""AlertEngine: evaluates rules on every live ratio message and delivers firings.

The ratio engine hands each published message to ``on_ratio`` on its tick path, which
only runs the pure evaluators and puts what happened on a bounded queue: it never awaits
anything. One drain task records each transition in the database in order, then hands
the firing's deliveries (WebSocket, webhook, Telegram) to a tracked task, so a slow
webhook delays neither the tick path nor the next firing.

``start``/``stop`` are idempotent and nothing else assumes the engine runs, so a role
manager can run it only where it should (the lease holder, in cluster mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cotiza.alerts.delivery import DeliveryResult, WebhookSender
from cotiza.alerts.messages import firing_payload, firing_text
from cotiza.alerts.rules import (
    Channel,
    Firing,
    RuleEvaluator,
    RuleState,
    Transition,
    observed,
)
from cotiza.errors import StorageError
from cotiza.health import Check, Scope, Status
from cotiza.models import RatioPair
from cotiza.ratio_engine import RatioEngine
from cotiza.settings import Settings
from cotiza.storage.alerts import AlertStore, StoredRule
from cotiza.ws.frames import RatioFrame
from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)

# Sends a text to the allowed Telegram chats (the bot's ``broadcast``).
TelegramSend = Callable[[str], Awaitable[DeliveryResult]]


@dataclass(frozen=True, slots=True)
class _Rearm:
    rule_id: int


_Job = Firing | _Rearm


@dataclass(slots=True)
class AlertStats:
    fired: int = 0
    rearmed: int = 0
    dropped: int = 0  # transitions lost because the queue was full
    deliveries_failed: int = 0
    storage_errors: int = 0
    last_failure: str | None = None  # of the latest firing; cleared by a full success


class AlertEngine:
    """Every active rule's evaluator, fed from the ratio engine; firings delivered aside."""

    def __init__(
        self,
        settings: Settings,
        store: AlertStore,
        ratios: RatioEngine,
        hub: Hub,
        webhook: WebhookSender,
        telegram: TelegramSend | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ratios = ratios
        self.hub = hub
        self.webhook = webhook
        self.telegram = telegram
        self.evaluators: dict[int, RuleEvaluator] = {}
        self._by_pair: dict[int, list[RuleEvaluator]] = {}
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(settings.alert_queue_size)
        self._drainer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.alert_max_inflight)
        self.stats = AlertStats()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._drainer is not None and not self._drainer.done()

    async def start(self) -> None:
        """Load the stored rules, start listening to ratios and delivering; idempotent."""
        if self._drainer is not None:
            return
        await self.webhook.start()
        try:
            self._load(await self.store.list_rules())
        except StorageError as exc:  # unreachable at start-up: reload() once it answers
            log.warning(
                "alert rules not loaded yet (%s); loading them when the database answers", exc
            )
        self._drainer = asyncio.create_task(self._drain(), name="alert-delivery")
        self.ratios.add_listener(self.on_ratio)
        for evaluator in list(self.evaluators.values()):
            self._evaluate_now(evaluator)
        log.info("alert engine started with %d active rules", len(self.evaluators))

    async def stop(self) -> None:
        """Stop evaluating; record what is queued and give deliveries a deadline; idempotent."""
        self.ratios.remove_listener(self.on_ratio)
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            deadline = self.settings.shutdown_timeout / 2
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline):
                    await self._queue.join()
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
        if self._deliveries:
            _, late = await asyncio.wait(
                list(self._deliveries), timeout=self.settings.shutdown_timeout / 2
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.webhook.stop()
        self.evaluators.clear()
        self._by_pair.clear()

    def _load(self, stored: list[StoredRule]) -> None:
        self.evaluators.clear()
        self._by_pair.clear()
        for item in stored:
            if item.rule.active:
                self._add(RuleEvaluator(item.rule, item.state, item.last_fired_at))

    def _add(self, evaluator: RuleEvaluator) -> None:
        self.evaluators[evaluator.rule.id] = evaluator
        self._by_pair.setdefault(evaluator.rule.pair_id, []).append(evaluator)

    def _remove(self, rule_id: int) -> RuleEvaluator | None:
        evaluator = self.evaluators.pop(rule_id, None)
        if evaluator is not None:
            members = self._by_pair.get(evaluator.rule.pair_id, [])
            if evaluator in members:
                members.remove(evaluator)
            if not members:
                self._by_pair.pop(evaluator.rule.pair_id, None)
        return evaluator

    # -- rule changes (from the API) --------------------------------------------------

    def upsert(self, stored: StoredRule) -> None:
        """Take a created or edited rule; a new or changed condition is judged at once."""
        if not self.running:
            return
        rule = stored.rule
        evaluator = self._remove(rule.id)
        if not rule.active:
            return
        if evaluator is None:
            evaluator = RuleEvaluator(rule, stored.state, stored.last_fired_at)
        else:
            evaluator.update(rule)
        self._add(evaluator)
        self._evaluate_now(evaluator)

    def discard(self, rule_id: int) -> None:
        self._remove(rule_id)

    async def reload(self) -> None:
        """Re-read every rule (after pairs were deleted, which deletes their rules)."""
        if self.running:
            current = {rule_id: e.previous for rule_id, e in self.evaluators.items()}
            self._load(await self.store.list_rules())
            for rule_id, evaluator in self.evaluators.items():
                evaluator.previous = current.get(rule_id)

    def _evaluate_now(self, evaluator: RuleEvaluator) -> None:
        """Judge a rule against the pair's current values (a new rule that holds fires)."""
        pair = self.ratios.pairs.get(evaluator.rule.pair_id)
        message = self.ratios.current(evaluator.rule.pair_id)
        if pair is not None and message is not None:
            self._observe(evaluator, pair, message, time.time())

    # -- the tick path ----------------------------------------------------------------

    def on_ratio(self, pair: RatioPair, message: RatioFrame) -> None:
        """Evaluate the pair's rules on one live message; never awaits, never raises I/O."""
        evaluators = self._by_pair.get(pair.id)
        if not evaluators:
            return
        now = time.time()
        for evaluator in evaluators:
            self._observe(evaluator, pair, message, now)

    def _observe(
        self, evaluator: RuleEvaluator, pair: RatioPair, message: RatioFrame, now: float
    ) -> None:
        rule = evaluator.rule
        previous = evaluator.previous
        value = observed(message, rule.field)
        transition = evaluator.observe(value, now)
        if transition is None or value is None:
            return
        job: _Job
        if transition is Transition.FIRE:
            self.stats.fired += 1
            job = Firing(rule, pair.name, value, previous, now)
            log.info("alert rule %d fired on %s: %s=%r", rule.id, pair.name, rule.field, value)
        else:
            self.stats.rearmed += 1
            job = _Rearm(rule.id)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.warning("alert queue full: a %s of rule %d was dropped", transition, rule.id)

    # -- delivery ---------------------------------------------------------------------

    async def _drain(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._record(job)
            except Exception:
                # The task boundary of one job: log it and go on with the next firing.
                log.exception("alert job failed; continuing with the next")
            finally:
                self._queue.task_done()

    async def _record(self, job: _Job) -> None:
        if isinstance(job, _Rearm):
            try:
                await self.store.set_state(job.rule_id, RuleState.ARMED)
            except StorageError as exc:
                self.stats.storage_errors += 1
                log.warning("could not store the re-arm of rule %d: %s", job.rule_id, exc)
            return
        pending = {channel.value: {"status": "pending"} for channel in job.rule.channels}
        firing_id: int | None = None
        try:
            firing_id = await self.store.record_firing(job, pending)
        except StorageError as exc:
            # Deliver anyway: people need the alert more than the history needs the row.
            self.stats.storage_errors += 1
            log.warning("could not store a firing of rule %d: %s", job.rule.id, exc)
        await self._slots.acquire()
        task = asyncio.create_task(self._deliver(job, firing_id), name="alert-deliver")
        self._deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._slots.release()

    async def _deliver(self, firing: Firing, firing_id: int | None) -> None:
        payload = firing_payload(firing, firing_id)
        channels = firing.rule.channels
        results: dict[str, DeliveryResult] = {}
        if Channel.WS in channels:
            results["ws"] = DeliveryResult(
                "delivered", detail={"clients": self.hub.publish_alert(payload)}
            )
        jobs: dict[str, Awaitable[DeliveryResult]] = {}
        if Channel.WEBHOOK in channels:
            jobs["webhook"] = self.webhook.send(payload)
        if Channel.TELEGRAM in channels:
            jobs["telegram"] = self._telegram(firing_text(firing))
        outcomes = await asyncio.gather(*jobs.values(), return_exceptions=True)
        for name, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error("alert %s delivery crashed", name, exc_info=outcome)
                results[name] = DeliveryResult("failed", error=type(outcome).__name__)
            else:
                results[name] = outcome
        failed = sorted(name for name, r in results.items() if r.status != "delivered")
        if failed:
            self.stats.deliveries_failed += 1
            self.stats.last_failure = f"rule {firing.rule.id}: not delivered by {', '.join(failed)}"
        else:
            self.stats.last_failure = None
        if firing_id is not None:
            try:
                await self.store.set_deliveries(
                    firing_id, {name: result.as_dict() for name, result in results.items()}
                )
            except StorageError as exc:
                self.stats.storage_errors += 1
                log.warning("could not store the deliveries of firing %d: %s", firing_id, exc)

    async def _telegram(self, text: str) -> DeliveryResult:
        if self.telegram is None:
            return DeliveryResult("not_configured")
        return await self.telegram(text)

    # -- health -----------------------------------------------------------------------

    def check(self) -> Check:
        stats = self.stats
        value = {
            "rules": len(self.evaluators),
            "fired": stats.fired,
            "queued": self._queue.qsize(),
            "deliveries_failed": stats.deliveries_failed,
            "storage_errors": stats.storage_errors,
        }
        if self._drainer is None:
            return Check("alerts:engine", Status.PASS, value, None, "not running", Scope.READINESS)
        if self._drainer.done():
            return Check("alerts:engine", Status.FAIL, value, None, "delivery task died")
        problems = []
        if stats.dropped:
            problems.append(f"{stats.dropped} transitions dropped (queue full)")
        if stats.last_failure:
            problems.append(f"last firing {stats.last_failure}")
        status = Status.WARN if problems else Status.PASS
        output = "; ".join(problems) or None
        return Check("alerts:engine", status, value, None, output, Scope.READINESS)
