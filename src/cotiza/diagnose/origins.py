"""diagnose's ``origins`` check: browser pages the service refused, and the setting to change."""

from __future__ import annotations

from typing import Any

from cotiza.diagnose.findings import Finding, Level
from cotiza.monitor import probes

SHOWN = 5  # refused origins listed one per line


async def check_origins(host: str, port: int, token: str | None, timeout: float) -> Finding:
    """WARN when the service refused browser origins (CORS or WebSocket), naming each and
    ``ALLOWED_ORIGINS``; OK otherwise, with the rule in force."""
    async with probes.client(host, port, token) as http:
        result = await probes.http_get(http, probes.DETAILED_PATH, timeout)
    body = result.body if isinstance(result.body, dict) else {}
    report: dict[str, Any] | None = body.get("origins")
    if result.error or not isinstance(report, dict):
        why = result.error or "the service does not report its origin rule"
        return Finding("origins", Level.SKIP, f"skipped: {why}")
    allowed = report.get("allowed") or []
    rule = "any origin (*)" if "*" in allowed else ", ".join(["same host", *allowed])
    refused = report.get("refused") or []
    data = {"allowed": allowed, "refused": refused}
    if not refused:
        return Finding("origins", Level.OK, f"browser pages allowed from {rule}", data=data)
    names = [str(r.get("origin")) for r in refused]
    lines = [
        f"{r.get('origin')} refused {r.get('count')} time(s) ({r.get('where')})"
        for r in refused[:SHOWN]
    ]
    summary = f"refused browser pages from {len(names)} origin(s): {', '.join(names[:SHOWN])}"
    wanted = ",".join([*allowed, *names[:SHOWN]])
    hint = (
        f"if these pages are yours, set ALLOWED_ORIGINS={wanted} (comma-separated; * allows "
        "any origin on a trusted network) and restart the service"
    )
    return Finding("origins", Level.WARN, summary, lines, hint, data)
