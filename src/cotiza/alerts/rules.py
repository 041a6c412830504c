"""Alert rules and their evaluation, pure: no I/O, no clock, no event loop.

A rule compares one field of a pair's live ratio message with a level. Its evaluator is
edge-triggered: it fires when the condition becomes true, stays silent while it holds,
and re-arms only once the value is back on the other side of the level by at least the
rule's hysteresis; it never fires twice within ``cooldown_s``. Nothing here evaluates
user text: fields and operators are closed enumerations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AlertField(StrEnum):
    """The ratio values and indicators a rule may watch (contract section 5)."""

    BID_RATIO = "bid_ratio"
    ASK_RATIO = "ask_ratio"
    MID_RATIO = "mid_ratio"
    LAST_RATIO = "last_ratio"
    Z_BID = "z_bid"
    Z_ASK = "z_ask"
    RATIO_SPREAD = "ratio_spread"
    VOL_RATIO = "vol_ratio"
    BAND_UPPER = "band_upper"
    BAND_LOWER = "band_lower"


class AlertOp(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    CROSSES_ABOVE = "crosses_above"
    CROSSES_BELOW = "crosses_below"

    @property
    def upward(self) -> bool:
        """True for conditions met from below the level (``>``, ``>=``, ``crosses_above``)."""
        return self in (AlertOp.GT, AlertOp.GE, AlertOp.CROSSES_ABOVE)

    @property
    def crossing(self) -> bool:
        return self in (AlertOp.CROSSES_ABOVE, AlertOp.CROSSES_BELOW)


class Channel(StrEnum):
    WS = "ws"
    WEBHOOK = "webhook"
    TELEGRAM = "telegram"


class RuleState(StrEnum):
    ARMED = "armed"  # the next time the condition becomes true, the rule fires
    FIRED = "fired"  # fired; silent until the value moves back past the hysteresis


class Transition(StrEnum):
    FIRE = "fire"
    REARM = "rearm"


# Default hysteresis when a rule gives none. Price-like fields move on the scale of their
# level, so a fraction of it; z-scores and the volatility ratio are dimensionless.
RELATIVE_HYSTERESIS = 0.001
_ABSOLUTE_HYSTERESIS = {AlertField.Z_BID: 0.1, AlertField.Z_ASK: 0.1, AlertField.VOL_RATIO: 0.02}


def default_hysteresis(field: AlertField, value: float) -> float:
    """The hysteresis a rule on ``field`` at level ``value`` gets when it names none."""
    absolute = _ABSOLUTE_HYSTERESIS.get(field)
    if absolute is not None:
        return absolute
    return abs(value) * RELATIVE_HYSTERESIS


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One stored rule; ``value`` is the level, ``hysteresis`` the re-arm margin."""

    id: int
    pair_id: int
    field: AlertField
    op: AlertOp
    value: float
    hysteresis: float
    cooldown_s: float
    channels: tuple[Channel, ...]
    active: bool = True
    note: str = ""

    def holds(self, x: float) -> bool:
        """Whether the level condition is true at ``x`` (for crossings: on the far side)."""
        op, level = self.op, self.value
        if op is AlertOp.GE:
            return x >= level
        if op is AlertOp.LE:
            return x <= level
        if op.upward:  # > and crosses_above
            return x > level
        return x < level  # < and crosses_below

    def crossed(self, previous: float, x: float) -> bool:
        """Whether the move from ``previous`` to ``x`` crosses the level in the rule's sense."""
        if self.op is AlertOp.CROSSES_ABOVE:
            return previous <= self.value < x
        if self.op is AlertOp.CROSSES_BELOW:
            return previous >= self.value > x
        return False

    def rearms(self, x: float) -> bool:
        """The condition is false at ``x`` by at least the hysteresis margin."""
        if self.holds(x):
            return False
        if self.op.upward:
            return x <= self.value - self.hysteresis
        return x >= self.value + self.hysteresis

    def same_condition(self, other: AlertRule) -> bool:
        """Whether ``other`` watches the same thing (its evaluator state may carry over)."""
        return (self.pair_id, self.field, self.op, self.value, self.hysteresis) == (
            other.pair_id,
            other.field,
            other.op,
            other.value,
            other.hysteresis,
        )


def observed(message: Mapping[str, Any], field: AlertField) -> float | None:
    """The value of ``field`` in a ratio message; None when null or not a finite number."""
    value = message.get(field.value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class RuleEvaluator:
    """The state machine of one rule: armed or fired, plus its cooldown and last value.

    ``observe`` is called with every new value of the watched field. A null value is
    ignored entirely: it neither fires, nor re-arms, nor replaces the previous value a
    crossing is judged against. A rule in cooldown stays armed; a level rule (``>``, ...)
    then fires at the first observation after the cooldown if its condition still holds,
    while a crossing that happened during the cooldown is not reported.
    """

    __slots__ = ("last_fired_at", "previous", "rule", "state", "suppressed")

    def __init__(
        self,
        rule: AlertRule,
        state: RuleState = RuleState.ARMED,
        last_fired_at: float | None = None,
    ) -> None:
        self.rule = rule
        self.state = state
        self.last_fired_at = last_fired_at
        self.previous: float | None = None
        self.suppressed = 0  # times the condition was met during the cooldown

    def observe(self, x: float | None, now: float) -> Transition | None:
        if x is None:
            return None
        rule = self.rule
        previous, self.previous = self.previous, x
        if self.state is RuleState.FIRED:
            if rule.rearms(x):
                self.state = RuleState.ARMED
                return Transition.REARM
            return None
        if rule.op.crossing:
            met = previous is not None and rule.crossed(previous, x)
        else:
            met = rule.holds(x)
        if not met:
            return None
        if self.last_fired_at is not None and now - self.last_fired_at < rule.cooldown_s:
            self.suppressed += 1
            return None
        self.state = RuleState.FIRED
        self.last_fired_at = now
        return Transition.FIRE

    def update(self, rule: AlertRule) -> None:
        """Take an edited rule; a changed condition starts over (armed, no previous value)."""
        if not rule.same_condition(self.rule):
            self.state = RuleState.ARMED
            self.previous = None
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of a rule: what was seen, and when (epoch seconds)."""

    rule: AlertRule
    pair_name: str
    observed: float
    previous: float | None
    fired_at: float
