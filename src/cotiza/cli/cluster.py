"""``cotiza cluster status``: the nodes of a cluster and who leads, from Redis and PostgreSQL.

It talks to the stores, not to the nodes: it works while every node is down or hung.
Exit codes: 0 one leader, agreed by the lease row; 1 a problem that does not stop the
cluster (a stale entry, an unregistered holder); 2 no leader or more than one (split
brain, epoch mismatch) or invalid configuration; 3 a store could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from cotiza.errors import ClusterError, ConfigurationError
from cotiza.settings import load_settings, redact_url

EXIT_OK, EXIT_WARN, EXIT_CRIT, EXIT_COULD_NOT_RUN = 0, 1, 2, 3


def run_status(args: argparse.Namespace) -> int:
    from cotiza.cluster.status import Severity, judge, read_cluster

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"cotiza cluster status: {exc}", file=sys.stderr)
        return EXIT_CRIT
    if not settings.backplane:
        print(
            "cotiza cluster status: BACKPLANE is not set: this is a standalone process",
            file=sys.stderr,
        )
        return EXIT_CRIT
    stale_after = args.stale_after or 2 * settings.node_report_interval + 1
    try:
        view = asyncio.run(
            read_cluster(
                settings.backplane, settings.backplane_prefix, settings.database_url, args.timeout
            )
        )
    except ClusterError as exc:
        print(f"cotiza cluster status: could not run: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    problems = judge(view, stale_after)
    if any(p.severity is Severity.CRIT for p in problems):
        code = EXIT_CRIT
    else:
        code = EXIT_WARN if problems else EXIT_OK
    if args.json:
        body = {
            "backplane": redact_url(settings.backplane),
            "prefix": settings.backplane_prefix,
            "lease": view.lease.as_dict() if view.lease else None,
            "nodes": [
                {**node.as_dict(), "heartbeat_age_s": round(view.age(node), 3)}
                for node in view.nodes
            ],
            "problems": [{"severity": p.severity.value, "text": p.text} for p in problems],
            "exit_code": code,
        }
        print(json.dumps(body, indent=2))
        return code
    lease = view.lease
    if lease is None:
        print("lease    none (no node has campaigned yet)")
    else:
        remaining = lease.remaining
        expiry = "-" if remaining is None else f"{remaining:+.1f} s"
        print(
            f"lease    {lease.name}: holder {lease.holder or '-'}, epoch {lease.epoch}, "
            f"expires {expiry}"
        )
    rows = [("NODE", "ROLE", "LEADER", "EPOCH", "HEARTBEAT", "CLIENTS", "BUS", "ADDRESS")]
    for node in view.nodes:
        lag = "" if node.bus_lag_ms is None else f" {node.bus_lag_ms:.1f}ms"
        rows.append(
            (
                node.node_id,
                node.role,
                "yes" if node.leader else "-",
                "-" if node.epoch is None else str(node.epoch),
                f"{view.age(node):.1f}s ago",
                str(node.clients),
                f"{node.bus_state}{lag}",
                node.url,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if not view.nodes:
        print("(no node registered)")
    for problem in problems:
        print(f"{problem.severity.value.upper()}: {problem.text}")
    if not problems:
        print("OK: one leader, agreed by the lease row")
    return code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser(
        "cluster",
        help="cluster mode: 'cluster status' lists the nodes and the leader",
        description="Reads BACKPLANE (the node registry) and DATABASE_URL (the lease row).",
        epilog="Exit codes: 0 one leader agreed by the lease; 1 warnings (a stale entry, "
        "an unregistered holder); 2 no leader, split brain or epoch mismatch (or invalid "
        "configuration); 3 Redis or PostgreSQL could not be read.",
    )
    words = cluster.add_subparsers(dest="cluster_command", required=True)
    status = words.add_parser("status", help="print the nodes and who leads")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--timeout", type=float, default=5.0, help="seconds for each store to answer"
    )
    status.add_argument(
        "--stale-after",
        type=float,
        default=None,
        help="report entries older than this (default 2 x NODE_REPORT_INTERVAL + 1 s)",
    )
    status.set_defaults(func=run_status)
