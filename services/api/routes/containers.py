"""Containers of a device: one container's rows over time (the latest snapshot is a generic read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import exists, or_, select

from services.api.deps import DeviceDep, SessionDep, ViewerKey
from services.api.queries import page_of, window
from services.api.schemas import Page
from services.api.schemas_collected import HistoryQuery, row_model
from shared.datatypes.containers.table import ContainerSnapshot

router = APIRouter(prefix="/devices", tags=["containers"])

SHORT_ID = 12  # docker's short id; a shorter prefix is too ambiguous to match
ContainerRow = row_model(ContainerSnapshot)


@router.get("/{device}/containers/{container}/history",
            responses={404: {"description": "unknown device, or no such container on it"}})
async def container_history(
    _: ViewerKey, spec: DeviceDep, session: SessionDep,
    container: Annotated[str, Path(min_length=1, max_length=255, description="container id, short id or name")],
    query: Annotated[HistoryQuery, Query()],
) -> Page[ContainerRow]:  # type: ignore[valid-type]
    """One container's rows in [start, end), oldest first; a name matches every container that bore it."""
    c = ContainerSnapshot
    match = [c.container_id == container, c.name == container]
    if len(container) >= SHORT_ID:
        match.append(c.container_id.startswith(container, autoescape=True))
    stmt = select(c).where(*window(c, spec.id, query.start, query.end), or_(*match)).order_by(c.time, c.container_id)
    page = await page_of(session, stmt, ContainerRow, query.page, query.page_size)
    if not page.total_count and not await session.scalar(select(exists().where(c.device_id == spec.id, or_(*match)))):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"container {container!r} not found on {spec.name}")
    return page
