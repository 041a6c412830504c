"""Cost of market alerts on the tick path: one live ratio push with and without rules.

Baseline: what the ratio engine does per dirty pair anyway (ratios from two quotes, the
rolling indicators against a full 180-sample window, the message dict). Then the cost of
``AlertEngine.on_ratio`` alone with N rules on the pair, over the same messages: a random
walk that keeps crossing their levels (transitions are queued and drained as the delivery
task would take them). Best of ``--repeat`` runs each, to keep other load out.

    .venv/bin/python bench/alerts_eval.py --pushes 20000 --rules 1 10 100
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict
from typing import Any

from cotiza.alerts.engine import AlertEngine
from cotiza.alerts.rules import AlertField, AlertOp, AlertRule, Channel, RuleEvaluator
from cotiza.models import Quote, RatioPair, RatioValues
from cotiza.ratios import RollingIndicators, compute_ratios
from cotiza.settings import Settings

PAIR = RatioPair(1, "MERV - XMEV - AL30 - 24hs", "MERV - XMEV - AL30D - 24hs")
OPS = list(AlertOp)
FIELDS = [AlertField.MID_RATIO, AlertField.BID_RATIO, AlertField.Z_BID, AlertField.ASK_RATIO]


def messages(count: int, seed: int = 7) -> list[tuple[Quote, Quote]]:
    rng = random.Random(seed)
    mid, out = 1200.0, []
    for i in range(count):
        mid += rng.gauss(0, 2.0)
        a = Quote(PAIR.base, mid - 0.5, 1, mid + 0.5, 1, mid, 1, None, None, i, 0.0)
        b = Quote(PAIR.quote, 0.99, 1, 1.01, 1, 1.0, 1, None, None, i, 0.0)
        out.append((a, b))
    return out


def push(window: RollingIndicators, a: Quote, b: Quote) -> dict[str, Any]:
    values = compute_ratios(PAIR, a, b, 1.0, 1e9)
    return {"type": "ratio", "pair_id": 1, **asdict(values), **asdict(window.peek(values))}


def engine_with(rules: int) -> AlertEngine:
    settings = Settings(alert_queue_size=1_000_000)
    engine = AlertEngine(settings, None, None, None, None)  # type: ignore[arg-type]
    rng = random.Random(rules)
    for i in range(rules):
        field = FIELDS[i % len(FIELDS)]
        level = rng.uniform(-2, 2) if field is AlertField.Z_BID else rng.uniform(1150, 1250)
        rule = AlertRule(i + 1, 1, field, OPS[i % len(OPS)], level, 1.0, 0.0, (Channel.WS,))
        engine._add(RuleEvaluator(rule))
    return engine


def build(pushes: list[tuple[Quote, Quote]]) -> tuple[float, list[dict[str, Any]]]:
    """The baseline: µs per push for the message the ratio engine builds anyway."""
    window = RollingIndicators()
    window.warm(RatioValues(1199.0 + i % 3, 1198.0, 1199.0 + i % 3, 1199.0) for i in range(180))
    started = time.perf_counter()
    out = [push(window, a, b) for a, b in pushes]
    return (time.perf_counter() - started) / len(pushes) * 1e6, out


def evaluate(messages: list[dict[str, Any]], rules: int) -> tuple[float, int]:
    """µs per push for ``on_ratio`` with ``rules`` rules on the pair; transitions queued."""
    engine = engine_with(rules)
    fired = 0
    started = time.perf_counter()
    for message in messages:
        engine.on_ratio(PAIR, message)
        while not engine._queue.empty():  # what the delivery task does, minus the I/O
            engine._queue.get_nowait()
            fired += 1
    return (time.perf_counter() - started) / len(messages) * 1e6, fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=20_000)
    parser.add_argument("--rules", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    args = parser.parse_args()
    data = messages(args.pushes)
    base = min(build(data)[0] for _ in range(args.repeat))
    built = build(data)[1]
    print(
        f"{'rules on the pair':>18} | {'µs per push':>11} | {'share of baseline':>17} | transitions"
    )
    print(f"{'baseline: message':>18} | {base:11.2f} | {100:16.1f}% | -")
    for count in args.rules:
        runs = [evaluate(built, count) for _ in range(args.repeat)]
        cost = min(r[0] for r in runs)
        print(f"{count:>18} | {cost:11.2f} | {cost / base * 100:16.1f}% | {runs[0][1]}")


if __name__ == "__main__":
    main()
