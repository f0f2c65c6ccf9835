"""System metrics of a device: the latest values, or the stored history over a time range."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from services.api.deps import DeviceDep, ReaderDep, ViewerKey, require_force
from services.api.queries import fetch_rows, page_of, time_buckets
from services.api.reads import Reading
from services.api.schemas import MetricBucket, MetricBuckets, MetricsQuery, Page, SystemMetricsLatest
from services.api.schemas_collected import row_model
from shared.datatypes.system_metrics.table import SystemMetric
from shared.events import DeviceSpec

router = APIRouter(prefix="/devices", tags=["metrics"])

DATA_TYPE = "system_metrics"
SystemMetricRow = row_model(SystemMetric)

_AGGREGATE = """
SELECT {fn} AS bucket, count(*) AS samples,
       avg(cpu_usage) AS cpu_avg, max(cpu_usage) AS cpu_max,
       avg(memory_usage) AS memory_avg, max(memory_usage) AS memory_max,
       avg(load_1) AS load_1_avg, max(load_1) AS load_1_max
FROM system_metrics
WHERE device_id = :device_id AND time >= :start AND time < :end
GROUP BY 1 ORDER BY 1
"""


_encoder = msgspec.json.Encoder()


def _json(body: dict) -> Response:
    # Encoded by msgspec from plain values: the hot paths build no pydantic model per row. The
    # route's response_model still documents the body.
    return Response(_encoder.encode(body), media_type="application/json")


def from_reading(spec: DeviceSpec, reading: Reading) -> Response:
    """The latest values (a SystemMetricsLatest) as the served collection event carries them."""
    ev = reading.event
    return _json({
        **msgspec.structs.asdict(ev.payload), "device_id": spec.id, "device": spec.name,
        "time": ev.occurred_at, "age_seconds": reading.age_seconds, "source": reading.source,
    })


# One bucket as encoded: the fields of MetricBucket, in the order of _AGGREGATE's columns.
_Bucket = msgspec.defstruct("Bucket", list(MetricBucket.model_fields))


async def _buckets(request: Request, spec: DeviceSpec, query: MetricsQuery) -> Response:
    """A MetricBuckets body, encoded from the driver's rows (no model object per bucket)."""
    assert query.start is not None and query.end is not None and query.bucket is not None
    buckets = await time_buckets(request, query.bucket, query.start, query.end)
    rows = await fetch_rows(request.app.state.engine, _AGGREGATE.format(fn=buckets.expr), {
        **buckets.params, "device_id": spec.id, "start": query.start, "end": query.end,
    })
    return _json({
        "device_id": spec.id, "start": query.start, "end": query.end, "bucket": query.bucket,
        "function": buckets.function, "items": [_Bucket(*row) for row in rows],
    })


@router.get(
    "/{device}/metrics", response_model=SystemMetricsLatest | Page[SystemMetricRow] | MetricBuckets,  # type: ignore[valid-type]
    responses={404: {"description": "unknown device"}, 502: {"description": "collection failed"},
               504: {"description": "refresh timed out; the body carries its operation_id"}},
)
async def device_metrics(
    query: Annotated[MetricsQuery, Query()],
    principal: ViewerKey,
    spec: DeviceDep,
    reader: ReaderDep,
    request: Request,
) -> SystemMetricsLatest | Page[SystemMetricRow] | MetricBuckets | Response:  # type: ignore[valid-type]
    """Without ``start``: the latest values (fresh cache, else a refresh). With it: stored rows in [start, end),
    paged, or aggregated per ``bucket``."""
    if query.start is None:
        require_force(principal, query.force_refresh)
        reading = await reader.latest(spec, DATA_TYPE, force=query.force_refresh, principal=principal)
        return from_reading(spec, reading)
    if query.bucket is not None:
        return await _buckets(request, spec, query)
    async with request.app.state.sessionmaker() as session:
        return await page_of(
            session, select(SystemMetric).where(SystemMetric.device_id == spec.id, SystemMetric.time >= query.start,
                                                SystemMetric.time < query.end).order_by(SystemMetric.time),
            SystemMetricRow, query.page, query.page_size,
        )
