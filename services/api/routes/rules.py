"""Alert rules (admins manage, everyone reads) and the alerts they fired and resolved.

The ``alert_rules`` table is the record; every change is also put into the rules KV bucket, which
the evaluator watches (it needs NATS only). The KV write happens inside the database transaction,
before the commit, and is undone if the commit fails, so the two do not drift apart.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from nats.js.errors import KeyNotFoundError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from schema.models import AlertEvent as AlertRecord, AlertRule as Rule
from services.alerts import targets
from services.alerts.rules import no_data_types
from services.api.deps import (
    AdminKey,
    JsDep,
    NamesDep,
    RegistryDep,
    Responses,
    SessionDep,
    SettingsDep,
    ViewerKey,
    device_filter,
)
from services.api.errors import unprocessable
from services.api.keys import Principal
from services.api.limits import bounded_count, max_page
from services.api.queries import time_range
from services.api.schemas import Page, TimeFilter, absent, model_of
from services.api.settings import ApiSettings
from shared import alert_events
from shared.alert_events import RISK_RANK, Cause, Metric, Operator, WebhookFormat, redact_url
from shared.names import DEVICE_NAME_RE
from shared.runtime.devices import DeviceRegistry

router = APIRouter(tags=["alerts"])

NAME = r"^[A-Za-z0-9_-]{1,63}$"  # a subject token: infra.alert.<device>.<rule>
SELECTOR = r"^[^\x00-\x1f\x7f]{1,255}$"
DAY = 86400
DNS_TIMEOUT_S = 2.0
RiskName = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
_ERRORS: Responses = {404: {"description": "unknown rule"}}
_DEFAULT_OPERATOR = {"config_risk": ">=", "no_data": ">="}
MAX_NO_DATA_INTERVALS = 1000
_CAUSE_WINDOW: dict[str, Any] = {"ge": 60, "le": DAY, "description": "look-back window of the likely causes, seconds"}
_CAUSE_TOP: dict[str, Any] = {"ge": 0, "le": 20, "description": "how many likely causes a fired alert carries"}


class RuleFields(BaseModel):
    """Fields an admin sets; see docs/alerts.md for what each metric reads and its selector."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, pattern=DEVICE_NAME_RE.pattern,
                               description="device name or UUID; null: every device (unknown: 404)")
    selector: str | None = Field(default=None, pattern=SELECTOR,
                                 description="mount (disk), 1/5/15 (load), or a glob of drive, container, unit, "
                                             "pool, data type or config type names")
    operator: Operator | None = None
    threshold: Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)] | RiskName | None = Field(
        default=None, description="a number; for config_risk also a risk level (LOW=1, MEDIUM=2, HIGH=3, CRITICAL=4)")
    duration_s: int | None = Field(default=None, ge=0, le=30 * DAY, description="how long the condition must hold")
    refire_interval_s: int | None = Field(
        default=None, ge=0, le=365 * DAY,
        description="fire again while still firing at most this often (0: every event)")
    enabled: bool | None = None
    webhook_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    webhook_format: WebhookFormat | None = None
    cause_window_s: int = Field(1800, **_CAUSE_WINDOW)
    cause_top: int = Field(5, **_CAUSE_TOP)

    @field_validator("threshold")
    @classmethod
    def _rank(cls, v: float | str | None) -> float | None:
        return float(RISK_RANK[v]) if isinstance(v, str) else v

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and redact_url(v) == "<invalid url>":
            raise ValueError("not a valid URL")
        return v


class RuleCreate(RuleFields):
    """A rule to create; unset fields take the defaults shown."""

    name: str = Field(pattern=NAME, description="1-63 letters, digits, '-' or '_' (it is a subject token)")
    metric: Metric


class RuleUpdate(RuleFields):
    """Fields to change; absent fields keep their value (``device``: null means every device)."""

    operator: Operator = absent()
    threshold: Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)] | RiskName = absent(
        description="a number; for config_risk also a risk level (LOW=1, MEDIUM=2, HIGH=3, CRITICAL=4)")
    duration_s: int = absent(ge=0, le=30 * DAY, description="how long the condition must hold")
    refire_interval_s: int = absent(ge=0, le=365 * DAY,
                                    description="fire again while still firing at most this often (0: every event)")
    enabled: bool = absent()
    webhook_format: WebhookFormat = absent()
    cause_window_s: int = absent(**_CAUSE_WINDOW)
    cause_top: int = absent(**_CAUSE_TOP)


class RuleInfo(BaseModel):
    """A rule; ``webhook_url`` is shown in full to admins only (it may hold a token)."""

    id: uuid.UUID
    name: str
    device_id: uuid.UUID | None
    device: str | None
    metric: str
    selector: str | None
    operator: str
    threshold: float
    duration_s: int
    refire_interval_s: int
    enabled: bool
    webhook_url: str | None
    webhook_format: str
    cause_window_s: int
    cause_top: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Rule, registry: DeviceRegistry, principal: Principal) -> RuleInfo:
        spec = registry.get(str(row.device_id)) if row.device_id else None
        url = principal.webhook(row.webhook_url)
        return cls(id=row.id, name=row.name, device_id=row.device_id, device=spec.name if spec else None,
                   metric=row.metric, selector=row.selector, operator=row.operator, threshold=row.threshold,
                   duration_s=row.duration_s, refire_interval_s=row.refire_interval_s, enabled=row.enabled,
                   webhook_url=url, webhook_format=row.webhook_format, cause_window_s=row.cause_window_s,
                   cause_top=row.cause_top, created_at=row.created_at, updated_at=row.updated_at)


class AlertCause(model_of(Cause)):  # type: ignore[misc]
    """A likely cause of an alert: a change on its device just before it, and why it ranks there (also
    the shape of ``GET /devices/{device}/changes``)."""


class AlertInfo(BaseModel):
    """One alert fired or resolved; a fired one lists its likely causes, likeliest first."""

    model_config = ConfigDict(from_attributes=True)

    time: datetime
    event_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    device_id: uuid.UUID
    metric: str
    state: str
    value: float
    threshold: float
    operator: str
    since: datetime
    refire: bool
    detail: str | None
    message: str | None
    causes: list[AlertCause] | None = Field(None, description="fired alerts only (null when resolved)")


def _wire(row: Rule) -> alert_events.AlertRule:
    return alert_events.AlertRule(
        id=row.id, name=row.name, device_id=row.device_id, metric=row.metric,  # type: ignore[arg-type]
        selector=row.selector, operator=row.operator, threshold=row.threshold,  # type: ignore[arg-type]
        duration_s=row.duration_s, refire_interval_s=row.refire_interval_s, enabled=row.enabled,
        webhook_url=row.webhook_url, webhook_format=row.webhook_format,  # type: ignore[arg-type]
        cause_window_s=row.cause_window_s, cause_top=row.cause_top, updated_at=row.updated_at,
    )


def _check(row: Rule) -> None:
    if row.metric == "load" and row.selector not in (None, "1", "5", "15"):
        raise unprocessable("selector", "the load selector is 1, 5 or 15 (minutes)", "body")
    if row.metric == "no_data":
        _check_no_data(row)
    if not math.isfinite(row.threshold):
        raise unprocessable("threshold", "threshold must be finite", "body")


def _check_no_data(row: Rule) -> None:
    """A number of collection intervals (``>=`` is implied, a duration has no meaning) of data types."""
    if not no_data_types(row.selector):
        raise unprocessable("selector", "no_data watches '*' or a data type name or glob", "body")
    if not 1 <= row.threshold <= MAX_NO_DATA_INTERVALS:
        raise unprocessable("threshold", f"no_data counts 1-{MAX_NO_DATA_INTERVALS} collection intervals", "body")
    row.operator, row.duration_s = ">=", 0


async def _check_webhook(url: str | None, settings: ApiSettings) -> None:
    """A webhook on loopback, link-local or private addresses is refused unless the setting allows it.

    A name that does not resolve from here (yet) is accepted: the evaluator checks again at every send.
    """
    if url is None:
        return
    try:
        await asyncio.wait_for(targets.check(url, settings.alerts_webhook_allow_private), DNS_TIMEOUT_S)
    except (TimeoutError, targets.Unresolvable):
        return
    except targets.TargetRefused as exc:
        raise unprocessable("webhook_url", str(exc), "body") from None


def _set(row: Rule, fields: dict[str, Any], registry: DeviceRegistry) -> None:
    if "device" in fields:
        device = fields.pop("device")
        row.device_id = device_filter(registry, device) if device is not None else None  # unknown: 404
    for k, v in fields.items():
        setattr(row, k, v)
    row.updated_at = datetime.now(timezone.utc)


async def _mirror(js, names, row: Rule | None, key: str) -> bytes | None:
    """Put (or, for None, delete) the rule in the KV bucket; returns the previous value, for an undo."""
    kv = await js.key_value(names.alert_rules_bucket)
    try:
        previous = (await kv.get(key)).value
    except KeyNotFoundError:
        previous = None
    if row is None:
        await kv.delete(key)
    else:
        await kv.put(key, msgspec.json.encode(_wire(row)))
    return previous


async def _undo(js, names, key: str, previous: bytes | None) -> None:
    kv = await js.key_value(names.alert_rules_bucket)
    if previous is None:
        await kv.delete(key)
    else:
        await kv.put(key, previous)


async def _commit(session, js, names, row: Rule | None, key: str) -> None:
    """Flush, mirror to KV, commit; a name clash is 409; a failed commit undoes the KV write."""
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "a rule with this name exists") from exc
    previous = await _mirror(js, names, row, key)
    try:
        await session.commit()
    except BaseException:
        await _undo(js, names, key, previous)
        raise


async def _get(session, rule: str) -> Rule:
    try:
        where = Rule.id == uuid.UUID(rule)
    except ValueError:
        where = Rule.name == rule
    row = await session.scalar(select(Rule).where(where))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule {rule!r} not found")
    return row


RulePath = Annotated[str, Path(pattern=NAME, description="rule id or name")]


@router.post("/rules", status_code=status.HTTP_201_CREATED,
             responses={404: {"description": "unknown device"}, 409: {"description": "name taken"}})
async def create_rule(body: RuleCreate, principal: AdminKey, session: SessionDep, js: JsDep, names: NamesDep,
                      registry: RegistryDep, settings: SettingsDep) -> RuleInfo:
    """Create a rule; the evaluator applies it to the next events."""
    await _check_webhook(body.webhook_url, settings)
    fields = body.model_dump(exclude_unset=True, exclude={"name", "metric"})
    row = Rule(id=uuid.uuid4(), name=body.name, metric=body.metric, device_id=None, selector=None,
               operator=_DEFAULT_OPERATOR.get(body.metric, ">"), threshold=0.0, duration_s=0, refire_interval_s=3600,
               enabled=True, webhook_url=None, webhook_format="json", cause_window_s=body.cause_window_s,
               cause_top=body.cause_top, created_at=datetime.now(timezone.utc))
    _set(row, {k: v for k, v in fields.items() if v is not None or k == "device"}, registry)
    _check(row)
    session.add(row)
    await _commit(session, js, names, row, str(row.id))
    return RuleInfo.of(row, registry, principal)


@router.get("/rules", responses={404: {"description": "unknown device"}})
async def list_rules(
    principal: ViewerKey, session: SessionDep, registry: RegistryDep,
    metric: Annotated[Metric | None, Query()] = None,
    device: Annotated[str | None, Query(max_length=63, description="name or UUID: its and fleet-wide rules")] = None,
    enabled: bool | None = None,
) -> list[RuleInfo]:
    """Every rule, by name."""
    query = select(Rule).order_by(Rule.name)
    if metric is not None:
        query = query.where(Rule.metric == metric)
    if enabled is not None:
        query = query.where(Rule.enabled == enabled)
    if device is not None:
        device_id = device_filter(registry, device)
        query = query.where((Rule.device_id == device_id) | Rule.device_id.is_(None))
    return [RuleInfo.of(r, registry, principal) for r in await session.scalars(query)]


@router.get("/rules/{rule}", responses=_ERRORS)
async def get_rule(rule: RulePath, principal: ViewerKey, session: SessionDep, registry: RegistryDep) -> RuleInfo:
    """One rule by id or name."""
    return RuleInfo.of(await _get(session, rule), registry, principal)


@router.patch("/rules/{rule}", responses={404: {"description": "unknown rule or device"},
                                          409: {"description": "name taken"}})
async def update_rule(rule: RulePath, body: RuleUpdate, principal: AdminKey, session: SessionDep, js: JsDep,
                      names: NamesDep, registry: RegistryDep, settings: SettingsDep) -> RuleInfo:
    """Change a rule's fields (not its name or metric); the state of its alerts carries on."""
    row = await _get(session, rule)
    fields = body.model_dump(exclude_unset=True)
    await _check_webhook(fields.get("webhook_url"), settings)
    _set(row, fields, registry)
    _check(row)
    await _commit(session, js, names, row, str(row.id))
    return RuleInfo.of(row, registry, principal)


@router.delete("/rules/{rule}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_rule(rule: RulePath, _: AdminKey, session: SessionDep, js: JsDep, names: NamesDep) -> Response:
    """Delete a rule; it stops being evaluated (its alerts stay in the history, unresolved ones too)."""
    row = await _get(session, rule)
    await session.delete(row)
    await _commit(session, js, names, None, str(row.id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alerts", responses={404: {"description": "unknown device"}})
async def list_alerts(
    _: ViewerKey, registry: RegistryDep, session: SessionDep,
    window: Annotated[TimeFilter, Query()],
    device: Annotated[str | None, Query(max_length=63, description="name or UUID")] = None,
    rule: Annotated[str | None, Query(pattern=NAME, description="rule id or name")] = None,
    state: Annotated[Literal["fired", "resolved"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=max_page(1000))] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AlertInfo]:
    """Alerts fired and resolved, newest first."""
    where = time_range(AlertRecord.time, window.start, window.end)
    device_id = device_filter(registry, device)
    if device_id is not None:
        where.append(AlertRecord.device_id == device_id)
    if rule is not None:
        try:
            where.append(AlertRecord.rule_id == uuid.UUID(rule))
        except ValueError:
            where.append(AlertRecord.rule_name == rule)
    if state is not None:
        where.append(AlertRecord.state == state)
    total = await bounded_count(session, select(AlertRecord).where(*where), (page - 1) * page_size)
    rows = await session.scalars(select(AlertRecord).where(*where).order_by(AlertRecord.time.desc(), AlertRecord.event_id)
                                 .offset((page - 1) * page_size).limit(page_size))
    return Page[AlertInfo].of([AlertInfo.model_validate(r) for r in rows], total, page, page_size)
