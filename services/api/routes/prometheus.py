"""The API's performance counters as Prometheus text (a viewer key is required, as everywhere)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.api.deps import ViewerKey

router = APIRouter(tags=["performance"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, _: ViewerKey) -> Response:
    """Operations, durations, cache hits and errors of this API instance, in Prometheus text format."""
    return Response(request.app.state.perf.metrics_text(), media_type=CONTENT_TYPE_LATEST)
