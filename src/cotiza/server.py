"""Running the app under uvicorn, with cotiza's own shutdown order."""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType
from typing import Any

import uvicorn

from cotiza.api.app import Runtime, create_app
from cotiza.ops.sdnotify import Watchdog
from cotiza.ops.stackdump import stack_dumps_on_signal
from cotiza.settings import Settings
from cotiza.ws.frames import CLOSE_GOING_AWAY
from cotiza.ws.transport import describe_write_path, forget_exit_signals

log = logging.getLogger(__name__)


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
        await super().startup(sockets)
        if self.started:
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
            services.hub.stop_accepting()
            try:
                async with asyncio.timeout(services.settings.shutdown_timeout / 2):
                    await services.hub.close_all(CLOSE_GOING_AWAY, "Server shutting down")
            except TimeoutError:
                log.warning("WebSocket clients did not close in time")
        await super().shutdown(sockets)


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws=settings.ws_impl.value,
        ws_max_size=settings.ws_max_frame_bytes,
        ws_per_message_deflate=settings.ws_compression,
        ws_ping_interval=settings.ws_keepalive_interval,
        ws_ping_timeout=settings.ws_keepalive_interval,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        lifespan="on",
    )


def serve(settings: Settings) -> None:
    """Run the service until SIGINT/SIGTERM."""
    app = create_app(settings)
    server = Server(uvicorn_config(app, settings), app.state.runtime)
    # SIGUSR1 dumps every thread's stack to RUN_DIR/stack-PID.txt (evidence of a hang).
    with stack_dumps_on_signal(settings.run_dir):
        server.run()
