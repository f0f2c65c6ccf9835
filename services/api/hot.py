"""Cached reads answered in front of FastAPI's routing, parameter validation and dependency solving.

A ``GET /devices/{d}/data/{type}`` or ``GET /devices/{d}/metrics`` without a query string, with a
key this instance authenticated within ``api_key_cache_s``, of a registered device whose cached
value is fresh, is answered here with the route's body, counted and audited by the same Reader.
Everything else (another key, a refresh, a query parameter, an error) goes on to the routes,
which validate, document and answer it. Nothing here waits on the network.
"""

from __future__ import annotations

import re

import msgspec
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.deps import cached_principal
from services.api.reads import Reading
from services.api.routes.metrics import from_reading
from shared.events import COLLECTED_TYPES, DeviceSpec

# The segments match as Starlette's {param} does (no "/"); scope["path"] is already decoded.
_DATA = re.compile(r"/devices/([^/]+)/data/([^/]+)")
_METRICS = re.compile(r"/devices/([^/]+)/metrics")
_encoder = msgspec.json.Encoder()


def collected_body(spec: DeviceSpec, data_type: str, reading: Reading) -> bytes:
    """The body of ``GET /devices/{d}/data/{type}`` (a CollectedData) for a reading."""
    ev = reading.event
    return _encoder.encode({
        "device_id": spec.id, "device": spec.name, "data_type": data_type, "source": reading.source,
        "age_seconds": round(reading.age_seconds, 3), "fresh": reading.fresh,
        "freshness_threshold_s": reading.threshold_s, "occurred_at": ev.occurred_at,
        "operation_id": ev.operation_id, "event_id": ev.event_id, "status": ev.status, "warnings": ev.warnings,
        "payload": getattr(ev, "payload", None),
    })


def answer(scope: Scope) -> Response | None:
    """The response to a cached read that needs nothing but memory, else None."""
    path = scope["path"]
    m = _DATA.fullmatch(path)
    if m is not None:
        device, data_type = m[1], m[2]
        if data_type not in COLLECTED_TYPES:
            return None
    else:
        m = _METRICS.fullmatch(path)
        if m is None:
            return None
        device, data_type = m[1], "system_metrics"
    state = scope["app"].state
    principal = cached_principal(state, Headers(scope=scope))
    if principal is None or not principal.allows("viewer"):
        return None
    spec = state.registry.get(device)
    if spec is None:
        return None
    if m.re is _METRICS and getattr(state.cache.collected(spec.name, spec.id, data_type), "payload", None) is None:
        return None  # no values to show: the route answers
    reading = state.reader.cached(spec, data_type, principal)
    if reading is None:
        return None
    scope.setdefault("state", {})["principal"] = principal
    if m.re is _METRICS:
        return from_reading(spec, reading)
    return Response(collected_body(spec, data_type, reading), media_type="application/json")


class CachedReads:
    """ASGI middleware serving :func:`answer`'s responses; every other request passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"] \
                and not scope.get("root_path"):
            response = answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
