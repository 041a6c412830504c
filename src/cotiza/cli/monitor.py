"""``cotiza monitor`` (``python3 monitor_service.py``), ``monitor status``, ``monitor restart``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings

if TYPE_CHECKING:
    from cotiza.monitor.ledger import RunPaths
    from cotiza.monitor.settings import MonitorSettings

EXIT_USAGE = 2
EXIT_COULD_NOT_RUN = 3


def _status_line(port: int) -> Callable[[str], None]:
    def say(line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} monitor[{port}] {line}", flush=True)

    return say


def run_monitor(args: argparse.Namespace) -> int:
    if args.action == "status":
        return run_status(args)
    if args.action == "restart":
        return run_restart(args)
    words: list[str] = list(getattr(args, "after_separator", []))
    from cotiza.logs import configure_logging
    from cotiza.monitor.alerts import Alerter
    from cotiza.monitor.ledger import RunPaths
    from cotiza.monitor.supervisor import Options, Supervisor

    try:
        settings = load_settings(port=args.port)
        monitor = monitor_settings(args)
    except ConfigurationError as exc:
        print(f"cotiza monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    for noisy in ("httpx", "httpcore", "websockets"):  # one line per probe is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = Path(args.run_dir) if args.run_dir else settings.run_dir
    options = Options(
        command=words or default_command(),
        paths=RunPaths(run_dir, settings.port),
        token=settings.api_token.get_secret_value() if settings.api_token else None,
        canary=not args.no_canary,
    )
    alerter = Alerter(monitor.alert_config())
    supervisor = Supervisor(monitor, options, alerter, _status_line(settings.port))
    return asyncio.run(supervisor.run())


def monitor_settings(args: argparse.Namespace) -> MonitorSettings:
    """The monitor's settings: its flags over the environment over the defaults."""
    from cotiza.monitor.settings import KNOBS, load_monitor_settings

    flags: dict[str, object] = {name: getattr(args, name, None) for name in KNOBS}
    for name in ("host", "webhook_url", "telegram_chat_id", "telegram_api"):
        flags[name] = getattr(args, name, None) or None  # an empty flag is no flag
    for name in ("leave_running", "exit_on_give_up"):
        flags[name] = getattr(args, name, False) or None  # store_true: absent is not False
    flags["alert_timeout"] = getattr(args, "alert_timeout", None)
    return load_monitor_settings(**flags)


def default_command() -> list[str]:
    """``python3 main.py`` from the current directory, else the installed ``cotiza serve``."""
    script = Path(sys.executable).parent / "cotiza"
    if not Path("main.py").exists() and script.exists():
        return [str(script), "serve"]
    return [sys.executable, "main.py"]


def _paths(args: argparse.Namespace) -> RunPaths:
    """The monitor's run directory: --run-dir, else the running service's (or monitor's)
    RUN_DIR resolved in its own directory, so status works from anywhere."""
    from cotiza.cli.discover import service_settings
    from cotiza.monitor.ledger import RunPaths

    if args.run_dir:
        return RunPaths(Path(args.run_dir), load_settings(port=args.port).port)
    settings, _ = service_settings(args.port)
    return RunPaths(settings.run_dir, settings.port)


def run_status(args: argparse.Namespace) -> int:
    """Print the monitor's state; exit 0 running, 1 not yet healthy, 2 gave up or no monitor."""
    from cotiza.monitor.ledger import MonitorLock, read_state, utc_iso

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
                ts = float(item.get("ts", 0))
                exit_text = f" ({item['exit']})" if item.get("exit") else ""
                print(f"  {utc_iso(ts)}  {item.get('event')}: {item.get('reason')}{exit_text}")
    if not running or state.state == "GAVE_UP":
        return 2
    return 0 if state.state == "RUNNING" else 1


def run_restart(args: argparse.Namespace) -> int:
    """Ask the running monitor for a planned restart (drain with 1012, then restart)."""
    from cotiza.monitor.ledger import MonitorLock

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
    _add_knobs(mon)
    # The service command comes after '--' and is split off before parsing (cli.main), so a
    # typo such as 'stauts' is a usage error instead of a command to supervise.
    mon.add_argument(
        "action",
        nargs="?",
        choices=("status", "restart"),
        help="'status' or 'restart'; without one, supervise the service command after '--'",
    )
    mon.set_defaults(takes_command=True)
    mon.set_defaults(func=run_monitor)


def _add_knobs(parser: argparse.ArgumentParser) -> None:
    """One flag per knob of ``MonitorSettings``, with its variable in the help."""
    from cotiza.monitor.settings import KNOBS, MonitorSettings, flag

    units = {"_mb": "MIB", "_percent": "PCT", "_jitter": "FRACTION"}
    for name in KNOBS:
        field = MonitorSettings.model_fields[name]
        kind = int if field.annotation is int else float
        metavar = next((v for k, v in units.items() if name.endswith(k)), None)
        parser.add_argument(
            flag(name),
            type=kind,
            default=None,
            metavar=metavar or ("N" if kind is int else "S"),
            help=f"{field.description} [{MonitorSettings.variable(name)}]",
        )
