"""CORS by the service's one origin rule (``cotiza.origins.OriginPolicy``)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from cotiza.origins import OriginPolicy


class PolicyCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, deciding by ``OriginPolicy`` and reporting refused origins.

    A same-host page needs no CORS headers and is not a refusal; a listed origin (or ``*``)
    gets them; any other browser origin gets none and is noted (logged once).
    """

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        super().__init__(
            app,
            allow_origins=["*"] if policy.any else sorted(policy.allowed),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Token"],
        )
        self.policy = policy

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows_cross_origin(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self.policy.allows(origin, headers.get("host")):
                self.policy.refused(origin, "cors")
        await super().__call__(scope, receive, send)
