"""The pure alert core: operators, hysteresis, cooldown, nulls and crossings."""

from __future__ import annotations

import math

import pytest

from cotiza.alerts.messages import es_number, firing_payload, firing_text
from cotiza.alerts.rules import (
    AlertField,
    AlertOp,
    AlertRule,
    Channel,
    Firing,
    RuleEvaluator,
    RuleState,
    Transition,
    default_hysteresis,
    observed,
)

FIRE, REARM = Transition.FIRE, Transition.REARM


def rule(
    op: str, value: float = 100.0, hysteresis: float = 1.0, cooldown: float = 0.0
) -> AlertRule:
    return AlertRule(
        id=1,
        pair_id=7,
        field=AlertField.MID_RATIO,
        op=AlertOp(op),
        value=value,
        hysteresis=hysteresis,
        cooldown_s=cooldown,
        channels=(Channel.WS,),
    )


def run(evaluator: RuleEvaluator, values: list[float | None], step: float = 1.0) -> list:
    """Feed ``values`` one per ``step`` seconds; the transition of each (None for nothing)."""
    return [evaluator.observe(v, i * step) for i, v in enumerate(values)]


def test_greater_than_fires_once_and_rearms_past_the_hysteresis() -> None:
    """``>`` fires on the way up, stays silent while it holds and re-arms only below level - h."""
    ev = RuleEvaluator(rule(">"))
    got = run(ev, [99, 101, 102, 99.5, 101, 98.9, 100.5, 98.0])
    assert got == [None, FIRE, None, None, None, REARM, FIRE, REARM]


def test_condition_holding_at_creation_fires_once() -> None:
    """A level rule whose condition already holds fires on its first value, then stays quiet."""
    ev = RuleEvaluator(rule(">="))
    assert run(ev, [100, 105, 100]) == [FIRE, None, None]


def test_crossings_need_a_previous_value() -> None:
    """``crosses_above`` never fires on the first value, even above the level."""
    ev = RuleEvaluator(rule("crosses_above"))
    assert run(ev, [105, 106, 98, 101]) == [None, None, None, FIRE]


def test_crosses_below_and_its_rearm() -> None:
    """``crosses_below`` fires going under the level and re-arms at level + h or above."""
    ev = RuleEvaluator(rule("crosses_below"))
    assert run(ev, [102, 99, 100.5, 99, 101, 99.9]) == [None, FIRE, None, None, REARM, FIRE]


@pytest.mark.parametrize(
    ("op", "values", "expected"),
    [
        ("<", [101, 100, 99.9, 101, 100], [None, None, FIRE, REARM, None]),
        ("<=", [101, 100, 101, 100], [None, FIRE, REARM, FIRE]),
        (">", [100, 100.0001], [None, FIRE]),
        (">=", [99.99, 100], [None, FIRE]),
    ],
)
def test_level_operators_at_the_boundary(op: str, values: list, expected: list) -> None:
    """Strict and non-strict operators differ exactly at the level (hysteresis 1)."""
    assert run(RuleEvaluator(rule(op)), values) == expected


def test_zero_hysteresis_rearms_as_soon_as_the_condition_is_false() -> None:
    """With no margin, any value on the other side of the level re-arms."""
    ev = RuleEvaluator(rule(">", hysteresis=0.0))
    assert run(ev, [101, 100, 101]) == [FIRE, REARM, FIRE]


def test_nulls_neither_fire_nor_rearm_nor_break_a_crossing() -> None:
    """A null value changes nothing, and the next value is judged against the last real one."""
    ev = RuleEvaluator(rule(">"))
    assert run(ev, [None, None, 101, None, 90, None]) == [None, None, FIRE, None, REARM, None]
    crossing = RuleEvaluator(rule("crosses_above"))
    assert run(crossing, [None, 99, None, None, 101]) == [None, None, None, None, FIRE]
    assert crossing.previous == 101


def test_cooldown_delays_a_level_rule_until_it_ends() -> None:
    """Re-armed within the cooldown, a level rule fires at the first value after it."""
    ev = RuleEvaluator(rule(">", cooldown=10.0))
    assert ev.observe(101, 0.0) is FIRE
    assert ev.observe(90, 1.0) is REARM
    assert ev.observe(101, 2.0) is None  # in cooldown: armed, not fired
    assert ev.suppressed == 1
    assert ev.state is RuleState.ARMED
    assert ev.observe(102, 9.9) is None
    assert ev.observe(102, 10.0) is FIRE
    assert ev.last_fired_at == 10.0


def test_cooldown_drops_a_crossing() -> None:
    """A crossing during the cooldown is not reported later; the next crossing is."""
    ev = RuleEvaluator(rule("crosses_above", cooldown=10.0))
    assert run(ev, [99, 101, 98, 101, 102], step=1.0) == [None, FIRE, REARM, None, None]
    assert ev.observe(98, 11.0) is None  # armed already: nothing to re-arm
    assert ev.observe(101, 12.0) is FIRE


def test_restored_state_is_respected() -> None:
    """A rule restored as fired (after a restart) does not fire again until it re-arms."""
    ev = RuleEvaluator(rule(">", cooldown=60.0), RuleState.FIRED, last_fired_at=0.0)
    assert ev.observe(105, 5.0) is None
    assert ev.observe(98, 6.0) is REARM
    assert ev.observe(105, 7.0) is None  # still within the restored cooldown
    assert ev.observe(105, 61.0) is FIRE


def test_update_resets_only_when_the_condition_changes() -> None:
    """Editing channels keeps the state; editing the level re-arms and forgets the last value."""
    ev = RuleEvaluator(rule(">"))
    assert ev.observe(101, 0.0) is FIRE
    ev.update(AlertRule(**{**_fields(ev.rule), "channels": (Channel.WS, Channel.WEBHOOK)}))
    assert ev.state is RuleState.FIRED
    ev.update(AlertRule(**{**_fields(ev.rule), "value": 100.5}))
    assert ev.state is RuleState.ARMED and ev.previous is None
    assert ev.observe(101, 1.0) is FIRE


def _fields(r: AlertRule) -> dict:
    return {name: getattr(r, name) for name in AlertRule.__slots__}


def test_observed_reads_only_finite_numbers() -> None:
    """Nulls, NaN, infinities, booleans and strings in a message count as no value."""
    message = {"mid_ratio": 1.5, "z_bid": None, "z_ask": math.nan, "vol_ratio": math.inf}
    assert observed(message, AlertField.MID_RATIO) == 1.5
    for name in (AlertField.Z_BID, AlertField.Z_ASK, AlertField.VOL_RATIO, AlertField.BAND_UPPER):
        assert observed(message, name) is None
    assert observed({"bid_ratio": True}, AlertField.BID_RATIO) is None
    assert observed({"bid_ratio": "1.5"}, AlertField.BID_RATIO) is None


def test_default_hysteresis_by_field() -> None:
    """Price-like fields get 0.1 % of the level; z-scores and vol_ratio an absolute margin."""
    assert default_hysteresis(AlertField.MID_RATIO, 1200.0) == pytest.approx(1.2)
    assert default_hysteresis(AlertField.BAND_LOWER, -50.0) == pytest.approx(0.05)
    assert default_hysteresis(AlertField.Z_BID, 2.0) == 0.1
    assert default_hysteresis(AlertField.VOL_RATIO, 1.0) == 0.02


def test_firing_text_and_payload() -> None:
    """The Telegram text uses es-AR numbers; the payload carries plain numbers and the id."""
    firing = Firing(rule("crosses_above", value=1234.5), "AL30-AL30D", 1240.25, 1230.0, 99.0)
    text = firing_text(firing)
    assert "AL30-AL30D mid_ratio cruzó hacia arriba 1.234,50" in text
    assert "Valor: 1.240,25" in text and "Anterior: 1.230,00" in text
    payload = firing_payload(firing, 17)
    assert payload["type"] == "alert" and payload["id"] == 17 and payload["rule_id"] == 1
    assert (payload["value"], payload["observed"], payload["previous"]) == (1234.5, 1240.25, 1230.0)
    assert es_number(0.012345) == "0,012345" and es_number(None) == "—"
    assert es_number(-1234567.891, 2) == "-1.234.567,89"
