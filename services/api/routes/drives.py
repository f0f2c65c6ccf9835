"""Drives of a device: one drive's readings over time, raw or in buckets (the latest readings are a generic read)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from sqlalchemy import select, text

from services.api.deps import DeviceDep, SessionDep, ViewerKey
from services.api.queries import page_of, time_buckets, window
from services.api.schemas import Page
from services.api.schemas_collected import DriveBucket, DriveBuckets, DriveHistoryQuery, row_model
from shared.datatypes.drive_health.table import DriveHealth

router = APIRouter(prefix="/devices", tags=["drives"])
DriveRow = row_model(DriveHealth)

_AGGREGATE = """
SELECT {fn} AS bucket, count(*) AS samples,
       avg(temperature_celsius) AS temperature_avg, min(temperature_celsius) AS temperature_min,
       max(temperature_celsius) AS temperature_max, max(power_on_hours) AS power_on_hours,
       bool_and(is_healthy) AS is_healthy,
       (array_agg(smart_attributes ORDER BY time DESC))[1] AS smart_attributes
FROM drive_health
WHERE device_id = :device_id AND drive_name = :drive AND time >= :start AND time < :end
GROUP BY 1 ORDER BY 1
"""


async def _drive_name(session, spec, drive: str) -> str:
    """The stored name of ``drive``: as given (``/dev/sda``), or with ``/`` or ``/dev/`` in front (``sda``)."""
    candidates = [drive] if drive.startswith("/") else [drive, "/" + drive, "/dev/" + drive]
    found = set(await session.scalars(
        select(DriveHealth.drive_name).where(DriveHealth.device_id == spec.id, DriveHealth.drive_name.in_(candidates))
        .distinct()))
    name = next((c for c in candidates if c in found), None)
    if name is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"drive {drive!r} not found on {spec.name}")
    return name


@router.get("/{device}/drives/{drive:path}/history", response_model=Page[DriveRow] | DriveBuckets,  # type: ignore[valid-type]
            responses={404: {"description": "unknown device, or no such drive on it"}})
async def drive_history(
    _: ViewerKey, spec: DeviceDep, session: SessionDep, request: Request,
    drive: Annotated[str, Path(min_length=1, max_length=255, description="/dev/sda, or sda")],
    query: Annotated[DriveHistoryQuery, Query()],
) -> Page[DriveRow] | DriveBuckets:  # type: ignore[valid-type]
    """Temperature, power-on hours, health and attributes in [start, end), oldest first: the stored rows, paged,
    or with ``bucket`` aggregated per bucket."""
    name = await _drive_name(session, spec, drive)
    if query.bucket is None:
        stmt = select(DriveHealth).where(*window(DriveHealth, spec.id, query.start, query.end),
                                         DriveHealth.drive_name == name).order_by(DriveHealth.time)
        return await page_of(session, stmt, DriveRow, query.page, query.page_size)
    assert query.start is not None
    end = query.end or datetime.now(timezone.utc)
    buckets = await time_buckets(request, query.bucket, query.start, end)
    rows = await session.execute(text(_AGGREGATE.format(fn=buckets.expr)), {
        **buckets.params, "device_id": spec.id, "drive": name, "start": query.start, "end": end,
    })
    return DriveBuckets(device_id=spec.id, drive=name, start=query.start, end=end, bucket=query.bucket,
                        function=buckets.function, items=[DriveBucket.model_validate(dict(r._mapping)) for r in rows])
