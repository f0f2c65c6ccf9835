"""Response models of the fleet configuration reads: search, compare and drift."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SearchHit(BaseModel):
    """One file whose version (current, or current at ``at``) matches the search."""

    device_id: uuid.UUID
    device: str | None = Field(description="the device's name; null for a device no longer registered")
    config_type: str
    path: str
    snapshot_id: uuid.UUID = Field(description="the stored version (GET /devices/{device}/config/snapshots/{id})")
    time: datetime
    change_type: str
    content_hash: str
    matches: list[Any] = Field(description="the first 20 values the JSONPath returned (none without jsonpath)")
    match_count: int = Field(description="how many values the JSONPath returned")


class FileVersion(BaseModel):
    """One device's version of the compared file; ``missing`` when it has none (never had it, or deleted)."""

    device_id: uuid.UUID
    device: str | None
    path: str
    missing: bool
    snapshot_id: uuid.UUID | None = None
    time: datetime | None = None
    config_type: str | None = None
    content_hash: str | None = None


class StructChange(BaseModel):
    """One difference in the parsed data, from the reference to the other version."""

    path: str = Field(description='dotted keys and [index] positions, e.g. "services.web.image"')
    op: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class CompareCounts(BaseModel):
    added: int = 0
    removed: int = 0
    changed: int = 0
    added_lines: int = 0
    removed_lines: int = 0


class Comparison(BaseModel):
    """One device's version against the reference."""

    version: FileVersion
    identical: bool = Field(description="both versions exist and have the same content hash")
    structured: list[StructChange] = Field(description="parsed-data differences (lists by position)")
    structured_truncated: bool = False
    unified_diff: str | None = Field(description="of the stored (redacted) texts; null when either side has none")
    diff_error: str | None = Field(default=None, description="why there is no unified diff, when it was too large")
    counts: CompareCounts


class CompareResult(BaseModel):
    reference: FileVersion
    comparisons: list[Comparison]


class DriftDevice(BaseModel):
    id: uuid.UUID
    name: str | None
    snapshot_id: uuid.UUID
    time: datetime


class DriftGroup(BaseModel):
    """Devices whose current version of the path has this content hash."""

    content_hash: str
    devices: list[DriftDevice]


class DriftPath(BaseModel):
    path: str
    config_type: str
    devices_total: int
    groups: list[DriftGroup] = Field(description="largest group first")
    drifted: bool = Field(description="the devices hold more than one version of the path")
