"""Database reads shared by the routes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import get_args

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.requests import Request

from shared.events import COLLECTED_TYPES, Collected

log = logging.getLogger(__name__)

DETECT_TIMEOUT_S = 5.0

# Audit rows of real collections (not cache hits or refusals) carry one of these methods.
COLLECTION_METHODS = list(
    get_args(next(f.type for f in msgspec.structs.fields(Collected) if f.name == "collection_method"))
)

# Per device and data type: the newest collection's status and the newest successful one's time.
# Each lateral lookup walks the (device_id, time DESC) index and stops at its first match.
_COLLECTIONS = text("""
SELECT d.id AS device_id, t.data_type, last.status, ok.time AS ok_time
FROM unnest(CAST(:ids AS uuid[])) AS d(id)
CROSS JOIN unnest(CAST(:types AS text[])) AS t(data_type)
JOIN LATERAL (
    SELECT a.status FROM data_collection_audit a
    WHERE a.device_id = d.id AND a.data_type = t.data_type AND a.collection_method = ANY(CAST(:methods AS text[]))
    ORDER BY a.time DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT a.time FROM data_collection_audit a
    WHERE a.device_id = d.id AND a.data_type = t.data_type AND a.collection_method = ANY(CAST(:methods AS text[]))
      AND a.status = 'success'
    ORDER BY a.time DESC LIMIT 1
) ok ON true
""")

Collections = dict[str, tuple[str | None, datetime | None]]


async def collections(session: AsyncSession, device_ids: list[uuid.UUID]) -> dict[uuid.UUID, Collections]:
    """Per device: {data_type: (latest collection status, time of the latest success)}."""
    out: dict[uuid.UUID, Collections] = {i: {} for i in device_ids}
    if not device_ids:
        return out
    result = await session.execute(
        _COLLECTIONS, {"ids": device_ids, "types": sorted(COLLECTED_TYPES), "methods": COLLECTION_METHODS}
    )
    for row in result:
        out[row.device_id][row.data_type] = (row.status, row.ok_time)
    return out


async def has_timescaledb(engine: AsyncEngine) -> bool | None:
    """Whether the timescaledb extension is installed; None when the database cannot be asked."""
    async def ask() -> bool:
        async with engine.connect() as conn:
            return bool(await conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")))

    try:
        return await asyncio.wait_for(ask(), DETECT_TIMEOUT_S)
    except Exception as exc:
        log.warning("cannot tell whether TimescaleDB is installed yet (%s); asking again on first use",
                    type(exc).__name__)
        return None


async def timescaledb(request: Request) -> bool:
    """Whether time_bucket is available: detected at startup, or now if the database was down then."""
    state = request.app.state
    if state.timescaledb is None:
        state.timescaledb = await has_timescaledb(state.engine)
    return bool(state.timescaledb)
