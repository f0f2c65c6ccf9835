"""The alerts firing now, across devices, each with the likely causes found when it fired."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from schema.models import AlertEvent as AlertRecord, AlertRule as Rule
from services.api.deps import RegistryDep, SessionDep, ViewerKey, device_filter
from services.api.limits import bounded_count, max_page
from services.api.routes.rules import AlertCause
from services.api.schemas import Page
from shared.alert_events import Metric

router = APIRouter(tags=["alerts"])


class ActiveAlert(BaseModel):
    """A rule firing on a device: its newest alert event is ``fired``."""

    time: datetime
    event_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    device_id: uuid.UUID
    device: str | None
    metric: str
    selector: str | None
    value: float
    threshold: float
    operator: str
    since: datetime
    message: str | None
    detail: str | None
    causes: list[AlertCause]


@router.get("/alerts/active", responses={404: {"description": "unknown device"}})
async def active_alerts(
    _: ViewerKey, registry: RegistryDep, session: SessionDep,
    device: Annotated[str | None, Query(max_length=63, description="name or UUID")] = None,
    metric: Annotated[Metric | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=max_page(1000))] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[ActiveAlert]:
    """Every (rule, device) whose newest alert is ``fired``, newest first; a deleted rule's alerts are
    not active (nothing evaluates them any more)."""
    newest = func.row_number().over(partition_by=(AlertRecord.rule_id, AlertRecord.device_id),
                                    order_by=(AlertRecord.time.desc(), AlertRecord.event_id.desc()))
    latest = select(AlertRecord, newest.label("n"))
    device_id = device_filter(registry, device)
    if device_id is not None:
        latest = latest.where(AlertRecord.device_id == device_id)
    if metric is not None:
        latest = latest.where(AlertRecord.metric == metric)
    ranked = latest.subquery()
    alert = aliased(AlertRecord, ranked)
    query = (select(alert, Rule.selector).join(Rule, Rule.id == alert.rule_id)
             .where(ranked.c.n == 1, alert.state == "fired"))
    total = await bounded_count(session, query, (page - 1) * page_size)
    rows = await session.execute(query.order_by(alert.time.desc(), alert.event_id)
                                 .offset((page - 1) * page_size).limit(page_size))
    items = []
    for row, selector in rows:
        spec = registry.get(str(row.device_id))
        items.append(ActiveAlert(
            time=row.time, event_id=row.event_id, rule_id=row.rule_id, rule_name=row.rule_name,
            device_id=row.device_id, device=spec.name if spec else None, metric=row.metric, selector=selector,
            value=row.value, threshold=row.threshold, operator=row.operator, since=row.since, message=row.message,
            detail=row.detail, causes=[AlertCause.model_validate(c) for c in row.causes or []]))
    return Page[ActiveAlert].of(items, total, page, page_size)
