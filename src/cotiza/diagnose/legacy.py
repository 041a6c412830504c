"""The prototype's ``diagnose_service.py --output`` keys, derived from cotiza's findings.

Scripts written for the prototype read ``port_check.in_use``, ``endpoints[path].status``
(``"ok"``), ``websocket.status``, ``system.cpu_percent``, ``system.memory.used_percent``,
``system.python_processes`` and ``database.status``. They are written beside cotiza's own
keys, never instead of them, and say the same thing as the findings they come from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotiza.diagnose.findings import Finding, Level, Report
from cotiza.monitor import probes

# The prototype's endpoint list, in its order (diagnose asks the same four).
ENDPOINTS = (probes.LIVENESS_PATH, probes.DETAILED_PATH, "/cotizaciones/status", "/")


def prototype_keys(report: Report) -> dict[str, Any]:
    """``timestamp``, ``port``, ``port_check``, ``endpoints``, ``websocket``, ``system``,
    ``database``, as the prototype's diagnosis wrote them."""
    found = {f.name: f for f in report.findings}
    moment = dt.datetime.fromtimestamp(report.started_at).astimezone()
    return {
        "timestamp": moment.isoformat(),
        "port": report.port,
        "port_check": _port_check(report.port, found.get("port")),
        "endpoints": _endpoints(found.get("http")),
        "websocket": _websocket(found.get("websocket")),
        "system": _system(found.get("resources")),
        "database": _database(found.get("database")),
    }


def _data(finding: Finding | None) -> Mapping[str, Any]:
    return finding.data if finding is not None else {}


def _port_check(port: int, finding: Finding | None) -> dict[str, Any]:
    data = _data(finding)
    check: dict[str, Any] = {"port": port, "in_use": bool(data.get("listening"))}
    command = data.get("command")
    if data.get("pid") is not None:
        check["pid"] = data["pid"]
    if isinstance(command, str) and command:
        check["process_name"] = Path(command.split()[0]).name
        check["cmdline"] = command
    return check


def _endpoints(finding: Finding | None) -> dict[str, dict[str, Any]]:
    measured: Mapping[str, Any] = _data(finding).get("endpoints") or {}
    result: dict[str, dict[str, Any]] = {}
    for path in ENDPOINTS:
        entry = measured.get(path)
        if entry is None:
            why = finding.summary if finding is not None else "not checked"
            result[path] = {"status": "connection_error", "error": why}
            continue
        code, error = entry.get("status"), entry.get("error")
        if error:
            kind = "timeout" if "timed out" in str(error) else "connection_error"
            result[path] = {"status": kind, "error": error}
            continue
        result[path] = {
            "status": "ok" if code is not None and code < 400 else "error",
            "status_code": code,
            "response_time_ms": entry.get("latency_ms"),
        }
    return result


def _websocket(finding: Finding | None) -> dict[str, Any]:
    if finding is None or finding.level is Level.SKIP:
        return {"status": "skipped", "reason": finding.summary if finding else "not checked"}
    data = _data(finding)
    answered = data.get("pong_ms") is not None
    entry: dict[str, Any] = {
        "status": "ok" if answered and finding.level is not Level.CRIT else "error",
        "connection_time_ms": data.get("connect_ms"),
        "pong_ms": data.get("pong_ms"),
        "first_tick_ms": data.get("first_tick_ms"),
    }
    if entry["status"] == "error":
        entry["error"] = finding.summary
    return entry


def _system(finding: Finding | None) -> dict[str, Any]:
    data = _data(finding)
    if "cpu_percent" not in data:
        return {"error": finding.summary if finding is not None else "not checked"}
    disks: Mapping[str, float] = data.get("disk_percent") or {}
    processes = []
    service = data.get("service")
    if isinstance(service, Mapping):
        processes.append(
            {
                "pid": service["pid"],
                "name": "python",
                "memory_mb": service["rss_mb"],
                "cpu_percent": service["cpu_percent"],
            }
        )
    return {
        "cpu_percent": data["cpu_percent"],
        "memory": {"used_percent": data["memory_percent"]},
        "disk": {"used_percent": max(disks.values(), default=None), "paths": dict(disks)},
        "python_processes": processes,
    }


def _database(finding: Finding | None) -> dict[str, Any]:
    if finding is None or finding.level is Level.SKIP:
        return {"status": "error", "error": finding.summary if finding else "not checked"}
    data = _data(finding)
    if finding.level in (Level.CRIT, Level.UNKNOWN) or "latency_ms" not in data:
        return {"status": "error", "error": finding.summary}
    return {
        "status": "ok",
        "response_time_ms": data["latency_ms"],
        "has_data": data.get("newest_sample_age_s") is not None,
    }
