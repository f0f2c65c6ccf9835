"""Config policies (admins manage, everyone reads), their evaluation on demand, and their violations.

``config_policies`` is the record the policy evaluator reads; it notices a changed policy by its
``updated_at``. Violations are written by the evaluator only: here they are read.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from pydantic import StringConstraints
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from schema.models import ConfigPolicy as Policy, ConfigViolationRecord as Violation
from services.api.deps import (
    AdminKey,
    NamesDep,
    NatsDep,
    RegistryDep,
    Responses,
    SessionDep,
    SettingsDep,
    ViewerKey,
    device_filter,
)
from services.api.errors import unprocessable
from services.api.limits import bounded_count, max_page
from services.api.openapi_doc import Error
from services.api.routes.fleet import glob_like
from services.api.routes.rules import _check_webhook
from services.api.schemas import Page, kinds_pattern
from services.api.schemas_policies import (
    NAME,
    ConfigTypeName,
    EvaluateRequest,
    EvaluateResult,
    PolicyCreate,
    PolicyInfo,
    PolicyUpdate,
    ViolationInfo,
    ViolationPage,
)
from shared.policy_events import SEVERITIES
from shared.runtime.devices import DeviceRegistry

router = APIRouter(tags=["policies"])

EVALUATE_TIMEOUT_S = 60.0
BUILTIN_KEPT = "a built-in policy can be disabled, not deleted"
_ERRORS: Responses = {404: {"description": "unknown policy"}}
_WRITE_ERRORS: Responses = {404: {"description": "unknown policy or device"}, 409: {"description": "name taken"}}
PolicyPath = Annotated[str, Path(pattern=NAME, description="policy id or name")]
SeverityList = Annotated[str, StringConstraints(max_length=100, pattern=kinds_pattern(SEVERITIES))]


async def _check_jsonpath(session, jsonpath: str) -> None:
    """PostgreSQL parses the jsonpath; what it refuses is a 422 with its message."""
    try:
        await session.execute(text("SELECT CAST(:p AS jsonpath)"), {"p": jsonpath})
    except DBAPIError as exc:
        if not str(getattr(exc.orig, "sqlstate", "") or "").startswith(("22", "42")):
            raise
        await session.rollback()
        cause = getattr(exc.orig, "__cause__", None) or exc.orig or exc
        raise unprocessable("jsonpath", str(cause).splitlines()[0], "body") from None


def _columns(fields: dict[str, Any], registry: DeviceRegistry) -> dict[str, Any]:
    """The columns of a body's fields: ``device`` (name or id, unknown: 404) as ``device_id``; ``updated_at`` now."""
    columns = {k: v for k, v in fields.items() if k != "device"}
    if "device" in fields:
        columns["device_id"] = device_filter(registry, fields["device"]) if fields["device"] is not None else None
    return {**columns, "updated_at": datetime.now(timezone.utc)}


async def _commit(session) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "a policy with this name exists") from exc


def _id_or_name(id_column, name_column, value: str) -> ColumnElement[bool]:
    """A match of ``value`` as a UUID on the id, else as a name."""
    try:
        return id_column == uuid.UUID(value)
    except ValueError:
        return name_column == value


async def _get(session, policy: str) -> Policy:
    row = await session.scalar(select(Policy).where(_id_or_name(Policy.id, Policy.name, policy)))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"policy {policy!r} not found")
    return row


@router.post("/config/policies", status_code=status.HTTP_201_CREATED,
             responses={404: {"description": "unknown device"}, 409: {"description": "name taken"}})
async def create_policy(body: PolicyCreate, principal: AdminKey, session: SessionDep, registry: RegistryDep,
                        settings: SettingsDep) -> PolicyInfo:
    """Create a policy; the evaluator applies it to every current file of its config type."""
    await _check_webhook(body.webhook_url, settings)
    await _check_jsonpath(session, body.jsonpath)
    columns = _columns(body.model_dump(), registry)
    row = Policy(id=uuid.uuid4(), builtin=False, created_at=columns["updated_at"], **columns)
    session.add(row)
    await _commit(session)
    return PolicyInfo.of(row, registry, principal)


@router.get("/config/policies")
async def list_policies(
    principal: ViewerKey, session: SessionDep, registry: RegistryDep,
    config_type: Annotated[ConfigTypeName | None, Query()] = None,  # type: ignore[valid-type]
    enabled: bool | None = None,
    builtin: bool | None = None,
) -> list[PolicyInfo]:
    """Every policy, by name."""
    given = [(Policy.config_type, config_type), (Policy.enabled, enabled), (Policy.builtin, builtin)]
    query = select(Policy).where(*(column == v for column, v in given if v is not None)).order_by(Policy.name)
    return [PolicyInfo.of(r, registry, principal) for r in await session.scalars(query)]


@router.get("/config/policies/{policy}", responses=_ERRORS)
async def get_policy(policy: PolicyPath, principal: ViewerKey, session: SessionDep,
                     registry: RegistryDep) -> PolicyInfo:
    """One policy by id or name."""
    return PolicyInfo.of(await _get(session, policy), registry, principal)


@router.patch("/config/policies/{policy}", responses=_WRITE_ERRORS)
async def update_policy(policy: PolicyPath, body: PolicyUpdate, principal: AdminKey, session: SessionDep,
                        registry: RegistryDep, settings: SettingsDep) -> PolicyInfo:
    """Change a policy's fields (not its name); a built-in one too, and the change stays."""
    fields = body.model_dump(exclude_unset=True)
    await _check_webhook(fields.get("webhook_url"), settings)
    if "jsonpath" in fields:
        await _check_jsonpath(session, fields["jsonpath"])
    row = await _get(session, policy)
    for column, value in _columns(fields, registry).items():
        setattr(row, column, value)
    await _commit(session)
    return PolicyInfo.of(row, registry, principal)


@router.delete("/config/policies/{policy}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**_ERRORS, 409: {"description": BUILTIN_KEPT}})
async def delete_policy(policy: PolicyPath, _: AdminKey, session: SessionDep) -> Response:
    """Delete a policy; the evaluator resolves its open violations."""
    row = await _get(session, policy)
    if row.builtin:
        raise HTTPException(status.HTTP_409_CONFLICT, BUILTIN_KEPT)
    await session.delete(row)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/config/policies/evaluate", responses={
    502: {"model": Error, "description": "the evaluator failed or answered something else"},
    503: {"description": "no policy evaluator answered, or NATS or the database is unavailable"}})
async def evaluate(_: AdminKey, nc: NatsDep, names: NamesDep,
                   body: Annotated[EvaluateRequest | None, Body()] = None) -> EvaluateResult:
    """Evaluate one policy (or every enabled one) over the fleet's current files now, and wait for the result."""
    policy_id = body.policy_id if body is not None else None
    request = json.dumps({"policy_id": str(policy_id) if policy_id else None}).encode()
    try:
        msg = await nc.request(names.policy_evaluate, request, timeout=EVALUATE_TIMEOUT_S)
    except (NoRespondersError, NatsTimeout):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no policy evaluator answered") from None
    try:
        reply = json.loads(msg.data)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and "error" in reply:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"policy evaluation failed: {reply['error']}")
    try:
        return EvaluateResult.model_validate(reply)
    except ValueError:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, "the policy evaluator's answer is not understood") from None


@router.get("/config/violations", responses={404: {"description": "unknown device"}})
async def list_violations(
    _: ViewerKey, session: SessionDep, registry: RegistryDep,
    state: Literal["open", "resolved", "all"] = "open",
    severity: Annotated[list[SeverityList] | None, Query(description="one or more, repeated or comma-separated")] = None,
    device: Annotated[str | None, Query(max_length=63, description="name or UUID")] = None,
    policy: Annotated[str | None, Query(pattern=NAME, description="policy id or name")] = None,
    config_type: Annotated[str | None, Query(max_length=50, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    path: Annotated[str | None, Query(max_length=4096, pattern=r"^[^\x00]+$",
                                      description="a glob of file paths: * any characters, ? one")] = None,
    page: Annotated[int, Query(ge=1, le=max_page(500))] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ViolationPage:
    """Violations, newest first, with the open ones per severity that match the other filters."""
    where: list[ColumnElement[bool]] = []
    device_id = device_filter(registry, device)
    if device_id is not None:
        where.append(Violation.device_id == device_id)
    if policy is not None:
        where.append(_id_or_name(Violation.policy_id, Violation.policy_name, policy))
    if config_type is not None:
        where.append(Violation.config_type == config_type)
    if path is not None:
        where.append(Violation.file_path.like(glob_like(path), escape="\\"))
    counts: dict[str, int] = {s: n for s, n in await session.execute(
        select(Violation.severity, func.count()).where(*where, Violation.state == "open").group_by(Violation.severity))}
    if state != "all":
        where.append(Violation.state == state)
    severities = {s for v in severity or () for s in v.split(",") if s}
    if severities:
        where.append(Violation.severity.in_(sorted(severities)))
    total = await bounded_count(session, select(Violation).where(*where), (page - 1) * page_size)
    rows = await session.scalars(select(Violation).where(*where).order_by(Violation.opened_at.desc(), Violation.id)
                                 .offset((page - 1) * page_size).limit(page_size))
    found = Page[ViolationInfo].of([ViolationInfo.of(r, registry) for r in rows], total, page, page_size)
    return ViolationPage(**dict(found), by_severity={s: counts.get(s, 0) for s in reversed(SEVERITIES)})


@router.get("/config/violations/{violation_id}", responses={404: {"description": "unknown violation"}})
async def get_violation(violation_id: Annotated[uuid.UUID, Path()], _: ViewerKey, session: SessionDep,
                        registry: RegistryDep) -> ViolationInfo:
    """One violation."""
    row = await session.get(Violation, violation_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"violation {violation_id} not found")
    return ViolationInfo.of(row, registry)

