"""Exception handlers: every error is JSON with a ``detail`` message; bad input is never a 500.

``install`` also makes the OpenAPI document list every status an operation can answer, with its
body (``openapi_doc.complete``), and answers 405 with the ``Allow`` header of the whole path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api import openapi_doc
from services.api.reads import CollectionFailed
from services.api.refresh import RefreshRefused, RefreshTimeout

log = logging.getLogger(__name__)


BODY_UNPARSABLE = "There was an error parsing the body"  # FastAPI's 400 when it cannot decode a body


def unprocessable(field: str, message: str, where: str = "query") -> RequestValidationError:
    """A 422 for a rule that a single parameter's validation cannot express."""
    return RequestValidationError([{"loc": (where, field), "msg": message, "type": "value_error"}])


def _where(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if len(parts) > 1 and parts[0] in ("query", "path", "body", "header") else parts)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each field and the reason, plus a one-line ``message``."""
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    message = "; ".join(f"{_field(e['loc']) or 'request'}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": jsonable_encoder(errors), "message": message}, status_code=422)


async def refresh_timeout(request: Request, exc: RefreshTimeout) -> JSONResponse:
    return JSONResponse({"detail": f"refresh timed out: {exc}", "operation_id": str(exc.operation_id)},
                        status_code=504)


async def refresh_refused(request: Request, exc: RefreshRefused) -> JSONResponse:
    return JSONResponse({"detail": f"refresh refused by the collector: {exc}", "operation_id": str(exc.operation_id)},
                        status_code=502)


async def collection_failed(request: Request, exc: CollectionFailed) -> JSONResponse:
    ev = exc.event
    return JSONResponse({
        "detail": f"collection failed ({ev.status})", "error": ev.error, "status": ev.status,
        "operation_id": str(ev.operation_id), "event_id": str(ev.event_id),
    }, status_code=502)


def _unavailable(part: str):
    """A handler answering 503 when a backing service fails mid-request."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s: %s unavailable (%s)", _where(request), part, type(exc).__name__)
        return JSONResponse({"detail": f"{part} unavailable"}, status_code=503)

    return handler


async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    """Refused values are 422, bugs 500 (logged with the statement's error), the rest 503."""
    if isinstance(exc, DataError):
        log.warning("%s: value refused by the database: %s", _where(request), type(exc.orig).__name__)
        return await validation_error(request, unprocessable("request", "a value was refused by the database"))
    if isinstance(exc, (ProgrammingError, IntegrityError)):
        log.error("%s: database error %s", _where(request), str(exc.orig).splitlines()[0] if exc.orig else exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
    return await _unavailable("database")(request, exc)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's HTTP errors, with an ``Allow`` naming every method of the path on a 405."""
    headers = dict(exc.headers or {})
    if exc.status_code == 422 and isinstance(exc.detail, str):  # one shape for every 422
        return await validation_error(request, unprocessable("request", exc.detail, "body"))
    if exc.status_code == 400 and exc.detail == BODY_UNPARSABLE:  # e.g. JSON that is not UTF-8
        return await validation_error(request, RequestValidationError(
            [{"loc": ("body",), "msg": "the body is not JSON in UTF-8", "type": "json_invalid"}]))
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists for the request's path."""
    path = request.url.path
    paths = request.app.openapi().get("paths", {})
    for template, ops in sorted(paths.items(), key=lambda item: item[0].count("{")):  # literal paths first
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return sorted(m.upper() for m in ops)
    return []


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s failed", _where(request))
    return JSONResponse({"detail": "internal error"}, status_code=500)


def _on(app: FastAPI, exc_class: type[Exception], handler: Callable[[Request, Any], Awaitable[Response]]) -> None:
    """Register ``handler`` for ``exc_class`` (Starlette types every handler as taking Exception)."""
    app.add_exception_handler(exc_class, handler)


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    _on(app, RequestValidationError, validation_error)
    _on(app, StarletteHTTPException, http_error)
    _on(app, RefreshTimeout, refresh_timeout)
    _on(app, RefreshRefused, refresh_refused)
    _on(app, CollectionFailed, collection_failed)
    _on(app, DBAPIError, database_error)
    app.add_exception_handler(OSError, _unavailable("database"))
    app.add_exception_handler(NatsError, _unavailable("NATS"))
    app.add_exception_handler(Exception, unexpected)
    openapi_doc.install(app)
