"""Inventory of a device: the history of its drift (the latest snapshot and the stored ones are generic reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from services.api.deps import UNKNOWN_DEVICE, DeviceDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.schemas import Page
from services.api.schemas_collected import HistoryQuery, row_model
from shared.datatypes.inventory.table import InventorySnapshot

router = APIRouter(prefix="/devices", tags=["inventory"])

DriftRow = row_model(InventorySnapshot, ("time", "event_id", "hostname", "os_name", "os_version", "kernel", "drift"),
                     "InventoryDriftRow")


@router.get("/{device}/inventory/drift", responses=UNKNOWN_DEVICE)
async def inventory_drift(
    _: ViewerKey, spec: DeviceDep, session: SessionDep, query: Annotated[HistoryQuery, Query()],
) -> Page[DriftRow]:  # type: ignore[valid-type]
    """Snapshots in [start, end) that differ from the previous one, oldest first, with what changed."""
    i = InventorySnapshot
    stmt = select(i).where(*window(i, spec.id, query.start, query.end), i.has_drift).order_by(i.time)
    return await page_of(session, stmt, DriftRow, query.page, query.page_size)
