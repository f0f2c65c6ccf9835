"""The reads of every registered data type, derived from its declaration in ``shared.datatypes``.

Per type with ``api.latest``: ``GET /devices/{device}/{path}``, the latest payload (fresh from the
cache, else refreshed). With ``api.history``: ``GET /devices/{device}/{path}/history``, the stored
rows of its first table in [start, end), oldest first, paged, optionally of one ``api.key``. And
``GET /datatypes`` describes them all. A type needing more adds a module of its own next to this one.
"""

# Without ``from __future__ import annotations``: the route functions' annotations name per-type models
# that only exist in the factories' scopes.

from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Response
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql

from services.api.deps import UNKNOWN_DEVICE, DeviceDep, ReaderDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.routes.data import RESPONSES, ForceRefresh, latest_response
from services.api.schemas import Page
from services.api.schemas_collected import (
    ColumnInfo,
    DataTypeInfo,
    HistoryQuery,
    collected_model,
    history_query,
    row_model,
)
from shared.datatypes import REGISTRY
from shared.datatypes.spec import DataType

router = APIRouter()
_DIALECT = postgresql.dialect()


def _add_latest(t: DataType) -> None:
    async def latest(principal: ViewerKey, spec: DeviceDep, reader: ReaderDep,
                     force_refresh: ForceRefresh = False) -> Response:
        return await latest_response(reader, spec, t.name, principal, force_refresh)

    router.add_api_route(
        f"/devices/{{device}}/{t.api.path}", latest, methods=["GET"], name=f"latest_{t.api.path}",
        tags=[t.api.path], response_model=collected_model(t.payload), responses=RESPONSES,
        summary=f"Latest {t.name}",
        description=f"The latest collection: fresh from the cache, else refreshed (as ``/data/{t.name}``).\n\n{t.doc}",
    )


def _add_history(t: DataType) -> None:
    table: Any = t.tables[0]  # a mapped class: its columns are its attributes
    key = t.api.key
    Row, Q = row_model(table), history_query(t.api)
    order = [table.time, *(c for c in table.__table__.primary_key.columns if c.name not in ("time", "device_id"))]

    async def history(_: ViewerKey, spec: DeviceDep, session: SessionDep,
                      query: Annotated[Q, Query()]) -> Page[Row]:  # type: ignore[valid-type]
        q: HistoryQuery = query  # Q: a HistoryQuery built at run time
        where = window(table, spec.id, q.start, q.end)
        if key is not None and getattr(query, key) is not None:
            where.append(getattr(table, key) == getattr(query, key))
        return await page_of(session, select(table).where(*where).order_by(*order), Row, q.page, q.page_size)

    router.add_api_route(
        f"/devices/{{device}}/{t.api.path}/history", history, methods=["GET"], name=f"{t.api.path}_history",
        tags=[t.api.path], response_model=Page[Row], responses=UNKNOWN_DEVICE, summary=f"{t.name} history",  # type: ignore[valid-type]
        description=f"Stored ``{table.__tablename__}`` rows in [start, end), oldest first"
                    + (f", of one ``{key}`` or all." if key else ".") + f"\n\n{t.doc}",
    )


def describe(t: DataType) -> DataTypeInfo:
    """What a client needs to read a type: its paths, history key and the columns of its table."""
    table = cast(Table, t.tables[0].__table__)
    return DataTypeInfo(
        name=t.name, doc=t.doc.strip(), path=t.api.path, latest=t.api.latest, history=t.api.history, key=t.api.key,
        table=table.name, columns=[ColumnInfo(name=c.name, type=c.type.compile(dialect=_DIALECT).lower(),
                                              nullable=bool(c.nullable)) for c in table.columns],
    )


DESCRIPTIONS = [describe(t) for t in REGISTRY.values()]


@router.get("/datatypes", tags=["datatypes"])
async def datatypes(_: ViewerKey) -> list[DataTypeInfo]:
    """The registered data types, in collection order: what each collects and where the API serves it."""
    return DESCRIPTIONS


for _type in REGISTRY.values():
    if _type.api.latest:
        _add_latest(_type)
    if _type.api.history:
        _add_history(_type)
