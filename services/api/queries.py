"""Database reads shared by the routes."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, get_args

import msgspec
from pydantic import BaseModel
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.requests import Request

from services.api.errors import unprocessable
from services.api.limits import bounded_count
from services.api.schemas import Page, parse_bucket
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
    # Read-only, of rows only the writer writes: on a pooled connection of the session's engine,
    # without the session's transaction round trips.
    assert isinstance(session.bind, AsyncEngine)  # sessions are bound to the app's engine
    rows = await fetch_rows(session.bind, _COLLECTIONS.text, {
        "ids": device_ids, "types": sorted(COLLECTED_TYPES), "methods": COLLECTION_METHODS,
    })
    for row in rows:
        out[row["device_id"]][row["data_type"]] = (row["status"], row["ok_time"])
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


MAX_BUCKETS = 10_000
# TimescaleDB's default origin (a Monday), so both functions cut the same buckets.
ORIGIN = datetime(2000, 1, 3, tzinfo=timezone.utc)
_BUCKET_FUNCTIONS = {
    True: ("time_bucket", "time_bucket(CAST(:width AS interval), {column}, CAST(:origin AS timestamptz))"),
    False: ("date_bin", "date_bin(CAST(:width AS interval), {column}, CAST(:origin AS timestamptz))"),
}


@dataclass(frozen=True)
class Buckets:
    """How to cut [start, end) into buckets: the function's name, its SQL expression and its parameters."""

    function: str
    expr: str
    params: dict[str, Any]


async def time_buckets(request: Request, bucket: str, start: datetime, end: datetime, column: str = "time") -> Buckets:
    """``time_bucket`` with TimescaleDB, else ``date_bin``; 422 for a bad width or more than MAX_BUCKETS."""
    try:
        width = parse_bucket(bucket)
    except ValueError as exc:
        raise unprocessable("bucket", str(exc)) from None
    if (end - start) / width > MAX_BUCKETS:
        raise unprocessable("bucket", f"the range holds more than {MAX_BUCKETS} buckets of {bucket}")
    name, fn = _BUCKET_FUNCTIONS[await timescaledb(request)]
    return Buckets(name, fn.format(column=column), {"width": width, "origin": ORIGIN})


_PARAM = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=64)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def number(m: re.Match) -> str:
        if m[1] not in names:
            names.append(m[1])
        return f"${names.index(m[1]) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


def driver_query(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``sql`` with asyncpg's ``$1..`` in place of ``:name`` parameters, and their values in that order."""
    numbered, names = _numbered(sql)
    return numbered, [params[n] for n in names]


async def fetch_rows(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    """Rows of one read-only query on a pooled connection's asyncpg driver: no session, no
    transaction round trips, no SQLAlchemy row objects (for reads that return many rows)."""
    query, args = driver_query(sql, params)
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None  # an open connection has its driver's
        return await driver.fetch(query, *args)


async def page_of(session: AsyncSession, query: Select, row: type[BaseModel], page: int, page_size: int) -> Page[Any]:
    """One page of ``query`` (already filtered and ordered) as ``row`` models, with the total count."""
    total = await bounded_count(session, query, (page - 1) * page_size)  # never a full count of a big table
    rows = await session.scalars(query.offset((page - 1) * page_size).limit(page_size))
    return Page[row].of([row.model_validate(r) for r in rows], total, page, page_size)  # type: ignore[valid-type]


def time_range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    """Filters keeping ``column`` in [start, end), each bound optional."""
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return clauses


def window(model: Any, device_id: uuid.UUID, start: datetime | None, end: datetime | None) -> list[Any]:
    """Filters of a time-series table: the device's rows in [start, end), each bound optional."""
    return [model.device_id == device_id, *time_range(model.time, start, end)]
