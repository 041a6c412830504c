"""``app`` for ``uvicorn main:app``: built from the environment when uvicorn starts it.

Here the server is not cotiza's: uvicorn's command line chose its configuration, logging
and shutdown order. The app does what it can from the inside, through ``build_app`` like
every other entry point (so logging is set up before anything of cotiza logs), plus
``GuestServer`` for the shutdown order and a warning about differing WebSocket options.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings

if TYPE_CHECKING:
    import uvicorn

    from cotiza.api.app import Runtime
    from cotiza.settings import Settings

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SignalHandler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class GuestServer:
    """What the app does for itself under a uvicorn server it did not configure.

    That server is found through the SIGTERM handler uvicorn installs (its bound
    ``handle_exit``). On SIGINT/SIGTERM, uvicorn would close every WebSocket with 1012
    (service restart) before the app hears of the shutdown; so the app takes the signal
    first, closes its clients with 1001 (going away) and only then hands the signal on to
    uvicorn. A second signal during that wait goes to uvicorn at once.
    """

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.server: uvicorn.Server | None = None
        self._previous: dict[int, SignalHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalled = False
        self._delivered = False
        self._task: asyncio.Task[None] | None = None
        self._bind_check: asyncio.Task[None] | None = None

    @staticmethod
    def find_server() -> uvicorn.Server | None:
        """The uvicorn server whose ``handle_exit`` handles SIGTERM, if that is the case."""
        from cotiza.ws.transport import server_handling_signal

        return server_handling_signal(signal.SIGTERM)

    def install(self) -> None:
        """Check the server's WebSocket options and take its SIGINT/SIGTERM; idempotent."""
        if self._previous:
            return
        server = self.find_server()
        if server is None:
            log.warning(
                "not started by uvicorn's signal handling: at shutdown WebSocket clients get "
                "whatever close code the server sends (cotiza serve sends 1001)"
            )
            return
        self.server = server
        self._warn_about_options(server)
        from cotiza.ws.transport import guard_server

        guard_server(server.config, self.runtime.request_timeout)
        self._loop = asyncio.get_running_loop()
        if self.runtime.debug_faults:  # the sockets are bound after the lifespan starts
            self._bind_check = self._loop.create_task(self._check_sockets(server))
        try:
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: signals are not ours to take
            self.uninstall()
            log.warning("cannot take the shutdown signals outside the main thread")

    async def _check_sockets(self, server: uvicorn.Server) -> None:
        from cotiza.server import check_bound_sockets

        # uvicorn offers no event for "sockets bound": poll its flag.
        while not server.started and not server.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if server.started:
            check_bound_sockets(server, self.runtime)

    def uninstall(self) -> None:
        """Give the signals back to the server (if still ours); idempotent."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, handler)

    def _warn_about_options(self, server: uvicorn.Server) -> None:
        from cotiza.server import option_differences, websocket_options

        differences = option_differences(server.config, websocket_options(self.settings))
        if differences:
            log.warning(
                "uvicorn runs with WebSocket options other than cotiza's settings: %s; "
                "start with `cotiza serve` or `python main.py` to apply them",
                "; ".join(differences),
            )

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread: only note it and wake the loop.
        if self._signalled or self._loop is None or self.runtime.services is None:
            self._deliver(sig)
            return
        self._signalled = True
        self._loop.call_soon_threadsafe(self._start_closing, sig)

    def _start_closing(self, sig: int) -> None:
        self._task = asyncio.create_task(self._close_then_deliver(sig), name="ws-close-1001")

    async def _close_then_deliver(self, sig: int) -> None:
        try:
            services = self.runtime.services
            if services is not None:
                closed = await services.close_clients()
                log.info("shutdown: %d WebSocket client(s) closed with 1001", closed)
        finally:
            if not self._delivered:
                self._deliver(sig)

    def _deliver(self, sig: int) -> None:
        self._delivered = True
        handler = self._previous.get(sig)
        if callable(handler):
            handler(sig, None)


class LazyApp:
    """Defers reading configuration until the server runs the app, not at import."""

    def __init__(self) -> None:
        self._app: Any = None
        self.guest: GuestServer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            try:
                settings = load_settings()
            except ConfigurationError as exc:
                log.error("%s", exc)
                if scope["type"] == "lifespan":
                    await receive()
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            from cotiza.server import build_app

            app = build_app(settings)
            self.guest = GuestServer(app.state.runtime, settings)
            self.guest.install()
            self._app = app
        await self._app(scope, receive, send)


app = LazyApp()
