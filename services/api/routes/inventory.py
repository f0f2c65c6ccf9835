"""Inventory of a device: the current snapshot, and the history of its drift."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from shared.datatypes.inventory.table import InventorySnapshot
from services.api.deps import DeviceDep, ReaderDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.routes.data import RESPONSES, ForceRefresh, latest_response
from services.api.schemas import Page
from services.api.schemas_collected import DriftRow, HistoryQuery, collected_model
from shared.datatypes.inventory.payload import Inventory

router = APIRouter(prefix="/devices", tags=["inventory"])


@router.get("/{device}/inventory", response_model=collected_model(Inventory), responses=RESPONSES)
async def latest_inventory(principal: ViewerKey, spec: DeviceDep, reader: ReaderDep,
                           force_refresh: ForceRefresh = False) -> Response:
    """The current snapshot: fresh from the cache, else refreshed (as ``/data/inventory``)."""
    return await latest_response(reader, spec, "inventory", principal, force_refresh)


@router.get("/{device}/inventory/drift", responses={404: {"description": "unknown device"}})
async def inventory_drift(
    _: ViewerKey, spec: DeviceDep, session: SessionDep, query: Annotated[HistoryQuery, Query()],
) -> Page[DriftRow]:
    """Snapshots in [start, end) that differ from the previous one, oldest first, with what changed."""
    i = InventorySnapshot
    stmt = select(i).where(*window(i, spec.id, query.start, query.end), i.has_drift).order_by(i.time)
    return await page_of(session, stmt, DriftRow, query.page, query.page_size)
