"""A device's timeline: configuration changes, container state changes and collection failures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.api.deps import DeviceDep, SessionDep, ViewerKey
from services.api.errors import unprocessable
from services.api.schemas import TimeFilter, kinds_pattern
from services.api.timeline import SOURCES, TimelineEntry, timeline

router = APIRouter(prefix="/devices", tags=["timeline"])

DEFAULT_WINDOW = timedelta(days=7)


class Timeline(BaseModel):
    """Entries in time order, oldest first."""

    start: datetime
    end: datetime
    items: list[TimelineEntry]


@router.get("/{device}/timeline", responses={404: {"description": "unknown device"}})
async def device_timeline(
    _: ViewerKey, spec: DeviceDep, session: SessionDep,
    window: Annotated[TimeFilter, Query()],
    kind: Annotated[str | None, Query(json_schema_extra={"pattern": kinds_pattern(SOURCES)},
                                      description=f"comma-separated: {', '.join(SOURCES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Timeline:
    """What happened on the device in [start, end) (default: the last 7 days), newest ``limit`` entries."""
    kinds = [k.strip() for k in kind.split(",") if k.strip()] if kind else None
    unknown = sorted(set(kinds or ()) - set(SOURCES))
    if unknown:
        raise unprocessable("kind", f"unknown kind {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    end = window.end or datetime.now(timezone.utc)
    try:
        start = window.start or end - DEFAULT_WINDOW
    except OverflowError:  # an end near year 1: the window starts at the earliest time
        start = datetime.min.replace(tzinfo=timezone.utc)
    items = await timeline(session, spec.id, start, end, limit, kinds) if start < end else []
    return Timeline(start=start, end=end, items=items)
