"""What changed on a device before a moment, ranked as the likely causes of an alert at that moment."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.alerts import causes, history
from services.api.deps import DeviceDep, JsDep, NamesDep, ViewerKey
from services.api.errors import unprocessable
from services.api.routes.rules import SELECTOR, AlertCause
from services.api.schemas import _UNITS, DateTime, as_utc
from shared.alert_events import Metric

router = APIRouter(prefix="/devices", tags=["timeline"])

# 1 s to 7 days: seconds (a trailing s optional), minutes, hours or days (parse_window checks the same)
WINDOW_PATTERN = (r"^(?:(?:[1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s?"
                  r"|(?:[1-9][0-9]{0,3}|100[0-7][0-9]|10080)m|(?:[1-9][0-9]?|1[0-5][0-9]|16[0-8])h|[1-7]d)$")
_WINDOW_RE = re.compile(WINDOW_PATTERN)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Changes(BaseModel):
    """The likeliest causes first."""

    device: str
    before: datetime
    window_s: int
    items: list[AlertCause]


def parse_window(value: str) -> timedelta:
    """``30m``, ``2h``, ``1d`` or seconds (``1800``); from 1 second to 7 days, else ValueError."""
    if not _WINDOW_RE.match(value):
        raise ValueError("window must be from 1 second to 7 days: a number of seconds, or a number and a unit "
                         "s, m, h or d, e.g. 30m")
    unit = value[-1] if value[-1] in _UNITS else "s"
    return timedelta(seconds=int(value.rstrip("smhd")) * _UNITS[unit])


@router.get("/{device}/changes", responses={404: {"description": "unknown device"}})
async def device_changes(
    _: ViewerKey, spec: DeviceDep, js: JsDep, names: NamesDep,
    before: Annotated[DateTime | None, Query(description="the moment (default: now)")] = None,
    window: Annotated[str, Query(max_length=7, json_schema_extra={"pattern": WINDOW_PATTERN},
                                 description="how far back: seconds, or e.g. 30m, 2h, 1d (at most 7 days)")] = "30m",
    metric: Annotated[Metric | None, Query(description="rank as causes of an alert on this metric; "
                                                      "without it, by time and risk only")] = None,
    selector: Annotated[str | None, Query(pattern=SELECTOR, description="the rule's selector")] = None,
    top: Annotated[int, Query(ge=1, le=50)] = 5,
) -> Changes:
    """Config changes, containers, packages, units, alerts and collection failures of the device in
    [before - window, before], read from the event streams and ranked as in an alert's causes."""
    try:
        span = parse_window(window)
    except ValueError as exc:
        raise unprocessable("window", str(exc)) from None
    now = datetime.now(timezone.utc)
    at = as_utc(before) if before is not None else now
    found: list[causes.Change] = []
    if at >= EARLIEST and at - span <= now:  # nothing is recorded before EARLIEST or after now
        found = await history.device_changes(js, names, spec.name, spec.id, at - span, min(at, now))
    ranked = causes.rank(found, device_id=spec.id, at=at, metric=metric or "", selector=selector,
                         window=span, top=top)
    return Changes(device=spec.name, before=at, window_s=int(span.total_seconds()), items=[
        AlertCause(time=s.change.time, kind=s.change.kind, subject=s.change.subject, summary=s.change.summary,
                   risk=s.change.risk, ref=s.change.ref, score=s.score, reasons=list(s.reasons),
                   detail=s.change.detail) for s in ranked])
