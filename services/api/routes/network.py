"""Network interfaces of a device: the latest collection, and their counters over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from shared.datatypes.network.table import NetworkInterface
from services.api.deps import DeviceDep, ReaderDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.routes.data import RESPONSES, ForceRefresh, latest_response
from services.api.schemas import Page
from services.api.schemas_collected import (
    InterfaceRow,
    NetworkHistoryQuery,
    collected_model,
)
from shared.datatypes.network.payload import Network

router = APIRouter(prefix="/devices", tags=["network"])


@router.get("/{device}/network", response_model=collected_model(Network), responses=RESPONSES)
async def latest_network(principal: ViewerKey, spec: DeviceDep, reader: ReaderDep,
                         force_refresh: ForceRefresh = False) -> Response:
    """The latest interfaces: fresh from the cache, else refreshed (as ``/data/network``)."""
    return await latest_response(reader, spec, "network", principal, force_refresh)


@router.get("/{device}/network/history", responses={404: {"description": "unknown device"}})
async def network_history(
    _: ViewerKey, spec: DeviceDep, session: SessionDep, query: Annotated[NetworkHistoryQuery, Query()],
) -> Page[InterfaceRow]:
    """Interface state and counters in [start, end), oldest first, of one ``interface`` or all."""
    n = NetworkInterface
    where = window(n, spec.id, query.start, query.end)
    if query.interface is not None:
        where.append(n.interface == query.interface)
    return await page_of(session, select(n).where(*where).order_by(n.time, n.interface), InterfaceRow, query.page,
                         query.page_size)
