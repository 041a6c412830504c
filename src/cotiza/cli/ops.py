"""``cotiza diagnose``, ``cotiza monitor``, ``cotiza monitor status`` and ``monitor restart``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cotiza.errors import ConfigurationError
from cotiza.settings import Settings, load_settings

EXIT_USAGE = 2
EXIT_COULD_NOT_RUN = 3


def _settings(port: int | None = None) -> Settings:
    return load_settings(port=port)


# -- diagnose ------------------------------------------------------------------------------


def run_diagnose(args: argparse.Namespace) -> int:
    from cotiza.calendar import MarketCalendar
    from cotiza.ops import render
    from cotiza.ops.diagnose import DiagnoseConfig, diagnose

    try:
        settings = _settings(args.port)
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


# -- monitor -------------------------------------------------------------------------------


def _status_line(port: int) -> Any:
    def say(line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} monitor[{port}] {line}", flush=True)

    return say


def run_monitor(args: argparse.Namespace) -> int:
    words: list[str] = list(args.words)
    if words[:1] == ["status"]:
        return run_status(args)
    if words[:1] == ["restart"]:
        return run_restart(args)
    from cotiza.logs import configure_logging
    from cotiza.ops.alerts import Alerter
    from cotiza.ops.ledger import RunPaths
    from cotiza.ops.options import alert_config, resolve
    from cotiza.ops.supervisor import Options, Supervisor

    try:
        settings = _settings(args.port)
        config = resolve(args, settings)
        alerts = alert_config(args)
    except ConfigurationError as exc:
        print(f"cotiza monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    for noisy in ("httpx", "httpcore", "websockets"):  # one line per probe is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = Path(args.run_dir) if args.run_dir else settings.run_dir
    command = words or default_command()
    options = Options(
        command=command,
        paths=RunPaths(run_dir, config.port),
        token=settings.api_token.get_secret_value() if settings.api_token else None,
        leave_running=args.leave_running or os.environ.get("MONITOR_LEAVE_RUNNING") == "1",
        exit_on_give_up=args.exit_on_give_up or os.environ.get("MONITOR_EXIT_ON_GIVE_UP") == "1",
    )
    supervisor = Supervisor(config, options, Alerter(alerts), _status_line(config.port))
    return asyncio.run(supervisor.run())


def default_command() -> list[str]:
    """``python3 main.py`` from the current directory, else the installed ``cotiza serve``."""
    script = Path(sys.executable).parent / "cotiza"
    if not Path("main.py").exists() and script.exists():
        return [str(script), "serve"]
    return [sys.executable, "main.py"]


def _paths(args: argparse.Namespace) -> Any:
    from cotiza.ops.ledger import RunPaths

    settings = _settings(args.port)
    return RunPaths(Path(args.run_dir) if args.run_dir else settings.run_dir, settings.port)


def run_status(args: argparse.Namespace) -> int:
    """Print the monitor's state; exit 0 running, 1 not yet healthy, 2 gave up or no monitor."""
    from cotiza.ops.ledger import MonitorLock, read_state, utc_iso

    try:
        paths = _paths(args)
    except ConfigurationError as exc:
        print(f"cotiza monitor status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    state = read_state(paths.state)
    if state is None:
        print(f"no monitor state for port {paths.port} in {paths.run_dir}")
        return EXIT_COULD_NOT_RUN
    now = time.time()
    running = MonitorLock(paths.lock).holder() is not None
    uptime = (
        now - state.service_started_at if state.service_pid and state.service_started_at else None
    )
    rows = [
        ("port", str(state.port)),
        ("state", state.state if running else f"{state.state} (monitor not running)"),
        ("monitor pid", f"{state.monitor_pid}" + ("" if running else " (gone)")),
        ("service pid", str(state.service_pid or "-")),
        ("uptime", _duration(uptime) if uptime is not None else "-"),
        (
            "restarts",
            f"{state.restarts_in_window(now)} of {state.max_restarts} "
            f"in the last {_duration(state.restart_window)}",
        ),
        ("command", " ".join(state.command)),
    ]
    if state.gave_up_reason:
        rows.append(("gave up", state.gave_up_reason))
    if args.json:
        print(json.dumps({"running": running, **{k: v for k, v in vars(state).items()}}, indent=2))
    else:
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
        if state.last_reasons:
            print("\nlast reasons")
            for item in state.last_reasons[-5:]:
                ts = float(str(item.get("ts", 0)))
                exit_text = f" ({item['exit']})" if item.get("exit") else ""
                print(f"  {utc_iso(ts)}  {item.get('event')}: {item.get('reason')}{exit_text}")
    if not running or state.state == "GAVE_UP":
        return 2
    return 0 if state.state == "RUNNING" else 1


def run_restart(args: argparse.Namespace) -> int:
    """Ask the running monitor for a planned restart (drain with 1012, then restart)."""
    from cotiza.ops.ledger import MonitorLock

    try:
        paths = _paths(args)
    except ConfigurationError as exc:
        print(f"cotiza monitor restart: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pid = MonitorLock(paths.lock).holder()
    if not pid or pid < 0:
        print(f"no monitor is running for port {paths.port}", file=sys.stderr)
        return 2
    os.kill(pid, signal.SIGHUP)
    print(f"asked monitor pid {pid} to restart the service on port {paths.port}")
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


# -- registration --------------------------------------------------------------------------


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

    from cotiza.ops.options import add_arguments

    mon = sub.add_parser(
        "monitor",
        help="supervise the service; 'monitor status' and 'monitor restart' talk to one",
        description="cotiza monitor [options] [-- COMMAND ...] | monitor status | monitor restart",
        epilog="The default COMMAND is this Python running main.py from the current directory "
        "(or the installed 'cotiza serve' when there is none); the monitor sets PORT and "
        "RUN_DIR for it. "
        "Exit codes: 0 stopped on request, 2 invalid configuration, 3 another monitor "
        "supervises the port, 4 stopped while given up (or --exit-on-give-up). "
        "'monitor status' exits 0 running, 1 not yet healthy, 2 given up or no monitor, "
        "3 no state.",
    )
    mon.add_argument("--port", type=int, default=None, help="service port (default PORT or 8000)")
    mon.add_argument("--host", default=None, help="address to probe [MONITOR_HOST]")
    mon.add_argument("--run-dir", default=None, help="state, ledger, logs, incidents [RUN_DIR]")
    mon.add_argument("--no-canary", action="store_true", help="skip the WebSocket canary")
    mon.add_argument(
        "--leave-running",
        action="store_true",
        help="on SIGINT/SIGTERM leave the service running (a new monitor adopts it)",
    )
    mon.add_argument("--exit-on-give-up", action="store_true", help="exit with 4 when giving up")
    mon.add_argument("--webhook-url", default=None, help="alert webhook [ALERT_WEBHOOK_URL]")
    mon.add_argument(
        "--telegram-chat-id",
        default=None,
        help="Telegram chat [TELEGRAM_CHAT_ID]; token only from TELEGRAM_BOT_TOKEN",
    )
    mon.add_argument("--telegram-api", default=None, help="Bot API base URL [TELEGRAM_API_BASE]")
    mon.add_argument("--alert-timeout", type=float, default=None, help="seconds [ALERT_TIMEOUT]")
    mon.add_argument("--json", action="store_true", help="monitor status: print JSON")
    add_arguments(mon)
    mon.add_argument(
        "words",
        nargs="*",
        metavar="status|restart|-- COMMAND",
        help="'status', 'restart', or the service command after '--'",
    )
    mon.set_defaults(func=run_monitor)
