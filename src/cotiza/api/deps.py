"""Request dependencies: the running services and the control token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.requests import HTTPConnection

from cotiza.origins import OriginPolicy
from cotiza.service import Services
from cotiza.settings import Settings


def get_services(request: HTTPConnection) -> Services:
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_origins(conn: HTTPConnection) -> OriginPolicy:
    """The process's one origin rule (``ALLOWED_ORIGINS``), shared by CORS, WebSockets and
    state-changing requests."""
    policy: OriginPolicy = conn.app.state.origins
    return policy


OriginsDep = Annotated[OriginPolicy, Depends(get_origins)]


def presented_token(conn: HTTPConnection) -> str | None:
    """The token from ``Authorization: Bearer``, ``X-API-Token`` or ``?token=``."""
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return conn.headers.get("x-api-token") or conn.query_params.get("token")


def token_valid(services: Services, conn: HTTPConnection) -> bool:
    return token_matches(services.settings, conn)


def token_matches(settings: Settings, conn: HTTPConnection) -> bool:
    """True when no token is configured or ``conn`` presents the configured one."""
    expected = settings.api_token
    if expected is None:
        return True
    given = presented_token(conn)
    return given is not None and hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    )


def require_token(request: Request, services: ServicesDep) -> None:
    if not token_valid(services, request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid API token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


TokenDep = Annotated[None, Depends(require_token)]
