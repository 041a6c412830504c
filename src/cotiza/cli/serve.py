"""``cotiza serve``: run the service."""

from __future__ import annotations

import argparse
import sys

from cotiza.errors import ConfigurationError
from cotiza.logs import configure_logging
from cotiza.settings import load_settings


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(host=args.host, port=args.port)
    except ConfigurationError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    from cotiza.server import serve

    serve(settings)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="start the service")
    parser.add_argument("--host", default=None, help="bind address (default HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default PORT or 8000)")
    parser.set_defaults(func=run)
