"""Market alerts: rules on ratio values, evaluated live and delivered to several channels.

``rules`` is the pure core (re-exported here); ``engine`` and ``delivery`` hold the I/O and
are imported from their modules, which keeps this package importable by ``storage``.
"""

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
)

__all__ = [
    "AlertField",
    "AlertOp",
    "AlertRule",
    "Channel",
    "Firing",
    "RuleEvaluator",
    "RuleState",
    "Transition",
    "default_hysteresis",
]
