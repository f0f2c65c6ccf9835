"""Sources of a device's timeline. Each is one function; adding a source is adding it to SOURCES."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class TimelineEntry(BaseModel):
    """One thing that happened on a device."""

    time: datetime
    kind: str
    summary: str
    detail: dict[str, Any] = {}


Source = Callable[[AsyncSession, uuid.UUID, datetime, datetime, int], Awaitable[list[TimelineEntry]]]

_WINDOW = "device_id = :device_id AND time >= :start AND time < :end"


async def _rows(session: AsyncSession, sql: str, device_id: uuid.UUID, start: datetime, end: datetime, limit: int):
    result = await session.execute(text(sql), {"device_id": device_id, "start": start, "end": end, "limit": limit})
    return [r._mapping for r in result]


async def config_changes(session: AsyncSession, device_id: uuid.UUID, start: datetime, end: datetime,
                         limit: int) -> list[TimelineEntry]:
    """Configuration files created, changed, deleted or moved."""
    rows = await _rows(session, f"""
        SELECT time, id, snapshot_id, config_type, file_path, change_type, old_path, risk_level, requires_restart
        FROM configuration_change_events WHERE {_WINDOW} ORDER BY time DESC LIMIT :limit""",
        device_id, start, end, limit)
    return [TimelineEntry(
        time=r["time"], kind="config_change", summary=f"{r['file_path']} {r['change_type']} ({r['risk_level']} risk)",
        detail={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in r.items() if k != "time"},
    ) for r in rows]


async def container_state_changes(session: AsyncSession, device_id: uuid.UUID, start: datetime, end: datetime,
                                  limit: int) -> list[TimelineEntry]:
    """A container's state differs from its previous snapshot (the first snapshot in range is the baseline)."""
    rows = await _rows(session, f"""
        SELECT time, container_id, name, image, state, previous_state FROM (
            SELECT time, container_id, name, image, state,
                   lag(state) OVER (PARTITION BY container_id ORDER BY time) AS previous_state,
                   row_number() OVER (PARTITION BY container_id ORDER BY time) AS n
            FROM container_snapshots WHERE {_WINDOW}
        ) s
        WHERE n > 1 AND state IS DISTINCT FROM previous_state
        ORDER BY time DESC LIMIT :limit""", device_id, start, end, limit)
    return [TimelineEntry(
        time=r["time"], kind="container_state",
        summary=f"container {r['name'] or r['container_id']}: {r['previous_state']} -> {r['state']}",
        detail={k: r[k] for k in ("container_id", "name", "image", "previous_state", "state")},
    ) for r in rows]


async def collection_failures(session: AsyncSession, device_id: uuid.UUID, start: datetime, end: datetime,
                              limit: int) -> list[TimelineEntry]:
    """Collections that ended in error, and the moment a data type became unsupported (a host
    without docker or smartctl answers "unsupported" on every poll: that is shown once)."""
    rows = await _rows(session, f"""
        SELECT time, operation_id, data_type, collection_method, trigger, status, error_message FROM (
            SELECT time, operation_id, data_type, collection_method, trigger, status, error_message,
                   coalesce(lag(status) OVER (PARTITION BY data_type ORDER BY time), (
                       SELECT p.status FROM data_collection_audit p
                       WHERE p.device_id = a.device_id AND p.data_type = a.data_type AND p.time < :start
                         AND p.collection_method IN ('ssh', 'local') AND NOT p.cache_hit
                       ORDER BY p.time DESC LIMIT 1)) AS previous_status
            FROM data_collection_audit a
            WHERE {_WINDOW} AND collection_method IN ('ssh', 'local') AND NOT cache_hit
        ) s
        WHERE status = 'error' OR (status = 'unsupported' AND previous_status IS DISTINCT FROM 'unsupported')
        ORDER BY time DESC LIMIT :limit""", device_id, start, end, limit)
    return [TimelineEntry(
        time=r["time"], kind="collection_failure",
        summary=f"{r['data_type']} {r['status']}: {r['error_message'] or 'no message'}",
        detail={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in r.items() if k != "time"},
    ) for r in rows]


async def alerts(session: AsyncSession, device_id: uuid.UUID, start: datetime, end: datetime,
                 limit: int) -> list[TimelineEntry]:
    """Alerts fired and resolved."""
    rows = await _rows(session, f"""
        SELECT time, event_id, rule_id, rule_name, metric, state, value, threshold, operator, since, refire, detail,
               message
        FROM alert_events WHERE {_WINDOW} ORDER BY time DESC LIMIT :limit""", device_id, start, end, limit)
    return [TimelineEntry(
        time=r["time"], kind="alert", summary=r["message"] or f"{r['rule_name']} {r['state']}",
        detail={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in r.items() if k not in ("time", "message")},
    ) for r in rows]


SOURCES: dict[str, Source] = {
    "config_change": config_changes,
    "container_state": container_state_changes,
    "collection_failure": collection_failures,
    "alert": alerts,
}


async def timeline(session: AsyncSession, device_id: uuid.UUID, start: datetime, end: datetime, limit: int,
                   kinds: list[str] | None = None) -> list[TimelineEntry]:
    """The newest ``limit`` entries of the chosen sources, merged in time order (oldest first)."""
    entries: list[TimelineEntry] = []
    for kind, source in SOURCES.items():
        if kinds is None or kind in kinds:
            entries.extend(await source(session, device_id, start, end, limit))
    entries.sort(key=lambda e: e.time, reverse=True)
    return sorted(entries[:limit], key=lambda e: e.time)
