"""The latest collection of any data type: fresh from the cache, else refreshed by a collector."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, Path, Query, Response

from services.api.deps import DeviceDep, ReaderDep, Responses, ViewerKey, require_force
from services.api.keys import Principal
from services.api.reads import Reader
from services.api.schemas import CollectedData
from shared.events import COLLECTED_TYPES, DeviceSpec

router = APIRouter(prefix="/devices", tags=["data"])

DataType = Literal[tuple(sorted(COLLECTED_TYPES))]  # type: ignore[valid-type]
_encoder = msgspec.json.Encoder()

RESPONSES: Responses = {
    200: {"model": CollectedData},
    404: {"description": "unknown device"},
    502: {"description": "the collection failed, or a collector refused the request"},
    504: {"description": "no collection within the refresh timeout; the body carries its operation_id"},
}


ForceRefresh = Annotated[bool, Query(description="collect now even if the cache is fresh (operator)")]


async def latest_response(reader: Reader, spec: DeviceSpec, data_type: str, principal: Principal,
                          force_refresh: bool) -> Response:
    """The latest collection of ``data_type`` as served by the Reader (the body of every latest-data route)."""
    require_force(principal, force_refresh)
    reading = await reader.latest(spec, data_type, force=force_refresh, principal=principal)
    ev = reading.event
    body = {
        "device_id": spec.id, "device": spec.name, "data_type": data_type, "source": reading.source,
        "age_seconds": round(reading.age_seconds, 3), "fresh": reading.fresh,
        "freshness_threshold_s": reading.threshold_s, "occurred_at": ev.occurred_at,
        "operation_id": ev.operation_id, "event_id": ev.event_id, "status": ev.status, "warnings": ev.warnings,
        "payload": getattr(ev, "payload", None),
    }
    # Encoded by msgspec straight from the cached Struct: the hot path skips pydantic.
    return Response(_encoder.encode(body), media_type="application/json")


@router.get("/{device}/data/{data_type}", response_model=CollectedData, responses=RESPONSES)
async def collected_data(
    data_type: Annotated[DataType, Path(description="a collected data type")],  # type: ignore[valid-type]
    principal: ViewerKey,
    spec: DeviceDep,
    reader: ReaderDep,
    force_refresh: ForceRefresh = False,
) -> Response:
    """The latest payload with its age and source (``cache`` or ``refresh``)."""
    return await latest_response(reader, spec, data_type, principal, force_refresh)
