"""System metrics of a device: the latest values, or the stored history over a time range."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from schema.models import SystemMetric
from services.api.deps import CacheDep, RegistryDep, SessionDep, ViewerKey
from services.api.routes.devices import resolve
from services.api.schemas import MetricsQuery, Page, SystemMetricRow, SystemMetricsLatest
from shared.events import DeviceSpec, SystemMetricsCollected
from shared.names import Names

router = APIRouter(prefix="/devices", tags=["metrics"])

DATA_TYPE = SystemMetricsCollected.data_type


def _age(time: datetime) -> float:
    return max(0.0, (datetime.now(timezone.utc) - time).total_seconds())


def from_event(spec: DeviceSpec, ev: SystemMetricsCollected) -> SystemMetricsLatest:
    """The latest values as a cached collection event carries them."""
    assert ev.payload is not None
    return SystemMetricsLatest.model_validate({
        **msgspec.to_builtins(ev.payload), "device_id": spec.id, "device": spec.name,
        "time": ev.occurred_at, "age_seconds": _age(ev.occurred_at), "source": "cache",
    })


def from_row(spec: DeviceSpec, row: SystemMetric) -> SystemMetricsLatest:
    """The latest values as the writer projected them into system_metrics."""
    swap_total, swap_used = row.swap_total_bytes or 0, row.swap_used_bytes or 0
    return SystemMetricsLatest.model_validate({
        "cpu_percent": row.cpu_usage, "cpu_count": row.cpu_count, "cpu_iowait_percent": row.cpu_iowait or 0.0,
        "memory_total_bytes": row.memory_total_bytes, "memory_available_bytes": row.memory_available_bytes,
        "memory_used_bytes": row.memory_used_bytes, "memory_percent": row.memory_usage,
        "swap_total_bytes": swap_total, "swap_used_bytes": swap_used,
        "swap_percent": round(100.0 * swap_used / swap_total, 2) if swap_total else 0.0,
        "load_1": row.load_1, "load_5": row.load_5, "load_15": row.load_15, "uptime_seconds": row.uptime_seconds,
        "filesystems": row.disk_usage or [], "network": row.network_traffic or [], "disks": row.disk_io or [],
        "device_id": spec.id, "device": spec.name, "time": row.time, "age_seconds": _age(row.time),
        "source": "database",
    })


@router.get("/{device}/metrics", response_model=SystemMetricsLatest | Page[SystemMetricRow])
async def device_metrics(
    device: str,
    query: Annotated[MetricsQuery, Query()],
    _: ViewerKey,
    registry: RegistryDep,
    cache: CacheDep,
    session: SessionDep,
) -> SystemMetricsLatest | Page[SystemMetricRow]:
    """Without ``start``: the latest values (cache first, then database). With it: stored rows in [start, end)."""
    spec = resolve(registry, device)
    if query.start is None:
        ev = cache.get(Names.cache_key(spec.name, DATA_TYPE))
        if isinstance(ev, SystemMetricsCollected) and ev.payload is not None and ev.device_id == spec.id:
            return from_event(spec, ev)
        row = await session.scalar(
            select(SystemMetric).where(SystemMetric.device_id == spec.id).order_by(SystemMetric.time.desc()).limit(1)
        )
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no system metrics for device {spec.name!r} yet")
        return from_row(spec, row)
    where = (SystemMetric.device_id == spec.id, SystemMetric.time >= query.start, SystemMetric.time < query.end)
    total = await session.scalar(select(func.count()).select_from(SystemMetric).where(*where)) or 0
    rows = await session.scalars(
        select(SystemMetric).where(*where).order_by(SystemMetric.time)
        .offset((query.page - 1) * query.page_size).limit(query.page_size)
    )
    items = [SystemMetricRow.model_validate(r) for r in rows]
    return Page[SystemMetricRow].of(items, total, query.page, query.page_size)
