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


def build_parser(prog: str = "cotiza") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Real-time market quotes service")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` before the first ``--`` and the command after it (``cotiza monitor -- CMD``)."""
    words = list(argv)
    if "--" not in words:
        return words, []
    cut = words.index("--")
    return words[:cut], words[cut + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options, command = split_command(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(options)
    if command and not getattr(args, "takes_command", False):
        parser.error(f"unrecognized arguments: -- {' '.join(command)}")
    args.after_separator = command
    result: int = args.func(args)
    return result


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python3 main.py [--host H] [--port P]``: the same as ``cotiza serve``, with main.py's
    own usage line."""
    from cotiza.cli import serve

    parser = argparse.ArgumentParser(
        prog="main.py", description="Start the cotiza service (the same as 'cotiza serve')."
    )
    serve.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result: int = args.func(args)
    return result
