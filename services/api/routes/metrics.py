"""System metrics of a device: the latest values, or the stored history over a time range."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select, text

from schema.models import SystemMetric
from services.api.deps import DeviceDep, ReaderDep, SessionDep, ViewerKey, require_force
from services.api.errors import unprocessable
from services.api.queries import timescaledb
from services.api.reads import Reading
from services.api.schemas import (
    MetricBucket, MetricBuckets, MetricsQuery, Page, SystemMetricRow, SystemMetricsLatest, parse_bucket,
)
from shared.events import DeviceSpec, SystemMetricsCollected

router = APIRouter(prefix="/devices", tags=["metrics"])

DATA_TYPE = SystemMetricsCollected.data_type
MAX_BUCKETS = 10_000
# TimescaleDB's default origin (a Monday), so both functions cut the same buckets.
ORIGIN = datetime(2000, 1, 3, tzinfo=timezone.utc)

_AGGREGATE = """
SELECT {fn} AS bucket, count(*) AS samples,
       avg(cpu_usage) AS cpu_avg, max(cpu_usage) AS cpu_max,
       avg(memory_usage) AS memory_avg, max(memory_usage) AS memory_max,
       avg(load_1) AS load_1_avg, max(load_1) AS load_1_max
FROM system_metrics
WHERE device_id = :device_id AND time >= :start AND time < :end
GROUP BY 1 ORDER BY 1
"""
_FUNCTIONS = {
    True: ("time_bucket", "time_bucket(CAST(:width AS interval), time, CAST(:origin AS timestamptz))"),
    False: ("date_bin", "date_bin(CAST(:width AS interval), time, CAST(:origin AS timestamptz))"),
}


def from_reading(spec: DeviceSpec, reading: Reading) -> SystemMetricsLatest:
    """The latest values as the served collection event carries them."""
    ev = reading.event
    return SystemMetricsLatest.model_validate({
        **msgspec.to_builtins(ev.payload), "device_id": spec.id, "device": spec.name,
        "time": ev.occurred_at, "age_seconds": reading.age_seconds, "source": reading.source,
    })


async def _buckets(request: Request, session, spec: DeviceSpec, query: MetricsQuery) -> MetricBuckets:
    assert query.start is not None and query.end is not None and query.bucket is not None
    width = parse_bucket(query.bucket)
    if (query.end - query.start) / width > MAX_BUCKETS:
        raise unprocessable("bucket", f"the range holds more than {MAX_BUCKETS} buckets of {query.bucket}")
    name, fn = _FUNCTIONS[await timescaledb(request)]
    rows = await session.execute(text(_AGGREGATE.format(fn=fn)), {
        "width": width, "origin": ORIGIN, "device_id": spec.id, "start": query.start, "end": query.end,
    })
    items = [MetricBucket.model_validate(dict(r._mapping)) for r in rows]
    return MetricBuckets(device_id=spec.id, start=query.start, end=query.end, bucket=query.bucket, function=name,
                         items=items)


@router.get(
    "/{device}/metrics", response_model=SystemMetricsLatest | Page[SystemMetricRow] | MetricBuckets,
    responses={404: {"description": "unknown device"}, 502: {"description": "collection failed"},
               504: {"description": "refresh timed out; the body carries its operation_id"}},
)
async def device_metrics(
    query: Annotated[MetricsQuery, Query()],
    principal: ViewerKey,
    spec: DeviceDep,
    reader: ReaderDep,
    session: SessionDep,
    request: Request,
) -> SystemMetricsLatest | Page[SystemMetricRow] | MetricBuckets:
    """Without ``start``: the latest values (fresh cache, else a refresh). With it: stored rows in [start, end),
    paged, or aggregated per ``bucket``."""
    if query.start is None:
        require_force(principal, query.force_refresh)
        reading = await reader.latest(spec, DATA_TYPE, force=query.force_refresh, principal=principal)
        return from_reading(spec, reading)
    if query.bucket is not None:
        return await _buckets(request, session, spec, query)
    where = (SystemMetric.device_id == spec.id, SystemMetric.time >= query.start, SystemMetric.time < query.end)
    total = await session.scalar(select(func.count()).select_from(SystemMetric).where(*where)) or 0
    rows = await session.scalars(
        select(SystemMetric).where(*where).order_by(SystemMetric.time)
        .offset((query.page - 1) * query.page_size).limit(query.page_size)
    )
    items = [SystemMetricRow.model_validate(r) for r in rows]
    return Page[SystemMetricRow].of(items, total, query.page, query.page_size)
