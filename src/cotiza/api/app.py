"""The ASGI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from typing_extensions import TypedDict

from cotiza import __version__
from cotiza.api.cors import PolicyCORSMiddleware
from cotiza.api.deps import ServicesDep
from cotiza.api.docs import mount_docs
from cotiza.api.guard import RequestGuard
from cotiza.api.openapi import install_openapi
from cotiza.api.routes import alerts, auth, compat, control, health, quotes, ratios, ws
from cotiza.errors import (
    ClusterError,
    ConflictError,
    CotizaError,
    FeedError,
    InvalidRequestError,
    NotFoundError,
    StorageError,
)
from cotiza.metrics import render_metrics
from cotiza.origins import OriginPolicy
from cotiza.service import Services, run_services
from cotiza.settings import Settings
from cotiza.ws.transport import TransportMiddleware

log = logging.getLogger(__name__)

_STATUS = {
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRequestError: 422,
    StorageError: 503,
    FeedError: 502,
    ClusterError: 503,  # the control plane (PostgreSQL) or the backplane is unreachable
}


class LifespanState(TypedDict):
    """What the lifespan hands every request (``request.state``)."""

    services: Services


@dataclass
class Runtime:
    """Where the process (not a request) finds the running services, e.g. to drain."""

    services: Services | None = None
    request_timeout: float = 10.0  # WEBSOCKET_TIMEOUT: a request or handshake must be complete
    debug_faults: bool = False  # DEBUG_FAULTS asked for; its routes open only once
    debug_faults_open: bool = False  # the server's real sockets are known to be loopback


class RevalidatedStaticFiles(StaticFiles):
    """Static files browsers must revalidate, so an upgrade never mixes old and new modules."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(settings: Settings) -> FastAPI:
    runtime = Runtime(
        request_timeout=settings.websocket_timeout, debug_faults=settings.debug_faults
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        async with run_services(settings) as services:
            runtime.services = services
            try:
                yield {"services": services}
            finally:
                runtime.services = None

    app = FastAPI(
        title="cotiza", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    mount_docs(app)  # /docs and /redoc with packaged assets: they work offline
    app.state.runtime = runtime
    app.state.settings = settings
    install_openapi(app)

    # One origin rule (ALLOWED_ORIGINS) for CORS, WebSockets and state-changing requests.
    origins = OriginPolicy(settings.allowed_origins)
    app.state.origins = origins
    # The guard inside CORS, so that its refusals carry CORS headers for allowed pages.
    app.add_middleware(RequestGuard, settings=settings, policy=origins)
    app.add_middleware(PolicyCORSMiddleware, policy=origins)

    @app.exception_handler(CotizaError)
    async def _cotiza_error(_: Request, exc: CotizaError) -> JSONResponse:
        code = next((c for t, c in _STATUS.items() if isinstance(exc, t)), 500)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(control.router)
    app.include_router(control.admin)
    app.include_router(quotes.router)
    app.include_router(ratios.router)
    app.include_router(alerts.router)
    app.include_router(compat.router)
    app.include_router(ws.router)
    if settings.debug_faults:  # only with COTIZA_ENV=test on loopback (see Settings)
        from cotiza.api.routes import debug

        app.include_router(debug.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(services: ServicesDep) -> Response:
        return Response(render_metrics(services), media_type="text/plain; version=0.0.4")

    static = resources.files("cotiza") / "static"

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> Response:
        html = (static / "index.html").read_text(encoding="utf-8")
        return Response(html, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", RevalidatedStaticFiles(directory=str(static)), name="static")
    app.add_middleware(TransportMiddleware)
    return app
