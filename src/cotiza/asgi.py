"""``app`` for ``uvicorn main:app``: built from the environment when uvicorn starts it."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from cotiza.errors import ConfigurationError
from cotiza.settings import load_settings

log = logging.getLogger("cotiza")


class LazyApp:
    """Defers reading configuration until the server runs the app, not at import."""

    def __init__(self) -> None:
        self._app: Any = None

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
            from cotiza.api.app import create_app

            self._app = create_app(settings)
        await self._app(scope, receive, send)


app = LazyApp()
