"""Fleet configuration: JSONPath search over every device's current (or past) parsed files, a file
compared across devices, and the paths whose content differs between devices (drift)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, Select, Text, bindparam, cast, func, literal, select, text, true
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH, distinct_on
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from schema.models import ConfigCurrent as Cur, ConfigurationSnapshot as Snap
from services.api import diffs
from services.api.deps import RegistryDep, Responses, SessionDep, ViewerKey, device_filter
from services.api.errors import unprocessable
from services.api.limits import COUNT_CAP, bounded_count, max_page
from services.api.routes.config import PATH_PATTERN, TOKEN
from services.api.schemas import DateTime, Page, as_utc
from services.api.schemas_fleet import (
    CompareCounts,
    CompareResult,
    Comparison,
    DriftDevice,
    DriftGroup,
    DriftPath,
    FileVersion,
    SearchHit,
    StructChange,
)
from services.api.structdiff import counts, structured_diff
from shared.policy_events import path_key
from shared.runtime.devices import DeviceRegistry

router = APIRouter(tags=["fleet configuration"])

STATEMENT_TIMEOUT_MS = 5000  # one search or drift query; past it: 503
MAX_MATCHES = 20
MAX_DEVICES = 100  # devices named in one filter
MAX_COMPARED = 20  # devices in one compare
DELETED = "DELETE"
_ERRORS: Responses = {404: {"description": "unknown device"}}
_TIMEOUT: Responses = {**_ERRORS, 503: {"description": "the query took longer than its time limit, or no database"}}
_at_adapter: TypeAdapter[datetime] = TypeAdapter(DateTime)

DeviceQuery = Annotated[list[str] | None, Query(
    description="device names or UUIDs: repeat the parameter or separate them with commas")]
GlobQuery = Annotated[str | None, Query(
    min_length=1, max_length=4096, pattern=PATH_PATTERN,
    description="a glob on the file path: * any characters (also /), ? one character")]
TypeQuery = Annotated[str | None, Query(pattern=TOKEN, max_length=50, description="a config type, e.g. docker_compose")]


def glob_like(glob: str) -> str:
    """A SQL LIKE pattern (escape character backslash) matching what the glob matches."""
    out = []
    for ch in glob:
        out.append({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(ch, ch))
    return "".join(out)


def _device_ids(registry: DeviceRegistry, values: list[str] | None, field: str) -> list[uuid.UUID]:
    """The ids of a device list (names or UUIDs, repeated or comma-separated); unknown names are 404."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    if len(names) > MAX_DEVICES or any(len(n) > 63 for n in names):
        raise unprocessable(field, f"at most {MAX_DEVICES} device names or UUIDs of up to 63 characters")
    ids = [device_filter(registry, n) for n in names]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _name(registry: DeviceRegistry, device_id: uuid.UUID) -> str | None:
    spec = registry.by_id.get(device_id)
    return spec.name if spec is not None else None


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)


async def _check_jsonpath(session: AsyncSession, value: str) -> None:
    """A 422 with PostgreSQL's message unless it accepts ``value`` as a jsonpath."""
    try:
        await session.execute(select(cast(cast(literal(value, Text), JSONPATH), Text)))
    except DBAPIError as exc:
        await session.rollback()
        message = str(exc.orig).splitlines()[0].split(": ", 1)[-1] if exc.orig else str(exc)
        raise unprocessable("jsonpath", f"not a valid PostgreSQL jsonpath: {message}") from None


async def _bound(session: AsyncSession) -> None:
    await session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))


def _timed_out(exc: DBAPIError, what: str) -> None:
    """A 503 when the statement was cancelled by its time limit (else the caller re-raises)."""
    if _sqlstate(exc) == "57014":  # query_canceled
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the {what} took longer than {STATEMENT_TIMEOUT_MS / 1000:g} s: narrow it with "
                            "config_type, device or path, or a more selective jsonpath") from None


def _versions_at(at: datetime) -> Select:
    """Every file's newest stored version at ``at``, in config_current's columns."""
    return (
        select(Snap.device_id, Snap.config_type, Snap.file_path, Snap.id.label("snapshot_id"), Snap.time,
               Snap.change_type, Snap.content_hash, Snap.parsed_data["data"].label("parsed"))
        .where(Snap.time <= at).ext(distinct_on(Snap.device_id, Snap.file_path))
        .order_by(Snap.device_id, Snap.file_path, Snap.time.desc(), Snap.event_id.desc())
    )


def _current() -> Select:
    return select(Cur.device_id, Cur.config_type, Cur.file_path, Cur.snapshot_id, Cur.time, Cur.change_type,
                  Cur.content_hash, Cur.parsed)


@dataclass(frozen=True)
class SearchFilter:
    """What a search asks; ``jsonpath`` must be valid (``_check_jsonpath``)."""

    jsonpath: str | None = None
    config_type: str | None = None
    device_ids: tuple[uuid.UUID, ...] = ()
    path: str | None = None
    at: datetime | None = None
    include_deleted: bool = False


async def run_search(session: AsyncSession, f: SearchFilter, offset: int, limit: int) -> tuple[int, list[Any]]:
    """The hits' total (up to ``offset`` + COUNT_CAP) and one page of them, under the statement
    timeout. The jsonpath is PostgreSQL's ``@?`` operator, which the GIN index on
    ``parsed`` serves (the function ``jsonb_path_exists`` would not)."""
    src = (_current() if f.at is None else _versions_at(f.at)).subquery("v")
    where: list[ColumnElement[bool]] = []
    if not f.include_deleted:
        where.append(src.c.change_type != DELETED)
    if f.config_type:
        where.append(src.c.config_type == f.config_type)
    if f.device_ids:
        where.append(src.c.device_id.in_(f.device_ids))
    if f.path:
        where.append(src.c.file_path.like(glob_like(f.path), escape="\\"))
    found: ColumnElement[Any] = cast(literal("[]"), JSONB)
    if f.jsonpath is not None:
        jp = cast(cast(bindparam("jsonpath", f.jsonpath, Text), Text), JSONPATH)
        where.append(src.c.parsed.op("@?")(jp))
        found = func.jsonb_path_query_array(src.c.parsed, jp, cast(literal("{}"), JSONB), true())
    # One scan: the total rides on every row of the page (a window over the matches, which the
    # sort reads anyway); only a page past the end asks for it again.
    cols = [c for c in src.c if c.name != "parsed"]
    hits = (select(*cols, found.label("found"), func.count().over().label("total")).where(*where)
            .order_by(src.c.device_id, src.c.file_path).offset(offset).limit(limit)).subquery("h")
    page = select(*(c for c in hits.c if c.name != "found"), func.jsonb_array_length(hits.c.found).label("match_count"),
                  func.jsonb_path_query_array(hits.c.found, cast(literal(f"$[0 to {MAX_MATCHES - 1}]"), JSONPATH))
                  .label("matches")).order_by(hits.c.device_id, hits.c.file_path)
    await _bound(session)
    rows = list((await session.execute(page)).all())
    if rows:
        total = min(rows[0].total, offset + COUNT_CAP)
    else:
        total = await bounded_count(session, select(src).where(*where), offset) if offset else 0
    return total, rows


@router.get("/config/search", responses=_TIMEOUT, summary="Search the fleet's parsed configuration files")
async def search(
    _: ViewerKey, session: SessionDep, registry: RegistryDep,
    jsonpath: Annotated[str | None, Query(
        min_length=1, max_length=1000, pattern=PATH_PATTERN,
        description='a PostgreSQL jsonpath over the parsed data, e.g. $.services.* ? (@.privileged == true)')] = None,
    config_type: TypeQuery = None,
    device: DeviceQuery = None,
    path: GlobQuery = None,
    at: Annotated[DateTime | None, Query(description="search the versions current at this time (default: now)")] = None,
    include_deleted: Annotated[bool, Query(description="also list files whose latest change deleted them")] = False,
    page: Annotated[int, Query(ge=1, le=max_page(200))] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[SearchHit]:
    """Files whose current version (or the version current at ``at``) has parsed data matching
    ``jsonpath`` (PostgreSQL's ``@?``: at least one item), filtered by config type, device and path
    glob; ordered by device id, then path. ``matches`` are the first 20 values the jsonpath returns.
    Without ``jsonpath`` every file that passes the filters is listed. A search is cut at 5 s (503)."""
    f = SearchFilter(jsonpath=jsonpath, config_type=config_type, device_ids=tuple(_device_ids(registry, device, "device")),
                     path=path, at=as_utc(at) if at is not None else None, include_deleted=include_deleted)
    if jsonpath is not None:
        await _check_jsonpath(session, jsonpath)
    try:
        total, rows = await run_search(session, f, (page - 1) * page_size, page_size)
    except DBAPIError as exc:
        _timed_out(exc, "search")
        raise
    items = [SearchHit(
        device_id=r.device_id, device=_name(registry, r.device_id), config_type=r.config_type, path=r.file_path,
        snapshot_id=r.snapshot_id, time=r.time, change_type=r.change_type, content_hash=r.content_hash,
        matches=r.matches or [], match_count=r.match_count or 0,
    ) for r in rows]
    return Page[SearchHit].of(items, total, page, page_size)


async def _version(session: AsyncSession, device_id: uuid.UUID, path: str, at: datetime | None) -> Snap | None:
    """The device's version of the file, current or at ``at``; None when it has none."""
    if at is None:
        stmt = select(Snap).join(Cur, (Cur.snapshot_id == Snap.id) & (Cur.time == Snap.time)).where(
            Cur.device_id == device_id, Cur.path_key == path_key(path), Cur.file_path == path)
    else:
        stmt = (select(Snap).where(Snap.device_id == device_id, Snap.file_path == path, Snap.time <= at)
                .order_by(Snap.time.desc(), Snap.event_id.desc()).limit(1))
    snap = await session.scalar(stmt)
    return None if snap is None or snap.change_type == DELETED else snap


def _file_version(registry: DeviceRegistry, device_id: uuid.UUID, path: str, snap: Snap | None) -> FileVersion:
    name = _name(registry, device_id)
    if snap is None:
        return FileVersion(device_id=device_id, device=name, path=path, missing=True)
    return FileVersion(device_id=device_id, device=name, path=path, missing=False, snapshot_id=snap.id,
                       time=snap.time, config_type=snap.config_type, content_hash=snap.content_hash)


def _label(v: FileVersion) -> str:
    return f"{v.device or v.device_id}:{v.path}"


async def _compare(ref: FileVersion, ref_snap: Snap | None, other: FileVersion, snap: Snap | None) -> Comparison:
    if ref_snap is None or snap is None:
        return Comparison(version=other, identical=False, structured=[], unified_diff=None, counts=CompareCounts())
    identical = bool(snap.content_hash) and snap.content_hash == ref_snap.content_hash
    old_parsed = (ref_snap.parsed_data or {}).get("data")
    new_parsed = (snap.parsed_data or {}).get("data")
    changes, cut = ([], False) if identical else structured_diff(old_parsed, new_parsed)
    unified, error, lines = None, None, (0, 0)
    if ref_snap.raw_content is not None and snap.raw_content is not None:
        try:
            out = [] if identical else await diffs.diff(
                ref_snap.raw_content, snap.raw_content, fromfile=_label(ref), tofile=_label(other),
                fromdate=ref_snap.time.isoformat(), todate=snap.time.isoformat(), n=3)
            body = [ln for ln in out if not ln.startswith(("---", "+++"))]
            lines = (sum(ln.startswith("+") for ln in body), sum(ln.startswith("-") for ln in body))
            unified = "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in out)
        except diffs.DiffTooLarge as exc:
            error = str(exc)
    return Comparison(
        version=other, identical=identical, structured=[StructChange(**c) for c in changes],
        structured_truncated=cut, unified_diff=unified, diff_error=error,
        counts=CompareCounts(**counts(changes), added_lines=lines[0], removed_lines=lines[1]),
    )


def _target(registry: DeviceRegistry, item: str, path: str | None, field: str) -> tuple[uuid.UUID, str]:
    """``<device>`` (with ``path``) or ``<device>:<path>``: the device's id and the file's path."""
    name, sep, own = item.partition(":")
    file_path = own if sep else path
    if not file_path or len(file_path) > 4096 or "\x00" in file_path:
        raise unprocessable(field, f"{name}: which file? give path, or <device>:<path> (up to 4096 characters)")
    ids = _device_ids(registry, [name], field)
    if not ids:
        raise unprocessable(field, "a device name or UUID before the path")
    return ids[0], file_path


def _against(registry: DeviceRegistry, value: str, path: str | None) -> tuple[uuid.UUID, str, datetime]:
    target, sep, when = value.rpartition("@")
    if not sep or not target:
        raise unprocessable("against", "a device and a time: <device>[:<path>]@<RFC 3339 time>, "
                                       "e.g. web-1@2024-05-01T12:00:00Z")
    try:
        at = as_utc(_at_adapter.validate_python(when))
    except (ValidationError, OverflowError):
        raise unprocessable("against", "the time after @ must be like 2024-05-01T12:00:00Z (RFC 3339)") from None
    return (*_target(registry, target, path, "against"), at)


@router.get("/config/compare", responses={**_ERRORS, 422: {"description": "no device or no file to compare"}},
            summary="Compare one file across devices")
async def compare(
    _: ViewerKey, session: SessionDep, registry: RegistryDep,
    path: Annotated[str | None, Query(
        min_length=1, max_length=4096, pattern=PATH_PATTERN,
        description="the file's path (on every device named without a path of its own)")] = None,
    devices: Annotated[list[str] | None, Query(description=(
        "devices by name or UUID, repeated or comma-separated; <device>:<path> compares that device's file "
        "at another path"))] = None,
    against: Annotated[str | None, Query(max_length=4200, description=(
        "a baseline: <device>[:<path>]@<RFC 3339 time>, that device's version of the file at that time"))] = None,
) -> CompareResult:
    """The file's current version on each of ``devices`` against a reference: the ``against``
    baseline when given, else the first device. Each comparison has the structured differences of
    the parsed data (objects key by key, lists position by position), the unified diff of the stored
    (redacted) texts and their counts. A device without the file is reported ``missing``."""
    items = [n.strip() for v in devices or [] for n in v.split(",") if n.strip()]
    if len(items) > MAX_COMPARED + 1:
        raise unprocessable("devices", f"at most {MAX_COMPARED} devices in one compare")
    targets = [_target(registry, item, path, "devices") for item in items]
    if against is not None:
        ref_id, ref_path, ref_at = _against(registry, against, path)
        ref_snap = await _version(session, ref_id, ref_path, ref_at)
        others = targets
    elif len(targets) < 2:
        raise unprocessable("devices", "name two devices or more, or a baseline with against")
    else:
        (ref_id, ref_path), others = targets[0], targets[1:]
        ref_snap = await _version(session, ref_id, ref_path, None)
    if not others:
        raise unprocessable("devices", "name at least one device to compare with the baseline")
    if len(others) > MAX_COMPARED:
        raise unprocessable("devices", f"at most {MAX_COMPARED} devices in one compare")
    ref = _file_version(registry, ref_id, ref_path, ref_snap)
    comparisons = []
    for device_id, file_path in others:
        snap = await _version(session, device_id, file_path, None)
        comparisons.append(await _compare(ref, ref_snap, _file_version(registry, device_id, file_path, snap), snap))
    return CompareResult(reference=ref, comparisons=comparisons)


@router.get("/config/drift", responses=_TIMEOUT, summary="Paths whose content differs between devices")
async def drift(
    _: ViewerKey, session: SessionDep, registry: RegistryDep,
    config_type: Annotated[str | None, Query(
        alias="type", pattern=TOKEN, max_length=50, description="a config type, e.g. proxy_configs")] = None,
    path: GlobQuery = None,
    device: DeviceQuery = None,
    page: Annotated[int, Query(ge=1, le=max_page(100))] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[DriftPath]:
    """Every path present (not deleted) on the selected devices, its devices grouped by the content
    hash of their current version, largest group first; paths held in more than one version
    (``drifted``) first, then by path. Pages are of paths."""
    ids = _device_ids(registry, device, "device")
    where: list[ColumnElement[bool]] = [Cur.change_type != DELETED]
    if config_type:
        where.append(Cur.config_type == config_type)
    if ids:
        where.append(Cur.device_id.in_(ids))
    if path:
        where.append(Cur.file_path.like(glob_like(path), escape="\\"))
    versions = func.count(Cur.content_hash.distinct())
    paths = (select(Cur.path_key, Cur.file_path, Cur.config_type, versions.label("versions")).where(*where)
             .group_by(Cur.path_key, Cur.file_path, Cur.config_type))
    offset = (page - 1) * page_size
    try:
        await _bound(session)
        total = await bounded_count(session, paths, offset)
        chosen = (await session.execute(
            paths.order_by((versions > 1).desc(), Cur.file_path, Cur.config_type).offset(offset).limit(page_size)
        )).all()
        rows = (await session.execute(
            select(Cur.path_key, Cur.config_type, Cur.content_hash, Cur.device_id, Cur.snapshot_id, Cur.time)
            .where(*where, Cur.path_key.in_([c.path_key for c in chosen]))
        )).all() if chosen else []
    except DBAPIError as exc:
        _timed_out(exc, "drift query")
        raise
    grouped: dict[tuple[uuid.UUID, str], dict[str, list[DriftDevice]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        grouped[(r.path_key, r.config_type)][r.content_hash].append(
            DriftDevice(id=r.device_id, name=_name(registry, r.device_id), snapshot_id=r.snapshot_id, time=r.time))
    items = []
    for c in chosen:
        by_hash = grouped[(c.path_key, c.config_type)]
        groups = [DriftGroup(content_hash=h, devices=sorted(ds, key=lambda d: (d.name or "", str(d.id))))
                  for h, ds in sorted(by_hash.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
        items.append(DriftPath(path=c.file_path, config_type=c.config_type,
                               devices_total=sum(len(g.devices) for g in groups), groups=groups,
                               drifted=len(groups) > 1))
    return Page[DriftPath].of(items, total, page, page_size)
