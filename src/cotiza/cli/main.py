"""The ``cotiza`` command: serve (and the operations sub-commands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cotiza.errors import ConfigurationError
from cotiza.logs import configure_logging
from cotiza.settings import load_settings


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(host=args.host, port=args.port)
    except ConfigurationError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from cotiza.server import serve

    serve(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotiza", description="Real-time market quotes service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the service")
    serve.add_argument("--host", default=None, help="bind address (default HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default PORT or 8000)")
    serve.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python3 main.py [--host H] [--port P]``: the same as ``cotiza serve``."""
    return main(["serve", *(sys.argv[1:] if argv is None else argv)])
