"""A cheap token check, so that a page can tell a wrong token at once instead of failing later."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from cotiza.api.deps import TokenDep

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/check", status_code=status.HTTP_204_NO_CONTENT)
async def check(_: TokenDep) -> Response:
    """204 when the presented token is valid (or none is configured), 401 otherwise."""
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Cache-Control": "no-store"})
