"""One error model: every failure reaches the client as ``{"error": "...", "status": N}``.

Services raise the subclasses below; routers never build error JSON by hand. The handlers
installed by :func:`install_error_handlers` also turn framework errors (404, 405, validation)
and uncaught exceptions into the same shape, without leaking stack traces.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("portal.errors")


class ApiError(Exception):
    """An error with an HTTP status and a message safe to show to the caller."""

    status: int = 500
    default_message: str = "Internal server error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **self.extra}


class BadRequest(ApiError):
    status = 400
    default_message = "Bad request"


class Unauthorized(ApiError):
    status = 401
    default_message = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    default_message = "Forbidden"


class NotFound(ApiError):
    status = 404
    default_message = "Not found"


class Conflict(ApiError):
    status = 409
    default_message = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    default_message = "Payload too large"


class TooManyRequests(ApiError):
    status = 429
    default_message = "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 60, **extra: Any) -> None:
        super().__init__(message, retry_after=max(1, int(retry_after)), **extra)
        self.retry_after = max(1, int(retry_after))


_STATUS_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status, headers=headers)


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie", "form"})


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "config", "path")`` -> ``config.path``: only a leading location is dropped, so a
    field may itself be called ``path`` or ``body``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    details = []
    for err in errors:
        field = _field_name(err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            field, msg = "body", "request body is not valid JSON"
        details.append({"field": field, "message": msg})
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    return f"Invalid {first['field']}: {first['message']}", details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = validation_message(list(exc.errors()))
        return error_response(400, message, details=details, field=details[0]["field"] if details else "body")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if not detail or detail == _default_reason(exc.status_code):
            detail = _STATUS_MESSAGES.get(exc.status_code, detail or "Error")
        return error_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error")

    document_error_model(app)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "A message safe to show to the caller"},
        "status": {"type": "integer"},
        "field": {"type": "string", "description": "The first invalid field (400)"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "retry_after": {"type": "integer", "description": "Seconds to wait (429)"},
    },
    "required": ["error", "status"],
}


def document_error_model(app: FastAPI) -> None:
    """Make the OpenAPI schema promise what the handlers above send: a 400 ``Error``, never FastAPI's 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = build()  # cached by FastAPI; patched once, in place
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None:
                        responses.setdefault(
                            "400",
                            {
                                "description": "Invalid request",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                            },
                        )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas["Error"] = ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _default_reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
