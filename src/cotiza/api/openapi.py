"""The OpenAPI document as the service really behaves, and 405 answers that list every method.

FastAPI's generated document misses what happens outside the routes: the request guard
(``cotiza.api.guard``) answers state-changing requests with 403, 408 and 413; a body that
is not JSON gets 400; errors raised by the routes carry a string ``detail`` where FastAPI
documents only its list of validation issues; and the token is not declared as a security
scheme. ``install_openapi`` post-processes the document once, when it is first asked for.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

ERROR_REF = "#/components/schemas/ErrorResponse"
STATE_CHANGING = ("post", "put", "patch", "delete")
_GUARD_ERRORS = {
    "403": "the request's Origin is not allowed",
    "408": "the request body did not arrive within WEBSOCKET_TIMEOUT",
    "413": "the request body is larger than MAX_BODY_BYTES",
}
# Any of these presents the token; with no API_TOKEN configured none is needed ({}).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer"},
    "apiTokenHeader": {"type": "apiKey", "in": "header", "name": "X-API-Token"},
    "apiTokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
}
SECURITY: list[dict[str, list[str]]] = [
    {"bearer": []},
    {"apiTokenHeader": []},
    {"apiTokenQuery": []},
    {},
]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add what the generated document leaves out (see the module docstring)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault(
        "ErrorResponse",
        {
            "type": "object",
            "title": "ErrorResponse",
            "required": ["detail"],
            "properties": {
                "detail": {
                    "anyOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ValidationError"},
                        },
                    ],
                    "title": "Detail",
                }
            },
        },
    )
    components["securitySchemes"] = SECURITY_SCHEMES
    for operations in doc.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:  # a route's own 422s say {"detail": "..."}
                responses["422"] = _error(responses["422"].get("description", "invalid"))
            if "401" in responses:  # the routes that take the token
                operation["security"] = SECURITY
            if method in STATE_CHANGING:
                for code, description in _GUARD_ERRORS.items():
                    responses.setdefault(code, _error(description))
                if "requestBody" in operation:
                    responses.setdefault("400", _error("the request body is not valid JSON"))
    return doc


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method the document lists for ``request``'s path."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:  # Starlette names only the first route's methods
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(app, request))}
        return await http_exception_handler(request, exc)
