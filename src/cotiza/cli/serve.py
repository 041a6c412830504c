"""``cotiza serve``: run the service."""

from __future__ import annotations

import argparse
import errno
import socket
import sys

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings


def port_holder(port: int) -> str:
    """Who listens on ``port``: 'pid N (command line)', or why that is unknown."""
    import psutil

    from cotiza.monitor.procs import listeners

    try:
        pids = listeners(port)
    except psutil.Error:
        pids = []
    known = [pid for pid in pids if pid is not None]
    if not known:
        return "another process (not visible to this user)"
    described = []
    for pid in known[:3]:
        try:
            command = " ".join(" ".join(psutil.Process(pid).cmdline()).split())[:120]
        except psutil.Error:
            command = "?"
        described.append(f"pid {pid} ({command})")
    return ", ".join(described)


def check_bind(host: str, port: int) -> None:
    """Fail before anything starts when ``host:port`` cannot be bound (busy, not local)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except OSError:
        infos = []
    address = infos[0][4] if infos else (host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"invalid configuration: PORT: {host}:{port} is already in use by "
                    f"{port_holder(port)}"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigurationError(
                    f"invalid configuration: HOST: {host} is not an address of this machine"
                ) from None
            raise ConfigurationError(
                f"invalid configuration: PORT: cannot bind {host}:{port}: {exc.strerror}"
            ) from None


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(host=args.host, port=args.port)
        check_bind(settings.host, settings.port)  # before the database and the feed start
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
