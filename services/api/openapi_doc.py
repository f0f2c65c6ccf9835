"""The OpenAPI document completed with every status an operation can answer, each with its body.

Routes document what is particular to them (404 of an unknown device, 409 of a taken name, the
refresh's 502/504). The answers every route shares are added here, once: 401/403 where a key is
needed, 413 and 422 where a body is read, 503 when NATS or the database is unavailable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from services.api.limits import MAX_BODY_BYTES

PUBLIC = frozenset({"/health", "/ready", "/openapi.json", "/docs"})


class Error(BaseModel):
    """Every error but a 422: one message."""

    detail: str


class RefreshError(Error):
    """A refresh that failed (502) or timed out (504), naming its operation."""

    operation_id: str = Field(description="the refresh's operation id, to find its audit rows")
    error: str | None = None
    status: str | None = None
    event_id: str | None = None


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """A 422: each field with its reason, and the same as one line in ``message``."""

    detail: list[ValidationItem]
    message: str


_COMMON = {
    401: "missing or invalid API key",
    403: "the key's role may not do this",
    413: f"request body larger than {MAX_BODY_BYTES} bytes",
    422: "invalid parameters or body",
    503: "NATS or the database is unavailable",
}
_MODELS: dict[type[BaseModel], str] = {Error: "Error", RefreshError: "RefreshError", ValidationErrorBody: "ValidationErrorBody",
           ValidationItem: "ValidationItem"}


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _body_of(code: int) -> str:
    return {422: "ValidationErrorBody", 502: "RefreshError", 504: "RefreshError"}.get(code, "Error")


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the shared answers and an error body to every documented error without one."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model, name in _MODELS.items():
        schemas[name] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas[name].pop("$defs", None)
    for path, ops in doc.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            codes: set[int] = set()
            if op.get("security"):
                codes |= {401, 403}
            if "requestBody" in op:
                codes |= {413, 422}
            if op.get("parameters"):
                codes.add(422)
            if path not in PUBLIC:
                codes.add(503)
            for code in sorted(codes):
                responses.setdefault(str(code), {"description": _COMMON[code]})
            for code, answer in responses.items():
                if code.isdigit() and int(code) >= 400 and (int(code) == 422 or "content" not in answer):
                    answer["content"] = _ref(_body_of(int(code)))
    return doc


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, servers=app.servers, tags=app.openapi_tags))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
