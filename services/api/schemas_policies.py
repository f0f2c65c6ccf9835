"""Request and response models of the config policies and their violations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schema.models import ConfigPolicy, ConfigViolationRecord
from services.api.keys import Principal
from services.api.schemas import Page, absent
from services.watcher.configtypes import CONFIG_TYPES
from shared.alert_events import WebhookFormat, redact_url
from shared.names import DEVICE_NAME_RE
from shared.policy_events import SEVERITIES, Severity
from shared.runtime.devices import DeviceRegistry

NAME = r"^[A-Za-z0-9_-]{1,63}$"  # a subject token: <prefix>.alert.<device>.<policy>
NO_NUL = r"^[^\x00]*$"
MAX_JSONPATH = 1000
MAX_TAGS = 32
ConfigTypeName = Literal.__getitem__(tuple(CONFIG_TYPES))
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[^\x00]+$")]
TagValue = Annotated[str, StringConstraints(max_length=255, pattern=NO_NUL)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS,
                                               description="every tag must be on the device; {}: any device")]
Jsonpath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_JSONPATH, pattern=r"^[^\x00]+$")]
Message = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]


def _url(v: str) -> str:
    if redact_url(v) == "<invalid url>":
        raise ValueError("not a valid URL")
    return v


WebhookUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$"),
                       AfterValidator(_url)]
_JSONPATH_DOC = "a PostgreSQL jsonpath over the file's parsed data; each value it returns is a match"


class PolicyFields(BaseModel):
    """Fields of a policy an admin may set on creation and change later."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    device: str | None = Field(default=None, pattern=DEVICE_NAME_RE.pattern,
                               description="device name or UUID; null: every device (unknown: 404)")
    webhook_url: WebhookUrl | None = None


class PolicyCreate(PolicyFields):
    """A policy to create; unset fields take the defaults shown."""

    name: str = Field(pattern=NAME, description="1-63 letters, digits, '-' or '_' (it is a subject token)")
    config_type: ConfigTypeName  # type: ignore[valid-type]
    jsonpath: Jsonpath = Field(description=_JSONPATH_DOC)
    severity: Severity = "medium"
    message: Message
    enabled: bool = True
    tags: Tags = {}
    webhook_format: WebhookFormat = "json"


class PolicyUpdate(PolicyFields):
    """Fields to change; absent fields keep their value (``device``: null means every device)."""

    config_type: ConfigTypeName = absent()  # type: ignore[valid-type]
    jsonpath: Jsonpath = absent(description=_JSONPATH_DOC)
    severity: Severity = absent()
    message: Message = absent()
    enabled: bool = absent()
    tags: Tags = absent()
    webhook_format: WebhookFormat = absent()


class PolicyInfo(BaseModel):
    """A policy; ``webhook_url`` is shown in full to admins only (it may hold a token)."""

    id: uuid.UUID
    name: str
    config_type: str
    jsonpath: str
    severity: str
    message: str
    description: str | None
    enabled: bool
    device_id: uuid.UUID | None
    device: str | None
    tags: dict[str, str]
    builtin: bool = Field(description="from the default pack: it can be changed and disabled, not deleted")
    webhook_url: str | None
    webhook_format: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ConfigPolicy, registry: DeviceRegistry, principal: Principal) -> PolicyInfo:
        spec = registry.get(str(row.device_id)) if row.device_id else None
        url = principal.webhook(row.webhook_url)
        return cls(id=row.id, name=row.name, config_type=row.config_type, jsonpath=row.jsonpath,
                   severity=row.severity, message=row.message, description=row.description, enabled=row.enabled,
                   device_id=row.device_id, device=spec.name if spec else None, tags=row.tags or {},
                   builtin=row.builtin, webhook_url=url, webhook_format=row.webhook_format,
                   created_at=row.created_at, updated_at=row.updated_at)


class EvaluateRequest(BaseModel):
    """Which policy to evaluate over the fleet's current files; null: every enabled policy."""

    model_config = ConfigDict(extra="forbid")

    policy_id: uuid.UUID | None = None


class EvaluateResult(BaseModel):
    """What the policy evaluator did: files evaluated, violations opened and resolved, and open now."""

    files: int
    opened: int
    resolved: int
    open: int


class FileVersion(BaseModel):
    """One version of a file: its change event, its snapshot and the diff that made it."""

    event_id: uuid.UUID
    snapshot_id: uuid.UUID
    time: datetime
    change_type: str
    sha256: str | None = None
    diff_url: str = Field(description="GET this for the unified diff against the version before")

    @classmethod
    def of(cls, ref: dict[str, Any] | None, device_id: uuid.UUID) -> FileVersion | None:
        if not ref:
            return None
        return cls(**{k: ref.get(k) for k in ("event_id", "snapshot_id", "time", "change_type", "sha256")},
                   diff_url=f"/devices/{device_id}/config/snapshots/{ref['snapshot_id']}/diff")


class ViolationInfo(BaseModel):
    """A policy violated by one file of one device: open until a later version no longer matches."""

    id: uuid.UUID
    policy_id: uuid.UUID
    policy: str
    severity: str
    message: str
    device_id: uuid.UUID
    device: str | None = Field(description="null when the device was removed")
    config_type: str
    path: str
    state: Literal["open", "resolved"]
    matches: list[Any] = Field(description="the values the policy's JSONPath returned (at most 20)")
    match_count: int
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None = Field(description="fixed, deleted, moved or policy (resolved only)")
    introduced_by: FileVersion
    fixed_by: FileVersion | None = Field(description="the version that no longer matches; null when open, or "
                                                     "when the policy itself went away")

    @classmethod
    def of(cls, row: ConfigViolationRecord, registry: DeviceRegistry) -> ViolationInfo:
        spec = registry.get(str(row.device_id))
        return cls(id=row.id, policy_id=row.policy_id, policy=row.policy_name, severity=row.severity,
                   message=row.message, device_id=row.device_id, device=spec.name if spec else None,
                   config_type=row.config_type, path=row.file_path, state=row.state,
                   matches=row.matches or [], match_count=row.match_count, opened_at=row.opened_at,
                   resolved_at=row.resolved_at, resolution=row.resolution,
                   introduced_by=FileVersion.of(row.introduced_by, row.device_id),
                   fixed_by=FileVersion.of(row.fixed_by, row.device_id))


class ViolationPage(Page[ViolationInfo]):
    """One page of violations, with the open ones of every severity that match the other filters."""

    by_severity: dict[str, int] = Field(default_factory=dict, description=(
        f"open violations per severity ({', '.join(SEVERITIES)}) matching every filter but state and severity"))
