"""``cotiza serve``: run the service."""

from __future__ import annotations

import argparse
import sys

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(host=args.host, port=args.port)
    except ConfigurationError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return 2
    from cotiza.server import serve  # logging is set up there, as for every entry point

    serve(settings)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_arguments(sub.add_parser("serve", help="start the service"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cotiza serve`` (and of ``python3 main.py``, which has its own usage)."""
    parser.add_argument("--host", default=None, help="bind address (default HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default PORT or 8000)")
    parser.set_defaults(func=run)
