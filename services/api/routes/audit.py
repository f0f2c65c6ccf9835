"""The audit trail of collections and reads, and the services' performance metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from schema.models import DataCollectionAudit as Audit, ServicePerformanceMetric as Perf
from services.api.deps import UNKNOWN_DEVICE, DeviceFilterDep, SessionDep, ViewerKey
from services.api.limits import bounded_count, max_page
from services.api.queries import time_range
from services.api.schemas import Page, TimeFilter
from shared.events import Status, Trigger
from shared.names import TOKEN_RE

router = APIRouter(tags=["audit"])

TOKEN = TOKEN_RE.pattern


class AuditRow(BaseModel):
    """One collection operation, or one audited read (``collection_method`` ``cache`` or ``read``)."""

    model_config = ConfigDict(from_attributes=True)

    time: datetime
    event_id: uuid.UUID
    device_id: uuid.UUID | None
    operation_id: uuid.UUID
    data_type: str
    collection_method: str
    collection_source: str | None
    trigger: str
    force_refresh: bool
    cache_hit: bool
    duration_ms: int | None
    ssh_command_count: int
    data_size_bytes: int | None
    status: str
    error_message: str | None
    warnings: list[Any] | None
    records_created: int
    records_updated: int
    freshness_threshold: int | None


class PerfRow(BaseModel):
    """Performance counters of one service instance over one period."""

    model_config = ConfigDict(from_attributes=True)

    time: datetime
    service_name: str
    instance: str
    operations_total: int
    operations_successful: int
    operations_failed: int
    operations_cached: int
    avg_duration_ms: float | None
    max_duration_ms: int | None
    min_duration_ms: int | None
    ssh_connections_created: int
    ssh_connections_reused: int
    ssh_commands_executed: int
    cache_hit_ratio: float | None
    cache_size_entries: int | None
    cache_evictions: int
    data_collected_bytes: int
    database_writes: int
    error_types: dict[str, Any] | None
    top_errors: list[Any] | None


@router.get("/audit", responses=UNKNOWN_DEVICE)
async def audit_trail(
    _: ViewerKey, session: SessionDep, device_id: DeviceFilterDep,
    window: Annotated[TimeFilter, Query()],
    data_type: Annotated[str | None, Query(pattern=TOKEN, max_length=50)] = None,
    trigger: Annotated[Literal[get_args(Trigger)] | None, Query()] = None,  # type: ignore[valid-type]
    status: Annotated[Literal[get_args(Status)] | None, Query()] = None,  # type: ignore[valid-type]
    cache_hit: bool | None = None,
    page: Annotated[int, Query(ge=1, le=max_page(1000))] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditRow]:
    """Collections and audited reads, newest first."""
    where = time_range(Audit.time, window.start, window.end)
    for column, value in ((Audit.device_id, device_id), (Audit.data_type, data_type), (Audit.trigger, trigger),
                          (Audit.status, status), (Audit.cache_hit, cache_hit)):
        if value is not None:
            where.append(column == value)
    total = await bounded_count(session, select(Audit).where(*where), (page - 1) * page_size)
    rows = await session.scalars(
        select(Audit).where(*where).order_by(Audit.time.desc()).offset((page - 1) * page_size).limit(page_size)
    )
    return Page[AuditRow].of([AuditRow.model_validate(r) for r in rows], total, page, page_size)


@router.get("/performance")
async def performance(
    _: ViewerKey, session: SessionDep,
    window: Annotated[TimeFilter, Query()],
    service: Annotated[str | None, Query(pattern=TOKEN, max_length=50)] = None,
    page: Annotated[int, Query(ge=1, le=max_page(1000))] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[PerfRow]:
    """Service performance metrics, newest first."""
    where = time_range(Perf.time, window.start, window.end)
    if service:
        where.append(Perf.service_name == service)
    total = await bounded_count(session, select(Perf).where(*where), (page - 1) * page_size)
    rows = await session.scalars(
        select(Perf).where(*where).order_by(Perf.time.desc(), Perf.service_name, Perf.instance)
        .offset((page - 1) * page_size).limit(page_size)
    )
    return Page[PerfRow].of([PerfRow.model_validate(r) for r in rows], total, page, page_size)
