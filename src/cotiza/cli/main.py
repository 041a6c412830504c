"""The ``cotiza`` command. Each sub-command lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that add sub-commands; each defines register(subparsers).
COMMAND_MODULES = (
    "cotiza.cli.serve",
    "cotiza.cli.feeds",
    "cotiza.cli.diagnose",
    "cotiza.cli.monitor",
    "cotiza.cli.telegram",
    "cotiza.cli.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotiza", description="Real-time market quotes service")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python3 main.py [--host H] [--port P]``: the same as ``cotiza serve``."""
    return main(["serve", *(sys.argv[1:] if argv is None else argv)])
