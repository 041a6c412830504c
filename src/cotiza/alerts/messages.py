"""How firings read: the JSON payload of the ``alert`` frame and webhook, and Spanish text.

Numbers in text use Argentine formats (``1.234,56``): the text goes to people (Telegram),
the payload to programs (WebSocket, webhook), which get plain JSON numbers.
"""

from __future__ import annotations

import math

from cotiza.alerts.rules import AlertOp, AlertRule, Firing
from cotiza.ws.frames import AlertFrame

_OP_TEXT = {
    AlertOp.GT: "> {level}",
    AlertOp.GE: "≥ {level}",
    AlertOp.LT: "< {level}",
    AlertOp.LE: "≤ {level}",
    AlertOp.CROSSES_ABOVE: "cruzó hacia arriba {level}",
    AlertOp.CROSSES_BELOW: "cruzó hacia abajo {level}",
}


def es_number(value: float | None, decimals: int | None = None) -> str:
    """``1234.5`` -> ``1.234,50``; ``None`` -> ``—``. Decimals adapt to the magnitude."""
    if value is None or not math.isfinite(value):
        return "—"
    if decimals is None:
        size = abs(value)
        decimals = 2 if size >= 100 else 4 if size >= 1 else 6 if size else 2
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def describe_rule(rule: AlertRule, pair_name: str) -> str:
    """``AL30-AL30D mid_ratio > 1.234,50`` (Spanish operators)."""
    condition = _OP_TEXT[rule.op].format(level=es_number(rule.value))
    return f"{pair_name} {rule.field.value} {condition}"


def firing_text(firing: Firing) -> str:
    """The message people get on Telegram."""
    rule = firing.rule
    lines = [
        f"🔔 Alerta #{rule.id}: {describe_rule(rule, firing.pair_name)}",
        f"Valor: {es_number(firing.observed)}",
    ]
    if rule.op.crossing and firing.previous is not None:
        lines.append(f"Anterior: {es_number(firing.previous)}")
    if rule.note:
        lines.append(rule.note)
    return "\n".join(lines)


def firing_payload(firing: Firing, firing_id: int | None) -> AlertFrame:
    """The ``alert`` frame (WebSocket) and the webhook's JSON body."""
    rule = firing.rule
    return {
        "type": "alert",
        "id": firing_id,
        "rule_id": rule.id,
        "pair_id": rule.pair_id,
        "par": firing.pair_name,
        "field": rule.field.value,
        "op": rule.op.value,
        "value": rule.value,
        "observed": firing.observed,
        "previous": firing.previous,
        "fired_at": firing.fired_at,
        "note": rule.note,
        "text": firing_text(firing),
    }
