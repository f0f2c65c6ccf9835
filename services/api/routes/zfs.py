"""ZFS pools of a device: the latest collection, and pool health and errors over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from shared.datatypes.zfs.table import ZfsPool
from services.api.deps import DeviceDep, ReaderDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.routes.data import RESPONSES, ForceRefresh, latest_response
from services.api.schemas import Page
from services.api.schemas_collected import PoolRow, ZfsHistoryQuery, collected_model
from shared.datatypes.zfs.payload import Zfs

router = APIRouter(prefix="/devices", tags=["zfs"])


@router.get("/{device}/zfs", response_model=collected_model(Zfs), responses=RESPONSES)
async def latest_zfs(principal: ViewerKey, spec: DeviceDep, reader: ReaderDep,
                     force_refresh: ForceRefresh = False) -> Response:
    """The latest pools and datasets: fresh from the cache, else refreshed (as ``/data/zfs``)."""
    return await latest_response(reader, spec, "zfs", principal, force_refresh)


@router.get("/{device}/zfs/history", responses={404: {"description": "unknown device"}})
async def zfs_history(
    _: ViewerKey, spec: DeviceDep, session: SessionDep, query: Annotated[ZfsHistoryQuery, Query()],
) -> Page[PoolRow]:
    """Pool health, space, errors and scrub state in [start, end), oldest first, of one ``pool`` or all."""
    where = window(ZfsPool, spec.id, query.start, query.end)
    if query.pool is not None:
        where.append(ZfsPool.pool == query.pool)
    return await page_of(session, select(ZfsPool).where(*where).order_by(ZfsPool.time, ZfsPool.pool), PoolRow,
                         query.page, query.page_size)
