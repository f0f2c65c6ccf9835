"""Configuration history: current files, one file's versions, raw content, diffs and change events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import defer

from schema.models import ConfigurationChangeEvent as Change, ConfigurationSnapshot as Snap
from services.api import diffs
from services.api.deps import UNKNOWN_DEVICE, DeviceDep, DeviceFilterDep, Responses, SessionDep, ViewerKey
from services.api.errors import unprocessable
from services.api.limits import bounded_count, max_page
from services.api.queries import time_range
from services.api.schemas import Page, TimeFilter
from services.api.schemas_config import ConfigChange, ConfigDiff, ConfigSnapshot, ConfigSnapshotInfo
from shared.names import TOKEN_RE

router = APIRouter(tags=["configuration"])

TOKEN = TOKEN_RE.pattern
PATH_PATTERN = r"^[^\x00]+$"
GONE = "deleted"
_NO_CONTENT = (defer(Snap.raw_content), defer(Snap.parsed_data))
_ERRORS: Responses = {404: {"description": "unknown device or snapshot"}}


async def _snapshot(session, device_id: uuid.UUID, snapshot_id: uuid.UUID, content: bool = True) -> Snap:
    stmt = select(Snap).where(Snap.id == snapshot_id, Snap.device_id == device_id)
    row = await session.scalar(stmt if content else stmt.options(*_NO_CONTENT))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"snapshot {snapshot_id} not found on this device")
    return row


@router.get("/devices/{device}/config", responses=_ERRORS)
async def current_files(
    _: ViewerKey, spec: DeviceDep, session: SessionDep,
    config_type: Annotated[str | None, Query(pattern=TOKEN, max_length=50)] = None,
) -> list[ConfigSnapshotInfo]:
    """The current version of every watched file (deleted files left out), by path."""
    where: list[ColumnElement[bool]] = [Snap.device_id == spec.id]
    if config_type:
        where.append(Snap.config_type == config_type)
    rows = await session.scalars(
        select(Snap).options(*_NO_CONTENT).where(*where).ext(distinct_on(Snap.file_path))
        .order_by(Snap.file_path, Snap.time.desc())
    )
    return [ConfigSnapshotInfo.model_validate(r) for r in rows if r.change_type != GONE]


@router.get("/devices/{device}/config/history", responses=_ERRORS)
async def file_history(
    _: ViewerKey, spec: DeviceDep, session: SessionDep,
    path: Annotated[str, Query(min_length=1, max_length=4096, pattern=PATH_PATTERN, description="the file's path")],
    page: Annotated[int, Query(ge=1, le=max_page(500))] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ConfigSnapshotInfo]:
    """Every stored version of one file, newest first."""
    where = (Snap.device_id == spec.id, Snap.file_path == path)
    total = await bounded_count(session, select(Snap).where(*where), (page - 1) * page_size)
    rows = await session.scalars(
        select(Snap).options(*_NO_CONTENT).where(*where).order_by(Snap.time.desc())
        .offset((page - 1) * page_size).limit(page_size)
    )
    return Page[ConfigSnapshotInfo].of([ConfigSnapshotInfo.model_validate(r) for r in rows], total, page, page_size)


@router.get("/devices/{device}/config/snapshots/{snapshot_id}", responses=_ERRORS)
async def snapshot(
    snapshot_id: Annotated[uuid.UUID, Path()], _: ViewerKey, spec: DeviceDep, session: SessionDep
) -> ConfigSnapshot:
    """One snapshot with its raw content."""
    return ConfigSnapshot.model_validate(await _snapshot(session, spec.id, snapshot_id))


@router.get("/devices/{device}/config/snapshots/{snapshot_id}/diff", responses=_ERRORS)
async def snapshot_diff(
    snapshot_id: Annotated[uuid.UUID, Path()], _: ViewerKey, spec: DeviceDep, session: SessionDep,
    against: Annotated[uuid.UUID | None, Query(description="another snapshot; default: the previous version")] = None,
    context: Annotated[int, Query(ge=0, le=100, description="lines of context")] = 3,
) -> ConfigDiff:
    """A unified diff from ``against`` (default: the file's previous version) to this snapshot."""
    new = await _snapshot(session, spec.id, snapshot_id)
    if against is not None:
        old: Snap | None = await _snapshot(session, spec.id, against)
    else:
        old = await session.scalar(
            select(Snap).where(Snap.device_id == spec.id, Snap.file_path == new.file_path, Snap.time < new.time)
            .order_by(Snap.time.desc()).limit(1)
        )
    old_text = (old.raw_content or "") if old is not None else ""
    new_text = new.raw_content or ""
    available = new.raw_content is not None and (old is None or old.raw_content is not None)
    try:
        lines = await diffs.diff(
            old_text, new_text, fromfile=old.file_path if old is not None else "/dev/null", tofile=new.file_path,
            fromdate=old.time.isoformat() if old is not None else "", todate=new.time.isoformat(), n=context,
        )
    except diffs.DiffTooLarge as exc:
        raise unprocessable("snapshot_id", f"{exc}: compare smaller files, or read the snapshots", "path") from None
    body = [ln for ln in lines if not ln.startswith(("---", "+++"))]
    return ConfigDiff(
        device_id=spec.id, file_path=new.file_path, content_available=available,
        from_snapshot=ConfigSnapshotInfo.model_validate(old) if old is not None else None,
        to_snapshot=ConfigSnapshotInfo.model_validate(new),
        diff="".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines),
        added_lines=sum(ln.startswith("+") for ln in body), removed_lines=sum(ln.startswith("-") for ln in body),
    )


@router.get("/config/changes", responses=UNKNOWN_DEVICE)
async def changes(
    _: ViewerKey, session: SessionDep, device_id: DeviceFilterDep,
    window: Annotated[TimeFilter, Query()],
    config_type: Annotated[str | None, Query(pattern=TOKEN, max_length=50)] = None,
    risk_level: Annotated[str | None, Query(pattern=TOKEN, max_length=20, description="e.g. LOW, HIGH")] = None,
    page: Annotated[int, Query(ge=1, le=max_page(500))] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ConfigChange]:
    """Configuration change events, newest first, filtered by device, type, risk and time."""
    where: list[ColumnElement[bool]] = time_range(Change.time, window.start, window.end)
    if device_id is not None:
        where.append(Change.device_id == device_id)
    if config_type:
        where.append(Change.config_type == config_type)
    if risk_level:
        where.append(func.upper(Change.risk_level) == risk_level.upper())
    total = await bounded_count(session, select(Change).where(*where), (page - 1) * page_size)
    rows = await session.scalars(
        select(Change).where(*where).order_by(Change.time.desc()).offset((page - 1) * page_size).limit(page_size)
    )
    return Page[ConfigChange].of([ConfigChange.model_validate(r) for r in rows], total, page, page_size)
