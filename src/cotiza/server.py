"""Running the app under uvicorn: the composition every entry point shares.

``build_app`` is the one path from settings to a running app (logging first, then the
app); ``serve`` runs it under uvicorn with cotiza's options and shutdown order. ``uvicorn
main:app`` reaches ``build_app`` through ``cotiza.asgi``, where the server is not ours.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from cotiza.api.app import Runtime, create_app
from cotiza.logs import configure_logging
from cotiza.sdnotify import Watchdog
from cotiza.settings import Settings
from cotiza.stackdump import stack_dumps_on_signal
from cotiza.ws.transport import (
    describe_write_path,
    forget_exit_signals,
    guard_server,
    listening_sockets,
    ws_protocol_classes,
)

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> FastAPI:
    """Configure logging (before anything logs), then build the app: every entry point."""
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    return create_app(settings)


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """The server-side WebSocket options cotiza runs with, from the settings."""

    implementation: str  # uvicorn's ``ws=`` name
    max_size: int
    ping_interval: float
    ping_timeout: float
    per_message_deflate: bool


def websocket_options(settings: Settings) -> WebSocketOptions:
    return WebSocketOptions(
        implementation=settings.ws_impl.value,
        max_size=settings.ws_max_frame_bytes,
        ping_interval=settings.ws_keepalive_interval,
        ping_timeout=settings.ws_keepalive_interval,
        per_message_deflate=settings.ws_compression,
    )


def option_differences(config: uvicorn.Config, wanted: WebSocketOptions) -> list[str]:
    """How a loaded uvicorn configuration's WebSocket options differ from ``wanted``."""
    differences = []
    actual_class, wanted_class = ws_protocol_classes(config, wanted.implementation)
    if actual_class is not wanted_class:
        actual = getattr(actual_class, "__name__", str(actual_class))
        expected = getattr(wanted_class, "__name__", str(wanted_class))
        differences.append(f"ws={actual} (cotiza uses {expected})")
    for name, actual_value, value, variable in (
        ("ws_max_size", config.ws_max_size, wanted.max_size, "WS_MAX_FRAME_BYTES"),
        (
            "ws_ping_interval",
            config.ws_ping_interval,
            wanted.ping_interval,
            "WS_KEEPALIVE_INTERVAL",
        ),
        ("ws_ping_timeout", config.ws_ping_timeout, wanted.ping_timeout, "WS_KEEPALIVE_INTERVAL"),
        (
            "ws_per_message_deflate",
            config.ws_per_message_deflate,
            wanted.per_message_deflate,
            "compression off",
        ),
    ):
        if actual_value != value:
            differences.append(f"{name}={actual_value} (cotiza uses {value}: {variable})")
    return differences


class Server(uvicorn.Server):
    """uvicorn's server, telling WebSocket clients 1001 before it drops connections.

    uvicorn's own shutdown closes WebSockets with 1012 (service restart); an ordinary
    shutdown is 1001 (going away). 1012 is reserved for restarts the monitor orders.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.watchdog = Watchdog()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        forget_exit_signals(self)  # a requested, completed shutdown exits 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        guard_server(self.config, self.runtime.request_timeout)
        await super().startup(sockets)
        if self.started:
            check_bound_sockets(self, self.runtime)
            config = self.config
            log.info(
                "WebSocket write path: %s",
                describe_write_path(str(config.ws), config.ws_per_message_deflate),
            )
            self.watchdog.start()  # systemd READY=1 and WATCHDOG=1 pings, when under systemd

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.watchdog.stop()
        services = self.runtime.services
        if services is not None:
            await services.close_clients()
        await super().shutdown(sockets)


def check_bound_sockets(server: uvicorn.Server, runtime: Runtime) -> None:
    """With DEBUG_FAULTS on, open the fault routes only if every listening socket is loopback."""
    if runtime.debug_faults:
        from cotiza.api.routes.debug import confirm_loopback

        confirm_loopback(runtime, listening_sockets(server))


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    ws = websocket_options(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws=ws.implementation,
        ws_max_size=ws.max_size,
        ws_per_message_deflate=ws.per_message_deflate,
        ws_ping_interval=ws.ping_interval,
        ws_ping_timeout=ws.ping_timeout,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        lifespan="on",
    )


def serve(settings: Settings) -> None:
    """Run the service until SIGINT/SIGTERM (``cotiza serve`` and ``python main.py``)."""
    app = build_app(settings)
    server = Server(uvicorn_config(app, settings), app.state.runtime)
    # SIGUSR1 dumps every thread's stack to RUN_DIR/stack-PID.txt (evidence of a hang).
    with stack_dumps_on_signal(settings.run_dir):
        server.run()
