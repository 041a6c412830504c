"""``cotiza diagnose`` (and ``python3 diagnose_service.py``): one report, Nagios exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings

EXIT_COULD_NOT_RUN = 3


def run_diagnose(args: argparse.Namespace) -> int:
    from cotiza.calendar import MarketCalendar
    from cotiza.diagnose import render
    from cotiza.diagnose.clustercheck import ClusterConfig
    from cotiza.diagnose.run import DiagnoseConfig, diagnose

    try:
        settings = load_settings(port=args.port)
        run_dir = Path(args.run_dir) if args.run_dir else settings.run_dir
        db_path = Path(settings.database_url.split(":///", 1)[-1]).parent
        config = DiagnoseConfig(
            host=args.host,
            port=settings.port,
            http_timeout=args.timeout,
            ws_timeout=args.ws_timeout or min(5.0, settings.websocket_timeout),
            token=settings.api_token.get_secret_value() if settings.api_token else None,
            run_dir=run_dir,
            database_url=settings.database_url,
            market_open=MarketCalendar.from_settings(settings).is_open(time.time()),
            sample_interval=settings.ratio_sample_interval,
            disk_paths=tuple(
                dict.fromkeys(p.resolve() for p in (Path.cwd(), db_path) if p.is_dir())
            ),
            cluster=None
            if not settings.backplane
            else ClusterConfig(
                backplane=settings.backplane,
                prefix=settings.backplane_prefix,
                database_url=settings.database_url,
                timeout=min(args.timeout, 3.0),
                stale_after=settings.bus_stale_after,
                node_stale_after=2 * settings.node_report_interval + 1,
            ),
        )
        report = asyncio.run(diagnose(config))
    except ConfigurationError as exc:
        print(f"cotiza diagnose: could not run: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    if args.output:
        Path(args.output).write_text(render.as_json(report, args.fail_on) + "\n", encoding="utf-8")
    if args.json:
        print(render.as_json(report, args.fail_on))
    elif sys.stdout.isatty():
        render.rich(report, args.fail_on, sys.stdout)
    else:
        render.plain(report, args.fail_on, sys.stdout)
    return report.exit_code(args.fail_on)


def _guarded_diagnose(args: argparse.Namespace) -> int:
    try:
        return run_diagnose(args)
    except Exception as exc:  # Nagios: anything unexpected is "could not run" (3), not a crash
        print(f"cotiza diagnose: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diag = sub.add_parser("diagnose", help="one-shot diagnosis with Nagios exit codes")
    diag.add_argument("--port", type=int, default=None, help="service port (default PORT or 8000)")
    diag.add_argument("--host", default="127.0.0.1", help="address to probe")
    diag.add_argument("--output", metavar="FILE", help="also write the results as JSON to FILE")
    diag.add_argument("--json", action="store_true", help="print JSON instead of text")
    diag.add_argument(
        "--fail-on",
        choices=("warn", "crit"),
        default="warn",
        help="warn: warnings exit 1 (default); crit: only critical problems fail",
    )
    diag.add_argument(
        "--timeout", type=float, default=6.0, help="HTTP timeout per endpoint (s); > 5 s warns"
    )
    diag.add_argument(
        "--ws-timeout",
        type=float,
        default=None,
        help="WebSocket connect and fresh-tick timeout (default min(5, WEBSOCKET_TIMEOUT))",
    )
    diag.add_argument("--run-dir", default=None, help="the monitor's run directory (RUN_DIR)")
    diag.set_defaults(func=_guarded_diagnose)
